package pair

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sand-appliance/sand/appliance/pool/lvm"
	"github.com/sand-appliance/sand/failover"
	"github.com/sand-appliance/sand/iscsi/lio"
)

// Mounter mounts and unmounts filesystems (system calls; a fake in unit
// tests).
type Mounter interface {
	Mounted(dir string) bool
	MkdirAll(dir string, perm os.FileMode) error
	// Mount mounts source on dir; fstype "" with syscall.MS_BIND binds.
	Mount(source, dir, fstype string, flags uintptr) error
	Unmount(dir string) error
}

// Devices is the device-mapper side of the pool's volume group, without
// LVM (dm ioctls; a fake in unit tests).
type Devices interface {
	// Record reads vg's active devices and links; none if not active.
	Record(vg string) (lvm.Activation, error)
	// Deactivate removes vg's devices and links.
	Deactivate(ctx context.Context, vg string) error
	// Replay makes a recorded activation, whose tables may stack on the
	// physical volume pv only.
	Replay(ctx context.Context, a lvm.Activation, pv string) error
}

// PoolStep activates the volume group on the DRBD device and mounts the
// metadata volume (the registry's home) on the state directory; in
// reverse it unmounts and deactivates, so DRBD can be demoted.
//
// It is on the failover's critical path, and LVM is slow under load (2-3 s
// for a plain vgchange in the TCG lab, mostly waiting for udev), so LVM
// looks at the DRBD device only (--devices), makes its device nodes itself
// (lvmFast), and skips dmeventd (--ignoremonitoring); thin-pool monitoring
// is switched on in the background once the box serves (Monitoring). A
// hand-over skips LVM altogether: the peer recorded the group's devices as
// it let go, and this box makes the same ones (replayPeer).
func (s *Storage) PoolStep() failover.Step {
	vg, dir := s.Config.Pool.VG, s.Config.StateDir
	return failover.Step{
		Name: "pool " + vg,
		Start: func(ctx context.Context) error {
			t0 := time.Now()
			s.setHandOver(nil)
			how, err := s.activate(ctx)
			if err != nil {
				return fmt.Errorf("activate volume group %s: %w", vg, err)
			}
			t1 := time.Now()
			if !s.Mounts.Mounted(dir) {
				if err := s.Mounts.MkdirAll(dir, 0o755); err != nil {
					return err
				}
				// mount(2) directly: mount(8) probes the filesystem type
				// first, 1.4 s of the failover under TCG (measured).
				if err := s.Mounts.Mount(metaVolume(vg), dir, "ext4", syscall.MS_SYNCHRONOUS|syscall.MS_DIRSYNC); err != nil {
					return fmt.Errorf("mount the metadata volume %s on %s: %w", metaVolume(vg), dir, err)
				}
			}
			t2 := time.Now()
			if err := s.mountDBRoot(); err != nil {
				return err
			}
			s.Log.Info("pool active", "vg", vg, "activation", how, "activate", t1.Sub(t0), "mount", t2.Sub(t1), "dbroot", time.Since(t2))
			return nil
		},
		Stop: func(ctx context.Context) error {
			t0 := time.Now()
			if s.Mounts.Mounted(lio.DefaultDBRoot) {
				if err := s.Mounts.Unmount(lio.DefaultDBRoot); err != nil {
					return fmt.Errorf("unmount LIO's dbroot %s: %w", lio.DefaultDBRoot, err)
				}
			}
			if s.Mounts.Mounted(dir) {
				if err := s.Mounts.Unmount(dir); err != nil {
					return fmt.Errorf("unmount the metadata volume from %s: %w", dir, err)
				}
			}
			return s.deactivate(ctx, time.Since(t0))
		},
	}
}

// activate makes the volume group's devices: in a hand-over from the
// peer's record, else (or when that fails) with vgchange, which checks the
// thin pool's metadata unless the peer let go in order. It says which.
func (s *Storage) activate(ctx context.Context) (string, error) {
	if !failover.HandingOver(ctx) {
		return "vgchange with thin_check", s.vgchange(ctx, lvmFast, "--activate", "y", "--ignoremonitoring")
	}
	if err := s.replayPeer(ctx); err != nil {
		s.Log.Warn("activate the pool from the peer's record: activating with LVM instead", "err", err)
		return "vgchange", s.vgchange(ctx, lvmHandOver, "--activate", "y", "--ignoremonitoring")
	}
	return "the peer's record", nil
}

// deactivate records the volume group's activation for the peer (a
// hand-over replays it), then removes its devices and links; unmount is
// what the unmounts before it took, for the log.
func (s *Storage) deactivate(ctx context.Context, unmount time.Duration) error {
	vg := s.Config.Pool.VG
	t0 := time.Now()
	var record []byte
	a, err := s.Devices.Record(vg)
	if err == nil && len(a.Devices) > 0 { // none: the pool was not active
		record, err = a.Marshal()
	}
	if err != nil {
		s.Log.Warn("no hand-over record for the peer: it activates with LVM", "err", err)
	}
	t1 := time.Now()
	if err := s.Devices.Deactivate(ctx, vg); err != nil {
		return err
	}
	s.setHandOver(record)
	s.Log.Info("pool deactivated", "vg", vg, "devices", len(a.Devices), "unmount", unmount, "record", t1.Sub(t0), "remove", time.Since(t1))
	return nil
}

// mountDBRoot puts LIO's dbroot (persistent reservations, ALUA state) on
// the replicated metadata volume: a bind mount over the kernel's default,
// because the kernel takes a new dbroot only before iscsi_target_mod
// loads, and the image loads it at boot. The LIO driver restores the
// recorded reservations when it creates each device.
func (s *Storage) mountDBRoot() error {
	if s.Config.Target.Driver != "lio" || s.Mounts.Mounted(lio.DefaultDBRoot) {
		return nil
	}
	src := filepath.Join(s.Config.StateDir, "lio-dbroot")
	for _, d := range []string{src, lio.DefaultDBRoot} {
		if err := s.Mounts.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	if err := s.Mounts.Mount(src, lio.DefaultDBRoot, "", syscall.MS_BIND); err != nil {
		return fmt.Errorf("bind LIO's dbroot %s to %s on the metadata volume: %w", lio.DefaultDBRoot, src, err)
	}
	return nil
}

// vgchange runs vgchange on the pool's volume group, looking at the DRBD
// device only, with LVM configuration conf (lvmFast or lvmHandOver).
func (s *Storage) vgchange(ctx context.Context, conf string, args ...string) error {
	_, err := s.Run.Run(ctx, "vgchange", append(args, "--devices", s.Resource.Device(), "--config", conf, s.Config.Pool.VG)...)
	return err
}

// Monitoring switches thin-pool monitoring (dmeventd: autoextend, the
// full-pool warning) on once the box serves: the pool step skips it
// because its vgchange holds the volume group's lock for about a second
// under TCG.
func (s *Storage) Monitoring() failover.Chore {
	return failover.Chore{Name: "thin pool monitoring", Run: func(ctx context.Context) error {
		if err := s.vgchange(ctx, lvmFast, "--monitor", "y"); err != nil {
			return fmt.Errorf("monitor volume group %s: %w", s.Config.Pool.VG, err)
		}
		return nil
	}}
}

// lvmFast has LVM create and remove the volume group's /dev nodes and
// links itself (LVM's mode for systems without udev): activation does not
// wait for udev's rules, and udev's rules leave these devices alone; the
// pool step's deactivation removes the devices and links the same way.
// LVM skips the md, multipath and firmware-RAID component checks of the
// device it is given (DRBD's, never such a component). thin_check skips
// the per-block mappings (superblock and space maps are still checked);
// it refuses --clear-needs-check-flag together with --skip-mappings
// ("cannot perform fix without a full examination"), so a pool the kernel
// flagged needs_check stays flagged (and read-only) until the admin runs a
// full check.
const lvmFast = lvmNoUdev + ` global { thin_check_options = [ "-q", "--skip-mappings" ] }`

// lvmHandOver is lvmFast without thin_check, for a promotion after the
// peer let go in order (failover.HandingOver): it closed the pool a moment
// ago, the kernel committing the pool's metadata as it removed it, and
// the check costs about 0.2 s of the switchover under TCG. A promotion
// after a crash keeps the check.
const lvmHandOver = lvmNoUdev + ` global { thin_check_executable = "" }`

const lvmNoUdev = `activation { udev_sync = 0 udev_rules = 0 } ` +
	`devices { md_component_detection = 0 multipath_component_detection = 0 fw_raid_component_detection = 0 }`

// errNotAsked: a hand-over promotion whose ask step did not run.
var errNotAsked = errors.New("the peer was not asked for its record")
