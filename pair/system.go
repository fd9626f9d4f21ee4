package pair

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/sand-appliance/sand/appliance/pool/lvm"
	"github.com/sand-appliance/sand/dm"
)

// SystemMounts is the Mounter of the running box.
type SystemMounts struct{}

// Mounted reports whether dir is a mount point, from /proc/self/mounts.
func (SystemMounts) Mounted(dir string) bool {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == dir {
			return true
		}
	}
	return false
}

func (SystemMounts) MkdirAll(dir string, perm os.FileMode) error {
	if err := os.MkdirAll(dir, perm); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return nil
}

func (SystemMounts) Mount(source, dir, fstype string, flags uintptr) error {
	return syscall.Mount(source, dir, fstype, flags, "")
}

func (SystemMounts) Unmount(dir string) error { return syscall.Unmount(dir, 0) }

// SystemDevices is the Devices of the running box: device-mapper ioctls.
type SystemDevices struct{}

func (SystemDevices) Record(vg string) (lvm.Activation, error) {
	ctl, err := dm.Open()
	if err != nil {
		return lvm.Activation{}, fmt.Errorf("record the activation of %s: %w", vg, err)
	}
	defer ctl.Close()
	return lvm.Record(ctl, lvm.Sysfs, lvm.DevDir, vg)
}

func (SystemDevices) Deactivate(ctx context.Context, vg string) error {
	ctl, err := dm.Open()
	if err != nil {
		return fmt.Errorf("deactivate volume group %s: %w", vg, err)
	}
	defer ctl.Close()
	return lvm.Deactivate(ctx, ctl, lvm.Sysfs, lvm.DevDir, vg)
}

// Replay makes a's devices; their tables may name pv's device only.
func (SystemDevices) Replay(ctx context.Context, a lvm.Activation, pv string) error {
	var st unix.Stat_t
	if err := unix.Stat(pv, &st); err != nil {
		return fmt.Errorf("stat the physical volume %s: %w", pv, err)
	}
	dev := dm.Dev{Major: unix.Major(st.Rdev), Minor: unix.Minor(st.Rdev)}
	ctl, err := dm.Open()
	if err != nil {
		return err
	}
	defer ctl.Close()
	return a.Replay(ctx, ctl, lvm.DevDir, func(d dm.Dev) bool { return d == dev })
}
