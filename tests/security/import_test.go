//go:build netns

package security

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sand-appliance/sand/tests/netlab"
	"github.com/sand-appliance/sand/ui"
)

// TestImportConfinedToThePool: a real sand serve (tgt, file pool) is sent
// ietd.conf files by the CLI as an admin would. A file that names the
// box's own root disk, a mounted device, a device claimed exclusively (as
// DRBD claims its backing disk) or held by device-mapper (as an active
// volume group holds its PVs; where the kernel has device-mapper), a
// device with an LVM label, /proc or a FIFO is refused, dry run and real, with or
// without a copy asked: the registry, the pool and the target stay as they
// were, and an initiator of the group the file was imported into finds no
// target. A FIFO does not hold up the API: a concurrent status and LUN
// create answer at once. A file sand wrote (sand target) imports as new
// pool volumes with the same identity, and a copy the admin asks for
// brings the old device's data into the new LUN, read by a real initiator.
func TestImportConfinedToThePool(t *testing.T) {
	netlab.Require(t, append(slices.Clone(netlab.Tools), "losetup", "mkfs.ext4", "mount", "umount", "mkfifo", "dmsetup")...)
	lab := netlab.New(t, "10.235.0")
	srv := lab.AddHost("san1", 11)
	admin := lab.AddHost("admin", 100)
	box := netlab.NewSandBox(t, srv, netlab.BuildSand(t))
	// The devices first: sand serve runs in the mount namespace `ip netns
	// exec` makes, a copy of this one when it starts.
	mounted := newLoop(t, 32<<20, nil)
	mnt := filepath.Join(t.TempDir(), "mnt")
	os.Mkdir(mnt, 0o755)
	run(t, "mkfs.ext4", "-q", "-F", mounted)
	run(t, "mount", mounted, mnt)
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	// DRBD holds its backing disk as this test holds claimed: open
	// exclusively, with nothing in sysfs to say so.
	claimed := newLoop(t, 32<<20, nil)
	fd, err := syscall.Open(claimed, syscall.O_RDONLY|syscall.O_EXCL|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("claim %s: %v", claimed, err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	// An active volume group holds its PVs through device-mapper, which
	// sysfs shows; this kernel may have none.
	held := newLoop(t, 32<<20, nil)
	dm := fmt.Sprintf("sandsec-%06x", rand.IntN(1<<24))
	if out, err := exec.Command("dmsetup", "create", dm, "--table", fmt.Sprintf("0 %d linear %s 0", (32<<20)/512, held)).CombinedOutput(); err != nil {
		t.Logf("no device-mapper here, the device-mapper case is left out: %v: %s", err, bytes.TrimSpace(out))
		held = ""
	} else {
		t.Cleanup(func() { exec.Command("dmsetup", "remove", dm).Run() })
	}
	labelled := newLoop(t, 32<<20, func(data []byte) {
		copy(data[512:], "LABELONE")
		copy(data[512+24:], "LVM2 001")
	})
	fifo := fmt.Sprintf("/dev/shm/sandsec-%06x.fifo", rand.IntN(1<<24))
	run(t, "mkfifo", "-m", "600", fifo)
	t.Cleanup(func() { os.Remove(fifo) })

	box.Start(admin)
	// sand's mount namespace keeps the test's mount while sand lives: it
	// ends before the devices are taken down.
	t.Cleanup(func() { box.Proc.Signal(syscall.SIGKILL) })
	portal := srv.IP + ":3260"
	intruder := netlab.Initiator{T: t, Host: admin, IQN: "iqn.2026-11.org.example:intruder"}
	dom := netlab.Initiator{T: t, Host: admin, IQN: "iqn.2026-11.org.example:dom0-a"}
	box.MustCLI(admin, "group", "create", "foreign", intruder.IQN)
	box.MustCLI(admin, "group", "create", "xen", dom.IQN)
	// A LUN of the group the files are imported into, so that its
	// initiator's discovery answers (iscsi-ls fails outright on a portal
	// without targets) and shows exactly what the group may see.
	box.MustCLI(admin, "lun", "create", "control", "--size", "1M", "--group", "foreign")
	control := []string{"Target:" + box.LUN(admin, "control").Target}
	im := &importer{t: t, box: box, in: admin, dir: t.TempDir()}
	before := im.state()

	refusals := []struct {
		name, path, msg string
	}{
		{"a mounted device", mounted, "it is mounted on " + mnt},
		{"a device claimed exclusively, as DRBD claims its disk", claimed, "the kernel reports it in use"},
		{"a device with an LVM label", labelled, "it carries an LVM physical volume label"},
		{"/proc", "/proc/self/mem", "is not allowed"},
		{"a FIFO", fifo, "it is a named pipe (FIFO)"},
	}
	if held != "" {
		refusals = append(refusals, struct{ name, path, msg string }{"a device held by device-mapper", held, "it is in use by dm-"})
	}
	if root := rootDisk(t); root != "" {
		refusals = append(refusals, struct{ name, path, msg string }{"the box's root disk", root, "mounted on /"})
	} else {
		t.Log("the root file system is on no block device here: the root disk case is left out")
	}
	for _, r := range refusals {
		conf := im.conf(fmt.Sprintf("Target iqn.2001-04.com.example:storage.old\n\tLun 0 Path=%s,Type=blockio\n", r.path))
		// Without a copy the path is not even looked at: the line has no
		// size, and sand never exports the path.
		for _, dry := range []bool{true, false} {
			im.refused(r.name+", no copy", conf, "foreign", dry, "", "--copy-data "+r.path)
			im.refused(r.name+", copy", conf, "foreign", dry, r.path, r.msg)
		}
		if after := im.state(); !after.equal(before) {
			t.Fatalf("refused import of %s changed the box: %+v, was %+v", r.name, after, before)
		}
		if found, err := intruder.Discover(portal); err != nil || !slices.Equal(found, control) {
			t.Fatalf("after the refused import of %s, %s discovers %q (%v), want %q only", r.name, intruder.IQN, found, err, control)
		}
	}

	// A FIFO does not hold up the API: the import, a status and a LUN
	// create sent together all answer at once.
	var wg sync.WaitGroup
	took := map[string]time.Duration{}
	var mu sync.Mutex
	for _, call := range [][]string{
		{"import", "ietd.conf", im.conf(fmt.Sprintf("Target iqn.2001-04.com.example:storage.pipe\n\tLun 0 Path=%s\n", fifo)), "--copy-data", fifo},
		{"status"},
		{"lun", "create", "probe", "--size", "1M"},
	} {
		wg.Go(func() {
			t0 := time.Now()
			box.CLI(admin, call...)
			mu.Lock()
			took[call[0]] = time.Since(t0)
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("with a FIFO import at the same time: %v", took)
	for call, d := range took {
		if d > 10*time.Second {
			t.Errorf("%s took %v beside an import of a FIFO", call, d)
		}
	}
	box.MustCLI(admin, "lun", "delete", "probe")
	// A FIFO a line names without a copy is never opened: the line, with a
	// size of its own, becomes a new empty LUN.
	conf := im.conf(fmt.Sprintf("Target iqn.2001-04.com.example:storage.pipe\n\t#sand: lun 0 size=%d\n\tLun 0 Path=%s\n", 1<<20, fifo))
	t0 := time.Now()
	pipe := im.imported(conf, "xen", false, "")
	if time.Since(t0) > 10*time.Second || len(pipe) != 1 || pipe[0].Size != 1<<20 || pipe[0].CopiedFrom != "" {
		t.Fatalf("import of a sized line naming a FIFO: %+v in %v", pipe, time.Since(t0))
	}
	box.MustCLI(admin, "lun", "delete", pipe[0].Name)

	// A file sand wrote comes back as new pool volumes with the identity
	// it records.
	box.MustCLI(admin, "lun", "create", "vm01", "--size", "64M", "--group", "xen")
	vm01 := box.LUN(admin, "vm01")
	dom.WritePattern(portal, vm01.Target, vm01.Number, 0xa5, "1M")
	written := im.conf(stanza(box.MustCLI(admin, "target"), vm01.Target))
	box.MustCLI(admin, "lun", "delete", "vm01")
	got := im.imported(written, "xen", false, "")
	if len(got) != 1 || got[0].Name != "vm01" || got[0].Serial != vm01.Serial || got[0].Target != vm01.Target || got[0].Size != 64<<20 || got[0].Path != "" {
		t.Fatalf("import of sand's own file: %+v, want vm01 as it was (%+v)", got, vm01)
	}
	if _, err := os.Stat(filepath.Join(box.Dir, "pool", "lun-vm01.img")); err != nil {
		t.Errorf("no pool volume for the imported vm01: %v", err)
	}
	if size, err := dom.Capacity(portal, vm01.Target, vm01.Number); err != nil || size != 64<<20 {
		t.Errorf("imported vm01 seen at %d bytes (%v)", size, err)
	}
	if err := dom.CheckPattern(portal, vm01.Target, vm01.Number, 0x00, "1M"); err != nil {
		t.Errorf("imported vm01 is not a new empty volume: %v", err)
	}

	// The copy the admin asks for: the old device's data in a new LUN of
	// its size.
	const oldSize = 48 << 20
	old := newLoop(t, oldSize, func(data []byte) {
		for i := range 4 << 20 {
			data[i] = 0x5c
		}
		for i := oldSize - 1<<20; i < oldSize; i++ {
			data[i] = 0xc5
		}
	})
	conf = im.conf(fmt.Sprintf("Target iqn.2001-04.com.example:storage.old\n\tLun 0 Path=%s,Type=blockio,ScsiSN=OLD4711\n", old))
	dry := im.imported(conf, "xen", true, old)
	if len(dry) != 1 || dry[0].Size != oldSize || dry[0].CopiedFrom != old {
		t.Fatalf("dry run of a copy: %+v", dry)
	}
	if _, err := box.CLI(admin, "lun", "show", "storage.old"); err == nil {
		t.Fatal("the dry run made the LUN")
	}
	t0 = time.Now()
	got = im.imported(conf, "xen", false, old)
	copyTook := time.Since(t0)
	t.Logf("import copying %d MiB from %s took %v", oldSize>>20, old, copyTook.Round(time.Millisecond))
	if len(got) != 1 || got[0].Size != oldSize || got[0].CopiedFrom != old || got[0].Serial != "OLD4711" {
		t.Fatalf("import with a copy: %+v", got)
	}
	l := got[0]
	if size, err := dom.Capacity(portal, l.Target, l.Number); err != nil || size != oldSize {
		t.Errorf("the copied LUN is seen at %d bytes (%v), want %d", size, err, oldSize)
	}
	if err := dom.CheckPattern(portal, l.Target, l.Number, 0x5c, "4M"); err != nil {
		t.Errorf("the copied LUN's start: %v", err)
	}
	if out, err := dom.QemuIO(portal, l.Target, l.Number, true, fmt.Sprintf("read -P 0xc5 %d 1M", oldSize-1<<20)); err != nil || strings.Contains(out, "Pattern verification failed") {
		t.Errorf("the copied LUN's end: %v\n%s", err, out)
	}
	if serial, _, err := dom.Identity(portal, l.Target, l.Number); err != nil || serial != "OLD4711" {
		t.Errorf("the copied LUN's serial: %q (%v), want the file's OLD4711", serial, err)
	}
	if found, err := intruder.Discover(portal); err != nil || !slices.Equal(found, control) {
		t.Errorf("%s, in no group of the imported LUNs, discovers %q (%v), want %q only", intruder.IQN, found, err, control)
	}
	conf2, _ := os.ReadFile(filepath.Join(box.Dir, "state", "ietd.conf"))
	for _, p := range []string{old, mounted, claimed, labelled, fifo} {
		if strings.Contains(string(conf2), "Path="+p+",") {
			t.Errorf("the exported configuration names %s:\n%s", p, conf2)
		}
	}
}

// importer sends ietd.conf files to a box through the CLI.
type importer struct {
	t   *testing.T
	box *netlab.SandBox
	in  *netlab.Host
	dir string
	n   int
}

// conf writes an ietd.conf and returns its path.
func (im *importer) conf(text string) string {
	im.n++
	p := filepath.Join(im.dir, fmt.Sprintf("ietd-%d.conf", im.n))
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		im.t.Fatal(err)
	}
	return p
}

func (im *importer) args(conf, group string, dry bool, copyFrom string) []string {
	args := []string{"import", "ietd.conf", conf, "--group", group, "-o", "json"}
	if dry {
		args = append(args, "--dry-run")
	}
	if copyFrom != "" {
		args = append(args, "--copy-data", copyFrom)
	}
	return args
}

// refused sends an import that must fail within 10 s saying msg.
func (im *importer) refused(what, conf, group string, dry bool, copyFrom, msg string) {
	im.t.Helper()
	t0 := time.Now()
	out, err := im.box.CLI(im.in, im.args(conf, group, dry, copyFrom)...)
	switch {
	case err == nil:
		im.t.Fatalf("import of %s (dry run %v) was accepted:\n%s", what, dry, out)
	case !strings.Contains(out, msg):
		im.t.Fatalf("import of %s (dry run %v) refused without saying %q:\n%s", what, dry, msg, out)
	case time.Since(t0) > 10*time.Second:
		im.t.Errorf("import of %s (dry run %v) took %v to be refused", what, dry, time.Since(t0))
	case !dry:
		im.t.Logf("%s: %s", what, strings.TrimSpace(out[strings.LastIndex(out, ": invalid request: ")+2:]))
	}
}

// imported sends an import that must succeed and returns what it made.
func (im *importer) imported(conf, group string, dry bool, copyFrom string) []ui.ImportView {
	im.t.Helper()
	out := im.box.MustCLI(im.in, im.args(conf, group, dry, copyFrom)...)
	var views []ui.ImportView
	if err := json.Unmarshal([]byte(out), &views); err != nil {
		im.t.Fatalf("import answer: %v\n%s", err, out)
	}
	return views
}

// boxState is what a refused import must leave as it was.
type boxState struct {
	Generation uint64
	LUNs       []string
	Volumes    []string
	Exported   string
}

func (s boxState) equal(o boxState) bool {
	return s.Generation == o.Generation && slices.Equal(s.LUNs, o.LUNs) && slices.Equal(s.Volumes, o.Volumes) && s.Exported == o.Exported
}

func (im *importer) state() boxState {
	im.t.Helper()
	var s boxState
	var st struct {
		Generation uint64 `json:"generation"`
	}
	if err := json.Unmarshal([]byte(im.box.MustCLI(im.in, "status", "-o", "json")), &st); err != nil {
		im.t.Fatal(err)
	}
	s.Generation = st.Generation
	var luns []ui.LUNView
	if err := json.Unmarshal([]byte(im.box.MustCLI(im.in, "lun", "list", "-o", "json")), &luns); err != nil {
		im.t.Fatal(err)
	}
	for _, l := range luns {
		s.LUNs = append(s.LUNs, l.Name)
	}
	entries, _ := os.ReadDir(filepath.Join(im.box.Dir, "pool"))
	for _, e := range entries {
		s.Volumes = append(s.Volumes, e.Name())
	}
	s.Exported = im.box.MustCLI(im.in, "target")
	return s
}

// newLoop makes a loop device over a file of size bytes, filled by fill
// (nil: zeros), detached at the end of the test.
func newLoop(t *testing.T, size int, fill func([]byte)) string {
	t.Helper()
	data := make([]byte, size)
	if fill != nil {
		fill(data)
	}
	f := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "--find", "--show", f).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("needs loop devices: losetup: %v: %s", err, bytes.TrimSpace(out))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })
	return dev
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// stanza keeps of a rendered ietd.conf what comes before the first target
// and the stanza of target iqn.
func stanza(conf, iqn string) string {
	var b strings.Builder
	keep := true
	for _, line := range strings.SplitAfter(conf, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "Target" {
			keep = f[1] == iqn
		}
		if keep {
			b.WriteString(line)
		}
	}
	return b.String()
}

// rootDisk is the block device of the root file system, from the mount
// table ("" if it is on none, as in some containers).
func rootDisk(t *testing.T) string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[4] != "/" {
			continue
		}
		link, err := os.Readlink("/sys/dev/block/" + f[2])
		if err != nil {
			return ""
		}
		dev := "/dev/" + filepath.Base(link)
		if st, err := os.Stat(dev); err == nil && st.Mode()&os.ModeDevice != 0 {
			return dev
		}
	}
	return ""
}
