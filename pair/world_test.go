package pair

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/appliance/command"
	"github.com/sand-appliance/sand/appliance/pool/lvm"
	"github.com/sand-appliance/sand/dm"
	"github.com/sand-appliance/sand/drbd"
)

// world is the system a Storage runs on, faked at its seams (exec,
// mounts, device-mapper): every effect lands in one transcript, in order.
type world struct {
	t     *testing.T
	mu    sync.Mutex
	lines []string
	// proc is what /proc/drbd shows, read after read; the last one stays.
	proc []string
	// fail makes a command line (or mount/dm line) starting with the key
	// fail with the error.
	fail    map[string]error
	mounted map[string]bool
	// active is what Devices.Record finds of the volume group.
	active lvm.Activation
}

func newWorld(t *testing.T, proc ...string) *world {
	return &world{t: t, proc: proc, fail: map[string]error{}, mounted: map[string]bool{}}
}

// effect notes a line and returns the error scripted for it.
func (w *world) effect(line string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, c := range []struct{ from, to string }{{lvmFast, "<lvm-fast>"}, {lvmHandOver, "<lvm-handover>"}} {
		line = strings.ReplaceAll(line, c.from, c.to)
	}
	w.lines = append(w.lines, line)
	for prefix, err := range w.fail {
		if strings.HasPrefix(line, prefix) {
			return err
		}
	}
	return nil
}

// transcript returns the lines so far and forgets them.
func (w *world) transcript() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	l := w.lines
	w.lines = nil
	return l
}

func (w *world) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	argv := append([]string{name}, args...)
	if err := w.effect("exec " + strings.Join(argv, " ")); err != nil {
		return nil, &command.Error{Argv: argv, Code: 1, Stderr: err.Error(), Err: err}
	}
	return nil, nil
}

func (w *world) readProc(name string) ([]byte, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.proc) == 0 {
		w.t.Fatalf("read of %s with no /proc/drbd scripted", name)
	}
	p := w.proc[0]
	if len(w.proc) > 1 {
		w.proc = w.proc[1:]
	}
	return []byte(p), nil
}

func (w *world) Mounted(dir string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mounted[dir]
}

func (w *world) MkdirAll(dir string, perm os.FileMode) error {
	return w.effect(fmt.Sprintf("mkdir %s %o", dir, perm))
}

func (w *world) Mount(source, dir, fstype string, flags uintptr) error {
	var opts []string
	for _, f := range []struct {
		bit  uintptr
		name string
	}{{syscall.MS_BIND, "bind"}, {syscall.MS_SYNCHRONOUS, "sync"}, {syscall.MS_DIRSYNC, "dirsync"}} {
		if flags&f.bit != 0 {
			opts = append(opts, f.name)
		}
	}
	if fstype == "" {
		fstype = "-"
	}
	if err := w.effect(fmt.Sprintf("mount %s %s %s %s", source, dir, fstype, strings.Join(opts, ","))); err != nil {
		return err
	}
	w.mu.Lock()
	w.mounted[dir] = true
	w.mu.Unlock()
	return nil
}

func (w *world) Unmount(dir string) error {
	if err := w.effect("umount " + dir); err != nil {
		return err
	}
	w.mu.Lock()
	delete(w.mounted, dir)
	w.mu.Unlock()
	return nil
}

func (w *world) Record(vg string) (lvm.Activation, error) {
	if err := w.effect("dm record " + vg); err != nil {
		return lvm.Activation{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.active, nil
}

func (w *world) Deactivate(ctx context.Context, vg string) error {
	if err := w.effect("dm deactivate " + vg); err != nil {
		return err
	}
	w.mu.Lock()
	w.active = lvm.Activation{VG: vg}
	w.mu.Unlock()
	return nil
}

func (w *world) Replay(ctx context.Context, a lvm.Activation, pv string) error {
	if err := w.effect(fmt.Sprintf("dm replay %s: %d devices over %s", a.VG, len(a.Devices), pv)); err != nil {
		return err
	}
	w.mu.Lock()
	w.active = a
	w.mu.Unlock()
	return nil
}

// activeGroup is volume group sand as LVM activates it: metadata volume,
// thin pool (its metadata and data layers, the pool, LVM's read-only pool
// device), one thin volume, all on the DRBD device 147:0.
func activeGroup(t *testing.T) lvm.Activation {
	t.Helper()
	devs, err := dm.Portable([]dm.Device{
		{Name: "sand-meta", UUID: "LVM-vgmeta", Dev: dm.Dev{Major: 253, Minor: 0}, Targets: []dm.Target{{Start: 0, Length: 8192, Type: "linear", Params: "147:0 2048"}}},
		{Name: "sand-pool_tmeta", UUID: "LVM-vgtmeta", Dev: dm.Dev{Major: 253, Minor: 1}, Targets: []dm.Target{{Start: 0, Length: 8192, Type: "linear", Params: "147:0 10240"}}},
		{Name: "sand-pool_tdata", UUID: "LVM-vgtdata", Dev: dm.Dev{Major: 253, Minor: 2}, Targets: []dm.Target{{Start: 0, Length: 80000, Type: "linear", Params: "147:0 18432"}}},
		{Name: "sand-pool-tpool", UUID: "LVM-vgpool-tpool", Dev: dm.Dev{Major: 253, Minor: 3}, Targets: []dm.Target{{Start: 0, Length: 80000, Type: "thin-pool", Params: "253:1 253:2 128 0 1 skip_block_zeroing "}}},
		{Name: "sand-pool", UUID: "LVM-vgpool-pool", Dev: dm.Dev{Major: 253, Minor: 4}, ReadOnly: true, Targets: []dm.Target{{Start: 0, Length: 80000, Type: "linear", Params: "253:3 0"}}},
		{Name: "sand-lun--vm1", UUID: "LVM-vgvm1", Dev: dm.Dev{Major: 253, Minor: 5}, Targets: []dm.Target{{Start: 0, Length: 65536, Type: "thin", Params: "253:3 1"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return lvm.Activation{VG: "sand", Devices: devs, Links: map[string]string{"meta": "sand-meta", "pool": "sand-pool", "lun-vm1": "sand-lun--vm1"}}
}

// testConfig is box name of a DRBD pair with peer, as the lab sets it up.
func testConfig(name, peer string) appliance.Config {
	c := appliance.DefaultConfig()
	c.Name = name
	c.StateDir = "/var/lib/sand"
	c.Pool.Kind, c.Pool.VG, c.Pool.ThinPool = "lvm", "sand", "pool"
	c.Target.Driver = "lio"
	c.Pair.Peer, c.Pair.Storage = peer, "drbd"
	c.Pair.VIP, c.Pair.VIPInterface = "10.99.0.100/24", "eth0"
	c.Pair.SerfBind = "127.0.0.1:0"
	d := &c.Pair.DRBD
	d.Resource, d.Minor, d.Port, d.Disk, d.MetaSize = "r0", 0, 7789, "/dev/vdb", "64M"
	d.Address, d.PeerAddress = "10.98.0.1", "10.98.0.2"
	if name > peer {
		d.Address, d.PeerAddress = d.PeerAddress, d.Address
	}
	return c
}

// newStorage is name's storage in w.
func newStorage(t *testing.T, w *world, name, peer string) *Storage {
	t.Helper()
	cfg := testConfig(name, peer)
	res, err := Resource(cfg, "/usr/sbin/sand")
	if err != nil {
		t.Fatal(err)
	}
	admin := &drbd.Admin{Run: w, ReadFile: w.readProc, ConfDir: t.TempDir()}
	return &Storage{Config: cfg, Resource: res, Admin: admin, Run: w, Mounts: w, Devices: w,
		Log: slog.New(slog.DiscardHandler), Poll: 1}
}

// proc84 is /proc/drbd of an 8.4 module with minor 0 in the given state.
func proc84(cs, ro, ds string) string {
	return "version: 8.4.11 (api:1/proto:86-101)\nsrcversion: 5AD0000000000000000000F \n" +
		" 0: cs:" + cs + " ro:" + ro + " ds:" + ds + " C r-----\n" +
		"    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n"
}

// procDown is /proc/drbd of an 8.4 module with no resource up.
const procDown = "version: 8.4.11 (api:1/proto:86-101)\nsrcversion: 5AD0000000000000000000F \n"

func readGolden(t *testing.T, name string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.TrimRight(string(data), "\n")
	if text == "" {
		return nil // nothing happens
	}
	return strings.Split(text, "\n")
}
