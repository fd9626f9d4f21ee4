package appliance

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sand-appliance/sand/appliance/pool"
	"github.com/sand-appliance/sand/appliance/pool/file"
)

// hookPool is the test's file pool with hooks after each Create, List and
// Capacity: a test stops the box in the middle of a pool command there.
// The hooks are set before the box is used concurrently.
type hookPool struct {
	*file.Pool
	afterCreate   func()
	afterList     func([]pool.Volume)
	afterCapacity func()
}

func (p *hookPool) Create(ctx context.Context, name string, size int64) (pool.Volume, error) {
	v, err := p.Pool.Create(ctx, name, size)
	if p.afterCreate != nil {
		p.afterCreate()
	}
	return v, err
}

func (p *hookPool) List(ctx context.Context) ([]pool.Volume, error) {
	vols, err := p.Pool.List(ctx)
	if p.afterList != nil {
		p.afterList(vols)
	}
	return vols, err
}

func (p *hookPool) Capacity(ctx context.Context) (pool.Capacity, error) {
	c, err := p.Pool.Capacity(ctx)
	if p.afterCapacity != nil {
		p.afterCapacity()
	}
	return c, err
}

func newHookedBox(t *testing.T) (testBox, *hookPool) {
	t.Helper()
	var hp *hookPool
	tb := newTestBoxOn(t, func(p *file.Pool) pool.Pool {
		hp = &hookPool{Pool: p}
		return hp
	})
	return tb, hp
}

// gate holds the first command that reaches it until the test opens it.
type gate struct {
	name    string
	used    atomic.Bool
	arrived chan struct{}
	opened  chan struct{}
	once    sync.Once
}

// newGate returns a gate that opens at the end of the test at the latest,
// so no goroutine stays blocked.
func newGate(t *testing.T, name string) *gate {
	g := &gate{name: name, arrived: make(chan struct{}), opened: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *gate) hold() {
	if g.used.CompareAndSwap(false, true) {
		close(g.arrived)
		<-g.opened
	}
}

func (g *gate) open() { g.once.Do(func() { close(g.opened) }) }

// waitArrived fails the test unless a command reaches the gate in time.
func (g *gate) waitArrived(t *testing.T) {
	t.Helper()
	wait(t, g.arrived, g.name+" to be reached")
}

const lockDeadline = 5 * time.Second

// wait fails the test unless ch is closed or sent on within lockDeadline.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(lockDeadline):
		t.Fatalf("waited %s for %s", lockDeadline, what)
	}
	panic("unreachable")
}

// within fails the test unless f returns within lockDeadline.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	wait(t, done, what+" to return")
}

// The failover loop reads Active and Generation every round, and a
// secondary's Refresh too: none of them waits while an admin operation
// runs a pool or target command.
func TestFailoverReadsDoNotWaitOnAnAdminOperation(t *testing.T) {
	t.Run("create in flight", func(t *testing.T) {
		tb, hp := newHookedBox(t)
		ctx := context.Background()
		gen := tb.Generation()
		g := newGate(t, "the create's lvcreate")
		hp.afterCreate = g.hold
		created := make(chan error, 1)
		go func() {
			_, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm01", Size: mib})
			created <- err
		}()
		g.waitArrived(t)
		within(t, "Active", func() {
			if !tb.Active() {
				t.Error("Active() = false on a serving box")
			}
		})
		within(t, "Generation", func() {
			if got := tb.Generation(); got != gen {
				t.Errorf("Generation() = %d before the commit, want %d", got, gen)
			}
		})
		within(t, "Refresh", func() {
			if err := tb.Refresh(); err != nil {
				t.Error(err)
			}
		})
		within(t, "LUNs", func() { tb.LUNs() })
		within(t, "Status", func() { tb.Status(ctx) })
		g.open()
		if err := wait(t, created, "CreateLUN"); err != nil {
			t.Fatal(err)
		}
		if got := tb.Generation(); got != gen+1 {
			t.Errorf("Generation() = %d after the create, want %d", got, gen+1)
		}
	})
	t.Run("secondary taking over", func(t *testing.T) {
		tb := newTestBox(t)
		ctx := context.Background()
		if _, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm01", Size: mib}); err != nil {
			t.Fatal(err)
		}
		want := tb.Generation()
		d := &fakeDriver{}
		secondary := NewBox(tb.cfg, tb.pool, d, tb.log)
		g := newGate(t, "the activation's target apply")
		d.beforeApply = g.hold
		activated := make(chan error, 1)
		go func() { activated <- secondary.Activate(ctx) }()
		g.waitArrived(t)
		within(t, "Active", func() {
			if secondary.Active() {
				t.Error("Active() = true before the activation finished")
			}
		})
		within(t, "Refresh", func() {
			if err := secondary.Refresh(); err != nil {
				t.Error(err)
			}
		})
		within(t, "Generation", func() {
			if got := secondary.Generation(); got != want {
				t.Errorf("Generation() = %d after Refresh, want the shared registry's %d", got, want)
			}
		})
		g.open()
		if err := wait(t, activated, "Activate"); err != nil {
			t.Fatal(err)
		}
		if !secondary.Active() || secondary.Generation() != want || len(secondary.LUNs()) != 1 {
			t.Errorf("after Activate: active %v, generation %d, LUNs %v", secondary.Active(), secondary.Generation(), secondary.LUNs())
		}
	})
}

// Sweep lists the pool without the admin lock, so the listing may show
// the volume of a create that has not committed yet; it checks each
// orphan again under the lock, against the registry as it is then, and
// keeps that volume once its LUN is committed.
func TestSweepKeepsAVolumeCommittedWhileItListed(t *testing.T) {
	tb, hp := newHookedBox(t)
	ctx := context.Background()
	if _, err := tb.pool.Create(ctx, "orphan", mib); err != nil {
		t.Fatal(err)
	}
	g := newGate(t, "the create's lvcreate")
	hp.afterCreate = g.hold
	created := make(chan error, 1)
	go func() {
		_, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm02", Size: mib})
		created <- err
	}()
	g.waitArrived(t)
	listed := make(chan []string, 1)
	hp.afterList = func(vols []pool.Volume) {
		var names []string
		for _, v := range vols {
			names = append(names, v.Name)
		}
		listed <- names
	}
	swept := make(chan error, 1)
	go func() { swept <- tb.Sweep(ctx) }()
	names := wait(t, listed, "Sweep to list the pool while a create holds the admin lock")
	if !slices.Contains(names, "vm02") {
		t.Fatalf("the listing %v lacks the volume of the create in flight: the test proves nothing", names)
	}
	g.open()
	if err := wait(t, created, "CreateLUN"); err != nil {
		t.Fatal(err)
	}
	if err := wait(t, swept, "Sweep"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tb.pool.Path("vm02")); err != nil {
		t.Errorf("Sweep removed the volume of a LUN committed while it listed: %v", err)
	}
	if _, err := tb.LUN("vm02"); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(tb.pool.Path("orphan")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Sweep left the orphan: %v", err)
	}
}

// A change needing space reads the pool's capacity (lvs) before it takes
// the admin lock, and trusts that read only if no pool change returned
// since: two creates that each fit alone never both pass.
func TestSpaceCheckListsThePoolWithoutTheLock(t *testing.T) {
	t.Run("read while a create holds the lock", func(t *testing.T) {
		tb, hp := newHookedBox(t)
		ctx := context.Background()
		g := newGate(t, "the first create's lvcreate")
		hp.afterCreate = g.hold
		first := make(chan error, 1)
		go func() {
			_, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm01", Size: mib})
			first <- err
		}()
		g.waitArrived(t)
		read := make(chan struct{}, 1)
		hp.afterCapacity = func() { read <- struct{}{} }
		second := make(chan error, 1)
		go func() {
			_, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm02", Size: mib})
			second <- err
		}()
		wait(t, read, "the second create to read the pool's capacity while the first holds the admin lock")
		g.open()
		for i, ch := range []chan error{first, second} {
			if err := wait(t, ch, fmt.Sprintf("create %d", i+1)); err != nil {
				t.Errorf("create %d: %v", i+1, err)
			}
		}
	})
	t.Run("a read older than a create is not trusted", func(t *testing.T) {
		tb, hp := newHookedBox(t) // a 1 GiB pool
		ctx := context.Background()
		g := newGate(t, "the big create's capacity read")
		hp.afterCapacity = g.hold
		big := make(chan error, 1)
		go func() {
			_, err := tb.CreateLUN(ctx, LUNRequest{Name: "big", Size: 700 * mib})
			big <- err
		}()
		g.waitArrived(t) // it read an empty pool
		within(t, "a create while another one read the capacity", func() {
			if _, err := tb.CreateLUN(ctx, LUNRequest{Name: "other", Size: 600 * mib}); err != nil {
				t.Error(err)
			}
		})
		g.open()
		if err := wait(t, big, "the big create"); !errors.Is(err, ErrNoSpace) {
			t.Errorf("700M after 600M of a 1G pool: %v, want ErrNoSpace", err)
		}
		if _, err := os.Stat(tb.pool.Path("big")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the refused create left a volume: %v", err)
		}
	})
}

// Readers, the failover's reads, admin changes, sweeps and role changes
// at once: run with -race, this finds a field read outside its lock.
func TestBoxIsSafeForConcurrentUse(t *testing.T) {
	tb := newTestBox(t)
	ctx := context.Background()
	var writers, readers sync.WaitGroup
	writers.Go(func() {
		for i := range 20 {
			name := fmt.Sprintf("vm%02d", i)
			tb.CreateLUN(ctx, LUNRequest{Name: name, Size: mib})
			tb.Sweep(ctx)
			tb.DeleteLUN(ctx, name)
		}
	})
	writers.Go(func() {
		for range 20 {
			tb.Deactivate(ctx)
			tb.Activate(ctx)
		}
	})
	stop := make(chan struct{})
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			tb.Active()
			tb.Generation()
			if err := tb.Refresh(); err != nil {
				t.Error(err)
			}
			tb.LUNs()
			tb.Groups()
			tb.Status(ctx)
			tb.TargetConfig()
			tb.Import(ctx, ImportRequest{Conf: []byte("Target iqn.2026-11.org.example:x\n\t#sand: lun 0 size=1048576\n\tLun 0 Path=/dev/null,Type=fileio\n"), DryRun: true})
		}
	})
	writers.Wait()
	close(stop)
	readers.Wait()
}
