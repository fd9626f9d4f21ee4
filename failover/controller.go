package failover

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sand-appliance/sand/drbd"
	"github.com/sand-appliance/sand/events"
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

// Recorder takes events for the box's events log (and the journal).
type Recorder func(kind events.Kind, format string, args ...any)

// Controller runs the decision loop of one storage box: it reads the local
// storage and the membership into a Snapshot, asks its Decider, runs the
// resource group, reports the outcome to the Decider, and advertises the
// result in its serf tags.
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
	// promotions counts the promotions since sand started.
	promotions uint64

	// The loop's own, touched by its goroutine only:
	// decider holds the decision's memory (grace periods, back-off).
	decider Decider
	// resyncing: a resync was recorded as started, not yet as finished.
	resyncing bool
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
	c.Record(events.Decision, "admin intent %s", i)
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
	memberEvents := c.Members.Events()
	t := time.NewTimer(tick)
	defer t.Stop()
	for {
		d := c.step(ctx)
		wait := tick
		if d.Next > 0 {
			wait = min(wait, d.Next)
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return c.shutdown()
		case <-t.C:
		case e, ok := <-memberEvents:
			switch {
			case !ok:
				// The membership shut down: no more events (a closed
				// channel would be ready at once, for ever). The tick
				// goes on.
				memberEvents = nil
				c.Log.Warn("membership events closed: deciding at the tick only")
			case e.Kind == EventIntent:
				if e.Member.Name == c.Name {
					c.SetIntent(e.Intent)
				}
			case e.Member.Name != c.Name:
				c.Record(events.Membership, "%s: %s is %s", e.Kind, e.Member.Name, e.Member.Status)
			}
		}
	}
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
	c.mu.Lock()
	c.primary = false
	c.mu.Unlock()
	return nil
}

// step is one round: read a snapshot, ask the decider, act, report the
// outcome to the decider, advertise. It returns the decision it acted on
// (the zero Decision when the storage could not be read).
func (c *Controller) step(ctx context.Context) Decision {
	peer, witness := c.Members.View(c.PeerName, c.WitnessName)
	local, err := c.Storage.State(ctx, peer)
	if err != nil {
		c.Log.Error("read local storage state", "err", err)
		return Decision{}
	}
	local.Name = c.Name
	// Storage may know a newer generation than the box can read (a DRBD
	// secondary cannot mount the metadata volume but holds its data).
	local.Generation = max(local.Generation, c.Generation())
	now := c.Now()
	var ping Ping
	if c.Ping != nil {
		ping = c.Ping(now)
	}
	c.mu.Lock()
	s := Snapshot{
		Input:   Input{Now: now, Local: local, Peer: peer, Witness: witness, Ping: ping, Intent: c.intent, Policy: c.Policy},
		Running: c.primary,
	}
	before, last := c.lastIn, c.last
	c.mu.Unlock()

	// The kernel's own DRBD lines stay off the console (loglevel=3); the
	// events log says when the link dropped, the peer went or came back,
	// and a resync began or ended.
	var notes []change
	notes, c.resyncing = changes(before, s.Input, c.resyncing)
	for _, n := range notes {
		c.Record(n.kind, "%s", n.text)
	}

	d := c.decider.Step(s)
	c.mu.Lock()
	c.last, c.lastIn = d, s.Input
	c.mu.Unlock()
	level := slog.LevelDebug
	if d.Action != last.Action || d.Quorum != last.Quorum {
		level = slog.LevelInfo
	}
	c.Log.Log(ctx, level, "decision", "action", d.Action, "rule", d.Rule, "reason", d.Reason, "quorum", d.Quorum)

	var timings []StepTiming
	var dropped LinkBreaker
	switch d.Action {
	case Promote:
		c.Record(events.Decision, "%s", d.Reason)
		timings, dropped, err = c.promote(ctx, d)
	case Demote:
		c.Record(events.Decision, "%s", d.Reason)
		// A demotion that fails stops part of the group: the box no
		// longer serves in full, and is not primary any more either way.
		// The loop then demotes again or, if the decision turns to Stay
		// (the peer is no longer ready), adopts the DRBD primary role
		// (A1) and starts the group again, instead of claiming a role it
		// does not serve.
		timings, err = c.Group.Stop(ctx)
	}
	if d.Action != Stay {
		c.decider.Report(Outcome{Action: d.Action, At: c.Now(), Err: err})
	}
	c.mu.Lock()
	switch {
	case d.Action == Promote && err == nil:
		c.primary = true
		c.promotions++
	case d.Action != Stay:
		c.primary = false
	}
	if d.IntentDone && c.intent == s.Intent {
		c.intent = IntentNone
	}
	tags := Tags{Role: drbd.RoleSecondary, Disk: local.Disk, Generation: local.Generation, Intent: c.intent}
	if c.primary {
		tags.Role = drbd.RolePrimary
	}
	c.mu.Unlock()

	switch {
	case d.Action == Promote && err != nil:
		failures, _ := c.decider.backoff()
		c.Record(events.StepFailed, "promotion failed and was rolled back: %v (%s); next try in %s", err, timingText(timings), RetryBackoff(failures))
	case d.Action == Promote:
		c.Record(events.Promoted, "%s is primary (%s)", c.Name, timingText(timings))
	case d.Action == Demote && err != nil:
		c.Record(events.StepFailed, "demotion stopped at a failed step: %v (%s)", err, timingText(timings))
	case d.Action == Demote:
		c.Record(events.Demoted, "%s is secondary (%s)", c.Name, timingText(timings))
	}
	if dropped != nil {
		c.listenAgain(ctx, dropped)
	}
	if d.IntentDone {
		c.Record(events.Decision, "%s", d.Reason)
	}
	c.advertise(tags)
	return d
}

// change is an event a step records from what changed since the last one.
type change struct {
	kind events.Kind
	text string
}

// changes lists what changed between two steps' inputs (was is the zero
// Input before the first step): DRBD's state (a replication event), the
// peer lost or back, a resync begun or ended. resyncing says whether a
// resync was recorded as started and not yet as finished; changes returns
// its new value.
func changes(was, is Input, resyncing bool) ([]change, bool) {
	var cs []change
	first := was.Now.IsZero()
	if w, i := viewOf(was.Local), viewOf(is.Local); !first && w != i {
		cs = append(cs, change{events.Replication, fmt.Sprintf("DRBD %s -> %s", w, i)})
	}
	if w, i := was.Peer.Member, is.Peer.Member; !first {
		switch {
		case w.up() && i.gone():
			cs = append(cs, change{events.PeerLost, fmt.Sprintf("peer %s %s", is.Peer.Name, i)})
		case w.gone() && i.up():
			cs = append(cs, change{events.PeerJoined, fmt.Sprintf("peer %s is %s again", is.Peer.Name, i)})
		}
	}
	l := is.Local
	switch {
	case resyncs(l.Conn) && (first || !resyncs(was.Local.Conn)):
		cs = append(cs, change{events.ResyncStarted, fmt.Sprintf("DRBD resync started: %s, disks %s/%s", l.Conn, l.Disk, l.PeerDisk)})
		resyncing = true
	case resyncing && l.Conn == drbd.ConnConnected && l.Disk == drbd.DiskUpToDate && l.PeerDisk == drbd.DiskUpToDate:
		cs = append(cs, change{events.ResyncFinished, "DRBD resync finished: Connected, disks UpToDate/UpToDate"})
		resyncing = false
	}
	return cs, resyncing
}

// resyncs: DRBD is resynchronising (or has paused doing so).
func resyncs(c drbd.ConnState) bool {
	switch c {
	case drbd.ConnSyncSource, drbd.ConnSyncTarget, drbd.ConnPausedSyncS, drbd.ConnPausedSyncT:
		return true
	}
	return false
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
		c.Record(events.StepFailed, "listen for %s again after the forced disconnect: %v", c.PeerName, err)
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

// advertise publishes this box's role, disk, generation and intent,
// unless they are the tags it published last.
func (c *Controller) advertise(t Tags) {
	if c.advertised != nil && *c.advertised == t {
		return
	}
	if err := c.Members.SetTags(t); err != nil {
		c.Log.Warn("advertise tags", "err", err)
		return
	}
	c.advertised = &t
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
