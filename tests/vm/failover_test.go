//go:build vm

package vm

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/tests/lab"
	"github.com/sand-appliance/sand/tests/netlab"
	"github.com/sand-appliance/sand/ui"
	apiclient "github.com/sand-appliance/sand/ui/client"
)

const seedPattern = 0x5c

// failoverLab is a healthy DRBD pair with a "guest" LUN (32 MiB, first MiB
// seeded) for the writer and the probes, and the monitor running.
type failoverLab struct {
	l      *lab.Lab
	api    *apiclient.Client // through the VIP
	portal string
	guest  ui.LUNView
	mon    *monitor
}

func newFailoverLab(tb testing.TB, ctx context.Context) *failoverLab {
	tb.Helper()
	netlab.Require(tb, append(tools, "qemu-img")...)
	if err := lab.CheckHost(); err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatal(err)
		}
		tb.Skip(err)
	}
	f := &failoverLab{l: up(tb, ctx, lab.Options{Pair: "drbd"}), portal: lab.VIP().String() + ":3260"}
	start := time.Now()
	p := waitHealthy(tb, ctx, f.l, "the pair to be in sync with a primary")
	tb.Logf("HEALTHY %s primary, DRBD in sync, %.1f s after the API answered", p, time.Since(start).Seconds())
	// The pair's API through the VIP, trusting the pair's certificate;
	// each call connects afresh, as the sand CLI does: a kept-alive
	// connection to the old primary gets a RST once the VIP moves.
	api, aerr := f.l.VIPAPI(ctx, time.Minute)
	if aerr != nil {
		tb.Fatal(aerr)
	}
	f.api = api
	if _, err := f.api.CreateGroup(ctx, appliance.InitiatorGroup{Name: "xen", Initiators: []string{clientIQN}}); err != nil {
		tb.Fatal(err)
	}
	var err error
	if f.guest, err = f.api.CreateLUN(ctx, ui.CreateLUNRequest{Name: "guest", Size: 32 * mib, Group: "xen"}); err != nil {
		tb.Fatal(err)
	}
	if out, err := qemuIO(ctx, f.l, f.portal, f.guest.Target, f.guest.Number, false, fmt.Sprintf("write -P 0x%02x 0 1M", seedPattern)); err != nil {
		tb.Fatalf("seed the guest LUN: %v\n%s", err, out)
	}
	f.mon = startMonitor(tb, ctx, f.l)
	return f
}

func (f *failoverLab) other(n string) string {
	for _, m := range f.l.Names() {
		if m != n {
			return m
		}
	}
	return ""
}

// firstGoodRead starts a verified read of the seed through the VIP every
// 300 ms (each given 5 s) from t on, and returns when the first succeeded.
func (f *failoverLab) firstGoodRead(tb testing.TB, ctx context.Context, t time.Time) time.Time {
	tb.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var once sync.Once
	found := make(chan time.Time, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
			defer pcancel()
			if checkPattern(pctx, f.l, f.portal, f.guest.Target, f.guest.Number, seedPattern) == nil {
				now := time.Now()
				once.Do(func() { found <- now })
			}
		}()
		select {
		case at := <-found:
			return at
		case <-ctx.Done():
			tb.Fatalf("no good read through the VIP within 2 min of %s", t.Format("15:04:05.000"))
		case <-tick.C:
		}
	}
}

// writing starts the writer through the VIP and waits for its first
// acknowledged writes; it returns the primary, the other box and the writer.
func (f *failoverLab) writing(tb testing.TB, ctx context.Context, before string) (primary, other string, w *writer) {
	tb.Helper()
	if primary = holder(ctx, f.l); primary == "" {
		tb.Fatalf("no box holds the VIP before %s", before)
	}
	w = startWriter(tb, f.l, f.portal, f.guest, 3000)
	w.waitAcks(tb, w.start, 25, 2*time.Minute)
	return primary, f.other(primary), w
}

// killFigures is one kill of the primary under the writer.
type killFigures struct {
	dead, survivor                  string
	firstRead, resumed, gap         time.Duration
	detection, promotion, reconnect time.Duration
	verified                        int
	promotedMsg                     string
}

// killPrimary kills the primary's QEMU while the writer runs, and checks
// that the peer took over with every acknowledged write intact and the
// writer seeing no I/O error.
func (f *failoverLab) killPrimary(tb testing.TB, ctx context.Context) killFigures {
	tb.Helper()
	var k killFigures
	var w *writer
	k.dead, k.survivor, w = f.writing(tb, ctx, "the kill")
	fault := time.Now()
	if err := f.l.Box(k.dead).Kill(); err != nil {
		tb.Fatal(err)
	}
	read := f.firstGoodRead(tb, ctx, fault)
	w.waitAcks(tb, fault, 25, 2*time.Minute)
	w.proc.Stop()
	if errs := w.errors(); len(errs) > 0 {
		tb.Fatalf("the writer saw I/O errors:\n%v", errs)
	}
	// The writer resumed where its longest pause since the kill ended: the
	// first acknowledgement after the kill can be the dead primary's last,
	// read a moment late.
	acks := w.acks()
	from := 0
	for i, a := range acks {
		if !a.at.After(fault) {
			from = i
		}
	}
	var end time.Time
	k.gap, end = maxGap(acks[from:])
	k.firstRead, k.resumed = read.Sub(fault), end.Sub(fault)
	if p := holder(ctx, f.l); p != k.survivor {
		tb.Fatalf("after killing %s the VIP holder is %q, want %s", k.dead, p, k.survivor)
	}
	k.verified = w.verify(tb, ctx, f.l, f.portal, f.guest)
	s, err := splitFromEvents(ctx, f.l, f.mon, k.survivor, k.dead, fault)
	if err != nil {
		tb.Fatal(err)
	}
	k.detection, k.promotion, k.reconnect = s.detected.Sub(fault), s.promoted.Sub(s.detected), read.Sub(s.promoted)
	k.promotedMsg = s.promotedMsg
	if notes := w.notes(); len(notes) > 0 {
		tb.Logf("writer's other lines: %v", notes[:min(len(notes), 6)])
	}
	return k
}

func (k killFigures) String() string {
	return fmt.Sprintf("killed %s's QEMU: first good read through the VIP after %v (detection %v, promotion %v, initiator reconnect %v); writer resumed after %v, longest pause %v, %d acknowledged writes verified",
		k.dead, k.firstRead.Round(time.Millisecond), k.detection.Round(time.Millisecond), k.promotion.Round(time.Millisecond),
		k.reconnect.Round(time.Millisecond), k.resumed.Round(time.Millisecond), k.gap.Round(time.Millisecond), k.verified)
}

// restart boots the killed box again and waits for the pair to be in sync,
// with the survivor still primary (no failback).
func (f *failoverLab) restart(tb testing.TB, ctx context.Context, k killFigures) {
	tb.Helper()
	b := f.l.Box(k.dead)
	if err := b.Start(ctx); err != nil {
		tb.Fatal(err)
	}
	if _, err := b.WaitReady(ctx, 10*time.Minute); err != nil {
		tb.Fatal(err)
	}
	if p := waitHealthy(tb, ctx, f.l, k.dead+" to rejoin and resync"); p != k.survivor {
		tb.Fatalf("after %s came back, %s holds the VIP: failback", k.dead, p)
	}
}

// switchFigures is one planned switchover under the writer.
type switchFigures struct {
	from, to string
	gap      time.Duration // longest pause between acknowledged writes
	ended    time.Duration // request -> end of that pause
	// The pause split by the boxes' events (their clocks mapped to the
	// host's by the monitor, to within its round trip): last write before
	// the pause -> old primary demoted -> new primary promoted -> first
	// write after.
	stop, start, reconnect time.Duration
	verified               int
	steps                  []string // both boxes' promoted/demoted events with step timings
}

func (s switchFigures) String() string {
	return fmt.Sprintf("under the writer %s -> %s: longest pause between acknowledged writes %v (ended %.1f s after the request; old primary let go %v, new primary started %v, initiator back %v), no I/O error, %d acknowledged writes verified",
		s.from, s.to, s.gap.Round(time.Millisecond), s.ended.Seconds(), s.stop.Round(time.Millisecond), s.start.Round(time.Millisecond), s.reconnect.Round(time.Millisecond), s.verified)
}

// switchover runs `switchover` through the VIP's API while the writer runs,
// and checks the peer took over with no I/O error and every acknowledged
// write intact.
func (f *failoverLab) switchover(tb testing.TB, ctx context.Context) switchFigures {
	tb.Helper()
	var s switchFigures
	var w *writer
	s.from, s.to, w = f.writing(tb, ctx, "the switchover")
	move := time.Now()
	if _, err := f.api.PairAction(ctx, "switchover", ""); err != nil {
		tb.Fatal(err)
	}
	waitFor(tb, ctx, 2*time.Minute, "the peer to take over", func() error {
		if p := holder(ctx, f.l); p != s.to {
			return fmt.Errorf("VIP holder %q", p)
		}
		return nil
	})
	w.waitAcks(tb, move, 25, 2*time.Minute)
	w.proc.Stop()
	if errs := w.errors(); len(errs) > 0 {
		tb.Fatalf("the writer saw I/O errors during the switchover:\n%v", errs)
	}
	if notes := w.notes(); len(notes) > 0 {
		tb.Logf("writer's other lines: %v", notes[:min(len(notes), 6)])
	}
	var end time.Time
	s.gap, end = maxGap(w.acks())
	s.ended = end.Sub(move)
	s.verified = w.verify(tb, ctx, f.l, f.portal, f.guest)
	var demoted, promoted time.Time
	for _, n := range f.l.Names() {
		events, err := f.l.Box(n).API().Events(ctx)
		if err != nil {
			tb.Fatalf("events of %s after the switchover: %v", n, err)
		}
		off := f.mon.offset(n)
		for _, e := range events {
			at := e.Time.Add(-off)
			if at.Before(move.Add(-time.Second)) {
				continue
			}
			switch {
			case e.Kind == "failover-demoted" && n == s.from && demoted.IsZero():
				demoted = at
			case e.Kind == "failover-promoted" && n == s.to && promoted.IsZero():
				promoted = at
			default:
				continue
			}
			s.steps = append(s.steps, n+": "+e.Message)
		}
	}
	if demoted.IsZero() || promoted.IsZero() {
		tb.Fatalf("the events lack %s's demotion or %s's promotion: %v", s.from, s.to, s.steps)
	}
	begun := end.Add(-s.gap)
	s.stop, s.start, s.reconnect = demoted.Sub(begun), promoted.Sub(demoted), end.Sub(promoted)
	return s
}

func (f *failoverLab) noDualPrimary(tb testing.TB) {
	tb.Helper()
	found, polls := f.mon.violations()
	if len(found) > 0 {
		tb.Fatalf("dual-primary moments in %d polls:\n%v", polls, found)
	}
	tb.Logf("MONITOR %d polls of both boxes' DRBD role and VIP: never two primaries, never two VIP holders", polls)
}

// TestFailoverUnderWriter is the pair's promise to a dom0, with a guest
// writing through the VIP all along: a planned switchover is one short
// pause; a killed primary is a pause of a few seconds, no I/O error, no
// acknowledged write lost; the dead box comes back as a resyncing
// secondary (no failback); a cut replication link never promotes the
// secondary; and never are two boxes primary.
func TestFailoverUnderWriter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	f := newFailoverLab(t, ctx)

	// Planned switchover under the writer. Its pause is a figure (the
	// target, 3 s, is BenchmarkSwitchover's to print); what must hold is
	// no I/O error and every acknowledged write intact.
	sw := f.switchover(t, ctx)
	t.Logf("SWITCHOVER %s", sw)
	for _, m := range sw.steps {
		t.Logf("SWITCHOVER %s", m)
	}

	// Kill the primary under the writer.
	k := f.killPrimary(t, ctx)
	t.Logf("FAILOVER %s", k)
	t.Logf("FAILOVER %s: %s", k.survivor, k.promotedMsg)

	// While the dead box is away the survivor takes enough writes that
	// the resync takes seconds, so the API can be seen reporting it.
	bulk, err := f.api.CreateLUN(ctx, ui.CreateLUNRequest{Name: "bulk", Size: 160 * mib, Group: "xen"})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := qemuIO(ctx, f.l, f.portal, bulk.Target, bulk.Number, false, "write -P 0x77 0 128M"); err != nil {
		t.Fatalf("bulk write: %v\n%s", err, out)
	}
	b := f.l.Box(k.dead)
	if err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WaitReady(ctx, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	var progress []string
	var returnedPrimary []string
	waitFor(t, ctx, 10*time.Minute, k.dead+" to resync", func() error {
		synced := 0
		for _, n := range f.l.Names() {
			p, err := f.l.Box(n).API().Pair(ctx)
			if err != nil {
				return err
			}
			d := p.DRBD
			if d == nil {
				return fmt.Errorf("%s reports no DRBD", n)
			}
			if d.Syncing && len(progress) < 40 {
				progress = append(progress, fmt.Sprintf("%s %s %.1f%%", n, d.Connection, d.SyncPercent))
			}
			if n == k.dead && d.LocalRole == "Primary" {
				returnedPrimary = append(returnedPrimary, time.Now().Format("15:04:05.000"))
			}
			if d.Connection == "Connected" && d.LocalDisk == "UpToDate" && d.PeerDisk == "UpToDate" {
				synced++
			}
		}
		if synced < 2 {
			return fmt.Errorf("not in sync yet")
		}
		return nil
	})
	t.Logf("REJOIN %s came back and resynced; the API showed: %v", k.dead, progress)
	if len(returnedPrimary) > 0 {
		t.Errorf("the returning box %s was primary at %v: failback", k.dead, returnedPrimary)
	}
	sawPercent := false
	for _, p := range progress {
		var box, conn string
		var pct float64
		if _, err := fmt.Sscanf(p, "%s %s %f%%", &box, &conn, &pct); err == nil && pct > 0 && pct < 100 {
			sawPercent = true
		}
	}
	if !sawPercent {
		t.Errorf("the API never showed the resync in progress (a percentage between 0 and 100): %v", progress)
	}
	time.Sleep(5 * time.Second)
	if p := holder(ctx, f.l); p != k.survivor {
		t.Fatalf("after %s resynced, the VIP holder is %q, want %s still (no failback)", k.dead, p, k.survivor)
	}

	// Cut only the replication link of the primary, under the writer.
	primary, secondary := k.survivor, k.dead
	w := startWriter(t, f.l, f.portal, f.guest, 3000)
	w.waitAcks(t, w.start, 25, 2*time.Minute)
	cut := time.Now()
	if err := f.l.Box(primary).Cut(ctx, lab.Repl); err != nil {
		t.Fatal(err)
	}
	w.waitAcks(t, cut, 50, 2*time.Minute)
	// Well past every timeout of the failover path: the secondary must
	// still be secondary, fenced (Outdated), and the primary serving.
	time.Sleep(10 * time.Second)
	sp, err := f.l.Box(secondary).API().Pair(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := sp.DRBD; d == nil || d.LocalRole != "Secondary" || d.LocalDisk != "Outdated" {
		t.Errorf("%s with the replication link cut: DRBD %+v, want Secondary and Outdated (fenced by the primary)", secondary, sp.DRBD)
	}
	if p := holder(ctx, f.l); p != primary {
		t.Errorf("replication link cut: the VIP holder is %q, want %s", p, primary)
	}
	w.waitAcks(t, time.Now(), 25, time.Minute)
	cutGap, cutEnd := maxGap(w.acks())
	if err := f.l.Box(primary).Restore(ctx, lab.Repl); err != nil {
		t.Fatal(err)
	}
	w.waitAcks(t, time.Now(), 25, time.Minute)
	w.proc.Stop()
	if errs := w.errors(); len(errs) > 0 {
		t.Fatalf("the writer saw I/O errors with the replication link cut:\n%v", errs)
	}
	n := w.verify(t, ctx, f.l, f.portal, f.guest)
	t.Logf("REPLICATION CUT on %s: the primary kept serving (longest pause %v, ended %.1f s after the cut, while fencing outdated %s); %s stayed secondary; %d acknowledged writes verified",
		primary, cutGap.Round(time.Millisecond), cutEnd.Sub(cut).Seconds(), secondary, secondary, n)
	if p := waitHealthy(t, ctx, f.l, "the pair to resync after the link came back"); p != primary {
		t.Errorf("after the replication link came back %s holds the VIP, want %s", p, primary)
	}
	f.mon.stop()
	f.noDualPrimary(t)
}
