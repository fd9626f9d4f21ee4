package failover

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sand-appliance/sand/drbd"
)

// t0 is the fake clock's origin; every scenario sets Now from it.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

var (
	allRoles = []drbd.Role{drbd.RoleUnknown, drbd.RolePrimary, drbd.RoleSecondary}
	// The decision reads the local disk only as UpToDate or not: one
	// disk of each kind of "not" (none, resyncing, stale) and UpToDate.
	localDisks = []drbd.DiskState{drbd.DiskDiskless, drbd.DiskInconsistent, drbd.DiskOutdated, drbd.DiskUpToDate}
	// One connection state per class the decision distinguishes: down,
	// waiting, handshake, connected, resyncing (both directions).
	someConns = []drbd.ConnState{
		drbd.ConnStandAlone, drbd.ConnWFConnection, drbd.ConnWFReportParams,
		drbd.ConnConnected, drbd.ConnSyncTarget,
	}
	allMembers = []MemberStatus{MemberUnknown, MemberAlive, MemberLeaving, MemberLeft, MemberFailed}
	allIntents = []Intent{IntentNone, IntentStandby, IntentSwitchover}
	// The peer's advertised disk: no rule reads it, the mirror does (it
	// is the peer's own disk there).
	peerDisks = []drbd.DiskState{drbd.DiskOutdated, drbd.DiskUpToDate}
	// Tie-breakers: a witness (up or down; ping targets are then ignored)
	// or, without one, no ping targets, none answering, one answering.
	tieBreakers = []struct {
		w Witness
		p Ping
	}{
		{Witness{Configured: true, Name: "dom0", Member: MemberAlive}, Ping{}},
		{Witness{Configured: true, Name: "dom0", Member: MemberFailed}, Ping{}},
		{Witness{}, Ping{}},
		{Witness{}, Ping{Targets: 2, Reachable: 0}},
		{Witness{}, Ping{Targets: 2, Reachable: 1}},
	}
	// How long ago the peer's status changed (t0), and whether it came
	// back from a failure shortly before that: settle not passed, passed,
	// passed after a flap (late enough that a decider's R1 can move the
	// failure out of FlapWindow), FlapSettle passed after a flap.
	timelines = []struct {
		elapsed  time.Duration
		returned time.Time
	}{
		{0, time.Time{}},
		{2 * time.Second, time.Time{}},
		{9 * time.Second, t0.Add(-3 * time.Second)},
		{11 * time.Second, t0.Add(-3 * time.Second)},
	}
)

// space is the values an exhaustive test gives the dimensions that differ
// between the tests.
type space struct {
	disks []drbd.DiskState // local disk
	// The peer's advertised role, disk and intent.
	peerRoles   []drbd.Role
	peerDisks   []drbd.DiskState
	peerIntents []Intent
}

// forEachInput calls f with every combination of the decision's inputs,
// for one local role: local disk × connection × DRBD's view of the peer
// (role, disk) × split brain × peer membership × peer's advertised role,
// disk and intent × witness or ping targets × intent × generation order ×
// timeline (settle elapsed or not, after a flap or not). f gets the same
// variable each time, changed; it must copy what it keeps. It returns the
// number of combinations.
func forEachInput(role drbd.Role, sp space, f func(*Input)) int {
	n := 0
	in := Input{Policy: DefaultPolicy()}
	in.Local = Local{Name: "san1", Role: role, Generation: 5}
	in.Peer = Peer{Name: "san2", Since: t0}
	for _, in.Local.Disk = range sp.disks {
		for _, in.Local.Conn = range someConns {
			for _, in.Local.PeerRole = range allRoles {
				for _, in.Local.PeerDisk = range []drbd.DiskState{drbd.DiskDUnknown, drbd.DiskUpToDate} {
					for _, in.Local.SplitBrain = range []bool{false, true} {
						for _, in.Peer.Member = range allMembers {
							for _, in.Peer.Role = range sp.peerRoles {
								for _, in.Peer.Disk = range sp.peerDisks {
									for _, in.Peer.Intent = range sp.peerIntents {
										for _, tb := range tieBreakers {
											in.Witness, in.Ping = tb.w, tb.p
											for _, in.Intent = range allIntents {
												for _, in.Peer.Generation = range []uint64{4, 5, 6} { // peer older, equal, newer
													for _, tl := range timelines {
														in.Now, in.Peer.Returned = t0.Add(tl.elapsed), tl.returned
														n++
														f(&in)
													}
												}
											}
										}
									}
								}
							}
						}
					}
				}
			}
		}
	}
	return n
}

// mirror is the same situation seen from the peer, for the inputs where
// both boxes see each other (serf alive, DRBD connected).
func mirror(in *Input) Input {
	out := *in
	out.Local = Local{
		Name: in.Peer.Name, Role: in.Peer.Role, Disk: in.Peer.Disk, Conn: in.Local.Conn,
		PeerRole: in.Local.Role, PeerDisk: in.Local.Disk, SplitBrain: in.Local.SplitBrain, Generation: in.Peer.Generation,
	}
	out.Peer = Peer{
		Name: in.Local.Name, Member: in.Peer.Member, Since: in.Peer.Since, Role: in.Local.Role,
		Disk: in.Local.Disk, Intent: in.Intent, Generation: in.Local.Generation,
	}
	out.Intent = in.Peer.Intent
	return out
}

// coreRules are the rules of Decide, in the order of the table in doc.go.
var coreRules = []string{
	ruleP1, ruleP2, ruleP3, ruleP4,
	ruleS1, ruleS2, ruleS3, ruleS4, ruleS4q, ruleS5, ruleS6, ruleS7, ruleS7s, ruleS7p, ruleS7f, ruleS7u,
	ruleS8p, ruleS8c, ruleS8, ruleS9, ruleS9t, ruleU1,
}

// explained tallies the rules an exhaustive test reached, and checks the
// reason of the first decision of each kind it sees (writing every reason
// would cost more than the choice itself).
type explained struct {
	kinds map[explainKey]int
	// runs holds, per slot (the caller's choice: one per decider memory,
	// say), the kind of the last decision and how many in a row were of
	// that kind: neighbours in the enumeration are mostly decided alike,
	// and comparing is cheaper than hashing.
	runs []run
}

type run struct {
	last explainKey
	n    int
}

type explainKey struct {
	rule, inner           string
	action                Action
	force, handOver, done bool
	next                  time.Duration
}

func newExplained(slots int) *explained {
	return &explained{kinds: map[explainKey]int{}, runs: make([]run, slots)}
}

// check reports a reason that is empty or fell through explain's rules.
func (e *explained) check(t *testing.T, slot int, d Decision, inner string, reason func() string) {
	k := explainKey{d.Rule, inner, d.Action, d.ForceDisconnect, d.HandOver, d.IntentDone, d.Next}
	r := &e.runs[slot]
	if k == r.last {
		r.n++
		return
	}
	e.flush(r)
	r.last, r.n = k, 1
	if _, ok := e.kinds[k]; ok {
		return
	}
	e.kinds[k] = 0
	if r := reason(); r == "" || strings.Contains(r, "by rule") {
		t.Errorf("decision %+v has no reason of its own: %q", k, r)
	}
}

func (e *explained) flush(r *run) {
	if r.n > 0 {
		e.kinds[r.last] += r.n
	}
	r.n = 0
}

// rules counts the decisions per rule.
func (e *explained) rules() map[string]int {
	for i := range e.runs {
		e.flush(&e.runs[i])
	}
	m := map[string]int{}
	for k, n := range e.kinds {
		m[k.rule] += n
	}
	return m
}

// reached fails for a rule no combination reached: a rule the table
// lists and no input can trigger is dead, or the enumeration misses it.
func (e *explained) reached(t *testing.T, rules []string) map[string]int {
	got := e.rules()
	for _, r := range rules {
		if got[r] == 0 {
			t.Errorf("rule %s: no combination reached it", r)
		}
	}
	for r := range got {
		if !slices.Contains(rules, r) {
			t.Errorf("rule %q decided but is not in the table", r)
		}
	}
	return got
}

func TestDecideInvariants(t *testing.T) {
	t.Parallel()
	var counts [3]int
	checked, n := 0, 0
	seen := newExplained(1)
	for _, role := range allRoles {
		n += forEachInput(role, space{localDisks, allRoles, peerDisks, allIntents}, func(in *Input) {
			d := decide(in)
			counts[d.Action]++
			seen.check(t, 0, d, "", func() string { return explain(in, d) })
			fail := func(rule string) {
				checked++
				if checked < 20 {
					t.Errorf("%s violated: %+v -> %v by %s (%s)", rule, *in, d.Action, d.Rule, explain(in, d))
				}
			}
			q := hasQuorum(in)
			if d.Quorum != q {
				fail("Decision.Quorum reports the quorum view")
			}
			if d.NeedsAdmin != in.Local.SplitBrain {
				fail("a split brain always needs the admin, nothing else does")
			}
			if d.Next != 0 {
				fail("Decide has no opinion on the next step")
			}
			if d.Action == Promote {
				switch {
				case !q:
					fail("never promote without quorum")
				case in.Local.Disk != drbd.DiskUpToDate:
					fail("only an UpToDate disk promotes")
				case in.Intent != IntentNone:
					fail("never promote in standby or during this box's switchover")
				case in.Local.SplitBrain:
					fail("a split brain never leads to promote")
				case in.Local.Role != drbd.RoleSecondary:
					fail("only a secondary promotes")
				case in.Local.Conn.Connected() && in.Local.PeerRole == drbd.RolePrimary && !in.Peer.Member.gone():
					fail("never promote while DRBD shows a primary peer that serf has not decided gone")
				case in.Witness.Configured && in.Peer.Member.gone() &&
					d.ForceDisconnect != (in.Local.Conn.Connected() && in.Local.PeerRole != drbd.RoleSecondary):
					fail("with a witness, a promotion past a dead peer forces the disconnect exactly when DRBD is still connected and does not show it Secondary")
				case d.ForceDisconnect && in.flapping() && in.Now.Sub(in.Peer.Since) < in.Policy.FlapSettle:
					fail("never force the disconnect from a flapping peer before FlapSettle")
				case !in.Witness.Configured && in.Peer.Member.gone() && in.Local.Conn.Connected() && in.Local.PeerRole != drbd.RoleSecondary:
					fail("without a witness, never promote past a peer that DRBD still sees connected and not Secondary (a cut gossip path)")
				case in.Peer.Member.up() && in.Peer.Role == drbd.RolePrimary &&
					!(in.Peer.Intent != IntentNone && in.Local.Conn == drbd.ConnConnected && in.Local.PeerRole == drbd.RoleSecondary):
					fail("never promote while a live peer advertises primary (no failback), unless it hands over and DRBD shows it demoted")
				case in.Peer.Generation > in.Local.Generation:
					fail("never promote a registry older than the peer's")
				case in.Peer.Member == MemberUnknown:
					fail("never promote against a peer never seen")
				case in.Peer.Member.gone() && in.Now.Sub(in.Peer.Since) < in.Policy.Settle:
					fail("never promote before the settle time")
				case in.Peer.Member.up() && in.Local.Conn != drbd.ConnConnected:
					fail("with a live peer, promote only when DRBD is connected and in sync")
				}
			}
			if d.ForceDisconnect && (d.Action != Promote || !in.Peer.Member.gone() || !q || !in.Witness.Configured) {
				fail("force a disconnect only to promote past a peer decided gone with quorum, the witness's")
			}
			if d.HandOver && (d.Action != Promote || !in.Peer.Intent.handingOver() || !in.Peer.Member.up() || in.Local.Conn != drbd.ConnConnected) {
				fail("a hand-over promotion only past a live, connected peer that let go in order")
			}
			if d.Action == Demote && in.Local.Role != drbd.RolePrimary {
				fail("only a primary demotes")
			}
			if in.Local.Role == drbd.RolePrimary && !q && d.Action != Demote {
				fail("an isolated primary always demotes")
			}
			if in.Local.Role != drbd.RolePrimary && in.Local.Role != drbd.RoleSecondary && d.Action != Stay {
				fail("a resource that is not up stays")
			}
			// Both boxes alive and connected: after both decide, at most one is
			// (or becomes) primary.
			if in.Peer.Member == MemberAlive && in.Local.Conn == drbd.ConnConnected &&
				in.Local.PeerRole == in.Peer.Role && in.Local.PeerDisk == in.Peer.Disk &&
				(in.Witness.Configured || in.Ping.Targets == 0) {
				m := mirror(in)
				dm := decide(&m)
				primaryAfter := func(role drbd.Role, a Action) bool {
					return a == Promote || (role == drbd.RolePrimary && a != Demote)
				}
				if primaryAfter(in.Local.Role, d.Action) && primaryAfter(m.Local.Role, dm.Action) {
					fail("never two primaries when both are alive and connected")
				}
			}
		})
	}
	if checked > 0 {
		t.Fatalf("%d invariant violations over %d combinations", checked, n)
	}
	t.Logf("decision table: %d combinations, every invariant held; stay %d, promote %d, demote %d; by rule %v",
		n, counts[Stay], counts[Promote], counts[Demote], seen.reached(t, coreRules))
}

func TestDecideScenarios(t *testing.T) {
	connected := Local{Name: "san2", Role: drbd.RoleSecondary, Disk: drbd.DiskUpToDate, Conn: drbd.ConnConnected,
		PeerRole: drbd.RolePrimary, PeerDisk: drbd.DiskUpToDate, Generation: 7}
	lost := connected
	lost.Conn, lost.PeerRole, lost.PeerDisk = drbd.ConnWFConnection, drbd.RoleUnknown, drbd.DiskDUnknown
	primary := Local{Name: "san1", Role: drbd.RolePrimary, Disk: drbd.DiskUpToDate, Conn: drbd.ConnConnected,
		PeerRole: drbd.RoleSecondary, PeerDisk: drbd.DiskUpToDate, Generation: 7}
	isolated := primary
	isolated.Conn, isolated.PeerRole, isolated.PeerDisk = drbd.ConnWFConnection, drbd.RoleUnknown, drbd.DiskDUnknown
	peer := func(name string, m MemberStatus, ago time.Duration, role drbd.Role, intent Intent) Peer {
		return Peer{Name: name, Member: m, Since: t0.Add(-ago), Role: role, Disk: drbd.DiskUpToDate, Intent: intent, Generation: 7}
	}
	witness := func(m MemberStatus) Witness { return Witness{Configured: true, Name: "dom0", Member: m} }
	with := func(l Local, f func(*Local)) Local { f(&l); return l }
	withPeer := func(p Peer, f func(*Peer)) Peer { f(&p); return p }

	tests := []struct {
		name   string
		in     Input
		want   Action
		rule   string
		reason string
		admin  bool
		done   bool
		force  bool
		handed bool
	}{
		{
			name:   "primary killed, witness agrees: promote",
			in:     Input{Local: lost, Peer: peer("san1", MemberFailed, 1500*time.Millisecond, drbd.RolePrimary, IntentNone), Witness: witness(MemberAlive)},
			want:   Promote,
			rule:   "S7",
			reason: "peer san1 failed 1.5s ago, peer failed, witness alive, disk UpToDate: promote",
		},
		{
			name:   "primary killed, still settling",
			in:     Input{Local: lost, Peer: peer("san1", MemberFailed, 300*time.Millisecond, drbd.RolePrimary, IntentNone), Witness: witness(MemberAlive)},
			want:   Stay,
			rule:   "S7",
			reason: "peer san1 failed 300ms ago, settling for 1s",
		},
		{
			name:   "link cut and witness gone: no quorum, no promote",
			in:     Input{Local: lost, Peer: peer("san1", MemberFailed, 5*time.Second, drbd.RolePrimary, IntentNone), Witness: witness(MemberFailed)},
			want:   Stay,
			rule:   "S4q",
			reason: "no quorum (peer failed, witness failed): never promote",
		},
		{
			name:   "isolated primary demotes",
			in:     Input{Local: isolated, Peer: peer("san2", MemberFailed, time.Second, drbd.RoleSecondary, IntentNone), Witness: witness(MemberFailed)},
			want:   Demote,
			rule:   "P1",
			reason: "lost quorum (peer failed, witness failed): isolated primary demotes",
		},
		{
			name:   "primary loses peer but keeps witness: stays",
			in:     Input{Local: isolated, Peer: peer("san2", MemberFailed, time.Second, drbd.RoleSecondary, IntentNone), Witness: witness(MemberAlive)},
			want:   Stay,
			rule:   "P4",
			reason: "primary, quorum held (peer failed, witness alive)",
		},
		{
			name:   "no witness, gossip cut but DRBD still sees a primary peer: stay",
			in:     Input{Local: connected, Peer: peer("san1", MemberFailed, 5*time.Second, drbd.RolePrimary, IntentNone), Ping: Ping{Targets: 1, Reachable: 1}},
			want:   Stay,
			rule:   "S7p",
			reason: "peer san1 failed 5s ago but DRBD is still Connected to it (peer Primary) and no witness confirms its death: wait for DRBD to lose it",
		},
		{
			name:   "no witness, the isolated primary stood down, DRBD still connected: promote without forcing",
			in:     Input{Local: with(connected, func(l *Local) { l.PeerRole = drbd.RoleSecondary }), Peer: peer("san1", MemberFailed, 5*time.Second, drbd.RolePrimary, IntentNone), Ping: Ping{Targets: 1, Reachable: 1}},
			want:   Promote,
			rule:   "S7s",
			reason: "peer san1 failed 5s ago, peer failed, ping 1/1, disk UpToDate, DRBD connected to it as Secondary (it stood down): promote",
		},
		{
			name:   "no witness, gateway unreachable: isolated primary demotes",
			in:     Input{Local: isolated, Peer: peer("san2", MemberFailed, time.Second, drbd.RoleSecondary, IntentNone), Ping: Ping{Targets: 1}},
			want:   Demote,
			rule:   "P1",
			reason: "lost quorum (peer failed, ping 0/1): isolated primary demotes",
		},
		{
			name:   "no witness, gateway reachable: secondary promotes (pingd rule)",
			in:     Input{Local: lost, Peer: peer("san1", MemberFailed, 2*time.Second, drbd.RolePrimary, IntentNone), Ping: Ping{Targets: 1, Reachable: 1}},
			want:   Promote,
			rule:   "S7",
			reason: "peer san1 failed 2s ago, peer failed, ping 1/1, disk UpToDate: promote",
		},
		{
			name:   "serf says failed with quorum, DRBD still connected to a primary: force the disconnect and promote",
			in:     Input{Local: connected, Peer: peer("san1", MemberFailed, 2*time.Second, drbd.RolePrimary, IntentNone), Witness: witness(MemberAlive)},
			want:   Promote,
			rule:   "S7",
			force:  true,
			reason: "peer san1 failed 2s ago, peer failed, witness alive, disk UpToDate, DRBD still Connected to it: force the disconnect and promote",
		},
		{
			name: "flapping primary (back 2s before failing again), DRBD still connected: starved, do not force yet",
			in: Input{Local: connected, Peer: withPeer(peer("san1", MemberFailed, 2*time.Second, drbd.RolePrimary, IntentSwitchover), func(p *Peer) { p.Returned = p.Since.Add(-2 * time.Second) }),
				Witness: witness(MemberAlive)},
			want:   Stay,
			rule:   "S7f",
			reason: "peer san1 failed 2s ago but came back 2s before that: starved, not dead, while DRBD is still Connected to it; forcing the disconnect waits for 10s",
		},
		{
			name: "flapping primary failed for FlapSettle, DRBD still connected: force the disconnect",
			in: Input{Local: connected, Peer: withPeer(peer("san1", MemberFailed, 10*time.Second, drbd.RolePrimary, IntentNone), func(p *Peer) { p.Returned = p.Since.Add(-2 * time.Second) }),
				Witness: witness(MemberAlive)},
			want:   Promote,
			rule:   "S7",
			force:  true,
			reason: "peer san1 failed 10s ago, peer failed, witness alive, disk UpToDate, DRBD still Connected to it: force the disconnect and promote",
		},
		{
			name: "peer came back long before failing again: not flapping, force after settle",
			in: Input{Local: connected, Peer: withPeer(peer("san1", MemberFailed, 2*time.Second, drbd.RolePrimary, IntentNone), func(p *Peer) { p.Returned = p.Since.Add(-time.Minute) }),
				Witness: witness(MemberAlive)},
			want:   Promote,
			rule:   "S7",
			force:  true,
			reason: "peer san1 failed 2s ago, peer failed, witness alive, disk UpToDate, DRBD still Connected to it: force the disconnect and promote",
		},
		{
			name:   "flapping peer that DRBD shows Secondary stood down: promote without forcing",
			in:     Input{Local: with(connected, func(l *Local) { l.PeerRole = drbd.RoleSecondary }), Peer: withPeer(peer("san1", MemberFailed, 2*time.Second, drbd.RolePrimary, IntentSwitchover), func(p *Peer) { p.Returned = p.Since.Add(-time.Second) }), Witness: witness(MemberAlive)},
			want:   Promote,
			rule:   "S7s",
			reason: "peer san1 failed 2s ago, peer failed, witness alive, disk UpToDate, DRBD connected to it as Secondary (it stood down): promote",
		},
		{
			name:   "serf says failed, DRBD still connected, still settling: never force yet",
			in:     Input{Local: connected, Peer: peer("san1", MemberFailed, 500*time.Millisecond, drbd.RolePrimary, IntentNone), Witness: witness(MemberAlive)},
			want:   Stay,
			rule:   "S7",
			reason: "peer san1 failed 500ms ago, settling for 1s",
		},
		{
			name:   "serf says failed, DRBD still connected, no quorum: never force",
			in:     Input{Local: connected, Peer: peer("san1", MemberFailed, 5*time.Second, drbd.RolePrimary, IntentNone), Witness: witness(MemberFailed)},
			want:   Stay,
			rule:   "S4q",
			reason: "no quorum (peer failed, witness failed): never promote",
		},
		{
			name:   "outdated disk never promotes",
			in:     Input{Local: with(lost, func(l *Local) { l.Disk = drbd.DiskOutdated }), Peer: peer("san1", MemberFailed, 2*time.Second, drbd.RolePrimary, IntentNone), Witness: witness(MemberAlive)},
			want:   Stay,
			rule:   "S4",
			reason: "local disk Outdated: only an UpToDate disk may promote",
		},
		{
			name:   "returning box stays secondary: no failback",
			in:     Input{Local: with(connected, func(l *Local) { l.Conn = drbd.ConnSyncTarget; l.Disk = drbd.DiskInconsistent }), Peer: peer("san1", MemberAlive, time.Second, drbd.RolePrimary, IntentNone), Witness: witness(MemberAlive)},
			want:   Stay,
			rule:   "S4",
			reason: "local disk Inconsistent: only an UpToDate disk may promote",
		},
		{
			name:   "synced returning box still stays secondary",
			in:     Input{Local: connected, Peer: peer("san1", MemberAlive, time.Second, drbd.RolePrimary, IntentNone), Witness: witness(MemberAlive)},
			want:   Stay,
			rule:   "S5",
			reason: "peer san1 is primary: stay secondary (no failback)",
		},
		{
			name:   "switchover: primary demotes once the peer is ready",
			in:     Input{Local: primary, Peer: peer("san2", MemberAlive, time.Minute, drbd.RoleSecondary, IntentNone), Intent: IntentSwitchover},
			want:   Demote,
			rule:   "P3",
			reason: "intent switchover and peer san2 is ready (UpToDate, connected): demote so it takes over",
		},
		{
			name:   "switchover: peer promotes once the old primary advertises secondary",
			in:     Input{Local: with(connected, func(l *Local) { l.PeerRole = drbd.RoleSecondary }), Peer: peer("san1", MemberAlive, time.Minute, drbd.RoleSecondary, IntentSwitchover)},
			want:   Promote,
			rule:   "S8",
			reason: "peer san1 hands over (intent switchover) and is secondary, disk UpToDate, connected: promote",
			handed: true,
		},
		{
			name:   "switchover: peer promotes once DRBD shows the old primary demoted, before its tag follows",
			in:     Input{Local: with(connected, func(l *Local) { l.PeerRole = drbd.RoleSecondary }), Peer: peer("san1", MemberAlive, time.Minute, drbd.RolePrimary, IntentSwitchover)},
			want:   Promote,
			rule:   "S8",
			reason: "peer san1 hands over (intent switchover) and is secondary, disk UpToDate, connected: promote",
			handed: true,
		},
		{
			name:   "switchover: peer waits while DRBD still shows the old primary primary",
			in:     Input{Local: connected, Peer: peer("san1", MemberAlive, time.Minute, drbd.RolePrimary, IntentSwitchover)},
			want:   Stay,
			rule:   "S5",
			reason: "peer san1 is primary: stay secondary (no failback)",
		},
		{
			name:   "switchover without DRBD's view (shared disk): peer waits for the tag",
			in:     Input{Local: with(connected, func(l *Local) { l.PeerRole = drbd.RoleUnknown }), Peer: peer("san1", MemberAlive, time.Minute, drbd.RolePrimary, IntentSwitchover)},
			want:   Stay,
			rule:   "S8p",
			reason: "peer san1 advertises primary: stay secondary (no failback)",
		},
		{
			name:   "switchover done on the old primary: clear the intent",
			in:     Input{Local: with(connected, func(l *Local) { l.Name = "san1" }), Peer: peer("san2", MemberAlive, time.Minute, drbd.RolePrimary, IntentNone), Intent: IntentSwitchover},
			want:   Stay,
			rule:   "S2",
			reason: "switchover done: peer san2 is primary",
			done:   true,
		},
		{
			name:   "standby primary keeps serving while the peer resyncs",
			in:     Input{Local: with(primary, func(l *Local) { l.Conn = drbd.ConnSyncSource; l.PeerDisk = drbd.DiskInconsistent }), Peer: peer("san2", MemberAlive, time.Minute, drbd.RoleSecondary, IntentNone), Intent: IntentStandby},
			want:   Stay,
			rule:   "P3",
			reason: "intent standby, but peer san2 is not ready to take over (member alive, disk Inconsistent, intent none, connection SyncSource): keep serving",
		},
		{
			name:   "standby secondary never promotes",
			in:     Input{Local: lost, Peer: peer("san1", MemberFailed, time.Minute, drbd.RolePrimary, IntentNone), Witness: witness(MemberAlive), Intent: IntentStandby},
			want:   Stay,
			rule:   "S3",
			reason: "standby: this box never promotes",
		},
		{
			name:   "split brain on a secondary: frozen, reported",
			in:     Input{Local: with(lost, func(l *Local) { l.SplitBrain = true; l.Conn = drbd.ConnStandAlone }), Peer: peer("san1", MemberAlive, time.Minute, drbd.RolePrimary, IntentNone), Witness: witness(MemberAlive)},
			want:   Stay,
			rule:   "S1",
			reason: "split brain reported by DRBD, needs the admin: secondary, never promotes on a split brain",
			admin:  true,
		},
		{
			name:   "split brain, both primary and alive: the tie-break loser demotes, data left to the admin",
			in:     Input{Local: with(isolated, func(l *Local) { l.SplitBrain = true; l.Conn = drbd.ConnStandAlone; l.Name = "san2" }), Peer: peer("san1", MemberAlive, time.Minute, drbd.RolePrimary, IntentNone), Witness: witness(MemberAlive)},
			want:   Demote,
			rule:   "P2",
			reason: "split brain reported by DRBD, needs the admin: peer san1 is also primary and keeps the role (generation 7 vs 7, name order): demote",
			admin:  true,
		},
		{
			name:   "peer failed advertising a newer registry: never promote an older one",
			in:     Input{Local: with(lost, func(l *Local) { l.Generation = 6 }), Peer: peer("san1", MemberFailed, time.Minute, drbd.RolePrimary, IntentNone), Witness: witness(MemberAlive)},
			want:   Stay,
			rule:   "S6",
			reason: "peer san1 advertised registry generation 7, this box holds 6: never promote an older registry",
		},
		{
			name:   "both boot secondary and connected: the lower name starts",
			in:     Input{Local: with(connected, func(l *Local) { l.Name = "san1"; l.PeerRole = drbd.RoleSecondary }), Peer: peer("san2", MemberAlive, time.Minute, drbd.RoleSecondary, IntentNone)},
			want:   Promote,
			rule:   "S9t",
			reason: "no primary; both UpToDate, this box's name sorts before san2: promote",
		},
		{
			name:   "both boot secondary and connected: the higher name waits",
			in:     Input{Local: with(connected, func(l *Local) { l.PeerRole = drbd.RoleSecondary }), Peer: peer("san1", MemberAlive, time.Minute, drbd.RoleSecondary, IntentNone)},
			want:   Stay,
			rule:   "S9t",
			reason: "no primary; both UpToDate, peer san1's name sorts first: wait for it",
		},
		{
			name:   "peer never seen: wait",
			in:     Input{Local: lost, Peer: Peer{Name: "san1"}, Witness: witness(MemberAlive)},
			want:   Stay,
			rule:   "S7u",
			reason: "peer san1 never seen: wait for it (or the admin)",
		},
		{
			name:   "graceful leave of the old primary: promote after settle",
			in:     Input{Local: lost, Peer: peer("san1", MemberLeft, 1100*time.Millisecond, drbd.RoleSecondary, IntentNone), Witness: witness(MemberAlive)},
			want:   Promote,
			rule:   "S7",
			reason: "peer san1 left 1.1s ago, peer left, witness alive, disk UpToDate: promote",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Now = t0
			tc.in.Policy = DefaultPolicy()
			tc.in.Policy.Settle = time.Second // the reasons below are written for 1 s
			got := Decide(tc.in)
			want := Decision{Action: tc.want, Rule: tc.rule, Reason: tc.reason, Quorum: HasQuorum(tc.in), NeedsAdmin: tc.admin, IntentDone: tc.done, ForceDisconnect: tc.force, HandOver: tc.handed}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Decide (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHasQuorum(t *testing.T) {
	tests := []struct {
		name    string
		peer    MemberStatus
		witness Witness
		ping    Ping
		want    bool
	}{
		{"peer up, no witness", MemberAlive, Witness{}, Ping{}, true},
		{"alone, no witness, no ping targets", MemberFailed, Witness{}, Ping{}, false},
		{"alone, gateway answers", MemberFailed, Witness{}, Ping{Targets: 2, Reachable: 1}, true},
		{"alone, gateway silent", MemberFailed, Witness{}, Ping{Targets: 2}, false},
		{"self + witness", MemberFailed, Witness{Configured: true, Member: MemberAlive}, Ping{}, true},
		{"self + peer, witness down", MemberLeaving, Witness{Configured: true, Member: MemberFailed}, Ping{}, true},
		{"alone with a witness configured: ping does not count", MemberLeft, Witness{Configured: true, Member: MemberUnknown}, Ping{Targets: 1, Reachable: 1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := HasQuorum(Input{Peer: Peer{Member: tc.peer}, Witness: tc.witness, Ping: tc.ping}); got != tc.want {
				t.Errorf("HasQuorum = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestTagsRoundTrip(t *testing.T) {
	for _, in := range []Tags{
		{Role: drbd.RolePrimary, Disk: drbd.DiskUpToDate, Generation: 42, Intent: IntentSwitchover},
		{Role: drbd.RoleSecondary, Disk: drbd.DiskInconsistent, Intent: IntentStandby},
		{Witness: true},
	} {
		got, err := ParseTags(in.Map())
		if err != nil {
			t.Fatalf("ParseTags(%v): %v", in.Map(), err)
		}
		if diff := cmp.Diff(in, got); diff != "" {
			t.Errorf("round trip (-want +got):\n%s", diff)
		}
	}
	if _, err := ParseTags(map[string]string{TagRole: "Boss"}); err == nil || !strings.Contains(err.Error(), "tag role") {
		t.Errorf("ParseTags of a bad role: err = %v, want one naming the tag", err)
	}
}
