package failover

import (
	"fmt"
	"time"

	"github.com/sand-appliance/sand/drbd"
)

// MemberStatus is what this box's serf agent says about another member.
// serf does not expose memberlist's "suspect" state: a suspected member is
// still Alive to serf until the suspicion timeout declares it Failed, which
// is exactly the "not merely suspect" rule the decision wants.
type MemberStatus int

const (
	// MemberUnknown: never seen (not in the member list).
	MemberUnknown MemberStatus = iota
	MemberAlive
	// MemberLeaving: a graceful leave is in progress; still reachable.
	MemberLeaving
	// MemberLeft: left gracefully (sand demotes before it leaves).
	MemberLeft
	// MemberFailed: declared failed by serf's failure detector.
	MemberFailed
)

var memberNames = map[MemberStatus]string{
	MemberUnknown: "unknown", MemberAlive: "alive", MemberLeaving: "leaving",
	MemberLeft: "left", MemberFailed: "failed",
}

func (s MemberStatus) String() string {
	if n, ok := memberNames[s]; ok {
		return n
	}
	return fmt.Sprintf("MemberStatus(%d)", int(s))
}

// up reports whether the member counts as a live vote.
func (s MemberStatus) up() bool { return s == MemberAlive || s == MemberLeaving }

// gone reports whether the member has been decided away (failed or left),
// as opposed to alive or never seen.
func (s MemberStatus) gone() bool { return s == MemberFailed || s == MemberLeft }

// Intent is the admin's wish for this box, persisted in the node state and
// advertised in the "intent" serf tag.
type Intent int

const (
	IntentNone Intent = iota
	// IntentStandby: this box never promotes; as primary it hands the role
	// over as soon as the peer is ready. Lasts until the admin resumes.
	IntentStandby
	// IntentSwitchover: one-shot planned move of the primary role to the
	// peer. The primary demotes first; the peer promotes when it sees this
	// box Secondary. The caller clears it when Decision.IntentDone is set.
	IntentSwitchover
)

var intentNames = map[Intent]string{IntentNone: "none", IntentStandby: "standby", IntentSwitchover: "switchover"}

func (i Intent) String() string {
	if n, ok := intentNames[i]; ok {
		return n
	}
	return fmt.Sprintf("Intent(%d)", int(i))
}

// ParseIntent maps a tag value back to an Intent.
func ParseIntent(s string) (Intent, error) {
	for i, n := range intentNames {
		if n == s {
			return i, nil
		}
	}
	return IntentNone, fmt.Errorf("unknown intent %q", s)
}

// handingOver reports whether a box with this intent wants to give up the
// primary role.
func (i Intent) handingOver() bool { return i == IntentStandby || i == IntentSwitchover }

// Local is this box's DRBD resource as read from DRBD itself.
type Local struct {
	Name string
	Role drbd.Role
	Disk drbd.DiskState
	Conn drbd.ConnState
	// PeerRole and PeerDisk are DRBD's view of the peer: meaningful only
	// while Conn.Connected(); DRBD reports Unknown/DUnknown otherwise. They
	// are fresher than the peer's serf tags.
	PeerRole drbd.Role
	PeerDisk drbd.DiskState
	// SplitBrain is set once DRBD reported a split brain (the split-brain
	// handler or "Split-Brain detected" in events) and stays set until the
	// admin resolved it.
	SplitBrain bool
	// Generation of the registry this box holds (0: unknown).
	Generation uint64
}

// Peer is the other storage box as serf sees it: its membership status and
// the tags it last advertised (serf keeps the tags of failed members).
type Peer struct {
	Name   string
	Member MemberStatus
	// Since is when Member last changed (from the serf event's time).
	Since time.Time
	// Returned is when the peer last came back alive after serf had
	// declared it failed (zero: never seen to fail).
	Returned   time.Time
	Role       drbd.Role
	Disk       drbd.DiskState
	Intent     Intent
	Generation uint64
}

// Witness is the optional third serf member, which only votes.
type Witness struct {
	Configured bool
	Name       string
	Member     MemberStatus
}

// Ping is the pingd-style tie-breaker used when no witness is configured:
// how many of the configured targets (e.g. the gateway) answered lately.
type Ping struct {
	Targets, Reachable int
}

// Policy holds the decision's timings.
type Policy struct {
	// Settle is how long the peer must have been Failed before this box
	// promotes. It covers (a) the isolated old primary, which detects the
	// loss at the same moment (measured: link loss is symmetric) and needs a
	// few hundred ms to drop the VIP and stop the target, and (b) a
	// refutation gossiped through the witness when only the direct path
	// failed.
	Settle time.Duration
	// FlapWindow and FlapSettle: a peer that came back from a failure
	// less than FlapWindow before its current one is flapping: starved
	// (its CPU busy, e.g. stopping hundreds of LIO objects on one vCPU), not
	// dead. While DRBD still holds the link to it, the disconnect is
	// forced only once it has stayed failed for FlapSettle. A dead peer
	// does not need the force: DRBD drops the link by itself within its
	// ping timeouts (about 3 s with drbd.TCGNet), and Settle then applies.
	FlapWindow, FlapSettle time.Duration
}

// DefaultPolicy: serf (tuned) detects a dead peer in 0.8-1.0 s. Settle
// must cover the isolated old primary's way down, measured from the moment
// the other box declared it failed: the isolated box probes its two
// members in turn, so it may declare the second one failed a probe round
// (2 × ProbeInterval) later; then it confirms for QuorumGrace; then it
// stops its target. 1.4 s leaves about 0.4 s of margin (with 1 s, the
// netns tier saw the new primary's target up 0.1-0.8 s before the old
// one's was down).
//
// FlapSettle (10 s) is far above the 6 s a 31-LUN demotion took under TCG
// while serf saw the box fail and return three times. FlapWindow (10 s)
// covers the starved boxes seen there (the next failure 0.3-5.3 s after
// a return) but not a box that was slow once and is killed later: a peer
// taken for flapping waits for DRBD's own timeouts, about 1.5 s more than
// Settle.
func DefaultPolicy() Policy {
	return Policy{Settle: 1400 * time.Millisecond, FlapWindow: 10 * time.Second, FlapSettle: 10 * time.Second}
}

// flapping: the peer is gone now, and it came back from an earlier
// failure less than FlapWindow before this one.
func (in *Input) flapping() bool {
	p := in.Peer
	return p.Member.gone() && !p.Returned.IsZero() && p.Since.Sub(p.Returned) < in.Policy.FlapWindow
}

// Input is everything the decision looks at. Now is the caller's clock.
type Input struct {
	Now     time.Time
	Local   Local
	Peer    Peer
	Witness Witness
	Ping    Ping
	Intent  Intent
	Policy  Policy
}

// Action is what the executor should do with the resource group.
type Action int

const (
	// Stay: change nothing.
	Stay Action = iota
	// Promote: DRBD primary, pool, target, VIP (in that order).
	Promote
	// Demote: VIP, target, pool, DRBD secondary (reverse order).
	Demote
)

func (a Action) String() string {
	switch a {
	case Stay:
		return "stay"
	case Promote:
		return "promote"
	case Demote:
		return "demote"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Decision is Decide's answer. Reason is one human line for the events log.
type Decision struct {
	Action Action
	// Rule names the rule that decided, as the table in the package
	// documentation names it (P1, S7f, Q1, ...).
	Rule   string
	Reason string
	// Quorum is the quorum view the decision was taken with.
	Quorum bool
	// NeedsAdmin: a state sand will not leave on its own (split brain).
	NeedsAdmin bool
	// IntentDone: a switchover completed; the caller clears the intent.
	IntentDone bool
	// ForceDisconnect (with Promote only): DRBD is still connected to a
	// peer that serf decided dead, with quorum, for at least Settle. The
	// caller drops the link (disconnect --force) before promoting
	// instead of waiting out DRBD's own timeouts, and reconnects after.
	ForceDisconnect bool
	// HandOver (with Promote only): the peer let go in order (switchover,
	// standby) and has demoted: it closed the pool a moment ago, so the
	// promotion may skip checks that a crash calls for (see HandingOver).
	HandOver bool
	// Next is the longest the caller should wait before the next step
	// (rule T1, set by the Decider only); zero: the caller's own tick.
	Next time.Duration
}

// The rules of the table in the package documentation. Each names one
// outcome, so explain can write its reason from the rule and the input.
const (
	ruleP1  = "P1"  // primary without quorum: demote
	ruleP2  = "P2"  // both primary: the tie-break decides
	ruleP3  = "P3"  // primary handing over or with a bad disk
	ruleP4  = "P4"  // primary, nothing to change
	ruleS1  = "S1"  // secondary with a split brain
	ruleS2  = "S2"  // secondary with its switchover pending
	ruleS3  = "S3"  // secondary in standby
	ruleS4  = "S4"  // secondary whose disk is not UpToDate
	ruleS4q = "S4q" // secondary without quorum
	ruleS5  = "S5"  // DRBD connected to a primary peer
	ruleS6  = "S6"  // the peer's registry is newer
	ruleS7  = "S7"  // peer gone: settle, then promote
	ruleS7s = "S7s" // peer gone, DRBD shows it stood down
	ruleS7p = "S7p" // peer gone, DRBD still connected, no witness
	ruleS7f = "S7f" // peer gone, DRBD still connected, flapping
	ruleS7u = "S7u" // peer never seen
	ruleS8p = "S8p" // peer up and advertising primary
	ruleS8c = "S8c" // peer up, DRBD not Connected
	ruleS8  = "S8"  // peer hands over
	ruleS9  = "S9"  // nobody primary, the peer's disk is not UpToDate
	ruleS9t = "S9t" // nobody primary, both UpToDate: the names decide
	ruleU1  = "U1"  // resource not up
)

// HasQuorum is the quorum rule. With a witness: at least 2 of {self, peer,
// witness} are up from this box's point of view. Without one: the peer is
// up, or at least one ping target answers (pingd's rule: a box that reaches
// none of its ping targets is the isolated one). No witness and no ping
// targets: the peer's vote is needed, so a lone box never has quorum.
func HasQuorum(in Input) bool { return hasQuorum(&in) }

func hasQuorum(in *Input) bool {
	if in.Witness.Configured {
		votes := 1
		if in.Peer.Member.up() {
			votes++
		}
		if in.Witness.Member.up() {
			votes++
		}
		return votes >= 2
	}
	return in.Peer.Member.up() || in.Ping.Reachable > 0
}

// Decide is the failover decision: pure, no I/O, no clock but in.Now, no
// memory (the Decider adds that). The rules, in order, are listed in the
// package documentation.
func Decide(in Input) Decision {
	d := decide(&in)
	d.Reason = explain(&in, d)
	return d
}

// decide picks the rule and the action; explain writes the reason. Apart,
// the exhaustive tests can run the choice itself millions of times.
func decide(in *Input) Decision {
	q := hasQuorum(in)
	d := choose(in, q)
	d.Quorum = q
	d.NeedsAdmin = in.Local.SplitBrain
	return d
}

func choose(in *Input, quorum bool) Decision {
	l, p := &in.Local, &in.Peer
	switch l.Role {
	case drbd.RolePrimary:
		// P1: an isolated primary steps down so there is never a second writer.
		if !quorum {
			return Decision{Action: Demote, Rule: ruleP1}
		}
		// P2: two primaries that see each other: exactly one keeps the role.
		// A peer that has just come back still shows the tags it had when it
		// was cut off: its "primary" tag is believed once it has been back for
		// Settle, so a returning old primary cannot make this one step down.
		// DRBD's own view of the peer is believed at once.
		settled := in.Now.Sub(p.Since) >= in.Policy.Settle
		if p.Member.up() && ((settled && p.Role == drbd.RolePrimary) || l.PeerRole == drbd.RolePrimary) {
			if keepsPrimary(*l, *p) {
				return Decision{Action: Stay, Rule: ruleP2}
			}
			return Decision{Action: Demote, Rule: ruleP2}
		}
		// P4: no hand-over planned and a good disk: nothing to change.
		if !in.Intent.handingOver() && l.Disk == drbd.DiskUpToDate {
			return Decision{Action: Stay, Rule: ruleP4}
		}
		// P3: planned hand-over (standby, switchover) or a failed local disk.
		if !l.SplitBrain && peerReady(in) {
			return Decision{Action: Demote, Rule: ruleP3}
		}
		return Decision{Action: Stay, Rule: ruleP3}
	case drbd.RoleSecondary:
		return chooseSecondary(in, quorum)
	default:
		return Decision{Action: Stay, Rule: ruleU1}
	}
}

func chooseSecondary(in *Input, quorum bool) Decision {
	l, p := &in.Local, &in.Peer
	stay := func(rule string) Decision { return Decision{Action: Stay, Rule: rule} }
	// S1..S4: what this box itself forbids.
	switch {
	case l.SplitBrain:
		return stay(ruleS1)
	case in.Intent == IntentSwitchover:
		d := stay(ruleS2)
		d.IntentDone = p.Member.up() && (p.Role == drbd.RolePrimary || l.PeerRole == drbd.RolePrimary)
		return d
	case in.Intent == IntentStandby:
		return stay(ruleS3)
	case l.Disk != drbd.DiskUpToDate:
		return stay(ruleS4)
	case !quorum:
		return stay(ruleS4q)
	}
	// S5: DRBD itself sees a live primary peer: no failback, no second
	// primary. A peer that serf decided dead (with quorum, see S7) while
	// DRBD still shows it connected is handled in S7.
	if l.Conn.Connected() && l.PeerRole == drbd.RolePrimary && !p.Member.gone() {
		return stay(ruleS5)
	}
	// S6: never serve a registry older than one the peer advertised.
	if p.Generation > l.Generation {
		return stay(ruleS6)
	}
	switch {
	case p.Member.gone():
		// S7: failover. The peer has been gone for Settle and this box
		// has quorum. If DRBD has not noticed yet (its ping and request
		// timeouts are seconds under load), drop the link by force: the
		// one moment the lab's split brain rules out is forcing it while
		// the peer is alive, and quorum plus Settle decided it is not (an
		// isolated primary demoted itself within QuorumGrace).
		waited := in.Now.Sub(p.Since)
		if waited < in.Policy.Settle {
			return stay(ruleS7)
		}
		if l.Conn.Connected() {
			// S7s: a peer that DRBD shows Secondary stood down: promote
			// past it without dropping the link (DRBD refuses it a second
			// primary role while connected).
			if l.PeerRole == drbd.RoleSecondary {
				return Decision{Action: Promote, Rule: ruleS7s}
			}
			// S7p: ping targets vouch for this box's own reach, not for
			// the peer's death: a cut gossip path leaves both boxes with
			// quorum. A replication link that still answers says the peer
			// lives; wait until DRBD shows it stood down, or loses it too.
			if !in.Witness.Configured {
				return stay(ruleS7p)
			}
			// S7f: a flapping peer is starved, not dead, while DRBD
			// still holds the link: give it FlapSettle.
			if in.flapping() && waited < in.Policy.FlapSettle {
				return stay(ruleS7f)
			}
			return Decision{Action: Promote, Rule: ruleS7, ForceDisconnect: true}
		}
		return Decision{Action: Promote, Rule: ruleS7}
	case p.Member == MemberUnknown:
		return stay(ruleS7u)
	}
	// The peer is up from here on. A peer handing over whose DRBD already
	// shows it Secondary has demoted; its tag follows a gossip round later
	// (and DRBD itself refuses a second primary while connected).
	demoted := p.Intent.handingOver() && l.Conn == drbd.ConnConnected && l.PeerRole == drbd.RoleSecondary
	if p.Role == drbd.RolePrimary && !demoted {
		return stay(ruleS8p)
	}
	if l.Conn != drbd.ConnConnected {
		return stay(ruleS8c)
	}
	// S8: switchover / standby on the peer: it demoted, take the role.
	if p.Intent.handingOver() {
		return Decision{Action: Promote, Rule: ruleS8, HandOver: true}
	}
	// S9: nobody is primary, both up and connected: one of them starts.
	if l.PeerDisk != drbd.DiskUpToDate {
		return Decision{Action: Promote, Rule: ruleS9}
	}
	// S9t: both disks are UpToDate and in sync, so the data is the same:
	// the names decide. Generations would not do here: a secondary can
	// learn the new primary's registry before the primary's tags say it is
	// primary, and both would promote (seen in the netns tier).
	if l.Name < p.Name {
		return Decision{Action: Promote, Rule: ruleS9t}
	}
	return stay(ruleS9t)
}

// explain is the reason for a decision of Decide, written from its rule
// and the input it was taken on.
func explain(in *Input, d Decision) string {
	r := reason(in, d)
	if in.Local.SplitBrain {
		r = "split brain reported by DRBD, needs the admin: " + r
	}
	return r
}

func reason(in *Input, d Decision) string {
	l, p := &in.Local, &in.Peer
	waited := in.Now.Sub(p.Since).Round(time.Millisecond)
	switch d.Rule {
	case ruleP1:
		return fmt.Sprintf("lost quorum (%s): isolated primary demotes", quorumView(in))
	case ruleP2:
		if d.Action == Stay {
			return fmt.Sprintf("peer %s is also primary; this box keeps the role (generation %d vs %d, name order)", p.Name, l.Generation, p.Generation)
		}
		return fmt.Sprintf("peer %s is also primary and keeps the role (generation %d vs %d, name order): demote", p.Name, p.Generation, l.Generation)
	case ruleP3:
		why := "local disk " + l.Disk.String()
		if in.Intent.handingOver() {
			why = "intent " + in.Intent.String()
		}
		if d.Action == Demote {
			return fmt.Sprintf("%s and peer %s is ready (UpToDate, connected): demote so it takes over", why, p.Name)
		}
		return fmt.Sprintf("%s, but peer %s is not ready to take over (member %s, disk %s, intent %s, connection %s): keep serving", why, p.Name, p.Member, l.PeerDisk, p.Intent, l.Conn)
	case ruleP4:
		return fmt.Sprintf("primary, quorum held (%s)", quorumView(in))
	case ruleS1:
		return "secondary, never promotes on a split brain"
	case ruleS2:
		if d.IntentDone {
			return fmt.Sprintf("switchover done: peer %s is primary", p.Name)
		}
		return "secondary with switchover pending: the peer takes the role"
	case ruleS3:
		return "standby: this box never promotes"
	case ruleS4:
		return fmt.Sprintf("local disk %s: only an UpToDate disk may promote", l.Disk)
	case ruleS4q:
		return fmt.Sprintf("no quorum (%s): never promote", quorumView(in))
	case ruleS5:
		return fmt.Sprintf("peer %s is primary: stay secondary (no failback)", p.Name)
	case ruleS6:
		return fmt.Sprintf("peer %s advertised registry generation %d, this box holds %d: never promote an older registry", p.Name, p.Generation, l.Generation)
	case ruleS7:
		switch {
		case d.Action == Stay:
			return fmt.Sprintf("peer %s %s %s ago, settling for %s", p.Name, p.Member, waited, in.Policy.Settle)
		case d.ForceDisconnect:
			return fmt.Sprintf("peer %s %s %s ago, %s, disk UpToDate, DRBD still %s to it: force the disconnect and promote", p.Name, p.Member, waited, quorumView(in), l.Conn)
		}
		return fmt.Sprintf("peer %s %s %s ago, %s, disk UpToDate: promote", p.Name, p.Member, waited, quorumView(in))
	case ruleS7s:
		return fmt.Sprintf("peer %s %s %s ago, %s, disk UpToDate, DRBD connected to it as Secondary (it stood down): promote", p.Name, p.Member, waited, quorumView(in))
	case ruleS7p:
		return fmt.Sprintf("peer %s %s %s ago but DRBD is still %s to it (peer %s) and no witness confirms its death: wait for DRBD to lose it", p.Name, p.Member, waited, l.Conn, l.PeerRole)
	case ruleS7f:
		return fmt.Sprintf("peer %s %s %s ago but came back %s before that: starved, not dead, while DRBD is still %s to it; forcing the disconnect waits for %s", p.Name, p.Member, waited, p.Since.Sub(p.Returned).Round(time.Millisecond), l.Conn, in.Policy.FlapSettle)
	case ruleS7u:
		return fmt.Sprintf("peer %s never seen: wait for it (or the admin)", p.Name)
	case ruleS8p:
		return fmt.Sprintf("peer %s advertises primary: stay secondary (no failback)", p.Name)
	case ruleS8c:
		return fmt.Sprintf("peer %s is up and secondary but DRBD is %s: wait until connected and in sync", p.Name, l.Conn)
	case ruleS8:
		return fmt.Sprintf("peer %s hands over (intent %s) and is secondary, disk UpToDate, connected: promote", p.Name, p.Intent)
	case ruleS9:
		return fmt.Sprintf("no primary; peer %s disk %s, this disk UpToDate: promote", p.Name, l.PeerDisk)
	case ruleS9t:
		if d.Action == Promote {
			return fmt.Sprintf("no primary; both UpToDate, this box's name sorts before %s: promote", p.Name)
		}
		return fmt.Sprintf("no primary; both UpToDate, peer %s's name sorts first: wait for it", p.Name)
	case ruleU1:
		return fmt.Sprintf("local role %s: resource not up, nothing to decide", l.Role)
	}
	return fmt.Sprintf("%s by rule %q", d.Action, d.Rule)
}

// peerReady: the peer can take the primary role right now.
func peerReady(in *Input) bool {
	return in.Peer.Member == MemberAlive && in.Peer.Intent == IntentNone &&
		in.Local.Conn == drbd.ConnConnected && in.Local.PeerDisk == drbd.DiskUpToDate &&
		in.Peer.Generation >= in.Local.Generation
}

// keepsPrimary is the deterministic tie-break both boxes compute alike: the
// higher registry generation wins, then the lower name.
func keepsPrimary(l Local, p Peer) bool {
	if l.Generation != p.Generation {
		return l.Generation > p.Generation
	}
	return l.Name < p.Name
}

// quorumView is the quorum view for messages: the votes HasQuorum counted.
func quorumView(in *Input) string {
	if in.Witness.Configured {
		return fmt.Sprintf("peer %s, witness %s", in.Peer.Member, in.Witness.Member)
	}
	return fmt.Sprintf("peer %s, ping %d/%d", in.Peer.Member, in.Ping.Reachable, in.Ping.Targets)
}
