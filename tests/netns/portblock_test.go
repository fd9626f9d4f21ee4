//go:build netns

package netns

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sand-appliance/sand/failover"
	"github.com/sand-appliance/sand/tests/netlab"
)

// TestPortBlock drives the failover's portal block against the kernel, in a
// namespace of its own: while blocked, a SYN to the portal goes unanswered
// (the initiator retries); unblocked, the box answers at once (here with a
// RST: nothing listens). The rule reads as the nft command it replaced.
func TestPortBlock(t *testing.T) {
	netlab.Require(t, append(netlab.Tools, "nft", "bash", "timeout")...)
	lab := netlab.New(t, "10.217.0")
	box := lab.AddHost("box", 11)
	client := lab.AddHost("client", 12)
	ns, err := os.Open("/run/netns/" + box.NS)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	b := failover.PortBlock{Portal: netip.MustParseAddrPort(box.IP + ":3260"), NetNS: int(ns.Fd())}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// answered reports whether a connect to the portal got an answer
	// (refused) within a second, rather than hanging on a dropped SYN.
	answered := func() bool {
		t.Helper()
		t0 := time.Now()
		out, err := client.Run(ctx, "timeout", "1", "bash", "-c", "exec 3<>/dev/tcp/"+box.IP+"/3260")
		switch {
		case err == nil:
			t.Fatalf("something listens on the portal in the test namespace: %s", out)
		case strings.Contains(out, "refused"):
			return true
		case time.Since(t0) >= time.Second:
			return false
		}
		t.Fatalf("connect to the portal: %v", err)
		return false
	}

	if err := b.Unblock(ctx); err != nil {
		t.Fatalf("unblock before any block (no table yet): %v", err)
	}
	if !answered() {
		t.Fatal("no block installed, yet the SYN went unanswered")
	}
	for range 2 { // idempotent
		if err := b.Block(ctx); err != nil {
			t.Fatal(err)
		}
	}
	rules, err := box.Run(ctx, "nft", "list", "chain", "inet", "sand", "portal")
	if err != nil {
		t.Fatal(err)
	}
	// nft prints "tcp flags & (syn | ack) == syn" as "syn / syn,ack".
	want := "ip daddr " + box.IP + " tcp dport 3260 tcp flags syn / syn,ack drop"
	if strings.Count(rules, " drop") != 1 || !strings.Contains(rules, want) {
		t.Errorf("blocked chain, want exactly the rule %q:\n%s", want, rules)
	}
	if answered() {
		t.Error("blocked portal answered a SYN")
	}
	for range 2 {
		if err := b.Unblock(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !answered() {
		t.Error("unblocked portal did not answer a SYN")
	}
}
