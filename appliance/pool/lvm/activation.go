package lvm

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sand-appliance/sand/dm"
)

// Activation records what an active volume group is in the kernel: its
// device-mapper devices, in creation order, with portable tables (see
// dm.Portable), and the /dev/VG links LVM made to them. The box that lets
// go in a planned hand-over records it before deactivating; its peer
// replays it instead of running vgchange (see package dm for why that is
// sound only for a hand-over).
type Activation struct {
	VG      string      `json:"vg"`
	Devices []dm.Device `json:"devices"`
	// Links maps each /dev/VG entry to the device it leads to (udev links
	// ../dm-N, LVM's no-udev mode /dev/mapper/NAME; a replay makes the
	// latter).
	Links map[string]string `json:"links"`
}

// DevDir is where the volume group's directory of links lives.
const DevDir = "/dev"

// Record reads vg's active devices (names from sysfs) and links; a group
// that is not active gives a record without devices.
func Record(ctl *dm.Control, sysfs, devDir, vg string) (Activation, error) {
	names, err := DeviceMapperNames(sysfs, vg)
	if err != nil {
		return Activation{}, fmt.Errorf("record the activation of %s: %w", vg, err)
	}
	if len(names) == 0 {
		return Activation{VG: vg}, nil // not active: nothing to record
	}
	devs := make([]dm.Device, 0, len(names))
	byDev := map[dm.Dev]string{}
	for _, n := range slices.Backward(names) { // holders last: creation order
		d, err := ctl.Read(n)
		if err != nil {
			return Activation{}, fmt.Errorf("record the activation of %s: %w", vg, err)
		}
		devs = append(devs, d)
		byDev[d.Dev] = d.Name
	}
	if devs, err = dm.Portable(devs); err != nil {
		return Activation{}, fmt.Errorf("record the activation of %s: %w", vg, err)
	}
	a := Activation{VG: vg, Devices: devs, Links: map[string]string{}}
	entries, err := os.ReadDir(filepath.Join(devDir, vg))
	if err != nil {
		return Activation{}, fmt.Errorf("record the activation of %s: %w", vg, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue // udev's link being replaced (.#NAME...)
		}
		var st unix.Stat_t
		p := filepath.Join(devDir, vg, e.Name())
		err := unix.Stat(p, &st)
		if errors.Is(err, fs.ErrNotExist) {
			continue // gone meanwhile, or a link to nothing: not a device
		}
		if err != nil {
			return Activation{}, fmt.Errorf("record the activation of %s: %s: %w", vg, p, err)
		}
		name, ok := byDev[dm.Dev{Major: unix.Major(st.Rdev), Minor: unix.Minor(st.Rdev)}]
		if !ok || st.Mode&unix.S_IFMT != unix.S_IFBLK {
			return Activation{}, fmt.Errorf("record the activation of %s: %s is not one of the group's devices", vg, p)
		}
		a.Links[e.Name()] = name
	}
	if err := a.check(); err != nil {
		return Activation{}, fmt.Errorf("record the activation of %s: %w", vg, err)
	}
	return a, nil
}

// check: the devices are all of vg and sound (dm.Check: tables only of a
// thin pool, stacked on devices of the record or on an external device
// number, which Replay then limits to the PV), and each link is a plain
// name leading to one of them.
func (a Activation) check() error {
	if a.VG == "" || a.VG == "." || a.VG == ".." || strings.ContainsAny(a.VG, "/\x00") {
		return fmt.Errorf("volume group name %q is not a plain name", a.VG)
	}
	if len(a.Devices) == 0 {
		return errors.New("the record holds no device")
	}
	prefix := strings.ReplaceAll(a.VG, "-", "--") + "-"
	names := map[string]bool{}
	for _, d := range a.Devices {
		if !strings.HasPrefix(d.Name, prefix) || !strings.HasPrefix(d.UUID, "LVM-") {
			return fmt.Errorf("device %s (UUID %q) is not an LVM volume of %s", d.Name, d.UUID, a.VG)
		}
		names[d.Name] = true
	}
	// Tables stack only on the group's own devices (every name has the
	// group's prefix) and the PV, and only as LVM stacks a thin pool.
	if err := dm.Check(a.Devices); err != nil {
		return err
	}
	for link, dev := range a.Links {
		if link == "" || link == "." || link == ".." || strings.ContainsAny(link, "/\x00") {
			return fmt.Errorf("link name %q in /dev/%s is not a plain name", link, a.VG)
		}
		if !names[dev] {
			return fmt.Errorf("/dev/%s/%s leads to %q, not to a device of the group", a.VG, link, dev)
		}
	}
	return nil
}

// Replay makes the recorded devices and links. external says which device
// numbers outside the record a table may name (the DRBD device). On error
// nothing it made is left behind.
func (a Activation) Replay(ctx context.Context, ctl *dm.Control, devDir string, external func(dm.Dev) bool) error {
	if err := a.CheckReplay(external); err != nil {
		return err
	}
	if err := ctl.Replay(a.Devices, external); err != nil {
		return fmt.Errorf("replay the activation of %s: %w", a.VG, err)
	}
	if err := a.link(ctl.Dir, devDir); err != nil {
		err = fmt.Errorf("replay the activation of %s: %w", a.VG, err)
		return errors.Join(err, Deactivate(ctx, ctl, Sysfs, devDir, a.VG))
	}
	return nil
}

// CheckReplay says whether a could be replayed over the external devices
// (the PV) external allows, before anything is made: the record's own
// checks, and every device field naming a device made before it in the
// record or an allowed one (dm.CheckReplay).
func (a Activation) CheckReplay(external func(dm.Dev) bool) error {
	if err := a.check(); err != nil {
		return fmt.Errorf("replay the activation of %s: %w", a.VG, err)
	}
	if err := dm.CheckReplay(a.Devices, external); err != nil {
		return fmt.Errorf("replay the activation of %s: %w", a.VG, err)
	}
	return nil
}

// link makes /dev/VG/NAME -> mapperDir/DEVICE for each recorded link.
func (a Activation) link(mapperDir, devDir string) error {
	dir := filepath.Join(devDir, a.VG)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(a.Links)) {
		p := filepath.Join(dir, name)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.Symlink(filepath.Join(mapperDir, a.Links[name]), p); err != nil {
			return err
		}
	}
	return nil
}

// Deactivate removes vg's device-mapper devices, top down, and the /dev/VG
// links to them (LVM's no-udev mode made those, so no udev rule removes
// them). It is what vgchange -an does for a group on one PV, without LVM's
// start-up and metadata read (0.9-1.4 s under TCG, on the switchover's
// critical path). A device still open (a target holding a volume) fails
// it, as it fails vgchange.
func Deactivate(ctx context.Context, ctl *dm.Control, sysfs, devDir, vg string) error {
	names, err := DeviceMapperNames(sysfs, vg)
	if err != nil {
		return fmt.Errorf("deactivate volume group %s: %w", vg, err)
	}
	for _, n := range names {
		if err := removeRetrying(ctx, ctl, n); err != nil {
			return fmt.Errorf("deactivate volume group %s: %w", vg, err)
		}
	}
	dir := filepath.Join(devDir, vg)
	links, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("deactivate volume group %s: %w", vg, err)
	}
	for _, l := range links {
		path := filepath.Join(dir, l.Name())
		// Its device is gone. udev may remove the link too (it did, under
		// load, with 31 LUNs): a link already gone is fine.
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("deactivate volume group %s: %w", vg, err)
			}
		}
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deactivate volume group %s: %w", vg, err)
	}
	return nil
}

// removeRetrying removes a device, retrying while it is busy for up to
// 5 s, as LVM does (retry_deactivation): a probe holds a volume open for
// a moment (seen: udev's watch ran blkid on a volume LIO had just closed,
// EBUSY; the image's 57-sand-volumes.rules now keeps udev off sand's
// volumes, but any other prober, an admin's blkid say, does the same).
func removeRetrying(ctx context.Context, ctl *dm.Control, name string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := ctl.Remove(name)
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return errors.Join(err, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Marshal encodes the record for the peer (gzip'd JSON: the UUIDs share
// the group's prefix, so 31 volumes fit a few KiB).
func (a Activation) Marshal() ([]byte, error) {
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	if err := json.NewEncoder(z).Encode(a); err != nil {
		return nil, fmt.Errorf("encode the activation of %s: %w", a.VG, err)
	}
	if err := z.Close(); err != nil {
		return nil, fmt.Errorf("encode the activation of %s: %w", a.VG, err)
	}
	return b.Bytes(), nil
}

// maxRecord bounds a decoded record (a peer's message).
const maxRecord = 8 << 20

// UnmarshalActivation decodes a peer's record of volume group vg and
// checks it (names, UUIDs, tables, links).
func UnmarshalActivation(b []byte, vg string) (Activation, error) {
	z, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return Activation{}, fmt.Errorf("decode an activation record: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(z, maxRecord+1))
	if err != nil {
		return Activation{}, fmt.Errorf("decode an activation record: %w", err)
	}
	if len(data) > maxRecord {
		return Activation{}, fmt.Errorf("decode an activation record: larger than %d bytes", maxRecord)
	}
	var a Activation
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		return Activation{}, fmt.Errorf("decode an activation record: %w", err)
	}
	if a.VG != vg {
		return Activation{}, fmt.Errorf("activation record is of volume group %q, not %q", a.VG, vg)
	}
	if err := a.check(); err != nil {
		return Activation{}, fmt.Errorf("activation record of %s: %w", vg, err)
	}
	return a, nil
}
