package failover

import (
	"fmt"
	"time"

	"github.com/sand-appliance/sand/drbd"
)

// QuorumGrace is how long a primary waits, once it lost quorum, before it
// demotes (rule Q1); it must stay well below Policy.Settle.
const QuorumGrace = 500 * time.Millisecond

// RejoinGrace is added to the settle time for a peer failure that this box
// saw while it had no quorum itself (rule R1): gossip about the peer's
// return can arrive over a second after the witness's.
const RejoinGrace = 2 * time.Second

// HandOverTick is how often the loop decides while the peer hands over
// (rule T1): its demotion ends with DRBD showing it Secondary, which no
// membership event announces, and every millisecond until this box
// notices is part of the initiators' pause. A secondary's step reads
// /proc/drbd and the registry file, nothing more.
const HandOverTick = 20 * time.Millisecond

// RetryBackoff is the wait before promotion try n+1 after n failed in a
// row (rule B1): 500 ms doubling up to 10 s.
func RetryBackoff(failures int) time.Duration {
	d := 500 * time.Millisecond
	for i := 1; i < failures && d < 10*time.Second; i++ {
		d *= 2
	}
	return min(d, 10*time.Second)
}

// The Decider's rules, on top of Decide's.
const (
	ruleQ1 = "Q1" // quorum grace: an isolated primary confirms before it demotes
	ruleR1 = "R1" // rejoin grace: a failure seen without quorum settles later
	ruleA1 = "A1" // adopt a DRBD primary role whose resource group is not running
	ruleB1 = "B1" // back off after failed promotions
)

// adoptReason is A1's reason.
const adoptReason = "DRBD is primary here but the resource group is not running: adopt it"

// Snapshot is what the controller read for one step: Decide's inputs, at
// Now from the controller's clock, and the facts about this box that only
// the controller knows.
type Snapshot struct {
	Input
	// Running: the resource group runs here (this box serves).
	Running bool
}

// Outcome is what came of an action a Decision asked for, reported back to
// the Decider once the controller carried it out.
type Outcome struct {
	Action Action // Promote or Demote
	// At is when the action ended, by the controller's clock.
	At time.Time
	// Err is why it failed (nil: done).
	Err error
}

// Decider is the failover decision with its memory, in the manner of
// etcd's raft: Decide is its stateless core, and every rule that needs to
// remember something (how long quorum has been lost, when it came back,
// how many promotions failed in a row) keeps that here. The controller
// feeds it a Snapshot per step and reports what came of each action
// (Report); the Decider answers with the Decision and when it wants the
// next step. It is pure: no clock but Snapshot.Now, no locks (one
// goroutine owns it), no I/O. The zero value is a Decider that has seen
// nothing yet.
type Decider struct {
	// seen: a snapshot was decided. quorum is the quorum view of the
	// last one, and quorumAt when that view last changed: since when
	// this box has held quorum (R1), or has lacked it (Q1).
	seen     bool
	quorum   bool
	quorumAt time.Time
	// failures counts promotions failed in a row; retryAt is the
	// earliest the next may start (B1), so a step that keeps failing (a
	// damaged pool, say) does not spin the box's CPU and starve its
	// gossip.
	failures int
	retryAt  time.Time
}

// Step decides for one snapshot and remembers what the rules need. The
// rules, in order, are in the package documentation: R1 moves the peer's
// timeline, Decide decides, then Q1, A1, B1 and T1 amend its decision.
func (k *Decider) Step(s Snapshot) Decision {
	r := k.step(&s)
	r.Reason = k.explain(&s, r)
	return r.Decision
}

// Report takes the outcome of an action. A promotion's outcome drives the
// back-off (B1). A demotion's needs no memory: the next snapshot's
// Running and Local.Role say where the resource group stands.
func (k *Decider) Report(o Outcome) {
	if o.Action != Promote {
		return
	}
	if o.Err != nil {
		k.failures++
		k.retryAt = o.At.Add(RetryBackoff(k.failures))
		return
	}
	k.failures, k.retryAt = 0, time.Time{}
}

// backoff is the number of promotions failed in a row, and the earliest
// time the next may start (zero: at once).
func (k *Decider) backoff() (failures int, retryAt time.Time) { return k.failures, k.retryAt }

// ruling is a decision before its reason is written: the decision Decide
// took when a rule of the Decider amended it (Q1, B1), and how far R1
// moved the peer's timeline.
type ruling struct {
	Decision
	core  Decision
	shift time.Duration
}

// rejoin is the input with the peer's timeline moved by shift (R1).
func rejoin(in *Input, shift time.Duration) Input {
	out := *in
	out.Peer.Since = out.Peer.Since.Add(shift)
	if !out.Peer.Returned.IsZero() {
		out.Peer.Returned = out.Peer.Returned.Add(shift)
	}
	return out
}

func (k *Decider) step(s *Snapshot) ruling {
	in := &s.Input
	q := hasQuorum(in)
	if !k.seen || q != k.quorum {
		k.seen, k.quorum, k.quorumAt = true, q, in.Now
	}
	// R1: a box that was cut off saw the peer fail while it had no
	// quorum; when it gets quorum back (the witness first, say), that old
	// failure must not count as settled, or it would promote beside a live
	// primary whose "alive" has not reached it yet (seen in the netns
	// tier: 1.26 s after the witness's). So a change of the peer's status
	// from before this box (re)gained quorum counts as if it came
	// RejoinGrace after that. The peer's earlier return moves with it:
	// whether the peer is flapping (S7f) does not change.
	var r ruling
	if q && in.Peer.Since.Before(k.quorumAt) {
		r.shift = k.quorumAt.Add(RejoinGrace).Sub(in.Peer.Since)
		moved := rejoin(in, r.shift)
		in = &moved
	}
	d := decide(in)
	r.core = d
	switch {
	case d.Action == Demote && !q && in.Now.Sub(k.quorumAt) < QuorumGrace:
		// Q1: a primary demotes for lost quorum only once the loss has
		// lasted QuorumGrace: a box that comes back gossips the deaths it
		// saw while cut off, and the witness it reported dead refutes
		// that within a few hundred ms (seen in the netns tier). The peer
		// promotes only after Policy.Settle (1.4 s), so the isolated
		// primary still lets go first.
		d = Decision{Action: Stay, Rule: ruleQ1, Quorum: q, NeedsAdmin: d.NeedsAdmin}
	case d.Action == Stay && q && in.Local.Role == drbd.RolePrimary && !s.Running:
		// A1: adopt a primary role DRBD already has (sand restarted on
		// the primary, a bootstrap left it, or a demotion stopped half
		// way): the resource group's steps are idempotent, so starting it
		// again only fills what is missing. Only where Decide keeps the
		// role, and so only with quorum.
		d = Decision{Action: Promote, Rule: ruleA1, Quorum: q, NeedsAdmin: d.NeedsAdmin}
	case r.shift != 0 && d.Rule == ruleS7 && d.Action == Stay:
		// R1 holds the promotion back: say so.
		d.Rule = ruleR1
	}
	if d.Action == Promote && in.Now.Before(k.retryAt) {
		// B1: promotions that keep failing are tried 0.5, 1, 2 ... 10 s
		// apart.
		r.core = d
		d = Decision{Action: Stay, Rule: ruleB1, Quorum: q, NeedsAdmin: d.NeedsAdmin}
	}
	// T1: a secondary whose primary peer hands over decides every
	// HandOverTick until DRBD shows the peer Secondary; otherwise at the
	// caller's tick (a peer left in standby for hours costs nothing).
	if d.Action == Stay && !s.Running && in.Local.Role != drbd.RolePrimary && in.Peer.Intent.handingOver() &&
		(in.Peer.Role == drbd.RolePrimary || in.Local.PeerRole == drbd.RolePrimary) {
		d.Next = HandOverTick
	}
	r.Decision = d
	return r
}

// explain writes the reason of the ruling the last step gave for s.
func (k *Decider) explain(s *Snapshot, r ruling) string {
	in := &s.Input
	if r.shift != 0 {
		moved := rejoin(in, r.shift)
		in = &moved
	}
	now := in.Now
	switch r.Rule {
	case ruleQ1:
		return fmt.Sprintf("quorum lost %s ago, confirming for %s before demoting: %s",
			now.Sub(k.quorumAt).Round(time.Millisecond), QuorumGrace, explain(in, r.core))
	case ruleR1:
		p := &in.Peer
		return fmt.Sprintf("peer %s %s before this box regained quorum %s ago: that counts from %s (rejoin grace) after it, settled in %s",
			p.Name, p.Member, now.Sub(k.quorumAt).Round(time.Millisecond), RejoinGrace,
			p.Since.Add(in.Policy.Settle).Sub(now).Round(time.Millisecond))
	case ruleA1:
		return adoptReason
	case ruleB1:
		inner := adoptReason
		if r.core.Rule != ruleA1 {
			inner = explain(in, r.core)
		}
		return fmt.Sprintf("failed promotions in a row: %d, next try in %s: %s",
			k.failures, k.retryAt.Sub(now).Round(time.Millisecond), inner)
	}
	return explain(in, r.Decision)
}
