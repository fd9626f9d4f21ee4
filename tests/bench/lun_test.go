//go:build netns

// Package bench measures sand with real parts: a sand serve with tgtd in a
// network namespace, driven through its API and read by a real initiator.
// Benchmarks print figures; they do not fail on time.
package bench

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sand-appliance/sand/tests/netlab"
	"github.com/sand-appliance/sand/ui"
)

const dom0 = "iqn.2026-11.org.example:dom0-bench"

type rig struct {
	box    *netlab.SandBox
	cli    *netlab.Host
	dom    netlab.Initiator
	portal string
}

func newRig(b *testing.B) rig {
	netlab.Require(b, netlab.Tools...)
	lab := netlab.New(b, "10.211.0")
	srv := lab.AddHost("box", 11)
	cli := lab.AddHost("client", 100)
	box := netlab.NewSandBox(b, srv, netlab.BuildSand(b))
	box.Start(cli)
	box.MustCLI(cli, "group", "create", "bench", dom0)
	// The API is reached through the sand CLI in the client namespace, as
	// an admin's script would; each call includes starting the CLI (about
	// 10-20 ms), a constant that does not grow with the LUN count.
	return rig{box: box, cli: cli, dom: netlab.Initiator{T: b, Host: cli, IQN: dom0}, portal: srv.IP + ":3260"}
}

// create makes one LUN through the CLI in the client namespace and returns
// the time from the call to the first successful read by the initiator.
func (r rig) create(b *testing.B, name string) (api, readable time.Duration) {
	start := time.Now()
	r.box.MustCLI(r.cli, "lun", "create", name, "--size", "1M", "--group", "bench")
	api = time.Since(start)
	iqn := "iqn.2026-11.org.sand-appliance.test:" + name
	for {
		if _, err := r.dom.QemuIO(r.portal, iqn, 1, true, "read 0 4k"); err == nil {
			return api, time.Since(start)
		}
		if time.Since(start) > 30*time.Second {
			b.Fatalf("LUN %s not readable 30s after create", name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkLUNCreateLatency: from the create call to the LUN readable by an
// initiator, on a box that already serves 20 LUNs; 20 samples per round
// (run with -benchtime=1x), reported as median and worst.
func BenchmarkLUNCreateLatency(b *testing.B) {
	r := newRig(b)
	for i := range 20 {
		r.box.MustCLI(r.cli, "lun", "create", fmt.Sprintf("base%02d", i), "--size", "1M", "--group", "bench")
	}
	b.ResetTimer()
	for round := range b.N {
		var apis, reads []time.Duration
		for i := range 20 {
			api, readable := r.create(b, fmt.Sprintf("lat%02d-%02d", round, i))
			apis = append(apis, api)
			reads = append(reads, readable)
		}
		slices.Sort(apis)
		slices.Sort(reads)
		b.Logf("create answered: median %v, worst %v; LUN readable by the initiator: median %v, worst %v",
			apis[10].Round(time.Millisecond), apis[19].Round(time.Millisecond), reads[10].Round(time.Millisecond), reads[19].Round(time.Millisecond))
		b.ReportMetric(float64(apis[10].Microseconds())/1000, "ms-api-median")
		b.ReportMetric(float64(reads[10].Microseconds())/1000, "ms-readable-median")
		b.ReportMetric(float64(reads[19].Microseconds())/1000, "ms-readable-worst")
	}
}

// BenchmarkCreate500LUNs creates 500 LUNs one after another (run it with
// -benchtime=1x) and prints how the cost of one create grows with the
// number of LUNs already served.
func BenchmarkCreate500LUNs(b *testing.B) {
	r := newRig(b)
	checkpoints := map[int]bool{10: true, 50: true, 100: true, 250: true, 500: true}
	for range b.N {
		start := time.Now()
		last := start
		lastN := 0
		for i := 1; i <= 500; i++ {
			r.box.MustCLI(r.cli, "lun", "create", fmt.Sprintf("s%03d", i), "--size", "1M", "--group", "bench")
			if checkpoints[i] {
				now := time.Now()
				per := now.Sub(last) / time.Duration(i-lastN)
				b.Logf("LUNs %3d..%3d: %v per create (through the CLI), %v since start", lastN+1, i, per.Round(time.Microsecond), now.Sub(start).Round(time.Millisecond))
				last, lastN = now, i
			}
		}
		total := time.Since(start)
		// The last LUN is served: read it.
		if _, err := r.dom.QemuIO(r.portal, "iqn.2026-11.org.sand-appliance.test:s500", 1, true, "read 0 4k"); err != nil {
			b.Fatalf("500th LUN not readable: %v", err)
		}
		luns := r.box.MustCLI(r.cli, "lun", "list", "-o", "json")
		if n := countLUNs(b, luns); n != 500 {
			b.Fatalf("lun list shows %d LUNs after creating 500", n)
		}
		b.ReportMetric(total.Seconds(), "s/500-luns")
		b.ReportMetric(float64(total.Milliseconds())/500, "ms/lun")
	}
}

func countLUNs(b *testing.B, out string) int {
	var l []ui.LUNView
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		b.Fatal(err)
	}
	return len(l)
}
