package failover

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sand-appliance/sand/drbd"
)

// Storage is the disk under the pool as the decision needs it: DRBD in the
// appliance, or a disk both boxes see (the netns test tier).
type Storage interface {
	// State reads the local resource; peer is serf's view, for storage
	// that cannot see the peer itself.
	State(ctx context.Context, peer Peer) (Local, error)
}

// Cluster is the membership as the controller uses it (*Membership in
// sand; a fake in the unit tests).
type Cluster interface {
	View(peer, witness string) (Peer, Witness)
	Events() <-chan Event
	SetTags(Tags) error
}

// LinkBreaker is storage with a replication link of its own (DRBD): the
// controller drops it by force before promoting past a peer that was
// decided dead (Decision.ForceDisconnect), and reconnects it afterwards so
// the peer can come back as a sync target.
type LinkBreaker interface {
	ForceDisconnect(ctx context.Context) error
	Reconnect(ctx context.Context) error
}

// RejoinGrace is added to the settle time for a peer failure that this box
// saw while it had no quorum itself: gossip about the peer's return can
// arrive over a second after the witness's.
const RejoinGrace = 2 * time.Second

// QuorumGrace is how long a primary waits, once it lost quorum, before it
// demotes; it must stay well below Policy.Settle.
const QuorumGrace = 500 * time.Millisecond

// RetryBackoff is the wait before promotion try n+1 after n failed in a
// row: 500 ms doubling up to 10 s.
func RetryBackoff(failures int) time.Duration {
	d := 500 * time.Millisecond
	for i := 1; i < failures && d < 10*time.Second; i++ {
		d *= 2
	}
	return min(d, 10*time.Second)
}

// Recorder takes events for the box's events log (and the journal).
type Recorder func(kind, format string, args ...any)

// Event kinds the controller records.
const (
	EventDecision   = "decision"
	EventPromoted   = "failover-promoted"
	EventDemoted    = "failover-demoted"
	EventStepFailed = "failover-step-failed"
	EventMembership = "membership"
	// EventReplication is a change of DRBD's state as this box sees it:
	// the replication link, either disk, either role.
	EventReplication = "replication"
)

// Controller runs the decision loop of one storage box: it reads the local
// storage and the membership, decides, runs the resource group, and
// advertises the outcome in its serf tags.
type Controller struct {
	Name        string
	PeerName    string
	WitnessName string // "" without a witness
	Members     Cluster
	// Ping is the ping targets' view (a Pinger), for a pair without a
	// witness; nil otherwise.
	Ping    func(now time.Time) Ping
	Storage Storage
	Group   *Group
	// Generation is the registry generation this box holds.
	Generation func() uint64
	Record     Recorder
	Log        *slog.Logger
	Policy     Policy
	// Tick is how often the loop decides without a membership event.
	Tick time.Duration
	Now  func() time.Time

	mu      sync.Mutex
	intent  Intent
	primary bool // the resource group is started
	last    Decision
	lastIn  Input
	// failures counts promotions failed in a row; retryAt holds the next
	// try back, so a step that keeps failing (a damaged pool, say) does
	// not spin the box's CPU and starve its gossip. Only the loop's
	// goroutine touches them.
	failures int
	retryAt  time.Time
	// quorumLost is when this box last lost quorum (zero while it holds it).
	quorumLost time.Time
	// quorumSince is when this box last gained quorum (zero without it).
	quorumSince time.Time
	// promotions counts the promotions since sand started.
	promotions uint64
	// advertised are the tags last published, so unchanged tags are not
	// gossiped again every tick.
	advertised *Tags
}

// Status is the controller's view for the API and the UI.
type Status struct {
	Role     string    `json:"role"`
	Intent   string    `json:"intent"`
	Quorum   bool      `json:"quorum"`
	Peer     string    `json:"peer"`
	PeerRole string    `json:"peer_role"`
	PeerSeen string    `json:"peer_member"`
	Witness  string    `json:"witness,omitempty"`
	WitnessM string    `json:"witness_member,omitempty"`
	Decision string    `json:"decision"`
	Reason   string    `json:"reason"`
	Disk     string    `json:"disk"`
	Conn     string    `json:"connection"`
	Since    time.Time `json:"decided_at"`
}

// SetIntent records the admin's wish (standby, switchover, resume); the
// loop acts on it at its next step.
func (c *Controller) SetIntent(i Intent) {
	c.mu.Lock()
	c.intent = i
	c.mu.Unlock()
	c.Record(EventDecision, "admin intent %s", i)
}

// Status reports the last decision.
func (c *Controller) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	role := "secondary"
	if c.primary {
		role = "primary"
	}
	if c.intent == IntentStandby {
		role += " (standby)"
	}
	in := c.lastIn
	return Status{
		Role: role, Intent: c.intent.String(), Quorum: c.last.Quorum,
		Peer: c.PeerName, PeerRole: in.Peer.Role.String(), PeerSeen: in.Peer.Member.String(),
		Witness: c.WitnessName, WitnessM: witnessMember(in.Witness),
		Decision: c.last.Action.String(), Reason: c.last.Reason,
		Disk: in.Local.Disk.String(), Conn: in.Local.Conn.String(), Since: in.Now,
	}
}

// drbdView is what DRBD reports of the local resource, comparable.
type drbdView struct {
	conn           drbd.ConnState
	role, peerRole drbd.Role
	disk, peerDisk drbd.DiskState
}

func viewOf(l Local) drbdView {
	return drbdView{conn: l.Conn, role: l.Role, peerRole: l.PeerRole, disk: l.Disk, peerDisk: l.PeerDisk}
}

// String is the view as /proc/drbd shows it.
func (v drbdView) String() string {
	return fmt.Sprintf("cs:%s ro:%s/%s ds:%s/%s", v.conn, v.role, v.peerRole, v.disk, v.peerDisk)
}

func witnessMember(w Witness) string {
	if !w.Configured {
		return ""
	}
	return w.Member.String()
}

// Promotions counts the times this box became primary since sand started.
func (c *Controller) Promotions() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.promotions
}

// Intent is the admin's current wish for this box.
func (c *Controller) Intent() Intent {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.intent
}

// Primary reports whether this box runs the resource group now.
func (c *Controller) Primary() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.primary
}

// Run decides every Tick and on every membership event until ctx ends,
// then stops the resource group if it runs (an orderly stop hands over).
func (c *Controller) Run(ctx context.Context) error {
	tick := c.Tick
	if tick <= 0 {
		tick = 100 * time.Millisecond
	}
	t := time.NewTimer(tick)
	defer t.Stop()
	for {
		c.step(ctx)
		t.Reset(c.nextStep(tick))
		select {
		case <-ctx.Done():
			return c.shutdown()
		case <-t.C:
		case e, ok := <-c.Members.Events():
			switch {
			case !ok:
			case e.Kind == EventIntent:
				if e.Member.Name == c.Name {
					c.SetIntent(e.Intent)
				}
			case e.Member.Name != c.Name:
				c.Record(EventMembership, "%s: %s is %s", e.Kind, e.Member.Name, e.Member.Status)
			}
		}
	}
}

// HandOverTick is how often the loop decides while the peer hands over:
// its demotion ends with DRBD showing it Secondary, which no membership
// event announces, and every millisecond until this box notices is part
// of the initiators' pause. A secondary's step reads /proc/drbd and the
// registry file, nothing more.
const HandOverTick = 20 * time.Millisecond

// nextStep is the wait before the next step: HandOverTick while a
// secondary waits for its primary peer to finish handing over, tick
// otherwise (a peer left in standby for hours costs nothing extra).
func (c *Controller) nextStep(tick time.Duration) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	in := c.lastIn
	waiting := !c.primary && in.Local.Role != drbd.RolePrimary && in.Peer.Intent.handingOver() &&
		(in.Peer.Role == drbd.RolePrimary || in.Local.PeerRole == drbd.RolePrimary)
	if waiting {
		return min(tick, HandOverTick)
	}
	return tick
}

func (c *Controller) shutdown() error {
	c.mu.Lock()
	primary := c.primary
	c.mu.Unlock()
	if !primary {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Group.Stop(ctx); err != nil {
		return fmt.Errorf("stop the resource group on shutdown: %w", err)
	}
	c.setPrimary(false)
	return nil
}

func (c *Controller) setPrimary(p bool) {
	c.mu.Lock()
	c.primary = p
	c.mu.Unlock()
}

// step is one round: read, decide, act, advertise.
func (c *Controller) step(ctx context.Context) {
	peer, witness := c.Members.View(c.PeerName, c.WitnessName)
	local, err := c.Storage.State(ctx, peer)
	if err != nil {
		c.Log.Error("read local storage state", "err", err)
		return
	}
	local.Name = c.Name
	// Storage may know a newer generation than the box can read (a DRBD
	// secondary cannot mount the metadata volume but holds its data).
	local.Generation = max(local.Generation, c.Generation())
	c.mu.Lock()
	intent := c.intent
	before := c.lastIn
	c.mu.Unlock()
	// The kernel's own DRBD lines stay off the console (loglevel=3); the
	// events log says when the link dropped and when a resync ended.
	if was, is := viewOf(before.Local), viewOf(local); !before.Now.IsZero() && was != is {
		c.Record(EventReplication, "DRBD %s -> %s", was, is)
	}
	in := Input{Now: c.Now(), Local: local, Peer: peer, Witness: witness, Intent: intent, Policy: c.Policy}
	if c.Ping != nil {
		in.Ping = c.Ping(in.Now)
	}
	// A box that was cut off saw the peer fail while it had no quorum; when
	// it gets quorum back (the witness first, say), that old failure must
	// not count as settled, or it would promote beside a live primary
	// whose "alive" has not reached it yet (seen in the netns tier: 1.26 s
	// after the witness's). The peer's failure counts from RejoinGrace
	// after this box regained quorum.
	c.mu.Lock()
	if !HasQuorum(in) {
		c.quorumSince = time.Time{}
	} else if c.quorumSince.IsZero() {
		c.quorumSince = in.Now
	}
	if !c.quorumSince.IsZero() && in.Peer.Since.Before(c.quorumSince) {
		in.Peer.Since = c.quorumSince.Add(RejoinGrace)
	}
	c.mu.Unlock()
	d := Decide(in)
	// A primary demotes for lost quorum only once the loss has lasted
	// QuorumGrace: a box that comes back gossips the deaths it saw while
	// cut off, and the witness it reported dead refutes that within a few
	// hundred ms (seen in the netns tier). The peer promotes only after
	// Policy.Settle (1.4 s), so the isolated primary still lets go first.
	now := in.Now
	c.mu.Lock()
	if d.Quorum {
		c.quorumLost = time.Time{}
	} else if c.quorumLost.IsZero() {
		c.quorumLost = now
	}
	lost := c.quorumLost
	c.mu.Unlock()
	if d.Action == Demote && !d.Quorum && now.Sub(lost) < QuorumGrace {
		d = Decision{Action: Stay, Quorum: false, Reason: fmt.Sprintf("quorum lost %s ago, confirming for %s before demoting: %s", now.Sub(lost).Round(time.Millisecond), QuorumGrace, d.Reason)}
	}
	c.mu.Lock()
	level := slog.LevelDebug
	if d.Action != c.last.Action || d.Quorum != c.last.Quorum {
		level = slog.LevelInfo
	}
	c.last, c.lastIn = d, in
	c.mu.Unlock()
	c.Log.Log(ctx, level, "decision", "action", d.Action, "reason", d.Reason, "quorum", d.Quorum)
	// Adopt a primary role DRBD already has (sand restarted on the
	// primary, or a bootstrap left it): the resource group's steps are
	// idempotent, so starting it again only fills what is missing.
	if d.Action == Stay && local.Role == drbd.RolePrimary && !c.Primary() {
		d = Decision{Action: Promote, Reason: "DRBD is primary here but the resource group is not running: adopt it", Quorum: d.Quorum}
	}
	if d.Action == Promote && now.Before(c.retryAt) {
		d = Decision{Action: Stay, Quorum: d.Quorum, Reason: fmt.Sprintf("%d promotions failed in a row, next try in %s: %s", c.failures, c.retryAt.Sub(now).Round(time.Millisecond), d.Reason)}
	}
	switch d.Action {
	case Promote:
		c.Record(EventDecision, "%s", d.Reason)
		timings, dropped, err := c.promote(ctx, d)
		if err != nil {
			c.failures++
			c.retryAt = c.Now().Add(RetryBackoff(c.failures))
			c.Record(EventStepFailed, "promotion failed and was rolled back: %v (%s); next try in %s", err, timingText(timings), RetryBackoff(c.failures))
		} else {
			c.failures, c.retryAt = 0, time.Time{}
			c.setPrimary(true)
			c.mu.Lock()
			c.promotions++
			c.mu.Unlock()
			c.Record(EventPromoted, "%s is primary (%s)", c.Name, timingText(timings))
		}
		if dropped != nil {
			c.listenAgain(ctx, dropped)
		}
	case Demote:
		c.Record(EventDecision, "%s", d.Reason)
		timings, err := c.Group.Stop(ctx)
		if err != nil {
			// Part of the group is down: the box no longer serves in
			// full. Not primary any more, the loop either demotes again
			// or, if the decision turns to Stay (the peer is no longer
			// ready), adopts the DRBD primary role and starts the group
			// again, instead of claiming a role it does not serve.
			c.setPrimary(false)
			c.Record(EventStepFailed, "demotion stopped at a failed step: %v (%s)", err, timingText(timings))
		} else {
			c.setPrimary(false)
			c.Record(EventDemoted, "%s is secondary (%s)", c.Name, timingText(timings))
		}
	}
	if d.IntentDone {
		c.mu.Lock()
		c.intent = IntentNone
		c.mu.Unlock()
		c.Record(EventDecision, "%s", d.Reason)
	}
	c.advertise(ctx)
}

// promote starts the resource group, first dropping a replication link
// that still points at a dead peer when the decision says so (dropped is
// that link, nil if none was dropped).
func (c *Controller) promote(ctx context.Context, d Decision) (timings []StepTiming, dropped LinkBreaker, err error) {
	if d.HandOver {
		ctx = context.WithValue(ctx, handOverKey{}, true)
	}
	link, ok := c.Storage.(LinkBreaker)
	if d.ForceDisconnect && ok {
		t0 := time.Now()
		if err := link.ForceDisconnect(ctx); err != nil {
			return []StepTiming{{Step: "force disconnect", Took: time.Since(t0), Err: err}}, nil, fmt.Errorf("force the disconnect from %s: %w", c.PeerName, err)
		}
		timings = append(timings, StepTiming{Step: "force disconnect", Took: time.Since(t0)})
		dropped = link
	}
	started, err := c.Group.Start(ctx)
	return append(timings, started...), dropped, err
}

// listenAgain lets DRBD connect to the peer again after a forced
// disconnect, whether or not the promotion took: a returning peer must
// find this box, as primary or secondary. It follows the promotion's
// event (the box serves already; `drbdadm connect` took 1.1 s in the TCG
// lab).
func (c *Controller) listenAgain(ctx context.Context, link LinkBreaker) {
	t0 := time.Now()
	if err := link.Reconnect(ctx); err != nil {
		c.Record(EventStepFailed, "listen for %s again after the forced disconnect: %v", c.PeerName, err)
		return
	}
	c.Log.Info("listening for the peer again", "peer", c.PeerName, "took", time.Since(t0))
}

type handOverKey struct{}

// HandingOver reports whether the promotion running under ctx takes over
// from a peer that let go in order (Decision.HandOver): a step may then
// skip a check that only a crash calls for.
func HandingOver(ctx context.Context) bool {
	h, _ := ctx.Value(handOverKey{}).(bool)
	return h
}

// advertise publishes this box's role, disk, generation and intent.
func (c *Controller) advertise(ctx context.Context) {
	c.mu.Lock()
	t := Tags{Role: drbd.RoleSecondary, Disk: c.lastIn.Local.Disk, Generation: c.lastIn.Local.Generation, Intent: c.intent}
	if c.primary {
		t.Role = drbd.RolePrimary
	}
	same := c.advertised != nil && *c.advertised == t
	c.mu.Unlock()
	if same {
		return
	}
	if err := c.Members.SetTags(t); err != nil {
		c.Log.Warn("advertise tags", "err", err)
		return
	}
	c.mu.Lock()
	c.advertised = &t
	c.mu.Unlock()
}

func timingText(ts []StepTiming) string {
	s := ""
	var total time.Duration
	for i, t := range ts {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%s %s", t.Step, t.Took.Round(time.Millisecond))
		total += t.Took
	}
	return fmt.Sprintf("%s; total %s", s, total.Round(time.Millisecond))
}

// SharedStorage is a disk both boxes see at once (the netns tier's
// shared-disk mode): always UpToDate, "connected" while the peer is up, and
// primary while this box runs the resource group. It has no replication
// link of its own, so the peer's side comes from serf.
type SharedStorage struct {
	Primary func() bool
}

func (s SharedStorage) State(ctx context.Context, peer Peer) (Local, error) {
	l := Local{Role: drbd.RoleSecondary, Disk: drbd.DiskUpToDate, Conn: drbd.ConnWFConnection,
		PeerRole: drbd.RoleUnknown, PeerDisk: drbd.DiskDUnknown}
	if s.Primary() {
		l.Role = drbd.RolePrimary
	}
	// A shared disk has no replication link to report the peer's role:
	// that comes from its serf tags (Peer.Role) alone.
	if peer.Member.up() {
		l.Conn, l.PeerDisk = drbd.ConnConnected, peer.Disk
	}
	return l, nil
}
