//go:build vm

package vm

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sand-appliance/sand/ui"
)

// killRounds is how many times in a row the benchmark kills the primary.
const killRounds = 10

// BenchmarkFailoverKill kills the primary's QEMU ten times in a row with a
// guest writing through the VIP (run with -benchtime=1x). Each round checks
// every acknowledged write and that the writer saw no I/O error; the killed
// box reboots and resyncs before the next round; a monitor watches for two
// primaries all along. It prints kill -> first good read through the VIP as
// min/median/max, split into detection (kill -> the peer's serf declares
// the primary failed), promotion (-> resource group started) and initiator
// reconnect (-> first verified read). It fails on lost data, I/O errors or
// two primaries, never on time.
func BenchmarkFailoverKill(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	f := newFailoverLab(b, ctx)
	var rounds []killFigures
	for i := range killRounds {
		k := f.killPrimary(b, ctx)
		b.Logf("FAILOVER round %d: %s", i+1, k)
		b.Logf("FAILOVER round %d: %s", i+1, k.promotedMsg)
		rounds = append(rounds, k)
		f.restart(b, ctx, k)
	}
	f.mon.stop()
	f.noDualPrimary(b)
	verified := 0
	for _, k := range rounds {
		verified += k.verified
	}
	lo, med, hi := spread(rounds, func(k killFigures) time.Duration { return k.firstRead })
	b.ReportMetric(med.Seconds(), "s-median-kill-to-read")
	b.ReportMetric(hi.Seconds(), "s-max-kill-to-read")
	// #4's aim is a median under 3 s. Serf's detection and the settle time
	// (failover's package doc: an isolated primary lets go first) take
	// ~2.2 s of it before the takeover starts.
	verdict := "met"
	if med > 3*time.Second {
		verdict = "NOT met in this lab: detection + the 1.4 s settle time come first"
	}
	b.Logf("FAILOVER %d kills of the primary's QEMU, kill -> first verified read through the VIP: min %v, median %v, max %v (aim: median under 3 s: %s; the classic Pacemaker stack here: median 39.8 s)",
		len(rounds), lo.Round(time.Millisecond), med.Round(time.Millisecond), hi.Round(time.Millisecond), verdict)
	logParts(b, "FAILOVER", rounds, []part[killFigures]{
		{"detection (kill -> peer declared failed)", func(k killFigures) time.Duration { return k.detection }},
		{"promotion (-> resource group started)", func(k killFigures) time.Duration { return k.promotion }},
		{"initiator reconnect (-> first verified read)", func(k killFigures) time.Duration { return k.reconnect }},
		{"writer resumed (kill -> first acknowledged write)", func(k killFigures) time.Duration { return k.resumed }},
	})
	b.Logf("FAILOVER %d acknowledged writes verified over %d kills, none lost; the writer never saw an I/O error", verified, len(rounds))
}

// switchRounds is how many planned switchovers BenchmarkSwitchover makes.
const switchRounds = 4

// BenchmarkSwitchover moves the primary role back and forth with `sand
// switchover` while a guest writes through the VIP (run with
// -benchtime=1x), and prints the longest pause between acknowledged writes
// as min/median/max against the 3 s target. Each round checks for I/O
// errors and every acknowledged write; it fails on those, never on time.
func BenchmarkSwitchover(b *testing.B) { benchmarkSwitchover(b, "SWITCHOVER", 0, switchRounds) }

// BenchmarkSwitchoverManyLUNs is BenchmarkSwitchover with 30 more LUNs
// exported (31 in all, one per VM being the usual habit): the hand-over
// stops and starts every one, and the busy old primary must not be taken
// for dead (its peer once forced DRBD off it mid-demotion: no box served).
func BenchmarkSwitchoverManyLUNs(b *testing.B) { benchmarkSwitchover(b, "SWITCHOVER31", 30, 2) }

func benchmarkSwitchover(b *testing.B, label string, extraLUNs, rounds int) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	f := newFailoverLab(b, ctx)
	t0 := time.Now()
	for i := range extraLUNs {
		req := ui.CreateLUNRequest{Name: fmt.Sprintf("vm%02d", i+1), Size: 2 * mib, Group: "xen"}
		if _, err := f.api.CreateLUN(ctx, req); err != nil {
			b.Fatalf("create LUN %s: %v", req.Name, err)
		}
	}
	if extraLUNs > 0 {
		b.Logf("%s %d more LUNs created in %.1f s", label, extraLUNs, time.Since(t0).Seconds())
		waitHealthy(b, ctx, f.l, "the pair to be in sync after the creates")
	}
	var figs []switchFigures
	for i := range rounds {
		s := f.switchover(b, ctx)
		b.Logf("%s round %d: %s", label, i+1, s)
		for _, m := range s.steps {
			b.Logf("%s round %d: %s", label, i+1, m)
		}
		figs = append(figs, s)
		// Let the new secondary settle into sync before the next move.
		waitHealthy(b, ctx, f.l, "the pair to be in sync again")
	}
	f.mon.stop()
	f.noDualPrimary(b)
	logParts(b, label, figs, []part[switchFigures]{
		{"old primary let go (last write -> demoted)", func(s switchFigures) time.Duration { return s.stop }},
		{"new primary started (-> promoted)", func(s switchFigures) time.Duration { return s.start }},
		{"initiator back (-> first acknowledged write)", func(s switchFigures) time.Duration { return s.reconnect }},
	})
	lo, med, hi := spread(figs, func(s switchFigures) time.Duration { return s.gap })
	b.ReportMetric(med.Seconds(), "s-median-switchover-pause")
	// The target is #4's: no pause over 3 s in any move, so the max.
	verdict := "met"
	if hi > 3*time.Second {
		verdict = "NOT met"
	}
	b.Logf("%s %d planned moves under the writer with %d LUNs, longest pause between acknowledged writes: min %v, median %v, max %v (target: none over 3 s: %s; the classic Pacemaker stack here: 55.6 s)",
		label, len(figs), extraLUNs+1, lo.Round(time.Millisecond), med.Round(time.Millisecond), hi.Round(time.Millisecond), verdict)
}

// part is one figure of a benchmark's rounds.
type part[T any] struct {
	name string
	get  func(T) time.Duration
}

// spread is a figure's min, median and max over the rounds.
func spread[T any](rounds []T, get func(T) time.Duration) (lo, med, hi time.Duration) {
	var ds []time.Duration
	for _, r := range rounds {
		ds = append(ds, get(r))
	}
	slices.Sort(ds)
	return ds[0], ds[len(ds)/2], ds[len(ds)-1]
}

func logParts[T any](b *testing.B, label string, rounds []T, parts []part[T]) {
	for _, p := range parts {
		lo, med, hi := spread(rounds, p.get)
		b.Logf("%s   %s: min %v, median %v, max %v", label, p.name, lo.Round(time.Millisecond), med.Round(time.Millisecond), hi.Round(time.Millisecond))
	}
}
