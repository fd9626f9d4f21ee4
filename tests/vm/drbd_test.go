//go:build vm

package vm

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/tests/lab"
	"github.com/sand-appliance/sand/tests/netlab"
	"github.com/sand-appliance/sand/ui"
)

// TestDRBDPair is the appliance for real: san1 and san2 booted from the
// image, their data disks mirrored by DRBD 8.4 protocol C, the pool and the
// registry on the DRBD device, LIO serving from the primary behind the VIP.
func TestDRBDPair(t *testing.T) {
	netlab.Require(t, append(tools, "iscsi-test-cu")...)
	if err := lab.CheckHost(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	l := up(t, ctx, lab.Options{Pair: "drbd"})
	portal := lab.VIP().String() + ":3260"

	start := time.Now()
	waitFor(t, ctx, 10*time.Minute, "DRBD Connected UpToDate/UpToDate on both boxes", func() error { return inSync(ctx, l) })
	t.Logf("DRBD Connected UpToDate/UpToDate %.1f s after the API answered (initial sync of the 1 GiB disks included)", time.Since(start).Seconds())
	var first string
	waitFor(t, ctx, 2*time.Minute, "one box to become primary and hold the VIP", func() error {
		if first = holder(ctx, l); first == "" {
			return fmt.Errorf("no box holds the VIP")
		}
		return nil
	})
	t.Logf("PRIMARY %s holds the VIP %.1f s after the API answered", first, time.Since(start).Seconds())
	// The pair's API through the VIP, trusting the pair's certificate (the
	// primary's word for it, over its own trusted certificate); each call
	// connects afresh, as the sand CLI does.
	vipAPI, err := l.VIPAPI(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}

	// Two LUNs through the API, a distinct pattern on each from the client.
	if _, err := vipAPI.CreateGroup(ctx, appliance.InitiatorGroup{Name: "xen", Initiators: []string{clientIQN}}); err != nil {
		t.Fatal(err)
	}
	luns := map[string]ui.LUNView{}
	patterns := map[string]byte{"vm01": 0xa1, "vm02": 0xb2}
	for name := range patterns {
		v, err := vipAPI.CreateLUN(ctx, ui.CreateLUNRequest{Name: name, Size: 64 * mib, Group: "xen"})
		if err != nil {
			t.Fatal(err)
		}
		luns[name] = v
	}
	type identity struct{ serial, vpd83 string }
	before := map[string]identity{}
	for name, p := range patterns {
		lu := luns[name]
		if out, err := qemuIO(ctx, l, portal, lu.Target, lu.Number, false, fmt.Sprintf("write -P 0x%02x 0 4M", p)); err != nil {
			t.Fatalf("write %s: %v\n%s", name, err, out)
		}
	}
	for name, p := range patterns {
		lu := luns[name]
		if err := checkPattern4M(ctx, l, portal, lu.Target, lu.Number, p); err != nil {
			t.Fatal(err)
		}
		s, v, err := vpd(ctx, l, portal, lu.Target, lu.Number)
		if err != nil {
			t.Fatal(err)
		}
		naa := naaDesignator(v)
		if s != lu.Serial || len(naa) < 6 || !strings.HasPrefix(lu.NAA, naa) {
			t.Errorf("%s on %s: serial %q, NAA designator %q; registry serial %s NAA %s\n%s", name, first, s, naa, lu.Serial, lu.NAA, v)
		}
		before[name] = identity{s, v}
	}

	// The planned move, with the sand command: the old primary shuts its
	// target down and demotes, the other box promotes.
	sand := netlab.BuildSand(t)
	move := time.Now()
	vipFP, err := l.VIPFingerprint(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	out, err := l.Host().Run(ctx, sand, "switchover", "--api", lab.VIPURL(), "--token", l.Token,
		"--trust-fingerprint", vipFP, "--known-hosts", filepath.Join(t.TempDir(), "known_hosts"))
	if err != nil {
		t.Fatalf("sand switchover: %v\n%s", err, out)
	}
	var second string
	waitFor(t, ctx, 3*time.Minute, "the other box to take over", func() error {
		second = holder(ctx, l)
		if second == "" || second == first {
			return fmt.Errorf("primary is %q", second)
		}
		return nil
	})
	t.Logf("SWITCHOVER %s -> %s: new primary serving %.1f s after sand switchover", first, second, time.Since(move).Seconds())

	// Same IQNs, serials and NAA ids, the data read back verified, and the
	// LUN definitions read by the new primary from the replicated metadata
	// volume (the test copied nothing).
	got, err := l.Box(second).API().LUNs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(luns) {
		t.Fatalf("%s serves %d LUNs from its registry, want %d", second, len(got), len(luns))
	}
	for _, g := range got {
		want := luns[g.Name]
		if g.Target != want.Target || g.Serial != want.Serial || g.NAA != want.NAA || g.Number != want.Number {
			t.Errorf("%s after switchover: %+v, before %+v", g.Name, g.LUN, want.LUN)
		}
	}
	for name, p := range patterns {
		lu := luns[name]
		if err := checkPattern4M(ctx, l, portal, lu.Target, lu.Number, p); err != nil {
			t.Fatalf("%s on %s: %v", name, second, err)
		}
		s, v, err := vpd(ctx, l, portal, lu.Target, lu.Number)
		if err != nil {
			t.Fatal(err)
		}
		if s != before[name].serial || v != before[name].vpd83 {
			t.Errorf("%s identity changed across the switchover: serial %q -> %q, VPD 0x83\n%s\n->\n%s", name, before[name].serial, s, before[name].vpd83, v)
		}
	}

	// No initiator can crash a box: libiscsi's whole conformance suite
	// against a LUN through the portal, then both boxes and DRBD healthy.
	if _, err := vipAPI.CreateLUN(ctx, ui.CreateLUNRequest{Name: "conformance", Size: 64 * mib, Group: "xen"}); err != nil {
		t.Fatal(err)
	}
	cu, err := vipAPI.LUN(ctx, "conformance")
	if err != nil {
		t.Fatal(err)
	}
	suite := time.Now()
	sctx, scancel := context.WithTimeout(ctx, 20*time.Minute)
	res, _ := l.Client().Run(sctx, "iscsi-test-cu", "-d", "-i", clientIQN, iscsiURL(portal, cu.Target, cu.Number))
	scancel()
	run, failed := cunitSummary(res)
	t.Logf("ISCSI-TEST-CU -d against LIO fileio on DRBD: %d tests run, %d failed, %.0f s (stock tgt here: 46 of 615 fail in a default run, 17 with -d)", run, failed, time.Since(suite).Seconds())
	if run < 500 {
		t.Fatalf("iscsi-test-cu ran %d tests: the suite did not run through:\n%s", run, tail(res, 40))
	}
	// On the lab's one emulated CPU a box busy with the suite can answer
	// DRBD's ping late: the link drops, fencing outdates the secondary and
	// the pair resyncs by itself. That is the product working. A box that
	// died, a pair that does not come back, or a role that moved (a box
	// stalled long enough to be declared dead) is not.
	var changes, moves []string
	for _, n := range l.Names() {
		if err := healthz(ctx, l, l.Box(n), time.Minute); err != nil {
			t.Fatalf("%s is not alive after the conformance suite: %v", n, err)
		}
		events, err := l.Box(n).API().Events(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range events {
			line := fmt.Sprintf("%s %s %s: %s", e.Time.Format("15:04:05.000"), n, e.Kind, e.Message)
			switch {
			case !e.Time.After(suite):
			case e.Kind == "replication" || e.Kind == "membership":
				changes = append(changes, line)
			case e.Kind == "failover-promoted" || e.Kind == "failover-demoted":
				moves = append(moves, line)
			}
		}
	}
	sort.Strings(changes)
	t.Logf("DRBD and membership changes during the suite (%d): %v", len(changes), changes)
	if len(moves) > 0 {
		sort.Strings(moves)
		t.Errorf("the primary role moved during the conformance suite:\n%s\nthe changes before it: %v", strings.Join(moves, "\n"), changes)
	}
	waitFor(t, ctx, 2*time.Minute, "DRBD Connected UpToDate/UpToDate on both boxes after the conformance suite", func() error { return inSync(ctx, l) })
}

func checkPattern4M(ctx context.Context, l *lab.Lab, portal, iqn string, lun int, p byte) error {
	out, err := qemuIO(ctx, l, portal, iqn, lun, true, fmt.Sprintf("read -P 0x%02x 0 4M", p))
	if err != nil || strings.Contains(out, "Pattern verification failed") || !strings.Contains(out, "read ") {
		return fmt.Errorf("read pattern 0x%02x from %s: %v\n%s", p, iqn, err, out)
	}
	return nil
}

// vpd reads the unit serial (VPD 0x80) and the device identification page
// (VPD 0x83) as iscsi-inq prints them.
func vpd(ctx context.Context, l *lab.Lab, portal, iqn string, lun int) (string, string, error) {
	s, err := serial(ctx, l, portal, iqn, lun)
	if err != nil {
		return "", "", err
	}
	v, err := client(ctx, l, "iscsi-inq", "-i", clientIQN, "-e", "1", "-c", "131", iscsiURL(portal, iqn, lun))
	return s, v, err
}

// cunitSummary reads CUnit's run summary: tests run and failed.
func cunitSummary(out string) (run, failed int) {
	m := regexp.MustCompile(`(?m)^\s*tests\s+\d+\s+(\d+)\s+\d+\s+(\d+)`).FindStringSubmatch(out)
	if m == nil {
		return 0, 0
	}
	run, _ = strconv.Atoi(m[1])
	failed, _ = strconv.Atoi(m[2])
	return run, failed
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// naaDesignator is the hex of the first NAA designator of VPD page 0x83 as
// iscsi-inq prints it (raw bytes up to the first zero byte).
func naaDesignator(vpd83 string) string {
	m := regexp.MustCompile(`(?s)Designator Type:\(3\) NAA\s*\nDesignator:\[(.*?)\]\n`).FindStringSubmatch(vpd83)
	if m == nil {
		return ""
	}
	return hex.EncodeToString([]byte(m[1]))
}
