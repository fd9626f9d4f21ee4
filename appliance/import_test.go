package appliance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"

	"github.com/sand-appliance/sand/iscsi"
)

// fakeHost is a box's view for copy sources in a temporary directory: dev
// stands for /dev, srv for /srv, and sys, mountinfo and swaps for the
// kernel's view, which tests fill in.
type fakeHost struct {
	hostView
	root, devDir, srvDir string
	rdevs                map[string]uint64
}

func newFakeHost(t *testing.T, tb testBox) *fakeHost {
	t.Helper()
	root := t.TempDir()
	h := &fakeHost{root: root, devDir: filepath.Join(root, "dev"), srvDir: filepath.Join(root, "srv"), rdevs: map[string]uint64{}}
	for _, d := range []string{h.devDir, h.srvDir, filepath.Join(root, "sys", "dev", "block")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h.write(t, "mountinfo", "22 27 0:21 / /proc rw,relatime - proc proc rw\n")
	h.write(t, "swaps", "Filename\tType\tSize\tUsed\tPriority\n")
	h.hostView = hostView{
		dev: h.devDir, files: []string{h.srvDir}, sys: filepath.Join(root, "sys"),
		mountinfo: filepath.Join(root, "mountinfo"), swaps: filepath.Join(root, "swaps"),
		owned: []string{tb.cfg.StateDir, tb.cfg.Pool.Dir, filepath.Join(h.srvDir, "sand-pool")},
		rdev: func(p string) (uint64, error) {
			if d, ok := h.rdevs[p]; ok {
				return d, nil
			}
			return 0, os.ErrNotExist
		},
	}
	tb.host = &h.hostView
	return h
}

func (h *fakeHost) write(t *testing.T, rel, data string) string {
	t.Helper()
	p := filepath.Join(h.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// disk adds a block device to the fake sysfs: name with maj:min, under
// parent's directory for a partition; holders are dm devices on it.
func (h *fakeHost) disk(t *testing.T, parent, name string, major, minor uint32, holders ...string) {
	t.Helper()
	dir := filepath.Join(h.root, "sys", "devices", "virtual", "block", name)
	if parent != "" {
		dir = filepath.Join(h.root, "sys", "devices", "virtual", "block", parent, name)
		h.write(t, filepath.Join("sys", "devices", "virtual", "block", parent, name, "partition"), "1\n")
	}
	rel, _ := filepath.Rel(h.root, dir)
	h.write(t, filepath.Join(rel, "dev"), fmt.Sprintf("%d:%d\n", major, minor))
	if err := os.MkdirAll(filepath.Join(dir, "holders"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, hd := range holders {
		h.write(t, filepath.Join("sys", "devices", "virtual", "block", hd, "dm", "name"), "vg0-"+hd+"\n")
		if err := os.Symlink(filepath.Join(h.root, "sys", "devices", "virtual", "block", hd), filepath.Join(dir, "holders", hd)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(dir, filepath.Join(h.root, "sys", "dev", "block", fmt.Sprintf("%d:%d", major, minor))); err != nil {
		t.Fatal(err)
	}
}

// importConf is an ietd.conf of one target with one Lun line, and a
// "#sand: lun" size line when size > 0.
func importConf(iqn, path string, size int64) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "Target %s\n", iqn)
	if size > 0 {
		fmt.Fprintf(&b, "\t#sand: lun 0 size=%d\n", size)
	}
	fmt.Fprintf(&b, "\tLun 0 Path=%s,Type=blockio,ScsiSN=OLD0007\n", path)
	return []byte(b.String())
}

// ignoreCreated compares LUNs without their creation time.
var ignoreCreated = cmpopts.IgnoreFields(LUN{}, "Created")

// A file sand wrote (sand target, before the registry was lost or on
// another box) imports as new pool volumes of the sizes it records, with
// the same identity; the paths it names are never looked at.
func TestImportOfASandFileMakesNewPoolVolumes(t *testing.T) {
	tb := newTestBox(t)
	ctx := context.Background()
	if _, err := tb.CreateGroup(ctx, InitiatorGroup{Name: "xen", Initiators: []string{"iqn.2026-11.org.example:dom0-a"}}); err != nil {
		t.Fatal(err)
	}
	vm01, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm01", Size: 64 * mib, Group: "xen"})
	if err != nil {
		t.Fatal(err)
	}
	vm02, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm02", Size: 8 * mib, Group: "xen", Target: "shared"})
	if err != nil {
		t.Fatal(err)
	}
	conf, err := tb.TargetConfig()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"vm01", "vm02"} {
		if err := tb.DeleteLUN(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	before := tb.snapshot(t)

	dry, err := tb.Import(ctx, ImportRequest{Conf: conf, Group: "xen", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, tb.snapshot(t)); diff != "" {
		t.Errorf("the dry run changed the box (-before +after):\n%s", diff)
	}
	got, err := tb.Import(ctx, ImportRequest{Conf: conf, Group: "xen"})
	if err != nil {
		t.Fatal(err)
	}
	want := []ImportedLUN{{LUN: vm02}, {LUN: vm01}} // in the file's (target) order
	for _, g := range [][]ImportedLUN{dry, got} {
		if diff := cmp.Diff(want, g, ignoreCreated); diff != "" {
			t.Errorf("imported LUNs (-want +got):\n%s", diff)
		}
	}
	for _, l := range []LUN{vm01, vm02} {
		st, err := os.Stat(tb.pool.Path(l.Name))
		if err != nil || st.Size() != l.Size {
			t.Errorf("volume of %s: %v, %v; want a new %d-byte pool volume", l.Name, st, err, l.Size)
		}
	}
	for _, target := range tb.driver.applied.Targets {
		for _, lu := range target.LUNs {
			if lu.Path != tb.pool.Path(lu.Name) {
				t.Errorf("target %s exports %s, not its pool volume", target.IQN, lu.Path)
			}
		}
	}
}

// A Lun line of a foreign file names a path sand never exports and, unless
// the admin asks for a copy, never even looks at: without a size of its
// own the line is refused, saying how to go on.
func TestImportOfAForeignLineNeedsACopyOrASize(t *testing.T) {
	tb := newTestBox(t)
	h := newFakeHost(t, tb)
	ctx := context.Background()
	if _, err := tb.CreateGroup(ctx, InitiatorGroup{Name: "xen", Initiators: []string{"iqn.2026-11.org.example:intruder"}}); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(h.srvDir, "pipe")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	before := tb.snapshot(t)
	for _, path := range []string{"/dev/vda", fifo, "/proc/self/mem"} {
		for _, dry := range []bool{true, false} {
			_, err := importWithin(t, tb, ImportRequest{Conf: importConf("iqn.2001-04.com.example:storage.vm7", path, 0), Group: "xen", DryRun: dry})
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "--copy-data "+path) || !strings.Contains(err.Error(), "never exports the path") {
				t.Errorf("import of Path=%s (dry run %v): %v; want it refused, naming --copy-data", path, dry, err)
			}
		}
	}
	if diff := cmp.Diff(before, tb.snapshot(t)); diff != "" {
		t.Errorf("refused imports changed the box (-before +after):\n%s", diff)
	}
	// With a size of its own the line becomes a new empty volume: the
	// FIFO is not opened (the import would hang) and not exported.
	got, err := importWithin(t, tb, ImportRequest{Conf: importConf("iqn.2001-04.com.example:storage.vm7", fifo, 4*mib), Group: "xen"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Path != "" || got[0].CopiedFrom != "" || got[0].Size != 4*mib {
		t.Fatalf("imported %+v, want one new empty 4 MiB LUN", got)
	}
	if p := tb.driver.applied.Targets[0].LUNs[0].Path; p != tb.pool.Path("storage.vm7") {
		t.Errorf("exported %s, want the new pool volume", p)
	}
}

// importWithin runs an import and fails the test if it does not return
// within 10 s (a FIFO opened for reading would block it forever).
func importWithin(t *testing.T, tb testBox, req ImportRequest) ([]ImportedLUN, error) {
	t.Helper()
	type result struct {
		luns []ImportedLUN
		err  error
	}
	done := make(chan result, 1)
	go func() {
		l, err := tb.Import(context.Background(), req)
		done <- result{l, err}
	}()
	select {
	case r := <-done:
		return r.luns, r.err
	case <-time.After(10 * time.Second):
		t.Fatalf("import of %q did not return within 10 s", req.Conf)
		return nil, nil
	}
}

// pattern is n bytes of source data: a pattern, a run of zeros (which the
// copy skips) and a shorter pattern at the end.
func pattern(n int) []byte {
	data := make([]byte, n)
	for i := range data {
		if i < copyChunk || i >= 2*copyChunk {
			data[i] = byte(i*7 + 1)
		}
	}
	return data
}

// The admin names the old path for a copy: the new volume takes its size
// and holds its data; the old path is still not exported.
func TestImportCopiesTheDataTheAdminNames(t *testing.T) {
	tb := newTestBox(t)
	h := newFakeHost(t, tb)
	ctx := context.Background()
	old := filepath.Join(h.srvDir, "iet", "vm7.img")
	data := pattern(2*copyChunk + mib)
	h.write(t, strings.TrimPrefix(old, h.root+"/"), string(data))
	conf := importConf("iqn.2001-04.com.example:storage.vm7", old, 0)
	before := tb.snapshot(t)

	dry, err := tb.Import(ctx, ImportRequest{Conf: conf, DryRun: true, CopyFrom: []string{old}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, tb.snapshot(t)); diff != "" {
		t.Errorf("the dry run changed the box (-before +after):\n%s", diff)
	}
	got, err := tb.Import(ctx, ImportRequest{Conf: conf, CopyFrom: []string{old}})
	if err != nil {
		t.Fatal(err)
	}
	want := []ImportedLUN{{LUN: LUN{
		Name: "storage.vm7", Size: int64(len(data)), Serial: "OLD0007", NAA: iscsi.NAAFromSerial("OLD0007"),
		Target: "iqn.2001-04.com.example:storage.vm7", Number: 1,
	}, CopiedFrom: old}}
	for _, g := range [][]ImportedLUN{dry, got} {
		if diff := cmp.Diff(want, g, ignoreCreated); diff != "" {
			t.Errorf("imported (-want +got):\n%s", diff)
		}
	}
	copied, err := os.ReadFile(tb.pool.Path("storage.vm7"))
	if err != nil || !bytes.Equal(copied, data) {
		t.Errorf("the new volume does not hold the old data (%d bytes, %v)", len(copied), err)
	}
	if p := tb.driver.applied.Targets[0].LUNs[0].Path; p != tb.pool.Path("storage.vm7") {
		t.Errorf("exported %s, want the new pool volume", p)
	}
	if _, err := os.Stat(old); err != nil {
		t.Errorf("the old file is gone: %v", err)
	}

	// A size in the file wins if the data fits; data larger is refused.
	conf = bytes.ReplaceAll(importConf("iqn.2001-04.com.example:storage.vm8", old, 16*mib), []byte("OLD0007"), []byte("OLD0008"))
	if got, err := tb.Import(ctx, ImportRequest{Conf: conf, CopyFrom: []string{old}, DryRun: true}); err != nil || got[0].Size != 16*mib {
		t.Errorf("copy into a larger LUN: %+v, %v", got, err)
	}
	conf = bytes.ReplaceAll(importConf("iqn.2001-04.com.example:storage.vm8", old, 4*mib), []byte("OLD0007"), []byte("OLD0008"))
	if _, err := tb.Import(ctx, ImportRequest{Conf: conf, CopyFrom: []string{old}, DryRun: true}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "more than the") {
		t.Errorf("copy into a smaller LUN: %v, want it refused", err)
	}
}

// A dry run takes no lock of the box: it answers while an admin
// operation (here: the test) holds admin.
func TestImportDryRunTakesNoLock(t *testing.T) {
	tb := newTestBox(t)
	h := newFakeHost(t, tb)
	old := h.write(t, "srv/vm7.img", string(pattern(mib)))
	tb.admin.Lock()
	defer tb.admin.Unlock()
	if _, err := importWithin(t, tb, ImportRequest{Conf: importConf("iqn.2001-04.com.example:vm7", old, 0), CopyFrom: []string{old}, DryRun: true}); err != nil {
		t.Fatal(err)
	}
}

// Every copy source sand must not read is refused, dry run or not, with a
// message that says what and how to go on; nothing changes, and nothing
// blocks.
func TestImportRefusesCopySources(t *testing.T) {
	tb := newTestBox(t)
	h := newFakeHost(t, tb)
	ctx := context.Background()
	if _, err := tb.CreateGroup(ctx, InitiatorGroup{Name: "xen", Initiators: []string{"iqn.2026-11.org.example:intruder"}}); err != nil {
		t.Fatal(err)
	}
	secret := h.write(t, "etc/secret", strings.Repeat("s", 1024))
	if err := unix.Mkfifo(filepath.Join(h.srvDir, "pipe"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(h.devDir, "pipe"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.write(t, "dev/shm/file", strings.Repeat("x", 1024))
	h.write(t, "srv/sand-pool/lun-x.img", strings.Repeat("x", 1024))
	h.write(t, "srv/odd.img", "not a whole sector")
	h.write(t, "srv/iet/README", "old files")
	h.write(t, "srv/empty.img", "")
	links := map[string]string{
		"srv/to-secret":      secret,                // out, absolute, exists
		"srv/to-nothing":     h.root + "/etc/none",  // out, absolute, missing
		"srv/up-secret":      "../etc/secret",       // out, relative, exists
		"srv/up-nothing":     "../etc/none",         // out, relative, missing
		"srv/to-proc":        "/proc/self/mem",      // a kernel interface
		"dev/to-vda":         "/dev/vda",            // out of the fake /dev
		"srv/to-pool":        "sand-pool/lun-x.img", // sand's own volume, by a link
		"dev/disk/by-id/fd0": "../../pipe",          // inside, to a FIFO
	}
	for link, target := range links {
		p := filepath.Join(h.root, link)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	notAllowed := "is not allowed: sand copies only from a block device under /dev or a regular file under /mnt, /media or /srv"
	tests := []struct {
		name, path, msg string
	}{
		{"proc", "/proc/self/mem", notAllowed},
		{"proc missing", "/proc/nothing/here", notAllowed},
		{"sys", "/sys/firmware/efi/efivars/x", notAllowed},
		{"etc, existing", secret, notAllowed},
		{"etc, missing", filepath.Join(h.root, "etc", "none"), notAllowed},
		{"link out to an existing file", filepath.Join(h.srvDir, "to-secret"), notAllowed},
		{"link out to nothing", filepath.Join(h.srvDir, "to-nothing"), notAllowed},
		{"relative link out to an existing file", filepath.Join(h.srvDir, "up-secret"), notAllowed},
		{"relative link out to nothing", filepath.Join(h.srvDir, "up-nothing"), notAllowed},
		{"link to proc", filepath.Join(h.srvDir, "to-proc"), notAllowed},
		{"link out of dev to the box's disk", filepath.Join(h.devDir, "to-vda"), notAllowed},
		{"FIFO", filepath.Join(h.srvDir, "pipe"), "is a named pipe (FIFO)"},
		{"FIFO under dev", filepath.Join(h.devDir, "pipe"), "is a named pipe (FIFO), and under " + h.devDir + " sand copies only block devices"},
		{"link in dev to a FIFO", filepath.Join(h.devDir, "disk", "by-id", "fd0"), "is a named pipe (FIFO)"},
		{"directory", filepath.Join(h.srvDir, "iet"), "is a directory, and under " + h.srvDir + " sand copies only regular files"},
		{"sand's own directory", filepath.Join(h.srvDir, "sand-pool"), "in " + filepath.Join(h.srvDir, "sand-pool") + ", which is sand's own"},
		{"file under dev", filepath.Join(h.devDir, "shm", "file"), "is a regular file, and under " + h.devDir + " sand copies only block devices"},
		{"sand's own pool", filepath.Join(h.srvDir, "sand-pool", "lun-x.img"), "which is sand's own"},
		{"sand's own pool by a link", filepath.Join(h.srvDir, "to-pool"), "which is sand's own"},
		{"missing inside", filepath.Join(h.srvDir, "none.img"), "there is no such file or device"},
		{"not whole sectors", filepath.Join(h.srvDir, "odd.img"), "not a multiple of the 512-byte block size"},
		{"empty", filepath.Join(h.srvDir, "empty.img"), "it is empty"},
	}
	before := tb.snapshot(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, dry := range []bool{true, false} {
				conf := importConf("iqn.2001-04.com.example:storage.vm7", tt.path, 0)
				_, err := importWithin(t, tb, ImportRequest{Conf: conf, Group: "xen", DryRun: dry, CopyFrom: []string{tt.path}})
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.msg) {
					t.Fatalf("copy from %s (dry run %v): %v; want ErrInvalid saying %q", tt.path, dry, err, tt.msg)
				}
				// Outside the places sand copies from, the answer is the
				// same whether the path exists or not, and says nothing else.
				if want := "invalid request: target iqn.2001-04.com.example:storage.vm7 Lun 0: " + errNotAllowed(tt.path).Error(); tt.msg == notAllowed && err.Error() != want {
					t.Errorf("the refusal of %s says more than that it is not allowed:\n%v\nwant\n%s", tt.path, err, want)
				}
			}
		})
	}
	// The copy request names only paths of the file, each once.
	conf := importConf("iqn.2001-04.com.example:storage.vm7", filepath.Join(h.srvDir, "none.img"), 0)
	if _, err := tb.Import(ctx, ImportRequest{Conf: conf, CopyFrom: []string{secret}}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "no Lun line of the file has Path="+secret) {
		t.Errorf("copy of a path the file does not name: %v", err)
	}
	if _, err := tb.Import(ctx, ImportRequest{Conf: conf, CopyFrom: []string{filepath.Join(h.srvDir, "none.img"), filepath.Join(h.srvDir, "none.img")}}); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "twice") {
		t.Errorf("copy of one path twice: %v", err)
	}
	if diff := cmp.Diff(before, tb.snapshot(t)); diff != "" {
		t.Errorf("refused imports changed the box (-before +after):\n%s", diff)
	}
}

// The block devices of the box are refused from sysfs, the mount table and
// swaps, before anything is opened.
func TestCheckBlockRefusesTheBoxsDevices(t *testing.T) {
	tb := newTestBox(t)
	h := newFakeHost(t, tb)
	h.disk(t, "", "vda", 254, 0)          // system disk
	h.disk(t, "vda", "vda1", 254, 1)      // its root file system
	h.disk(t, "vda", "vda2", 254, 2)      // an unused partition of it
	h.disk(t, "", "vdb", 254, 16)         // DRBD's backing disk
	h.disk(t, "", "vdc", 254, 32, "dm-0") // an active LVM PV
	h.disk(t, "", "vdd", 254, 48)         // a swap disk
	h.disk(t, "", "sdb", 8, 16)           // the old box's disk: free
	h.disk(t, "sdb", "sdb1", 8, 17)       // with a partition
	h.disk(t, "", "loop3", 7, 3)          // mounted loop device
	h.disk(t, "", "drbd0", 147, 0)        // DRBD itself
	h.disk(t, "", "dm-4", 253, 4)         // a volume of sand's pool
	h.disk(t, "", "dm-5", 253, 5)         // a volume of another VG
	h.write(t, "sys/devices/virtual/block/dm-4/dm/name", "sand-lun--vm01\n")
	h.write(t, "sys/devices/virtual/block/dm-4/dm/uuid", "LVM-abc\n")
	h.write(t, "sys/devices/virtual/block/dm-5/dm/name", "oldvg-vm7\n")
	h.write(t, "sys/devices/virtual/block/dm-5/dm/uuid", "LVM-def\n")
	h.disk(t, "", "dm-6", 253, 6) // a volume of VG sand-old, not sand's
	h.write(t, "sys/devices/virtual/block/dm-6/dm/name", "sand--old-vm8\n")
	h.write(t, "sys/devices/virtual/block/dm-6/dm/uuid", "LVM-ghi\n")
	h.write(t, "mountinfo", "27 1 254:1 / / rw,relatime - ext4 /dev/vda1 rw\n31 27 7:3 / /mnt/old\\040disk rw - ext4 /dev/loop3 rw\n")
	h.write(t, "swaps", "Filename\tType\tSize\tUsed\tPriority\n/dev/vdd\tpartition\t1024\t0\t-2\n")
	h.rdevs["/dev/vdd"] = unix.Mkdev(254, 48)
	h.rdevs["/dev/vdb"] = unix.Mkdev(254, 16)
	h.drbdDisk, h.vg = "/dev/vdb", "sand"

	tests := []struct {
		name         string
		major, minor uint32
		msg          string // "" for allowed
	}{
		{"root file system", 254, 1, "it is mounted on /"},
		{"system disk", 254, 0, "it is on disk vda, whose vda1 is mounted on /"},
		{"unused partition of the system disk", 254, 2, "it is on disk vda, whose vda1 is mounted on /"},
		{"DRBD backing disk", 254, 16, "this box's DRBD backing disk (pair.drbd.disk /dev/vdb)"},
		{"active LVM PV", 254, 32, "in use by dm-0 (vg0-dm-0) (an LVM physical volume"},
		{"swap", 254, 48, "it is a swap device"},
		{"mounted loop device", 7, 3, "mounted on /mnt/old disk"},
		{"DRBD device", 147, 0, "DRBD device drbd0, sand's replicated storage"},
		{"sand's pool volume", 253, 4, "sand-lun--vm01, a volume of sand's own pool"},
		{"unknown device", 9, 9, "the kernel lists no block device 9:9"},
		{"old disk", 8, 16, ""},
		{"old disk's partition", 8, 17, ""},
		{"another VG's volume", 253, 5, ""},
		{"a volume of a VG named like sand's", 253, 6, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h.checkBlock("/dev/x", tt.major, tt.minor)
			switch {
			case tt.msg == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.msg != "" && (err == nil || !strings.Contains(err.Error(), tt.msg)):
				t.Errorf("checkBlock = %v, want it refused saying %q", err, tt.msg)
			}
		})
	}
}

// A link to a refused device is refused as the device: the check looks at
// what the path resolves to. (mknod needs root.)
func TestImportRefusesALinkToARefusedDevice(t *testing.T) {
	requireRoot(t, "mknod of a block device node")
	tb := newTestBox(t)
	h := newFakeHost(t, tb)
	h.disk(t, "", "vda", 254, 0)
	h.write(t, "mountinfo", "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n")
	if err := unix.Mknod(filepath.Join(h.devDir, "vda"), unix.S_IFBLK|0o600, int(unix.Mkdev(254, 0))); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(h.devDir, "disk", "by-id", "virtio-root")
	os.MkdirAll(filepath.Dir(link), 0o755)
	if err := os.Symlink("../../vda", link); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(h.devDir, "vda"), link} {
		_, err := importWithin(t, tb, ImportRequest{Conf: importConf("iqn.2001-04.com.example:vm7", p, 0), CopyFrom: []string{p}, DryRun: true})
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "it is mounted on /") {
			t.Errorf("copy from %s: %v, want it refused as the mounted root disk", p, err)
		}
	}
}

func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("needs root (%s)", why)
	}
	t.Skipf("needs root (%s)", why)
}

func TestHasPVLabel(t *testing.T) {
	label := func(sector int) []byte {
		b := make([]byte, 4*BlockSize)
		copy(b[sector*BlockSize:], "LABELONE")
		copy(b[sector*BlockSize+24:], "LVM2 001")
		return b
	}
	if !hasPVLabel(label(1)) || !hasPVLabel(label(0)) || !hasPVLabel(label(3)) {
		t.Error("an LVM2 label in the first four sectors is not seen")
	}
	if hasPVLabel(make([]byte, 4*BlockSize)) || hasPVLabel([]byte("LABELONE")) || hasPVLabel(nil) {
		t.Error("a label is seen where there is none")
	}
	b := label(1)
	copy(b[BlockSize+24:], "LVM1 001")
	if hasPVLabel(b) {
		t.Error("LABELONE without LVM2 001 is taken for a PV")
	}
}

// pausedCopy starts an import that copies old and waits until the copy is
// at its first chunk, held there until release is closed.
func pausedCopy(t *testing.T, tb testBox, ctx context.Context, old string) (release chan struct{}, result chan error) {
	t.Helper()
	at := make(chan struct{})
	release = make(chan struct{})
	var once sync.Once
	tb.copies.chunkHook = func() {
		once.Do(func() { close(at) })
		<-release
	}
	result = make(chan error, 1)
	go func() {
		_, err := tb.Import(ctx, ImportRequest{Conf: importConf("iqn.2001-04.com.example:storage.vm7", old, 0), CopyFrom: []string{old}})
		result <- err
	}()
	select {
	case <-at:
	case err := <-result:
		t.Fatalf("the import ended before copying: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the copy did not start within 10 s")
	}
	return release, result
}

// While a copy runs, the box is not locked: LUNs are made, the status
// answers, the orphan sweep leaves the volume being filled alone, and its
// name is taken.
func TestImportCopiesOutsideTheLock(t *testing.T) {
	tb := newTestBox(t)
	h := newFakeHost(t, tb)
	ctx := context.Background()
	old := h.write(t, "srv/vm7.img", string(pattern(2*copyChunk)))
	release, result := pausedCopy(t, tb, ctx, old)
	if _, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm01", Size: mib}); err != nil {
		t.Errorf("create a LUN during a copy: %v", err)
	}
	if _, err := tb.CreateLUN(ctx, LUNRequest{Name: "storage.vm7", Size: mib}); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "being imported") {
		t.Errorf("create a LUN of the name being imported: %v", err)
	}
	if err := tb.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tb.pool.Path("storage.vm7")); err != nil {
		t.Errorf("the sweep removed the volume being filled: %v", err)
	}
	tb.Status(ctx)
	close(release)
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	if _, err := tb.LUN("storage.vm7"); err != nil {
		t.Error(err)
	}
}

// A copy whose client goes away stops, and the import changes nothing.
func TestImportCopyCancelledChangesNothing(t *testing.T) {
	tb := newTestBox(t)
	h := newFakeHost(t, tb)
	old := h.write(t, "srv/vm7.img", string(pattern(2*copyChunk)))
	before := tb.snapshot(t)
	ctx, cancel := context.WithCancel(context.Background())
	release, result := pausedCopy(t, tb, ctx, old)
	cancel()
	close(release)
	if err := <-result; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled import: %v", err)
	}
	if diff := cmp.Diff(before, tb.snapshot(t)); diff != "" {
		t.Errorf("a cancelled import changed the box (-before +after):\n%s", diff)
	}
	if tb.copies.reserved("storage.vm7") {
		t.Error("the name stays reserved")
	}
}

// A box that stops serving stops the copies and waits until they let go
// of their volumes (the pool is deactivated next); the import commits
// nothing, and the next primary sweeps the volume.
func TestDeactivateStopsACopy(t *testing.T) {
	tb := newTestBox(t)
	h := newFakeHost(t, tb)
	ctx := context.Background()
	old := h.write(t, "srv/vm7.img", string(pattern(2*copyChunk)))
	release, result := pausedCopy(t, tb, ctx, old)
	deactivated := make(chan error, 1)
	go func() { deactivated <- tb.Deactivate(ctx) }()
	// Deactivate cancels the copy, then waits for it: let the held copy go
	// once the cancel is out, so it sees it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		tb.copies.mu.Lock()
		cancelled := len(tb.copies.cancels) == 0
		tb.copies.mu.Unlock()
		if cancelled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Deactivate did not cancel the copy within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-deactivated; err != nil {
		t.Fatal(err)
	}
	if err := <-result; !errors.Is(err, context.Canceled) {
		t.Fatalf("import stopped by Deactivate: %v", err)
	}
	if err := tb.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if len(tb.LUNs()) != 0 {
		t.Errorf("LUNs %+v after a stopped import", tb.LUNs())
	}
	if _, err := os.Stat(tb.pool.Path("storage.vm7")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stopped import's volume is still there after the sweep: %v", err)
	}
}
