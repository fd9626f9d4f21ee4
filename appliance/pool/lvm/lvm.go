// Package lvm is a storage pool of thin logical volumes in one thin pool of
// an LVM volume group: the appliance default, on the DRBD device in a pair.
package lvm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sand-appliance/sand/appliance/command"
	"github.com/sand-appliance/sand/appliance/pool"
	"github.com/sand-appliance/sand/iscsi"
)

// Pool creates thin LVs VG/lun-NAME in VG/ThinPool.
type Pool struct {
	VG       string
	ThinPool string
	// Devices, when set, are the only devices LVM looks at (--devices):
	// the DRBD device in a pair. LVM then skips scanning every other
	// disk of the box, which costs it seconds under load.
	Devices []string
	Run     command.Runner
}

// Sysfs is where the kernel's sysfs is mounted.
const Sysfs = "/sys"

// lvm runs one LVM command, limited to Devices.
func (p *Pool) lvm(ctx context.Context, cmd string, args ...string) ([]byte, error) {
	if len(p.Devices) > 0 {
		args = append([]string{"--devices", strings.Join(p.Devices, ",")}, args...)
	}
	return p.Run.Run(ctx, cmd, args...)
}

func (p *Pool) Kind() string { return "lvm" }

// IOType: volumes are block devices.
func (p *Pool) IOType() iscsi.IOType    { return iscsi.BlockIO }
func (p *Pool) Path(name string) string { return "/dev/" + p.VG + "/" + p.lv(name) }
func (p *Pool) lv(name string) string   { return pool.VolumePrefix + name }
func (p *Pool) ref(name string) string  { return p.VG + "/" + p.lv(name) }
func bytesArg(n int64) string           { return strconv.FormatInt(n, 10) + "b" }

func (p *Pool) Create(ctx context.Context, name string, size int64) (pool.Volume, error) {
	_, err := p.lvm(ctx, "lvcreate", "--yes", "--type", "thin", "--virtualsize", bytesArg(size),
		"--thinpool", p.ThinPool, "--name", p.lv(name), p.VG)
	if err != nil {
		return pool.Volume{}, fmt.Errorf("create thin volume %s: %w", p.ref(name), err)
	}
	return pool.Volume{Name: name, Path: p.Path(name), Size: size}, nil
}

func (p *Pool) Grow(ctx context.Context, name string, size int64) error {
	vols, err := p.list(ctx, p.ref(name))
	if err != nil {
		return err
	}
	if len(vols) == 0 {
		return fmt.Errorf("grow volume %s: %w", name, pool.ErrNotFound)
	}
	if size < vols[0].Size {
		return fmt.Errorf("grow volume %s from %d to %d bytes: volumes never shrink", name, vols[0].Size, size)
	}
	if size == vols[0].Size {
		return nil
	}
	if _, err := p.lvm(ctx, "lvextend", "--size", bytesArg(size), p.ref(name)); err != nil {
		return fmt.Errorf("grow thin volume %s to %d bytes: %w", p.ref(name), size, err)
	}
	return nil
}

func (p *Pool) Delete(ctx context.Context, name string) error {
	if _, err := p.lvm(ctx, "lvremove", "--yes", p.ref(name)); err != nil {
		if strings.Contains(err.Error(), "Failed to find logical volume") {
			return fmt.Errorf("delete volume %s: %w", name, pool.ErrNotFound)
		}
		return fmt.Errorf("remove thin volume %s: %w", p.ref(name), err)
	}
	return nil
}

func (p *Pool) List(ctx context.Context) ([]pool.Volume, error) {
	return p.list(ctx, p.VG)
}

func (p *Pool) list(ctx context.Context, what string) ([]pool.Volume, error) {
	lvs, err := p.lvs(ctx, what)
	if err != nil {
		return nil, err
	}
	var vols []pool.Volume
	for _, lv := range lvs {
		if lv.Pool != p.ThinPool || !strings.HasPrefix(lv.Name, pool.VolumePrefix) {
			continue
		}
		vols = append(vols, pool.Volume{
			Name: strings.TrimPrefix(lv.Name, pool.VolumePrefix),
			Path: "/dev/" + p.VG + "/" + lv.Name,
			Size: lv.Size,
			Used: lv.used(),
		})
	}
	return vols, nil
}

// Stat reads the volume's device node and the kernel's size of it, not
// LVM's metadata: it is on the failover's path, where each LVM command
// costs a second under load. The node exists while the LV is active, and
// only an active LV can be served.
func (p *Pool) Stat(ctx context.Context, name string) (pool.Volume, error) {
	path := p.Path(name)
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return pool.Volume{}, fmt.Errorf("volume %s (no active %s): %w", name, path, pool.ErrNotFound)
		}
		return pool.Volume{}, fmt.Errorf("stat volume %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return pool.Volume{}, fmt.Errorf("volume %s: %s is not a block device", name, path)
	}
	size, err := deviceSize(Sysfs, st.Rdev)
	if err != nil {
		return pool.Volume{}, fmt.Errorf("volume %s: %w", name, err)
	}
	return pool.Volume{Name: name, Path: path, Size: size}, nil
}

// deviceSize is a block device's size in bytes, from sysfs (in 512-byte
// sectors whatever the device's block size).
func deviceSize(sysfs string, rdev uint64) (int64, error) {
	file := filepath.Join(sysfs, "dev", "block", fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev)), "size")
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("read device size: %w", err)
	}
	sectors, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil || sectors < 0 {
		return 0, fmt.Errorf("read device size: %s holds %q, not a sector count", file, data)
	}
	return sectors * 512, nil
}

func (p *Pool) Capacity(ctx context.Context) (pool.Capacity, error) {
	var c pool.Capacity
	lvs, err := p.lvs(ctx, p.VG)
	if err != nil {
		return c, err
	}
	found := false
	for _, lv := range lvs {
		switch {
		case lv.Name == p.ThinPool:
			found = true
			c.Size = lv.Size
			c.Used = lv.used()
		case lv.Pool == p.ThinPool:
			c.Provisioned += lv.Size
		}
	}
	if !found {
		return c, fmt.Errorf("read capacity: thin pool %s/%s not found", p.VG, p.ThinPool)
	}
	return c, nil
}

type logicalVolume struct {
	Name        string
	Size        int64
	Pool        string
	DataPercent float64
}

func (lv logicalVolume) used() int64 {
	return int64(math.Round(float64(lv.Size) * lv.DataPercent / 100))
}

// lvs reads LVs through lvm's JSON report rather than its columns.
func (p *Pool) lvs(ctx context.Context, what string) ([]logicalVolume, error) {
	out, err := p.lvm(ctx, "lvs", "--reportformat", "json", "--units", "b", "--nosuffix",
		"-o", "lv_name,lv_size,pool_lv,data_percent", what)
	if err != nil {
		return nil, fmt.Errorf("list logical volumes of %s: %w", what, err)
	}
	return parseLVS(out)
}

func parseLVS(out []byte) ([]logicalVolume, error) {
	var report struct {
		Report []struct {
			LV []map[string]string `json:"lv"`
		} `json:"report"`
	}
	if err := json.Unmarshal(out, &report); err != nil {
		return nil, fmt.Errorf("parse lvs report: %w", err)
	}
	var lvs []logicalVolume
	for _, r := range report.Report {
		for _, m := range r.LV {
			lv := logicalVolume{Name: m["lv_name"], Pool: m["pool_lv"]}
			size, err := strconv.ParseInt(strings.TrimSpace(m["lv_size"]), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("parse lvs report: size %q of %s: %w", m["lv_size"], lv.Name, err)
			}
			lv.Size = size
			if d := strings.TrimSpace(m["data_percent"]); d != "" {
				if lv.DataPercent, err = strconv.ParseFloat(d, 64); err != nil {
					return nil, fmt.Errorf("parse lvs report: data_percent %q of %s: %w", d, lv.Name, err)
				}
			}
			lvs = append(lvs, lv)
		}
	}
	return lvs, nil
}

// DeviceMapperNames lists the device-mapper devices of volume group vg that
// are active now, from sysfs, in an order they can be removed in: a device
// comes after every device stacked on it (thin volumes, then the pool's
// layers, then what lies under them). Deactivating the group is removing
// them (Deactivate), in a fraction of vgchange's time (whose second under
// load is mostly LVM starting up and reading its metadata).
func DeviceMapperNames(sysfs, vg string) ([]string, error) {
	blocks, err := os.ReadDir(filepath.Join(sysfs, "block"))
	if err != nil {
		return nil, fmt.Errorf("list block devices: %w", err)
	}
	prefix := strings.ReplaceAll(vg, "-", "--") + "-" // dm's name for VG-LV
	names := map[string]string{}                      // dm-N -> name
	for _, b := range blocks {
		if !strings.HasPrefix(b.Name(), "dm-") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(sysfs, "block", b.Name(), "dm", "name"))
		if err != nil {
			return nil, fmt.Errorf("read the name of %s: %w", b.Name(), err)
		}
		if n := strings.TrimSpace(string(data)); strings.HasPrefix(n, prefix) {
			names[b.Name()] = n
		}
	}
	// Depth-first: every holder before the device it holds.
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(dev string) error
	visit = func(dev string) error {
		switch state[dev] {
		case 1:
			return fmt.Errorf("device-mapper devices of %s hold each other in a cycle at %s", vg, dev)
		case 2:
			return nil
		}
		state[dev] = 1
		holders, err := os.ReadDir(filepath.Join(sysfs, "block", dev, "holders"))
		if err != nil {
			return fmt.Errorf("read the holders of %s: %w", dev, err)
		}
		for _, h := range holders {
			if _, ours := names[h.Name()]; !ours {
				return fmt.Errorf("%s (%s) is held by %s, which is not of volume group %s", dev, names[dev], h.Name(), vg)
			}
			if err := visit(h.Name()); err != nil {
				return err
			}
		}
		state[dev] = 2
		order = append(order, names[dev])
		return nil
	}
	devs := make([]string, 0, len(names))
	for d := range names {
		devs = append(devs, d)
	}
	sort.Strings(devs) // a stable order for the same tree
	for _, d := range devs {
		if err := visit(d); err != nil {
			return nil, err
		}
	}
	return order, nil
}
