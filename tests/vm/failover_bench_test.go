//go:build vm

package vm

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/tests/lab"
	"github.com/sand-appliance/sand/tests/netlab"
	"github.com/sand-appliance/sand/ui"
	apiclient "github.com/sand-appliance/sand/ui/client"
)

// BenchmarkFailoverKill measures what a dom0 sees when the primary box
// dies: SIGKILL to the primary's QEMU, then verified reads through the VIP
// until one succeeds. Three rounds (run with -benchtime=1x); the killed box
// reboots and resyncs between rounds. It prints the figures and does not
// fail on time.
func BenchmarkFailoverKill(b *testing.B) {
	netlab.Require(b, tools...)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	l := up(b, ctx, lab.Options{Pair: "drbd"})
	api := apiclient.New("http://"+lab.VIP().String()+":7480", l.Token)
	api.HTTP = l.Host().HTTPClient(time.Minute)
	api.HTTP.Transport.(*http.Transport).DisableKeepAlives = true
	portal := lab.VIP().String() + ":3260"

	healthy := func(what string) {
		waitFor(b, ctx, 10*time.Minute, what, func() error {
			holder := ""
			for _, n := range l.Names() {
				p, err := l.Box(n).API().Pair(ctx)
				if err != nil {
					return err
				}
				if d := p.DRBD; d == nil || d.Connection != "Connected" || d.LocalDisk != "UpToDate" || d.PeerDisk != "UpToDate" {
					return fmt.Errorf("%s: drbd %+v", n, p.DRBD)
				}
				if p.VIP != nil && p.VIP.Holder == n {
					holder = n
				}
			}
			if holder == "" {
				return fmt.Errorf("no primary")
			}
			return nil
		})
	}
	healthy("the pair to be in sync with a primary")
	if _, err := api.CreateGroup(ctx, appliance.InitiatorGroup{Name: "xen", Initiators: []string{clientIQN}}); err != nil {
		b.Fatal(err)
	}
	lu, err := api.CreateLUN(ctx, ui.CreateLUNRequest{Name: "bench", Size: 32 * mib, Group: "xen"})
	if err != nil {
		b.Fatal(err)
	}
	if out, err := qemuIO(ctx, l, portal, lu.Target, lu.Number, false, "write -P 0x5c 0 1M"); err != nil {
		b.Fatalf("write: %v\n%s", err, out)
	}
	var took []time.Duration
	for round := range 3 {
		var primary string
		for _, n := range l.Names() {
			if p, err := l.Box(n).API().Pair(ctx); err == nil && p.VIP != nil && p.VIP.Holder == n {
				primary = n
			}
		}
		box := l.Box(primary)
		fault := time.Now()
		if err := box.Kill(); err != nil {
			b.Fatal(err)
		}
		for {
			if err := checkPattern(ctx, l, portal, lu.Target, lu.Number, 0x5c); err == nil {
				break
			}
			if time.Since(fault) > 2*time.Minute {
				b.Fatalf("round %d: no good read through the VIP 2 min after killing %s", round, primary)
			}
			time.Sleep(50 * time.Millisecond)
		}
		took = append(took, time.Since(fault))
		b.Logf("FAILOVER round %d: killed %s's QEMU, first good read through the VIP after %v", round, primary, took[round].Round(time.Millisecond))
		if err := box.Start(ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := box.WaitReady(ctx, 10*time.Minute); err != nil {
			b.Fatal(err)
		}
		healthy(fmt.Sprintf("%s to rejoin and resync", primary))
	}
	slices.Sort(took)
	b.ReportMetric(took[1].Seconds(), "s-median-kill-to-read")
	b.ReportMetric(took[2].Seconds(), "s-worst-kill-to-read")
	b.Logf("FAILOVER kill -9 of the primary's QEMU to the first verified read through the VIP: median %v, worst %v (3 rounds; the classic Pacemaker stack here: median 39.8 s)",
		took[1].Round(time.Millisecond), took[2].Round(time.Millisecond))
}
