package failover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sand-appliance/sand/drbd"
	"github.com/sand-appliance/sand/events"
)

// fakeCluster is the membership the controller reads: a fixed view that
// the test changes between steps.
type fakeCluster struct {
	peer    Peer
	witness Witness
	tags    []Tags
	events  chan Event // nil: no events
}

func (f *fakeCluster) View(string, string) (Peer, Witness) { return f.peer, f.witness }
func (f *fakeCluster) Events() <-chan Event                { return f.events }
func (f *fakeCluster) SetTags(t Tags) error                { f.tags = append(f.tags, t); return nil }

// fakeLink is DRBD as the controller sees it: a state the test sets, and
// every call the controller makes, in order, in one journal with the
// resource group's steps.
type fakeLink struct {
	local   Local
	journal *[]string
	// reads counts the calls of State; onRead, if set, runs in each.
	reads  int
	onRead func(reads int)
}

func (f *fakeLink) State(context.Context, Peer) (Local, error) {
	f.reads++
	if f.onRead != nil {
		f.onRead(f.reads)
	}
	return f.local, nil
}
func (f *fakeLink) ForceDisconnect(context.Context) error {
	*f.journal = append(*f.journal, "disconnect --force")
	f.local.Conn, f.local.PeerRole, f.local.PeerDisk = drbd.ConnStandAlone, drbd.RoleUnknown, drbd.DiskDUnknown
	return nil
}
func (f *fakeLink) Reconnect(context.Context) error {
	*f.journal = append(*f.journal, "connect")
	f.local.Conn = drbd.ConnWFConnection
	return nil
}

type controllerRig struct {
	c       *Controller
	cluster *fakeCluster
	link    *fakeLink
	journal []string
	events  []string
	now     time.Time
	// failStop names a step whose Stop fails.
	failStop string
}

// newRig is san2, secondary and in sync with san1 (primary), a witness up.
func newRig(t *testing.T, failStep string) *controllerRig {
	r := &controllerRig{now: t0}
	r.cluster = &fakeCluster{
		peer:    Peer{Name: "san1", Member: MemberAlive, Since: t0.Add(-time.Hour), Role: drbd.RolePrimary, Disk: drbd.DiskUpToDate, Generation: 3},
		witness: Witness{Configured: true, Name: "dom0", Member: MemberAlive},
	}
	r.link = &fakeLink{journal: &r.journal, local: Local{Role: drbd.RoleSecondary, Disk: drbd.DiskUpToDate, Conn: drbd.ConnConnected,
		PeerRole: drbd.RolePrimary, PeerDisk: drbd.DiskUpToDate, Generation: 3}}
	step := func(name string) Step {
		return Step{
			Name: name,
			Start: func(ctx context.Context) error {
				entry := "start " + name
				if HandingOver(ctx) {
					entry += " (hand-over)"
				}
				r.journal = append(r.journal, entry)
				if name == failStep {
					return errors.New("injected failure")
				}
				if name == "drbd" {
					r.link.local.Role = drbd.RolePrimary
				}
				return nil
			},
			Stop: func(context.Context) error {
				r.journal = append(r.journal, "stop "+name)
				if name == r.failStop {
					return errors.New("injected failure")
				}
				if name == "drbd" {
					r.link.local.Role = drbd.RoleSecondary
				}
				return nil
			},
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var mu sync.Mutex
	r.c = &Controller{
		Name: "san2", PeerName: "san1", WitnessName: "dom0",
		Members: r.cluster, Storage: r.link,
		Group:      &Group{Log: log, Steps: []Step{step("drbd"), step("target"), step("vip")}},
		Generation: func() uint64 { return 3 },
		Record: func(kind events.Kind, format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			r.events = append(r.events, string(kind)+": "+fmt.Sprintf(format, args...))
		},
		// The timelines below are written for a settle time of 1 s.
		Log: log, Policy: Policy{Settle: time.Second}, Now: func() time.Time { return r.now },
	}
	return r
}

// at runs one controller step at t0+d and returns its decision.
func (r *controllerRig) at(d time.Duration) Decision {
	r.now = t0.Add(d)
	return r.c.step(context.Background())
}

func TestControllerForcesDisconnectOnlyPastADeadPeer(t *testing.T) {
	r := newRig(t, "")
	r.at(0)
	if len(r.journal) != 0 || r.c.Primary() {
		t.Fatalf("secondary beside a live primary acted: %v", r.journal)
	}
	// san1's QEMU dies: serf declares it failed; DRBD has not noticed.
	r.cluster.peer.Member, r.cluster.peer.Since = MemberFailed, t0.Add(time.Second)
	r.at(1500 * time.Millisecond)
	if len(r.journal) != 0 {
		t.Fatalf("acted 500ms after the failure, before the settle time: %v", r.journal)
	}
	r.at(2100 * time.Millisecond)
	want := []string{"disconnect --force", "start drbd", "start target", "start vip", "connect"}
	if diff := cmp.Diff(want, r.journal); diff != "" {
		t.Fatalf("promotion past a dead peer (-want +got):\n%s", diff)
	}
	if !r.c.Primary() || r.c.Promotions() != 1 {
		t.Errorf("primary %v after %d promotions, want primary after 1", r.c.Primary(), r.c.Promotions())
	}
	if got := r.cluster.tags[len(r.cluster.tags)-1].Role; got != drbd.RolePrimary {
		t.Errorf("advertised role %s, want Primary", got)
	}
	// Later rounds change nothing: no second disconnect, no restart.
	r.at(2300 * time.Millisecond)
	if len(r.journal) != len(want) {
		t.Errorf("a later round acted again: %v", r.journal[len(want):])
	}
}

// The events log says when the replication link dropped and came back,
// and when a resync ended: the kernel's DRBD lines stay off the console.
func TestControllerRecordsReplicationChanges(t *testing.T) {
	r := newRig(t, "")
	replication := func() []string {
		var got []string
		for _, e := range r.events {
			if strings.HasPrefix(e, string(events.Replication)+": ") {
				got = append(got, strings.TrimPrefix(e, string(events.Replication)+": "))
			}
		}
		return got
	}
	r.at(0)
	r.at(100 * time.Millisecond) // nothing changed
	if got := replication(); len(got) != 0 {
		t.Fatalf("recorded %v with nothing changed", got)
	}
	r.link.local.Conn, r.link.local.PeerRole, r.link.local.PeerDisk = drbd.ConnWFConnection, drbd.RoleUnknown, drbd.DiskDUnknown
	r.at(200 * time.Millisecond)
	r.at(300 * time.Millisecond)
	r.link.local.Conn, r.link.local.PeerRole, r.link.local.PeerDisk, r.link.local.Disk = drbd.ConnSyncTarget, drbd.RolePrimary, drbd.DiskUpToDate, drbd.DiskInconsistent
	r.at(400 * time.Millisecond)
	r.link.local.Conn, r.link.local.Disk = drbd.ConnConnected, drbd.DiskUpToDate
	r.at(500 * time.Millisecond)
	want := []string{
		"DRBD cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate -> cs:WFConnection ro:Secondary/Unknown ds:UpToDate/DUnknown",
		"DRBD cs:WFConnection ro:Secondary/Unknown ds:UpToDate/DUnknown -> cs:SyncTarget ro:Secondary/Primary ds:Inconsistent/UpToDate",
		"DRBD cs:SyncTarget ro:Secondary/Primary ds:Inconsistent/UpToDate -> cs:Connected ro:Secondary/Primary ds:UpToDate/UpToDate",
	}
	if diff := cmp.Diff(want, replication()); diff != "" {
		t.Errorf("replication events (-want +got):\n%s", diff)
	}
}

// kinds are the events of the given kinds the rig recorded, in order.
func (r *controllerRig) kinds(kinds ...events.Kind) []string {
	var got []string
	for _, e := range r.events {
		for _, k := range kinds {
			if strings.HasPrefix(e, string(k)+": ") {
				got = append(got, e)
			}
		}
	}
	return got
}

// The peer lost and back, and a resync begun and ended, are events of
// their own, derived from serf's view and DRBD's.
func TestControllerRecordsPeerAndResync(t *testing.T) {
	r := newRig(t, "")
	r.at(0)
	// san1 dies: serf declares it failed, DRBD loses the link.
	r.cluster.peer.Member, r.cluster.peer.Since = MemberFailed, t0.Add(100*time.Millisecond)
	r.link.local.Conn, r.link.local.PeerRole, r.link.local.PeerDisk = drbd.ConnWFConnection, drbd.RoleUnknown, drbd.DiskDUnknown
	r.at(100 * time.Millisecond)
	r.at(200 * time.Millisecond)
	// It is back before this box took over, and DRBD resyncs it.
	r.cluster.peer.Member, r.cluster.peer.Since = MemberAlive, t0.Add(300*time.Millisecond)
	r.link.local.Conn, r.link.local.PeerRole, r.link.local.PeerDisk = drbd.ConnSyncSource, drbd.RolePrimary, drbd.DiskInconsistent
	r.at(300 * time.Millisecond)
	r.link.local.Conn = drbd.ConnPausedSyncS // paused: the same resync
	r.at(400 * time.Millisecond)
	r.link.local.Conn = drbd.ConnSyncSource
	r.at(500 * time.Millisecond)
	r.link.local.Conn, r.link.local.PeerDisk = drbd.ConnConnected, drbd.DiskUpToDate
	r.at(600 * time.Millisecond)
	r.at(700 * time.Millisecond)
	want := []string{
		string(events.PeerLost) + ": peer san1 failed",
		string(events.PeerJoined) + ": peer san1 is alive again",
		string(events.ResyncStarted) + ": DRBD resync started: SyncSource, disks UpToDate/Inconsistent",
		string(events.ResyncFinished) + ": DRBD resync finished: Connected, disks UpToDate/UpToDate",
	}
	if diff := cmp.Diff(want, r.kinds(events.PeerLost, events.PeerJoined, events.ResyncStarted, events.ResyncFinished)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if len(r.journal) != 0 {
		t.Errorf("acted: %v", r.journal)
	}
}

func TestChanges(t *testing.T) {
	inSync := Local{Role: drbd.RoleSecondary, Disk: drbd.DiskUpToDate, Conn: drbd.ConnConnected, PeerRole: drbd.RolePrimary, PeerDisk: drbd.DiskUpToDate}
	syncing := inSync
	syncing.Conn, syncing.Disk = drbd.ConnSyncTarget, drbd.DiskInconsistent
	cut := inSync
	cut.Conn, cut.PeerRole, cut.PeerDisk = drbd.ConnWFConnection, drbd.RoleUnknown, drbd.DiskDUnknown
	at := func(d time.Duration, l Local, m MemberStatus) Input {
		return Input{Now: t0.Add(d), Local: l, Peer: Peer{Name: "san1", Member: m}}
	}
	tests := []struct {
		name          string
		was, is       Input
		resyncing     bool
		want          []events.Kind
		wantResyncing bool
	}{
		{name: "first step, in sync", is: at(0, inSync, MemberAlive)},
		{name: "first step, peer already gone: not a loss seen here", is: at(0, cut, MemberFailed)},
		{
			name: "first step in a resync: it started", is: at(0, syncing, MemberAlive),
			want: []events.Kind{events.ResyncStarted}, wantResyncing: true,
		},
		{name: "nothing changed", was: at(0, inSync, MemberAlive), is: at(time.Second, inSync, MemberAlive)},
		{
			name: "peer left", was: at(0, inSync, MemberLeaving), is: at(time.Second, cut, MemberLeft),
			want: []events.Kind{events.Replication, events.PeerLost},
		},
		{name: "never seen, then alive: not a return", was: at(0, cut, MemberUnknown), is: at(time.Second, cut, MemberAlive)},
		{
			name: "cut mid-resync: not finished", was: at(0, syncing, MemberAlive), is: at(time.Second, cut, MemberAlive), resyncing: true,
			want: []events.Kind{events.Replication}, wantResyncing: true,
		},
		{
			name: "in sync after a cut resync: finished", was: at(0, cut, MemberAlive), is: at(time.Second, inSync, MemberAlive), resyncing: true,
			want: []events.Kind{events.Replication, events.ResyncFinished},
		},
		{
			name: "connected, this disk still Inconsistent: not finished", was: at(0, syncing, MemberAlive), resyncing: true,
			is:   at(time.Second, Local{Role: drbd.RoleSecondary, Disk: drbd.DiskInconsistent, Conn: drbd.ConnConnected, PeerRole: drbd.RolePrimary, PeerDisk: drbd.DiskUpToDate}, MemberAlive),
			want: []events.Kind{events.Replication}, wantResyncing: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cs, resyncing := changes(tc.was, tc.is, tc.resyncing)
			var got []events.Kind
			for _, c := range cs {
				got = append(got, c.kind)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" || resyncing != tc.wantResyncing {
				t.Errorf("changes: kinds (-want +got):\n%s\nresyncing %v, want %v", diff, resyncing, tc.wantResyncing)
			}
		})
	}
}

// A closed events channel (the membership shut down) is no more events:
// the loop goes on at its tick instead of spinning on the closed channel.
func TestControllerRunSurvivesClosedEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRig(t, "")
		r.c.Now, r.c.Tick = time.Now, 100*time.Millisecond
		r.cluster.events = make(chan Event, 2)
		r.cluster.events <- Event{Kind: EventIntent, Member: Member{Name: "san2"}, Intent: IntentStandby}
		r.cluster.events <- Event{Kind: "member-update", Member: Member{Name: "san1", Status: MemberAlive}}
		close(r.cluster.events)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		// A loop that spins never lets the bubble's clock move: stop it
		// after many more steps than a second of ticks takes.
		r.link.onRead = func(n int) {
			if n == 1000 {
				cancel()
			}
		}
		done := make(chan error, 1)
		go func() { done <- r.c.Run(ctx) }()
		time.Sleep(time.Second)
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
		// One step at the start, one per event (two, and the close), one
		// per tick.
		if r.link.reads > 15 {
			t.Errorf("%d steps in a second at a 100ms tick: the loop spins on the closed channel", r.link.reads)
		}
		if r.c.Intent() != IntentStandby {
			t.Errorf("intent %s, want the event's standby", r.c.Intent())
		}
		if got := r.kinds(events.Membership); len(got) != 1 || got[0] != string(events.Membership)+": member-update: san1 is alive" {
			t.Errorf("membership events %q, want the one update", got)
		}
	})
}

func TestControllerNeverForcesWithoutQuorum(t *testing.T) {
	r := newRig(t, "")
	r.cluster.peer.Member, r.cluster.peer.Since = MemberFailed, t0
	r.cluster.witness.Member = MemberFailed
	for d := time.Duration(0); d < 10*time.Second; d += 500 * time.Millisecond {
		r.at(d)
	}
	if len(r.journal) != 0 || r.c.Primary() {
		t.Fatalf("a box without quorum acted: %v", r.journal)
	}
	if st := r.c.Status(); st.Quorum || st.Decision != "stay" {
		t.Errorf("status %+v, want no quorum and stay", st)
	}
}

func TestControllerFailedPromotionRollsBackAndStillListens(t *testing.T) {
	r := newRig(t, "vip")
	r.cluster.peer.Member, r.cluster.peer.Since = MemberFailed, t0
	r.at(0)
	r.at(1100 * time.Millisecond)
	want := []string{"disconnect --force", "start drbd", "start target", "start vip", "stop vip", "stop target", "stop drbd", "connect"}
	if diff := cmp.Diff(want, r.journal); diff != "" {
		t.Fatalf("failed promotion (-want +got):\n%s", diff)
	}
	if r.c.Primary() || r.link.local.Role != drbd.RoleSecondary {
		t.Errorf("after a rolled-back promotion: controller primary %v, DRBD %s", r.c.Primary(), r.link.local.Role)
	}
	if !strings.Contains(strings.Join(r.events, " "), string(events.StepFailed)) {
		t.Errorf("events %v lack %s", r.events, events.StepFailed)
	}
}

// A promotion that keeps failing is retried after 0.5, 1, 2, 4 ... s (at
// most 10 s), not every tick: a spinning box starves its own gossip.
func TestControllerBacksOffFailedPromotions(t *testing.T) {
	r := newRig(t, "vip")
	r.link.local.Conn, r.link.local.PeerRole, r.link.local.PeerDisk = drbd.ConnWFConnection, drbd.RoleUnknown, drbd.DiskDUnknown
	r.cluster.peer.Member, r.cluster.peer.Since = MemberFailed, t0
	var tries []time.Duration
	for d := 1100 * time.Millisecond; d < 40*time.Second; d += 100 * time.Millisecond {
		before := len(r.journal)
		r.at(d)
		if len(r.journal) > before {
			tries = append(tries, d)
		}
	}
	for i := len(tries) - 1; i >= 0; i-- {
		tries[i] -= tries[0] // relative to the first try
	}
	want := []time.Duration{0, 500 * time.Millisecond, 1500 * time.Millisecond, 3500 * time.Millisecond, 7500 * time.Millisecond,
		15500 * time.Millisecond, 25500 * time.Millisecond, 35500 * time.Millisecond}
	if diff := cmp.Diff(want, tries); diff != "" {
		t.Fatalf("promotion tries after the first, (-want +got):\n%s", diff)
	}
	r.c.Group.Steps = r.c.Group.Steps[:2] // the failing step is mended
	r.at(50 * time.Second)
	if !r.c.Primary() {
		t.Fatal("no promotion once the step works again")
	}
	if n, _ := r.c.decider.backoff(); n != 0 {
		t.Errorf("failures %d after a promotion", n)
	}
}

func TestControllerIsolatedPrimaryWaitsQuorumGrace(t *testing.T) {
	r := newRig(t, "")
	r.link.local.Role, r.link.local.PeerRole = drbd.RolePrimary, drbd.RoleSecondary
	r.cluster.peer.Role = drbd.RoleSecondary
	r.at(0) // adopts the DRBD primary role: the group starts
	r.journal = nil
	r.cluster.peer.Member, r.cluster.peer.Since = MemberFailed, t0.Add(time.Second)
	r.cluster.witness.Member = MemberFailed
	r.link.local.Conn, r.link.local.PeerRole = drbd.ConnWFConnection, drbd.RoleUnknown
	r.at(time.Second)
	r.at(time.Second + QuorumGrace - 100*time.Millisecond)
	if len(r.journal) != 0 {
		t.Fatalf("demoted within QuorumGrace: %v", r.journal)
	}
	r.at(time.Second + QuorumGrace)
	want := []string{"stop vip", "stop target", "stop drbd"}
	if diff := cmp.Diff(want, r.journal); diff != "" {
		t.Fatalf("isolated primary (-want +got):\n%s", diff)
	}
	if r.c.Primary() {
		t.Error("still primary after demoting")
	}
}

func TestControllerReturningBoxWaitsForGossip(t *testing.T) {
	r := newRig(t, "")
	// Cut off: peer and witness both failed, no quorum.
	r.cluster.peer.Member, r.cluster.peer.Since = MemberFailed, t0
	r.cluster.peer.Role = drbd.RolePrimary
	r.cluster.witness.Member = MemberFailed
	r.link.local.Conn, r.link.local.PeerRole, r.link.local.PeerDisk = drbd.ConnWFConnection, drbd.RoleUnknown, drbd.DiskDUnknown
	r.at(0)
	r.at(5 * time.Second)
	// The witness comes back first; the peer's "alive" is still on its way.
	r.cluster.witness.Member = MemberAlive
	r.at(10 * time.Second)
	r.at(10*time.Second + RejoinGrace + r.c.Policy.Settle - 100*time.Millisecond)
	if len(r.journal) != 0 {
		t.Fatalf("promoted %v after regaining quorum, before the peer's return could be gossiped: %v",
			RejoinGrace+r.c.Policy.Settle-100*time.Millisecond, r.journal)
	}
	// Still no word from the peer: it really is gone.
	r.at(10*time.Second + RejoinGrace + r.c.Policy.Settle)
	if !r.c.Primary() {
		t.Fatalf("not primary once the rejoin grace passed: %v (%s)", r.journal, r.c.Status().Reason)
	}
}

// The timings that keep two boxes from serving at once: the other box
// promotes Settle after it declared the primary failed; the isolated
// primary may declare its second member failed one probe round later,
// then confirms for QuorumGrace, then stops (up to 150 ms in the VM lab).
func TestSettleCoversTheIsolatedPrimary(t *testing.T) {
	const stop = 150 * time.Millisecond
	worst := 2*ProbeInterval + QuorumGrace + stop
	if s := DefaultPolicy().Settle; s < worst+250*time.Millisecond {
		t.Fatalf("Settle %v leaves %v of margin over the isolated primary's worst way down (%v), want at least 250ms", s, s-worst, worst)
	}
}

// A promotion after the peer let go in order runs its steps marked as a
// hand-over (the pool step then skips the metadata check); one past a
// dead peer does not (TestControllerForcesDisconnectOnlyPastADeadPeer).
func TestControllerMarksAHandOver(t *testing.T) {
	r := newRig(t, "")
	r.cluster.peer.Intent = IntentSwitchover
	r.at(0)
	if len(r.journal) != 0 {
		t.Fatalf("promoted while DRBD still shows the peer primary: %v", r.journal)
	}
	r.link.local.PeerRole = drbd.RoleSecondary // san1 demoted
	r.at(100 * time.Millisecond)
	want := []string{"start drbd (hand-over)", "start target (hand-over)", "start vip (hand-over)"}
	if diff := cmp.Diff(want, r.journal); diff != "" {
		t.Errorf("hand-over promotion (-want +got):\n%s", diff)
	}
}

// A demotion that stops half way leaves a box that no longer serves in
// full: if the peer is then no longer ready (the switchover cannot go on),
// the box starts its group again instead of claiming a role it does not
// serve (seen in the VM lab with 31 LUNs: no box held the VIP).
func TestControllerFailedDemotionServesAgain(t *testing.T) {
	r := newRig(t, "")
	r.link.local.Role, r.link.local.PeerRole = drbd.RolePrimary, drbd.RoleSecondary
	r.cluster.peer.Role = drbd.RoleSecondary
	r.at(0) // adopts the DRBD primary role: the group starts
	r.c.SetIntent(IntentSwitchover)
	r.failStop = "target"
	r.journal = nil
	r.at(100 * time.Millisecond)
	if diff := cmp.Diff([]string{"stop vip", "stop target"}, r.journal); diff != "" {
		t.Fatalf("failed demotion (-want +got):\n%s", diff)
	}
	if r.c.Primary() {
		t.Error("a box whose group stopped half way still counts as primary")
	}
	// The peer is no longer ready to take over (its disk was outdated).
	r.failStop = ""
	r.link.local.PeerDisk = drbd.DiskOutdated
	r.journal = nil
	r.at(200 * time.Millisecond)
	want := []string{"start drbd", "start target", "start vip"}
	if diff := cmp.Diff(want, r.journal); diff != "" {
		t.Fatalf("after the failed demotion (-want +got):\n%s", diff)
	}
	if !r.c.Primary() {
		t.Error("not primary after starting the group again")
	}
}

// A secondary whose primary peer hands over decides every HandOverTick
// until DRBD shows the peer Secondary, and at the normal tick otherwise:
// before the hand-over, once it took the role, and when the peer stays in
// standby without this box taking over.
func TestControllerWatchesAHandOverClosely(t *testing.T) {
	r := newRig(t, "")
	if d := r.at(0); d.Next != 0 {
		t.Errorf("no hand-over: next step in %v, want the tick", d.Next)
	}
	r.cluster.peer.Intent = IntentSwitchover
	if d := r.at(time.Second); d.Next != HandOverTick {
		t.Errorf("peer handing over, still primary: next step in %v, want %v", d.Next, HandOverTick)
	}
	r.link.local.PeerRole = drbd.RoleSecondary
	if d := r.at(time.Second + HandOverTick); d.Action != Promote || !r.c.Primary() {
		t.Fatalf("did not take over from a peer that demoted: %v (%s)", r.journal, d.Reason)
	}
	if d := r.at(time.Second + 2*HandOverTick); d.Next != 0 {
		t.Errorf("primary after the hand-over: next step in %v, want the tick", d.Next)
	}

	// A peer in standby that demoted while this box cannot promote (its
	// disk is not UpToDate) is not watched closely for hours.
	r = newRig(t, "")
	r.cluster.peer.Intent, r.cluster.peer.Role = IntentStandby, drbd.RoleSecondary
	r.link.local.PeerRole, r.link.local.Disk = drbd.RoleSecondary, drbd.DiskInconsistent
	if d := r.at(0); r.c.Primary() || d.Next != 0 {
		t.Fatalf("peer in standby, already secondary, this disk Inconsistent: primary %v, next step in %v, want secondary at the tick", r.c.Primary(), d.Next)
	}
}
