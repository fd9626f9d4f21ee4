package failover

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sand-appliance/sand/drbd"
)

// A decider's memory at the start of a step, relative to the step's Now:
// what it knows of quorum, and of failed promotions. The times sit on
// either side of the grace periods' edges.
var (
	quorumMemories = []struct {
		name   string
		seen   bool
		quorum bool
		ago    time.Duration
	}{
		{name: "fresh"},
		{"quorum held for an hour", true, true, time.Hour},
		{"quorum back for 1s", true, true, time.Second},
		{"quorum back for RejoinGrace+Settle less 1ns", true, true, RejoinGrace + DefaultPolicy().Settle - 1},
		{"quorum back for RejoinGrace+Settle", true, true, RejoinGrace + DefaultPolicy().Settle},
		{"quorum lost QuorumGrace less 1ns ago", true, false, QuorumGrace - 1},
		{"quorum lost QuorumGrace ago", true, false, QuorumGrace},
	}
	backoffMemories = []struct {
		failures int
		retryIn  time.Duration
	}{
		{0, 0},
		{1, time.Nanosecond}, // the retry is not due yet
		{5, 0},               // the retry is due at this very step
	}
)

// deciderRules are the rules a Decider decides by: Decide's and its own.
var deciderRules = append([]string{ruleQ1, ruleR1, ruleA1, ruleB1}, coreRules...)

// The decider over every input Decide is tested with, taking one value
// of each class Decide and the Decider tell apart where Decide's test
// takes several (the local disk UpToDate or not; the peer's advertised
// role Primary or not, its intent none or handing over, its disk read by
// no rule), × every memory it can start a step with (quorum held long,
// lately or not; lost for less or more than QuorumGrace; failed
// promotions 0, 1 or 5, the retry due or not) × the resource group
// running or not.
func TestDeciderInvariants(t *testing.T) {
	t.Parallel()
	var (
		mu       sync.Mutex
		n        int
		actions  [3]int
		next     int
		failures int
		merged   = map[string]int{}
	)
	t.Run("part", func(t *testing.T) {
		for _, role := range allRoles {
			for _, disk := range []drbd.DiskState{drbd.DiskInconsistent, drbd.DiskUpToDate} {
				t.Run(fmt.Sprintf("%s %s", role, disk), func(t *testing.T) {
					t.Parallel()
					seen := newExplained(len(quorumMemories) * len(backoffMemories) * 2)
					var counts [3]int
					nexts, bad := 0, 0
					fail := func(rule string, st, k Decider, s *Snapshot, r ruling) {
						bad++
						if bad < 10 {
							t.Errorf("%s violated: memory %+v, %+v -> %s by %s, next %v (%s)", rule, st, *s, r.Action, r.Rule, r.Next, k.explain(s, r))
						}
					}
					sp := space{
						disks:       []drbd.DiskState{disk},
						peerRoles:   []drbd.Role{drbd.RolePrimary, drbd.RoleSecondary},
						peerDisks:   []drbd.DiskState{drbd.DiskUpToDate},
						peerIntents: []Intent{IntentNone, IntentSwitchover},
					}
					var s Snapshot
					memories := make([]Decider, 0, len(quorumMemories)*len(backoffMemories))
					m := forEachInput(role, sp, func(in *Input) {
						s.Input = *in
						q := hasQuorum(in)
						memories = memories[:0]
						for _, qm := range quorumMemories {
							for _, bm := range backoffMemories {
								st := Decider{seen: qm.seen, quorum: qm.quorum, failures: bm.failures}
								if qm.seen {
									st.quorumAt = in.Now.Add(-qm.ago)
								}
								if bm.failures > 0 {
									st.retryAt = in.Now.Add(bm.retryIn)
								}
								memories = append(memories, st)
							}
						}
						for i := range memories {
							st := &memories[i]
							for j, running := range []bool{false, true} {
								s.Running = running
								k := *st
								r := k.step(&s)
								counts[r.Action]++
								if r.Next != 0 {
									nexts++
								}
								inner := ""
								if r.Rule == ruleQ1 || r.Rule == ruleB1 {
									inner = r.core.Rule
								}
								seen.check(t, 2*i+j, r.Decision, inner, func() string { return k.explain(&s, r) })
								if why := deciderViolation(st, &k, &s, q, &r); why != "" {
									fail(why, *st, k, &s, r)
								}
							}
						}
					})
					mu.Lock()
					defer mu.Unlock()
					n += m * len(memories) * 2
					for a, c := range counts {
						actions[a] += c
					}
					next += nexts
					failures += bad
					for r, c := range seen.rules() {
						merged[r] += c
					}
				})
			}
		}
	})
	if failures > 0 {
		t.Fatalf("%d invariant violations over %d steps", failures, n)
	}
	for _, r := range deciderRules {
		if merged[r] == 0 {
			t.Errorf("rule %s: no step reached it", r)
		}
	}
	if next == 0 {
		t.Error("rule T1: no step asked for a fast next step")
	}
	t.Logf("decider: %d steps, every invariant held; stay %d, promote %d, demote %d, fast next step %d; by rule %v",
		n, actions[Stay], actions[Promote], actions[Demote], next, merged)
}

// deciderViolation names the invariant a step broke ("" if none): st is
// the decider before the step, k after it, s the snapshot, q its quorum
// and r the ruling.
func deciderViolation(st, k *Decider, s *Snapshot, q bool, r *ruling) string {
	in, d := &s.Input, r.Decision
	l, p := &in.Local, &in.Peer
	primary := l.Role == drbd.RolePrimary
	waited := in.Now.Sub(p.Since)
	// The memory after the step.
	switch {
	case !k.seen || k.quorum != q:
		return "the decider remembers the quorum view of the step"
	case (!st.seen || st.quorum != q) && !k.quorumAt.Equal(in.Now):
		return "a change of the quorum view is dated Now"
	case st.seen && st.quorum == q && !k.quorumAt.Equal(st.quorumAt):
		return "an unchanged quorum view keeps its date"
	case k.failures != st.failures || !k.retryAt.Equal(st.retryAt):
		return "only Report changes the back-off"
	}
	switch {
	case d.Rule == "":
		return "every decision names its rule"
	case d.Quorum != q:
		return "Decision.Quorum reports the quorum view"
	case d.NeedsAdmin != l.SplitBrain:
		return "a split brain always needs the admin, nothing else does"
	}
	// What the decider's own rules may change in Decide's decision.
	switch {
	case r.core.Action == d.Action && (d.Rule == r.core.Rule || d.Rule == ruleR1 && r.core.Rule == ruleS7):
	case r.core.Action == Demote && d.Action == Stay && d.Rule == ruleQ1:
	case r.core.Action == Stay && d.Action == Promote && d.Rule == ruleA1:
	case r.core.Action == Promote && d.Action == Stay && d.Rule == ruleB1:
	default:
		return "the decider amends Decide only by Q1 (demote -> stay), A1 (stay -> promote), B1 (promote -> stay), R1 (names a wait)"
	}
	if d.Action == Promote {
		switch {
		case !q:
			return "never promote without quorum"
		case d.Rule != ruleA1 && l.Disk != drbd.DiskUpToDate:
			return "only an UpToDate disk promotes (A1 restarts serving on the role DRBD holds, as P3 keeps serving)"
		case d.Rule != ruleA1 && l.SplitBrain:
			return "a split brain never leads to promote (A1 restarts serving where Decide keeps the role)"
		case in.Now.Before(st.retryAt):
			return "B1: never promote before the retry is due"
		case d.Rule == ruleA1 && (!primary || s.Running):
			return "A1 adopts only a DRBD primary role whose group is not running"
		case d.Rule != ruleA1 && (l.Role != drbd.RoleSecondary || in.Intent != IntentNone):
			return "only a secondary with no intent promotes (A1 apart)"
		case d.Rule != ruleA1 && l.Conn.Connected() && l.PeerRole == drbd.RolePrimary && !p.Member.gone():
			return "never promote past a primary peer that DRBD shows and serf has not decided gone"
		case d.Rule != ruleA1 && p.Member.up() && p.Role == drbd.RolePrimary &&
			!(p.Intent.handingOver() && l.Conn == drbd.ConnConnected && l.PeerRole == drbd.RoleSecondary):
			return "never promote past a live peer advertising primary, unless it hands over and DRBD shows it demoted"
		case d.Rule != ruleA1 && p.Generation > l.Generation:
			return "never promote a registry older than the peer's"
		case d.Rule != ruleA1 && p.Member == MemberUnknown:
			return "never promote against a peer never seen"
		case d.Rule != ruleA1 && p.Member.gone() && waited < in.Policy.Settle:
			return "never promote before the settle time"
		case d.Rule != ruleA1 && p.Member.gone() && p.Since.Before(k.quorumAt) && in.Now.Before(k.quorumAt.Add(RejoinGrace+in.Policy.Settle)):
			return "R1: past a peer lost while this box had no quorum, promote only RejoinGrace + Settle after quorum came back"
		}
	}
	if d.ForceDisconnect {
		switch {
		case d.Action != Promote || !p.Member.gone() || !q:
			return "force a disconnect only to promote past a peer decided gone, with quorum"
		case !in.Witness.Configured:
			return "never force a disconnect without a witness"
		case in.flapping() && waited < in.Policy.FlapSettle:
			return "never force the disconnect from a flapping peer before FlapSettle"
		}
	}
	if d.HandOver && (d.Action != Promote || !p.Intent.handingOver() || !p.Member.up() || l.Conn != drbd.ConnConnected) {
		return "a hand-over promotion only past a live, connected peer that let go in order"
	}
	if d.IntentDone && (d.Action != Stay || l.Role != drbd.RoleSecondary || in.Intent != IntentSwitchover || !p.Member.up()) {
		return "a switchover is done only on a secondary that sees the peer up and primary"
	}
	lostFor := in.Now.Sub(k.quorumAt)
	switch {
	case d.Action == Demote && !primary:
		return "only a primary demotes"
	case d.Action == Demote && !q && lostFor < QuorumGrace:
		return "Q1: an isolated primary demotes only once quorum has been lost for QuorumGrace"
	case d.Action == Demote && q && d.Rule != ruleP2 && d.Rule != ruleP3:
		return "with quorum a primary demotes only for a primary peer (P2) or to hand over (P3)"
	case primary && !q && lostFor >= QuorumGrace && (d.Action != Demote || d.Rule != ruleP1):
		return "an isolated primary demotes once quorum has been lost for QuorumGrace"
	case primary && !q && lostFor < QuorumGrace && d.Rule != ruleQ1:
		return "an isolated primary confirms the loss for QuorumGrace (Q1)"
	case d.Rule == ruleQ1 && (q || !primary || d.Action != Stay):
		return "Q1 only holds an isolated primary's demotion"
	case primary && q && s.Running && d.Action == Promote:
		return "a primary whose group runs has nothing to adopt"
	case primary && q && !s.Running && !l.SplitBrain && d.Action != Demote &&
		!(d.Rule == ruleA1 || d.Rule == ruleB1 && in.Now.Before(st.retryAt)):
		return "A1: a DRBD primary that keeps the role, with quorum, adopts its group (unless B1 holds it back)"
	case d.Rule == ruleB1 && (d.Action != Stay || st.failures == 0 || !in.Now.Before(st.retryAt)):
		return "B1 holds a promotion back only after failures, until the retry is due"
	case d.Rule == ruleR1 && (d.Action != Stay || !p.Member.gone() || !q || !p.Since.Before(k.quorumAt)):
		return "R1 holds back only a promotion past a peer lost before quorum came back"
	case l.Role != drbd.RolePrimary && l.Role != drbd.RoleSecondary && d.Action != Stay:
		return "a resource that is not up stays"
	}
	fast := d.Action == Stay && !s.Running && !primary && p.Intent.handingOver() &&
		(p.Role == drbd.RolePrimary || l.PeerRole == drbd.RolePrimary)
	switch {
	case d.Next != 0 && d.Next != HandOverTick:
		return "the next step is at the tick or at HandOverTick"
	case fast != (d.Next == HandOverTick):
		return "T1: decide every HandOverTick exactly while a secondary waits for its primary peer to hand over"
	}
	return ""
}

// Report drives the back-off: failures in a row count up and push the
// next try 0.5, 1, 2 ... 10 s after the last failure; a promotion that
// works resets it; a demotion leaves it alone.
func TestDeciderReport(t *testing.T) {
	var k Decider
	at := t0
	var waits []time.Duration
	for range 7 {
		k.Report(Outcome{Action: Promote, At: at, Err: errors.New("pool damaged")})
		n, retry := k.backoff()
		waits = append(waits, retry.Sub(at))
		if n != len(waits) {
			t.Fatalf("failures %d after %d failed promotions", n, len(waits))
		}
		at = retry
	}
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second}
	if diff := cmp.Diff(want, waits); diff != "" {
		t.Errorf("back-off (-want +got):\n%s", diff)
	}
	k.Report(Outcome{Action: Demote, At: at, Err: errors.New("target busy")})
	if n, _ := k.backoff(); n != 7 {
		t.Errorf("a demotion changed the failures to %d", n)
	}
	k.Report(Outcome{Action: Promote, At: at})
	if n, retry := k.backoff(); n != 0 || !retry.IsZero() {
		t.Errorf("after a promotion: failures %d, retry at %v; want none", n, retry)
	}
}
