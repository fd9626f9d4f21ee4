package pair

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/appliance/pool/file"
	"github.com/sand-appliance/sand/drbd"
	"github.com/sand-appliance/sand/failover"
	"github.com/sand-appliance/sand/ui"
)

// newPair is a pair of box san1 on DRBD in w, not started.
func newPair(t *testing.T, w *world) *Pair {
	t.Helper()
	cfg := testConfig("san1", "san2")
	log := slog.New(slog.DiscardHandler)
	conf, err := failover.NewSerfConfig(cfg.Name, "127.0.0.1", 0, [][]byte{bytes.Repeat([]byte{7}, failover.KeySize)}, log)
	if err != nil {
		t.Fatal(err)
	}
	p, err := file.New(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := New(Deps{Config: cfg, Box: appliance.NewBox(cfg, p, nil, log), Members: failover.NewMembership(conf, log, nil),
		Run: w, Mounts: w, Devices: w, DRBD: &drbd.Admin{Run: w, ReadFile: w.readProc, ConfDir: t.TempDir()}, Log: log, Self: "/usr/sbin/sand"})
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

func TestGroupOrder(t *testing.T) {
	pr := newPair(t, newWorld(t))
	var names []string
	for _, s := range pr.ctrl.Group.Steps {
		names = append(names, s.Name)
	}
	want := "portal block, ask the peer for its record, drbd r0, pool sand, registry and target, vip, portal unblock, tickle initiators, background chores"
	if got := strings.Join(names, ", "); got != want {
		t.Errorf("resource group:\n got %s\nwant %s", got, want)
	}
}

func TestShutdownIsIdempotentAndSafeBeforeStart(t *testing.T) {
	pr := newPair(t, newWorld(t))
	done := make(chan error, 2)
	go func() { done <- pr.Shutdown(); done <- pr.Shutdown() }()
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Shutdown of a pair that never started did not return")
		}
	}
	if pr.ctx.Err() == nil {
		t.Error("the pair's context is still live after Shutdown")
	}
}

func TestAnswerRoutesQueries(t *testing.T) {
	w := newWorld(t, proc84("WFConnection", "Secondary/Unknown", "Outdated/DUnknown"))
	pr := newPair(t, w)
	if got := string(pr.answer(failover.OutdateQuery, []byte("r0"))); got != failover.OutdateDone {
		t.Errorf("outdate query answered %q, want %q", got, failover.OutdateDone)
	}
	if got := w.transcript(); len(got) != 1 || got[0] != "exec drbdadm outdate r0" {
		t.Errorf("outdate ran %q, want drbdadm outdate r0", got)
	}
	if got := string(pr.answer(failover.OutdateQuery, []byte("other"))); got != "unknown query" {
		t.Errorf("outdate of another resource answered %q", got)
	}
	if got := pr.answer(failover.HandOverQuery, []byte("sand")); len(got) != 0 {
		t.Errorf("hand-over query answered %d bytes before any demotion", len(got))
	}
	if got := w.transcript(); len(got) != 0 {
		t.Errorf("queries ran %q", got)
	}
}

func TestPeerBoxAndWhyNot(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name                      string
		self                      string
		peer                      failover.Peer
		wantRole, wantDetail      string
		switchover, standby, resu string
	}{
		{name: "primary with a ready peer", self: ui.RolePrimary, peer: failover.Peer{Name: "san2", Member: failover.MemberAlive},
			wantRole: ui.RoleSecondary, resu: "no box is in standby"},
		{name: "peer never seen", self: ui.RolePrimary, peer: failover.Peer{Name: "san2"},
			wantRole: ui.RoleDown, wantDetail: "never seen", switchover: "the peer san2 is down: it cannot take over now", resu: "no box is in standby"},
		{name: "peer failed", self: ui.RolePrimary, peer: failover.Peer{Name: "san2", Member: failover.MemberFailed, Since: now.Add(-90 * time.Second)},
			wantRole: ui.RoleDown, wantDetail: "failed 1m30s ago", switchover: "the peer san2 is down: it cannot take over now", resu: "no box is in standby"},
		{name: "secondary asked to switch over", self: ui.RoleSecondary, peer: failover.Peer{Name: "san2", Member: failover.MemberAlive, Role: drbd.RolePrimary},
			wantRole: ui.RolePrimary, switchover: "switchover runs on the primary: open the UI or API on the VIP", resu: "no box is in standby"},
		{name: "both in standby", self: ui.RoleStandby, peer: failover.Peer{Name: "san2", Member: failover.MemberAlive, Intent: failover.IntentStandby},
			wantRole: ui.RoleStandby, switchover: "switchover runs on the primary: open the UI or API on the VIP", standby: "both boxes are in standby"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			other := peerBox(tt.peer, now)
			if other.Role != tt.wantRole || other.Detail != tt.wantDetail {
				t.Errorf("peer box %s (%q), want %s (%q)", other.Role, other.Detail, tt.wantRole, tt.wantDetail)
			}
			s, st, r := whyNot(ui.PairBox{Name: "san1", Role: tt.self}, other)
			if s != tt.switchover || st != tt.standby || r != tt.resu {
				t.Errorf("why not: switchover %q, standby %q, resume %q; want %q, %q, %q", s, st, r, tt.switchover, tt.standby, tt.resu)
			}
		})
	}
}
