package failover

import (
	"net/netip"
	"testing"
	"time"
)

func TestPingerCountsRecentAnswers(t *testing.T) {
	p, err := NewPinger([]string{"10.0.0.1", "10.0.0.2", "::ffff:10.0.0.3"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	if got := p.View(t0); got != (Ping{Targets: 3}) {
		t.Fatalf("before any answer: %+v", got)
	}
	p.answer(netip.MustParseAddr("10.0.0.1"), t0)
	half := p.Window / 2
	p.answer(netip.MustParseAddr("10.0.0.3"), t0.Add(half)) // the mapped form counts as the IPv4 target
	for _, tc := range []struct {
		at   time.Duration
		want int
	}{
		{half, 2},
		{p.Window - time.Millisecond, 2},
		{p.Window, 1}, // 10.0.0.1's answer is Window old: stale
		{half + p.Window, 0},
	} {
		if got := p.View(t0.Add(tc.at)); got.Reachable != tc.want || got.Targets != 3 {
			t.Errorf("at +%v: %+v, want %d of 3 reachable", tc.at, got, tc.want)
		}
	}
	// The quorum rule without a witness: a failed peer and no target
	// answering is the isolated box.
	in := Input{Peer: Peer{Member: MemberFailed}, Ping: p.View(t0.Add(time.Hour))}
	if HasQuorum(in) {
		t.Error("no peer and no ping target: quorum")
	}
	in.Ping = p.View(t0.Add(half))
	if !HasQuorum(in) {
		t.Error("a ping target answers: no quorum")
	}
}

func TestNewPingerRejectsNames(t *testing.T) {
	for _, bad := range [][]string{{"gateway"}, {"10.0.0.1/24"}, nil} {
		if _, err := NewPinger(bad, nil); err == nil {
			t.Errorf("NewPinger(%q): no error", bad)
		}
	}
}
