//go:build netns

package netns

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sand-appliance/sand/tests/netlab"
)

// pairRig is a shared-disk pair with a witness and a client, a LUN with a
// pattern on it, ready for a fault.
type pairRig struct {
	t      *testing.T
	lab    *netlab.Lab
	pair   *netlab.Pair
	client *netlab.Host
	dom    netlab.Initiator
	portal string
	iqn    string
}

const vip = "10.213.0.50"

func newPairRig(t *testing.T) *pairRig { return newPairRigWith(t, "") }

// newPairRigWith adds extra YAML to both boxes' sand.yaml before they start.
func newPairRigWith(t *testing.T, extra string) *pairRig { return newRig(t, extra, false) }

// newPingPairRig is a pair without a witness: both boxes ping a gateway
// host (pingd's rule) instead.
func newPingPairRig(t *testing.T) *pairRig { return newRig(t, "", true) }

func newRig(t *testing.T, extra string, ping bool) *pairRig {
	netlab.Require(t, append(netlab.Tools, "nft")...)
	lab := netlab.New(t, "10.213.0")
	san1 := lab.AddHost("san1", 11)
	san2 := lab.AddHost("san2", 12)
	var tie netlab.Pair
	if ping {
		tie.Gateway = lab.AddHost("gateway", 1)
	} else {
		tie.Witness = lab.AddHost("witness", 13)
	}
	client := lab.AddHost("client", 100)
	p := netlab.NewPair(t, netlab.BuildSand(t), san1, san2, tie, vip)
	if !ping {
		p.StartWitness()
	}
	for _, b := range p.Boxes {
		if extra != "" {
			appendConfig(t, b.Config, extra)
		}
		b.Start(client)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, b := range p.Boxes {
			// The decisions and events tell the story; serf's chatter does not.
			var lines []string
			for _, l := range strings.Split(b.Proc.Output(), "\n") {
				if strings.Contains(l, "msg=decision") || strings.Contains(l, "msg=event") || strings.Contains(l, "level=ERROR") {
					lines = append(lines, l)
				}
			}
			t.Logf("--- %s decisions and events (last 40):\n%s", b.Host.Name, strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
	r := &pairRig{t: t, lab: lab, pair: p, client: client, portal: vip + ":3260",
		dom: netlab.Initiator{T: t, Host: client, IQN: dom0}}
	var primary *netlab.SandBox
	netlab.WaitFor(t, 20*time.Second, "the pair to elect a primary", func() (err error) {
		primary, err = p.VIPHolder()
		return err
	})
	// Changes go through the VIP, to whichever box is primary.
	api := primary.VIPURL()
	for _, args := range [][]string{{"group", "create", "xen", dom0}, {"lun", "create", "vm01", "--size", "16M", "--group", "xen"}} {
		if _, err := primary.CLI(client, append(args, "--api", api)...); err != nil {
			t.Fatal(err)
		}
	}
	l := primary.LUN(client, "vm01")
	r.iqn = l.Target
	r.dom.WritePattern(r.portal, r.iqn, l.Number, 0xc3, "4M")
	if err := r.dom.CheckPattern(r.portal, r.iqn, 1, 0xc3, "4M"); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *pairRig) primary() (*netlab.SandBox, *netlab.SandBox) {
	p, s, err := r.pair.Primary()
	if err != nil {
		r.t.Fatal(err)
	}
	return p, s
}

func (r *pairRig) waitOnePrimary(timeout time.Duration, what string) {
	netlab.WaitFor(r.t, timeout, what, func() error { _, _, err := r.pair.Primary(); return err })
}

// readThroughVIP polls verified reads through the VIP from fault until one
// succeeds and returns the time that took.
func (r *pairRig) readThroughVIP(fault time.Time) time.Duration {
	r.t.Helper()
	var last error
	for time.Since(fault) < 60*time.Second {
		if last = r.dom.CheckPattern(r.portal, r.iqn, 1, 0xc3, "4M"); last == nil {
			return time.Since(fault)
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatalf("no good read through the VIP within 60s of the fault: %v", last)
	return 0
}

func TestFailoverKillSand(t *testing.T) {
	r := newPairRig(t)
	old, next := r.primary()
	fault := time.Now()
	if err := old.Proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	took := r.readThroughVIP(fault)
	t.Logf("FAILOVER kill -9 of %s's sand: first good read through the VIP %v after the kill", old.Host.Name, took.Round(time.Millisecond))
	if !r.pair.HoldsVIP(next) || !next.Serving() || old.Serving() {
		t.Fatalf("after the kill: %s VIP %v serving %v; %s serving %v", next.Host.Name, r.pair.HoldsVIP(next), next.Serving(), old.Host.Name, old.Serving())
	}
	// systemd restarts sand on a real box: the returning box drops the
	// stale VIP and stays secondary (no failback).
	old.Start(r.client)
	r.waitOnePrimary(10*time.Second, "the old primary to come back as secondary")
	if p, _ := r.primary(); p != next {
		t.Fatalf("the returning box %s took the role back", old.Host.Name)
	}
	if err := r.dom.CheckPattern(r.portal, r.iqn, 1, 0xc3, "4M"); err != nil {
		t.Fatal(err)
	}
}

func TestFailoverCutLink(t *testing.T) {
	r := newPairRig(t)
	old, next := r.primary()
	fault := time.Now()
	old.Host.Cut()
	took := r.readThroughVIP(fault)
	t.Logf("FAILOVER cut of %s's link: first good read through the VIP %v after the cut", old.Host.Name, took.Round(time.Millisecond))
	netlab.WaitFor(t, 10*time.Second, "the cut-off primary to stop serving", func() error {
		if r.pair.HoldsVIP(old) || old.Serving() {
			return fmt.Errorf("%s still holds the VIP or serves", old.Host.Name)
		}
		return nil
	})
	if p, _ := r.primary(); p != next {
		t.Fatalf("primary after the cut is %s", p.Host.Name)
	}
	old.Host.Restore()
	time.Sleep(3 * time.Second) // the rejoin must change nothing: no failback
	if p, _ := r.primary(); p != next {
		t.Fatalf("after the link came back %s took the role back", old.Host.Name)
	}
	if err := r.dom.CheckPattern(r.portal, r.iqn, 1, 0xc3, "4M"); err != nil {
		t.Fatal(err)
	}
}

// Only the gossip between the two boxes is cut: both still reach the
// witness, which vouches for each (memberlist's indirect probes), so nobody
// moves and the primary keeps serving.
func TestFailoverCutSerfPathOnly(t *testing.T) {
	r := newPairRig(t)
	old, other := r.primary()
	dropBetween(t, old.Host, other.Host.IP, "7946")
	fault := time.Now()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		p, _, err := r.pair.Primary()
		if err != nil || p != old {
			t.Fatalf("%v after cutting only the serf path: primary %v, %v", time.Since(fault).Round(time.Millisecond), p, err)
		}
		if err := r.dom.CheckPattern(r.portal, r.iqn, 1, 0xc3, "4M"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("FAILOVER serf path cut between the boxes: no failover for 5s, %s kept serving", old.Host.Name)
}

// The primary loses the peer and the witness but the client still reaches
// it: it has no quorum and must stop serving; the peer, with the witness,
// takes over and the client follows the VIP.
func TestFailoverIsolatedPrimary(t *testing.T) {
	r := newPairRig(t)
	r.isolatePrimary(r.pair.Witness, "isolation")
}

// Without a witness the boxes ping a gateway: the primary loses the peer
// and the gateway while the client still reaches it, so it must stop
// serving; the peer, which still reaches the gateway, takes over. Then the
// old primary gets its link back and stays secondary.
func TestFailoverPingTargetsIsolatedPrimary(t *testing.T) {
	r := newPingPairRig(t)
	_, next := r.primary()
	if out, err := next.CLI(r.client, "status", "--api", next.VIPURL()); err != nil || !strings.Contains(out, "1 of 1 answer ("+r.pair.Gateway.IP+")") {
		t.Fatalf("sand status does not show the gateway answering: %v\n%s", err, out)
	}
	old := r.isolatePrimary(r.pair.Gateway, "isolation (ping targets, no witness)")
	old.Host.MustRun(t.Context(), "nft", "delete", "table", "inet", "faults")
	time.Sleep(3 * time.Second) // the rejoin must change nothing: no failback
	if p, _ := r.primary(); p != next {
		t.Fatalf("after the isolation ended the primary is %s, want %s (no failback)", p.Host.Name, next.Host.Name)
	}
	if err := r.dom.CheckPattern(r.portal, r.iqn, 1, 0xc3, "4M"); err != nil {
		t.Fatal(err)
	}
}

// isolatePrimary cuts the primary off from the peer and the third vote
// (witness or gateway) while the client still reaches it, and checks that
// it stops serving and the peer takes over. It returns the old primary.
func (r *pairRig) isolatePrimary(third *netlab.Host, what string) *netlab.SandBox {
	t := r.t
	old, next := r.primary()
	fault := time.Now()
	dropBetween(t, old.Host, next.Host.IP, "")
	dropBetween(t, old.Host, third.IP, "")
	// The client still reaches the old primary, so a read alone proves
	// nothing: wait until the old primary stopped and the peer took over.
	netlab.WaitFor(t, 15*time.Second, "the isolated primary to stop serving", func() error {
		if r.pair.HoldsVIP(old) || old.Serving() {
			return fmt.Errorf("%s still holds the VIP or serves", old.Host.Name)
		}
		return nil
	})
	stopped := time.Since(fault)
	netlab.WaitFor(t, 15*time.Second, "the peer to take over", func() error {
		if !r.pair.HoldsVIP(next) || !next.Serving() {
			return fmt.Errorf("%s does not serve yet", next.Host.Name)
		}
		return nil
	})
	took := r.readThroughVIP(fault)
	// Never two writers: from the boxes' own logs (one clock), the old
	// primary's target was down before the new one's came up.
	down := logTime(t, old, `msg="resource stopped" step="registry and target"`)
	up := logTime(t, next, `msg="resource started" step="registry and target"`)
	t.Logf("FAILOVER %s of %s (client still reaches it): it stopped serving %v after the cut (its target down at %v, %s's up at %v, %v later); first good read through %s %v after the cut",
		what, old.Host.Name, stopped.Round(time.Millisecond), down.Sub(fault).Round(time.Millisecond), next.Host.Name, up.Sub(fault).Round(time.Millisecond),
		up.Sub(down).Round(time.Millisecond), next.Host.Name, took.Round(time.Millisecond))
	if !down.Before(up) {
		t.Errorf("two writers: %s's target came up %v before the isolated %s's went down", next.Host.Name, down.Sub(up).Round(time.Millisecond), old.Host.Name)
	}
	if p, _ := r.primary(); p != next {
		t.Fatalf("primary after the %s is %s", what, p.Host.Name)
	}
	return old
}

// logTime is the time of the last line of b's sand log that contains
// what (slog's text format: time=... first).
func logTime(t *testing.T, b *netlab.SandBox, what string) time.Time {
	t.Helper()
	lines := strings.Split(b.Proc.Output(), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if !strings.Contains(lines[i], what) {
			continue
		}
		f := strings.Fields(lines[i])
		if len(f) > 0 {
			if at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time=")); err == nil {
				return at
			}
		}
	}
	t.Fatalf("%s's log has no line with %s", b.Host.Name, what)
	return time.Time{}
}

// dropBetween makes host drop all traffic to and from ip (on port, if
// given) with an nft table of the test's own.
func dropBetween(t *testing.T, h *netlab.Host, ip, port string) {
	t.Helper()
	ctx := t.Context()
	h.MustRun(ctx, "nft", "add", "table", "inet", "faults")
	for _, hook := range []string{"input", "output"} {
		h.MustRun(ctx, "nft", "add", "chain", "inet", "faults", hook, "{", "type", "filter", "hook", hook, "priority", "-10", ";", "}")
		dir := "saddr"
		if hook == "output" {
			dir = "daddr"
		}
		rule := []string{"add", "rule", "inet", "faults", hook, "ip", dir, ip}
		if port != "" {
			for _, proto := range []string{"udp", "tcp"} {
				h.MustRun(ctx, "nft", append(rule, proto, "dport", port, "drop")...)
				h.MustRun(ctx, "nft", append(rule, proto, "sport", port, "drop")...)
			}
			continue
		}
		h.MustRun(ctx, "nft", append(rule, "drop")...)
	}
}

// A planned switchover moves the role with one short interruption and
// records both halves in the events log.
func TestSwitchover(t *testing.T) {
	r := newPairRig(t)
	old, next := r.primary()
	api := old.VIPURL()
	start := time.Now()
	if _, err := old.CLI(r.client, "switchover", "--api", api); err != nil {
		t.Fatal(err)
	}
	netlab.WaitFor(t, 15*time.Second, "the peer to take over", func() error {
		if p, _, err := r.pair.Primary(); err != nil || p != next {
			return fmt.Errorf("primary %v, %v", p, err)
		}
		return nil
	})
	took := r.readThroughVIP(start)
	t.Logf("SWITCHOVER %s -> %s: first good read through the VIP %v after the request", old.Host.Name, next.Host.Name, took.Round(time.Millisecond))
	// The old primary records the end of the switchover once it sees the
	// peer primary, a moment after the peer serves.
	netlab.WaitFor(t, 10*time.Second, "the switchover's events on "+old.Host.Name, func() error {
		events := old.MustCLI(r.client, "events", "--api", old.APIURL())
		for _, want := range []string{"admin intent switchover", "failover-demoted", "switchover done"} {
			if !strings.Contains(events, want) {
				return fmt.Errorf("events lack %q:\n%s", want, events)
			}
		}
		return nil
	})
	// The switchover is finished: the old primary stays secondary.
	time.Sleep(2 * time.Second)
	if p, _ := r.primary(); p != next {
		t.Fatalf("after the switchover %s took the role back", old.Host.Name)
	}
}

// A secondary in standby never promotes, even when the primary dies; resume
// lets it take over.
func TestStandbyBlocksPromotion(t *testing.T) {
	r := newPairRig(t)
	old, next := r.primary()
	api := old.VIPURL()
	if _, err := old.CLI(r.client, "standby", next.Host.Name, "--api", api); err != nil {
		t.Fatal(err)
	}
	netlab.WaitFor(t, 5*time.Second, "the standby to show", func() error {
		out, err := next.CLI(r.client, "status", "--api", next.APIURL())
		if err != nil || !strings.Contains(out, "standby") {
			return fmt.Errorf("status of %s: %s %v", next.Host.Name, out, err)
		}
		return nil
	})
	if err := old.Proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second) // detection + settle + margin: nothing may move
	if r.pair.HoldsVIP(next) || next.Serving() {
		t.Fatalf("%s in standby took over", next.Host.Name)
	}
	fault := time.Now()
	if _, err := next.CLI(r.client, "resume", next.Host.Name, "--api", next.APIURL()); err != nil {
		t.Fatal(err)
	}
	took := r.readThroughVIP(fault)
	t.Logf("STANDBY: %s stayed out while %s was dead; after resume the first good read came %v later", next.Host.Name, old.Host.Name, took.Round(time.Millisecond))
}
