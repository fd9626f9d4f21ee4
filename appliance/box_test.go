package appliance

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sand-appliance/sand/appliance/pool"
	"github.com/sand-appliance/sand/appliance/pool/file"
	"github.com/sand-appliance/sand/iscsi"
)

// fakeDriver stands at the target boundary: it remembers what was applied
// and fails when told to.
type fakeDriver struct {
	applied  iscsi.TargetGroup
	applies  int
	failNext error
	// beforeApply, if set, runs at the start of each Apply.
	beforeApply func()
}

func (d *fakeDriver) Apply(ctx context.Context, tg iscsi.TargetGroup) error {
	if d.beforeApply != nil {
		d.beforeApply()
	}
	if err := d.failNext; err != nil {
		d.failNext = nil
		return err
	}
	d.applied = tg
	d.applies++
	return nil
}
func (d *fakeDriver) Sessions(ctx context.Context) ([]iscsi.Session, error) { return nil, nil }
func (d *fakeDriver) Stop(ctx context.Context) error                        { d.applied = iscsi.TargetGroup{}; return nil }
func (d *fakeDriver) FirstLUN() int                                         { return 1 }

type testBox struct {
	*Box
	cfg    Config
	driver *fakeDriver
	pool   *file.Pool
}

func newTestBox(t *testing.T) testBox {
	t.Helper()
	return newTestBoxOn(t, nil)
}

// newTestBoxOn starts a box whose pool is the test's file pool as wrap
// returns it (nil: the file pool itself).
func newTestBoxOn(t *testing.T, wrap func(*file.Pool) pool.Pool) testBox {
	t.Helper()
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Portal = "127.0.0.1"
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Pool = PoolConfig{Kind: "file", Dir: filepath.Join(dir, "pool"), Size: "1G"}
	cfg.Target.Driver = "tgt"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := file.New(cfg.Pool.Dir, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDriver{}
	var bp pool.Pool = p
	if wrap != nil {
		bp = wrap(p)
	}
	b := NewBox(cfg, bp, d, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return testBox{Box: b, cfg: cfg, driver: d, pool: p}
}

// snapshot is everything a request may change: registry file, pool files,
// ietd.conf and the applied target.
type snapshot struct {
	Registry string
	Volumes  map[string]int64
	IETD     string
	Applied  iscsi.TargetGroup
}

func (tb testBox) snapshot(t *testing.T) snapshot {
	t.Helper()
	s := snapshot{Volumes: map[string]int64{}, Applied: tb.driver.applied}
	reg, _ := os.ReadFile(tb.cfg.RegistryPath())
	s.Registry = string(reg)
	ietd, _ := os.ReadFile(tb.cfg.IETDPath())
	s.IETD = string(ietd)
	vols, err := tb.pool.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vols {
		s.Volumes[v.Name] = v.Size
	}
	return s
}

const mib = 1 << 20

func TestCreateLUNExportsIt(t *testing.T) {
	tb := newTestBox(t)
	ctx := context.Background()
	if _, err := tb.CreateGroup(ctx, InitiatorGroup{Name: "xen-cluster", Initiators: []string{"iqn.2026-11.org.example:dom0-a"}}); err != nil {
		t.Fatal(err)
	}
	l, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm01", Size: 64 * mib, Group: "xen-cluster"})
	if err != nil {
		t.Fatal(err)
	}
	if l.Target != "iqn.2026-11.org.sand-appliance:vm01" || l.Number != 1 {
		t.Errorf("LUN at %s/%d, want its own target at the driver's first LUN", l.Target, l.Number)
	}
	if len(l.Serial) != iscsi.SerialLen || l.NAA != iscsi.NAAFromSerial(l.Serial) {
		t.Errorf("identity serial=%q naa=%q", l.Serial, l.NAA)
	}
	want := iscsi.TargetGroup{
		Portals: []string{"127.0.0.1:3260"},
		Targets: []iscsi.Target{{
			IQN: l.Target, Alias: "vm01", Initiators: []string{"iqn.2026-11.org.example:dom0-a"},
			LUNs: []iscsi.LogicalUnit{{Number: 1, Name: "vm01", Path: tb.pool.Path("vm01"), Type: iscsi.FileIO, Size: 64 * mib, Serial: l.Serial, NAA: l.NAA}},
		}},
	}
	if diff := cmp.Diff(want, tb.driver.applied); diff != "" {
		t.Errorf("applied target (-want +got):\n%s", diff)
	}
	st, err := os.Stat(tb.pool.Path("vm01"))
	if err != nil || st.Size() != 64*mib {
		t.Fatalf("volume: %v %v", st, err)
	}
	ietd, err := os.ReadFile(tb.cfg.IETDPath())
	if err != nil || !strings.Contains(string(ietd), l.Target) {
		t.Errorf("ietd.conf does not name the target: %q %v", ietd, err)
	}
	// A restart finds the same LUN with the same identity.
	b2 := NewBox(tb.cfg, tb.pool, tb.driver, tb.log)
	if err := b2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := b2.LUN("vm01")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(l, got); diff != "" {
		t.Errorf("LUN after restart (-want +got):\n%s", diff)
	}
}

func TestBadRequestsChangeNothing(t *testing.T) {
	tb := newTestBox(t)
	ctx := context.Background()
	if _, err := tb.CreateGroup(ctx, InitiatorGroup{Name: "xen"}); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm01", Size: 64 * mib, Group: "xen"}); err != nil {
		t.Fatal(err)
	}
	size := func(n int64) *int64 { return &n }
	group := func(s string) *string { return &s }
	tests := []struct {
		name string
		do   func() error
		want error
		msg  string
	}{
		{"empty name", func() error { _, err := tb.CreateLUN(ctx, LUNRequest{Size: mib}); return err }, ErrInvalid, "empty"},
		{"long name", func() error {
			_, err := tb.CreateLUN(ctx, LUNRequest{Name: strings.Repeat("a", 64), Size: mib})
			return err
		}, ErrInvalid, "at most 63"},
		{"space", func() error { _, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm 02", Size: mib}); return err }, ErrInvalid, "lower-case"},
		{"slash", func() error { _, err := tb.CreateLUN(ctx, LUNRequest{Name: "a/b", Size: mib}); return err }, ErrInvalid, "lower-case"},
		{"dotdot", func() error { _, err := tb.CreateLUN(ctx, LUNRequest{Name: "a..b", Size: mib}); return err }, ErrInvalid, ".."},
		{"only dotdot", func() error { _, err := tb.CreateLUN(ctx, LUNRequest{Name: "..", Size: mib}); return err }, ErrInvalid, ".."},
		{"shell", func() error { _, err := tb.CreateLUN(ctx, LUNRequest{Name: "a;rm -rf", Size: mib}); return err }, ErrInvalid, "lower-case"},
		{"dollar", func() error { _, err := tb.CreateLUN(ctx, LUNRequest{Name: "$(reboot)", Size: mib}); return err }, ErrInvalid, "lower-case"},
		{"upper", func() error { _, err := tb.CreateLUN(ctx, LUNRequest{Name: "VM02", Size: mib}); return err }, ErrInvalid, "lower-case"},
		{"duplicate", func() error { _, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm01", Size: mib}); return err }, ErrExists, "already exists"},
		{"zero size", func() error { _, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm02"}); return err }, ErrInvalid, "larger than 0"},
		{"negative size", func() error { _, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm02", Size: -mib}); return err }, ErrInvalid, "larger than 0"},
		{"odd size", func() error { _, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm02", Size: 1000}); return err }, ErrInvalid, "multiple"},
		{"larger than pool", func() error { _, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm02", Size: 2 << 30}); return err }, ErrNoSpace, "free in the pool"},
		{"unknown group", func() error {
			_, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm02", Size: mib, Group: "nope"})
			return err
		}, ErrNotFound, "does not exist"},
		{"bad target", func() error {
			_, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm02", Size: mib, Target: "A B"})
			return err
		}, ErrInvalid, "target name"},
		{"shrink", func() error { _, err := tb.UpdateLUN(ctx, "vm01", LUNUpdate{Size: size(32 * mib)}); return err }, ErrInvalid, "shrinking"},
		{"grow past pool", func() error { _, err := tb.UpdateLUN(ctx, "vm01", LUNUpdate{Size: size(4 << 30)}); return err }, ErrNoSpace, "free"},
		{"resize missing", func() error { _, err := tb.UpdateLUN(ctx, "nope", LUNUpdate{Size: size(mib)}); return err }, ErrNotFound, "does not exist"},
		{"unknown group on update", func() error { _, err := tb.UpdateLUN(ctx, "vm01", LUNUpdate{Group: group("nope")}); return err }, ErrNotFound, "does not exist"},
		{"delete missing", func() error { return tb.DeleteLUN(ctx, "nope") }, ErrNotFound, "does not exist"},
		{"bad initiator", func() error {
			_, err := tb.CreateGroup(ctx, InitiatorGroup{Name: "g2", Initiators: []string{"iqn.bad"}})
			return err
		}, ErrInvalid, "malformed"},
		{"duplicate group", func() error { _, err := tb.CreateGroup(ctx, InitiatorGroup{Name: "xen"}); return err }, ErrExists, "already exists"},
		{"short chap", func() error {
			_, err := tb.UpdateGroup(ctx, "xen", GroupUpdate{CHAP: &iscsi.CHAP{User: "u", Secret: "short"}})
			return err
		}, ErrInvalid, "12 to 16"},
		{"long chap", func() error {
			_, err := tb.UpdateGroup(ctx, "xen", GroupUpdate{CHAP: &iscsi.CHAP{User: "u", Secret: strings.Repeat("s", 17)}})
			return err
		}, ErrInvalid, "12 to 16"},
		{"mutual without chap", func() error {
			_, err := tb.UpdateGroup(ctx, "xen", GroupUpdate{MutualCHAP: &iscsi.CHAP{User: "t", Secret: "0123456789ab"}})
			return err
		}, ErrInvalid, "needs CHAP"},
		{"duplicate initiator", func() error {
			_, err := tb.UpdateGroup(ctx, "xen", GroupUpdate{Add: []string{"iqn.2026-11.org.example:a", "iqn.2026-11.org.example:a"}})
			return err
		}, ErrExists, "already"},
		{"remove absent initiator", func() error {
			_, err := tb.UpdateGroup(ctx, "xen", GroupUpdate{Remove: []string{"iqn.2026-11.org.example:zz"}})
			return err
		}, ErrNotFound, "not in"},
		{"delete group in use", func() error { return tb.DeleteGroup(ctx, "xen") }, ErrInUse, "used by LUN vm01"},
		{"malformed ietd.conf", func() error {
			_, err := tb.Import(ctx, ImportRequest{Conf: []byte("Target iqn.2026-11.org.example:x\n\tLun 0 Type=fileio\n"), Group: "xen"})
			return err
		}, ErrInvalid, "line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := tb.snapshot(t)
			applies := tb.driver.applies
			err := tt.do()
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not say %q", err, tt.msg)
			}
			if diff := cmp.Diff(before, tb.snapshot(t)); diff != "" {
				t.Errorf("state changed (-before +after):\n%s", diff)
			}
			if tb.driver.applies != applies {
				t.Errorf("target applied %d times on a bad request", tb.driver.applies-applies)
			}
		})
	}
}

func TestFailedApplyRollsBack(t *testing.T) {
	tb := newTestBox(t)
	ctx := context.Background()
	if _, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm01", Size: mib}); err != nil {
		t.Fatal(err)
	}
	before := tb.snapshot(t)
	tb.driver.failNext = errors.New("tgtadm exploded")
	if _, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm02", Size: mib}); err == nil || !strings.Contains(err.Error(), "tgtadm exploded") {
		t.Fatalf("create with a failing target: %v", err)
	}
	if diff := cmp.Diff(before, tb.snapshot(t)); diff != "" {
		t.Errorf("failed create left changes (-before +after):\n%s", diff)
	}
	tb.driver.failNext = errors.New("tgtadm exploded")
	size := int64(2 * mib)
	if _, err := tb.UpdateLUN(ctx, "vm01", LUNUpdate{Size: &size}); err == nil {
		t.Fatal("grow with a failing target succeeded")
	}
	if got := tb.LUNs()[0].Size; got != mib {
		t.Errorf("registry size after failed grow = %d", got)
	}
	tb.driver.failNext = errors.New("tgtadm exploded")
	if err := tb.DeleteLUN(ctx, "vm01"); err == nil {
		t.Fatal("delete with a failing target succeeded")
	}
	if _, err := os.Stat(tb.pool.Path("vm01")); err != nil {
		t.Errorf("failed delete removed the volume: %v", err)
	}
	if _, err := tb.LUN("vm01"); err != nil {
		t.Errorf("failed delete removed the registry entry: %v", err)
	}
}

// A kill -9 between the steps of a change leaves a state the next start
// repairs: an orphan volume from an unacknowledged create or an unfinished
// delete is removed; an unfinished grow is finished.
func TestStartRepairsInterruptedChanges(t *testing.T) {
	tb := newTestBox(t)
	ctx := context.Background()
	l, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm01", Size: mib})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tb.pool.Create(ctx, "orphan", mib); err != nil {
		t.Fatal(err)
	}
	// The registry says 4 MiB, the volume is 1 MiB: a grow cut short.
	reg, err := tb.store.Load()
	if err != nil {
		t.Fatal(err)
	}
	reg.LUNs[0].Size = 4 * mib
	reg.Generation++
	if err := tb.store.Save(reg); err != nil {
		t.Fatal(err)
	}
	// A file the admin keeps in the pool directory is not sand's: left alone.
	other := filepath.Join(tb.cfg.Pool.Dir, "notes.txt")
	os.WriteFile(other, []byte("mine"), 0o600)

	b2 := NewBox(tb.cfg, tb.pool, tb.driver, tb.log)
	if err := b2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	vols, _ := tb.pool.List(ctx)
	if len(vols) != 1 || vols[0].Name != "vm01" || vols[0].Size != 4*mib {
		t.Errorf("volumes after repair: %+v", vols)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("repair removed a file that is not sand's: %v", err)
	}
	if got := tb.driver.applied.Targets[0].LUNs[0]; got.Size != 4*mib || got.Serial != l.Serial {
		t.Errorf("exported after repair: %+v", got)
	}
}

func TestMissingVolumeIsReportedNotExported(t *testing.T) {
	tb := newTestBox(t)
	ctx := context.Background()
	for _, n := range []string{"vm01", "vm02"} {
		if _, err := tb.CreateLUN(ctx, LUNRequest{Name: n, Size: mib}); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(tb.pool.Path("vm01"))
	if err := tb.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(tb.driver.applied.Targets); n != 1 || tb.driver.applied.Targets[0].Alias != "vm02" {
		t.Errorf("exported %d targets: %+v", n, tb.driver.applied.Targets)
	}
	s := tb.Status(ctx)
	if len(s.Problems) != 1 || !strings.Contains(s.Problems[0], "vm01") {
		t.Errorf("status problems: %q", s.Problems)
	}
}

func TestSharedTarget(t *testing.T) {
	tb := newTestBox(t)
	ctx := context.Background()
	a, err := tb.CreateLUN(ctx, LUNRequest{Name: "db-data", Size: mib, Target: "db"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := tb.CreateLUN(ctx, LUNRequest{Name: "db-log", Size: mib, Target: "db"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Target != b.Target || a.Number != 1 || b.Number != 2 {
		t.Errorf("shared target: %s/%d and %s/%d", a.Target, a.Number, b.Target, b.Number)
	}
	if _, err := tb.CreateGroup(ctx, InitiatorGroup{Name: "g"}); err != nil {
		t.Fatal(err)
	}
	g := "g"
	if _, err := tb.UpdateLUN(ctx, "db-log", LUNUpdate{Group: &g}); !errors.Is(err, ErrInvalid) {
		t.Errorf("one LUN of a shared target moved to another group: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"20G", 20 << 30, true}, {"512M", 512 << 20, true}, {"1.5T", 3 << 39, true}, {"4096", 4096, true},
		{"1 GiB", 1 << 30, true}, {"2k", 2048, true},
		{"", 0, false}, {"G", 0, false}, {"-1G", 0, false}, {"ten", 0, false}, {"1X", 0, false}, {"1e400", 0, false},
		{"99999999999T", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseSize(tt.in)
			if (err == nil) != tt.ok || got != tt.want {
				t.Errorf("ParseSize(%q) = %d, %v", tt.in, got, err)
			}
		})
	}
	for _, n := range []int64{512, 1 << 20, 20 << 30, 3 << 39, 1000} {
		back, err := ParseSize(FormatSize(n))
		if err != nil || back != n {
			t.Errorf("FormatSize(%d) = %q reads back as %d, %v", n, FormatSize(n), back, err)
		}
	}
}

// A box taking over serves before it sweeps: Activate exports the registry
// without listing the pool (a listing is seconds of lvs under load), and
// Sweep removes the orphans afterwards, only while the box still serves.
func TestActivateServesFirstSweepRemovesOrphansAfter(t *testing.T) {
	tb := newTestBox(t)
	ctx := context.Background()
	if _, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm01", Size: mib}); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.pool.Create(ctx, "orphan", mib); err != nil {
		t.Fatal(err)
	}
	b2 := NewBox(tb.cfg, tb.pool, tb.driver, tb.log)
	if err := b2.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tb.pool.Path("orphan")); err != nil {
		t.Fatalf("a box that does not serve swept the pool: %v", err)
	}
	if err := b2.Activate(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(tb.driver.applied.Targets); n != 1 || tb.driver.applied.Targets[0].Alias != "vm01" {
		t.Errorf("exported after Activate: %+v", tb.driver.applied.Targets)
	}
	if _, err := os.Stat(tb.pool.Path("orphan")); err != nil {
		t.Fatalf("Activate touched the orphan (it must leave it to Sweep): %v", err)
	}
	if err := b2.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	vols, err := tb.pool.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(vols) != 1 || vols[0].Name != "vm01" {
		t.Errorf("volumes after Sweep: %+v", vols)
	}
}

// A box taking over leaves an ietd.conf that already says what it serves
// alone (same file, not rewritten), and rewrites one that differs.
func TestActivateRewritesIETDOnlyWhenItDiffers(t *testing.T) {
	tb := newTestBox(t)
	ctx := context.Background()
	if _, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm01", Size: mib}); err != nil {
		t.Fatal(err)
	}
	inode := func() uint64 {
		t.Helper()
		fi, err := os.Stat(tb.cfg.IETDPath())
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	before := inode()
	if err := NewBox(tb.cfg, tb.pool, tb.driver, tb.log).Activate(ctx); err != nil {
		t.Fatal(err)
	}
	if inode() != before {
		t.Error("Activate rewrote an ietd.conf that already matched the registry")
	}
	os.WriteFile(tb.cfg.IETDPath(), []byte("# stale\n"), 0o600)
	if err := NewBox(tb.cfg, tb.pool, tb.driver, tb.log).Activate(ctx); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(tb.cfg.IETDPath()); !strings.Contains(string(data), "vm01") {
		t.Errorf("a stale ietd.conf was not rewritten: %q", data)
	}
}
