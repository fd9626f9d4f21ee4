package failover

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sand-appliance/sand/drbd"
)

func testKey() []byte { return bytes.Repeat([]byte{7}, KeySize) }

func testKeys() [][]byte { return [][]byte{testKey()} }

func startMember(t *testing.T, name, ip string, tags Tags) *Membership {
	t.Helper()
	return startMemberOn(t, name, ip, 0, tags)
}

func startMemberOn(t *testing.T, name, ip string, port int, tags Tags) *Membership {
	t.Helper()
	conf, err := NewSerfConfig(name, ip, port, testKeys(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("NewSerfConfig: %v", err)
	}
	m := NewMembership(conf, slog.New(slog.DiscardHandler), nil)
	if err := m.Start(tags); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

// waitFor polls cond until it holds or the deadline passes, and says what it
// waited for.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		case <-tick.C:
		}
	}
	return time.Since(start)
}

func TestMembershipLoopback(t *testing.T) {
	san1 := startMember(t, "san1", "127.0.0.1", Tags{Role: drbd.RolePrimary, Disk: drbd.DiskUpToDate, Generation: 3})
	san2 := startMember(t, "san2", "127.0.0.2", Tags{Role: drbd.RoleSecondary, Disk: drbd.DiskUpToDate, Generation: 3})
	wit := startMember(t, "dom0", "127.0.0.3", Tags{Witness: true})
	for _, m := range []*Membership{san2, wit} {
		if _, err := m.Join([]string{san1.Addr()}); err != nil {
			t.Fatalf("join: %v", err)
		}
	}
	waitFor(t, 3*time.Second, "san2 to see san1 alive as Primary and the witness alive", func() bool {
		p, w := san2.View("san1", "dom0")
		return p.Member == MemberAlive && p.Role == drbd.RolePrimary && p.Generation == 3 && w.Member == MemberAlive
	})

	if err := san1.SetTags(Tags{Role: drbd.RolePrimary, Disk: drbd.DiskUpToDate, Generation: 4, Intent: IntentSwitchover}); err != nil {
		t.Fatal(err)
	}
	d := waitFor(t, 3*time.Second, "san1's new tags (gen 4, switchover) at san2", func() bool {
		p, _ := san2.View("san1", "dom0")
		return p.Generation == 4 && p.Intent == IntentSwitchover
	})
	t.Logf("tag change propagated in %s", d.Round(time.Millisecond))

	// Kill san1 without a leave: the peer must see it Failed.
	killed := time.Now()
	if err := san1.Shutdown(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 4*time.Second, "san2 to declare san1 failed", func() bool {
		p, _ := san2.View("san1", "dom0")
		return p.Member == MemberFailed
	})
	detect := time.Since(killed)
	t.Logf("killed member declared failed after %s (tuned: 200 ms probe, 100 ms timeout, suspicion mult 2; 3 members)", detect.Round(time.Millisecond))
	p, w := san2.View("san1", "dom0")
	if p.Role != drbd.RolePrimary || p.Generation != 4 || w.Member != MemberAlive {
		t.Errorf("after failure, View = %+v, %+v; want the last tags kept and the witness alive", p, w)
	}
	if got := p.Since.Sub(killed); got <= 0 || got > detect {
		t.Errorf("Peer.Since is %s after the kill, want within (0, %s]", got, detect)
	}
	// The event travels through serf's event goroutines, and may arrive
	// a moment after the member list changed.
	waitFor(t, 2*time.Second, "a member-failed event for san1 on san2's Events channel", func() bool {
		for {
			select {
			case ev := <-san2.Events():
				if ev.Member.Name == "san1" && ev.Member.Status == MemberFailed && ev.Kind == "member-failed" {
					return true
				}
			default:
				return false
			}
		}
	})

	// A graceful leave is seen as Left.
	left := time.Now()
	if err := wit.Leave(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 4*time.Second, "san2 to see the witness left", func() bool {
		_, w := san2.View("san1", "dom0")
		return w.Member == MemberLeft
	})
	t.Logf("graceful leave seen as left after %s", time.Since(left).Round(time.Millisecond))
}

// A member that fails and comes back is remembered as returned, so the
// decision can tell a flapping (starved) peer from a dead one.
func TestMembershipRemembersAReturn(t *testing.T) {
	san2 := startMember(t, "san2", "127.0.0.5", Tags{Role: drbd.RoleSecondary, Disk: drbd.DiskUpToDate, Generation: 1})
	tags := Tags{Role: drbd.RolePrimary, Disk: drbd.DiskUpToDate, Generation: 1}
	san1 := startMember(t, "san1", "127.0.0.4", tags)
	addr := san1.Addr()
	_, portStr, _ := net.SplitHostPort(addr)
	port, err := strconv.Atoi(portStr)
	if err != nil {
		t.Fatalf("port of %s: %v", addr, err)
	}
	if _, err := san2.Join([]string{addr}); err != nil {
		t.Fatal(err)
	}
	peer := func() Peer { p, _ := san2.View("san1", ""); return p }
	waitFor(t, 3*time.Second, "san1 alive at san2", func() bool { return peer().Member == MemberAlive })
	if p := peer(); !p.Returned.IsZero() {
		t.Fatalf("a peer never seen failing has Returned %s, want zero", p.Returned)
	}

	for round := 1; round <= 2; round++ {
		if err := san1.Shutdown(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 4*time.Second, "san2 to declare san1 failed", func() bool { return peer().Member == MemberFailed })
		if round == 2 {
			break
		}
		back := time.Now()
		san1 = startMemberOn(t, "san1", "127.0.0.4", port, tags)
		if _, err := san1.Join([]string{san2.Addr()}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 4*time.Second, "san1 alive again at san2", func() bool { return peer().Member == MemberAlive })
		if p := peer(); p.Returned.Before(back) || p.Returned != p.Since {
			t.Fatalf("after the return: Returned %s, Since %s, want both the moment it came back (after %s)", p.Returned, p.Since, back)
		}
	}
	p := peer()
	if p.Returned.IsZero() || !p.Since.After(p.Returned) {
		t.Fatalf("failed again: Since %s, Returned %s; want the return kept, before the new failure", p.Since, p.Returned)
	}
	in := Input{Now: p.Since, Peer: p, Policy: DefaultPolicy()}
	if !in.flapping() {
		t.Errorf("failed %s after returning: want flapping under %s", p.Since.Sub(p.Returned), in.Policy.FlapWindow)
	}
}

func TestKeyAndConfigErrors(t *testing.T) {
	if _, err := ParseGossipKeys("c2hvcnQ="); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("want %d", KeySize)) {
		t.Errorf("ParseGossipKeys of a 5-byte key: err = %v, want a length error", err)
	}
	if _, err := ParseGossipKeys("not base64!"); err == nil {
		t.Error("ParseGossipKeys of garbage: no error")
	}
	if _, err := ParseGossipKeys("\n \n"); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Errorf("ParseGossipKeys of blank lines: err = %v, want no key", err)
	}
	good := "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="
	if k, err := ParseGossipKeys(good + "\n"); err != nil || len(k) != 1 || !bytes.Equal(k[0], testKey()) {
		t.Errorf("ParseGossipKeys(%q) = %v, %v", good, k, err)
	}
	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{8}, KeySize))
	if k, err := ParseGossipKeys(other + "\n\n" + good + "\n"); err != nil || len(k) != 2 || k[0][0] != 8 || k[1][0] != 7 {
		t.Errorf("two keys: %v, %v; want both, the first first", k, err)
	}
	if _, err := NewSerfConfig("san1", "127.0.0.1", 7946, [][]byte{[]byte("short")}, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("NewSerfConfig with a short key: no error")
	}
	if _, err := NewSerfConfig("san1", "127.0.0.1", 7946, nil, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("NewSerfConfig without a key: no error")
	}
	if _, err := NewSerfConfig("san1", "san1.lan", 7946, testKeys(), slog.New(slog.DiscardHandler)); err == nil {
		t.Error("NewSerfConfig with a host name as bind address: no error")
	}
}

func TestSerfLogLevels(t *testing.T) {
	var buf strings.Builder
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	w := serfLog{l}
	for _, line := range []string{
		"[DEBUG] memberlist: Stream connection from=10.99.0.11:50828\n",
		"[WARN] memberlist: Refuting a suspect message (from: san1)\n",
		"[ERR] memberlist: Failed fallback TCP ping: timeout 200ms\n",
		"[INFO] serf: EventMemberFailed: san1 10.99.0.11\n",
		"no level at all\n",
	} {
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	out := buf.String()
	if strings.Contains(out, "Stream connection") {
		t.Errorf("a debug line reached the info log:\n%s", out)
	}
	for _, want := range []string{`level=WARN msg="memberlist: Refuting`, `level=ERROR msg="memberlist: Failed fallback`, `level=INFO msg="serf: EventMemberFailed`, `level=INFO msg="no level at all"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}
