package failover

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/sand-appliance/sand/drbd"
)

// Serf tag keys. Every member advertises them; serf keeps the last tags of a
// failed member, so the decision still knows what a dead peer last was.
const (
	// TagRole is "Primary", "Secondary" or "Unknown" (drbd.Role spellings)
	// on a storage box, RoleWitness on a witness.
	TagRole = "role"
	// TagDisk is the local DRBD disk state (drbd.DiskState spellings).
	TagDisk = "disk"
	// TagGeneration is the registry generation, decimal.
	TagGeneration = "gen"
	// TagIntent is the admin's intent: none, standby, switchover.
	TagIntent = "intent"
	// RoleWitness is TagRole's value on a `sand witness` member.
	RoleWitness = "witness"
)

// KeySize is the length of the gossip key: XChaCha20-Poly1305's (see
// gossipTransport).
const KeySize = 32

// ParseGossipKeys decodes the gossip key file: one base64 key per line,
// the first seals, every one opens (see ParseKeys). The boxes and the
// witness hold it: it lets a member gossip, and nothing more.
func ParseGossipKeys(text string) ([][]byte, error) {
	return ParseKeys(text, "gossip key", KeySize)
}

// ProbeInterval is memberlist's: each other member is probed every
// ProbeInterval × (members - 1).
const ProbeInterval = 200 * time.Millisecond

// NewSerfConfig is the one place serf is tuned for sand: two boxes (and an
// optional witness) on one LAN, gossip sealed with keys (KeySize bytes
// each; the first seals, any opens) by sand's own transport
// (gossipTransport: memberlist's keyring stays off, so serf's key
// queries change nothing).
//
// Timings, measured on these machines (LAB.md, HOST-FINDINGS.md §4):
// memberlist's LAN defaults (ProbeInterval 1 s, ProbeTimeout 500 ms,
// GossipInterval 200 ms, SuspicionMult 4) declared a killed peer failed
// after 6-7 s. With two members nothing can confirm a suspicion, so the
// suspicion timeout is its minimum, SuspicionMult × ProbeInterval (×
// log10(n), floored at 1): 4 s by default. We use
//
//   - ProbeInterval 200 ms, ProbeTimeout 100 ms: a LAN round trip is well
//     under 1 ms; 100 ms leaves two orders of magnitude for a loaded box.
//   - SuspicionMult 2: suspicion timeout 400 ms. It also makes memberlist
//     expect no confirmations (it expects SuspicionMult-2), so a third
//     member (the witness) does not stretch the timeout toward
//     SuspicionMaxTimeoutMult × 400 ms.
//   - GossipInterval 100 ms: tag changes (role, disk) spread in ~0.1 s.
//
// Measured with these values: killed peer failed in 0.78-0.97 s, link cut
// 0.78-0.99 s, graceful leave seen in 0.29-0.38 s; 90-120 s under iSCSI
// load on a noisy 2-core host gave no false failure. The 100 ms / 50 ms
// profile (0.4-0.5 s) was not chosen: it halves the margin for a gain that
// DRBD's own timeouts and the decision's settle time make irrelevant.
func NewSerfConfig(nodeName, bindAddr string, port int, keys [][]byte, logger *slog.Logger) (*serf.Config, error) {
	if nodeName == "" {
		return nil, errors.New("serf config: empty node name")
	}
	if len(keys) == 0 {
		return nil, errors.New("serf config: no gossip key")
	}
	for _, key := range keys {
		if len(key) != KeySize {
			return nil, fmt.Errorf("serf config: gossip key is %d bytes, want %d", len(key), KeySize)
		}
	}
	if ip := net.ParseIP(bindAddr); ip == nil {
		return nil, fmt.Errorf("serf config: bind address %q is not an IP address", bindAddr)
	}
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("serf config: port %d out of range", port)
	}
	ml := memberlist.DefaultLANConfig()
	ml.Name = nodeName
	ml.BindAddr = bindAddr
	ml.BindPort = port
	ml.AdvertisePort = port
	ml.ProbeInterval = ProbeInterval
	ml.ProbeTimeout = 100 * time.Millisecond
	ml.GossipInterval = 100 * time.Millisecond
	ml.SuspicionMult = 2
	// Lifeguard's local-health awareness stretches probe timeouts and
	// intervals on a box whose own probes fail: exactly the isolated
	// primary, which must notice the loss of quorum as fast as the other
	// box notices its death. With it, the isolated box declared its second
	// member failed 1 s after the first, and the peer's target came up
	// 0.2-0.8 s before the isolated primary's went down (netns tier).
	ml.AwarenessMaxMultiplier = 1

	logLogger := log.New(serfLog{logger.With("component", "serf")}, "", 0)
	ml.Logger = logLogger
	ml.LogOutput = nil
	// Sealed packets are longer than memberlist's: keep a gossip datagram
	// within the 1400 bytes memberlist plans for.
	ml.UDPBufferSize -= sealOverhead
	t, err := newGossipTransport(ml, keys)
	if err != nil {
		return nil, fmt.Errorf("serf config: %w", err)
	}
	ml.Transport = t

	c := serf.DefaultConfig()
	c.Init()
	c.NodeName = nodeName
	c.MemberlistConfig = ml
	c.Logger = logLogger
	c.LogOutput = nil
	// Events reach the decision at once (CoalescePeriod stays 0).
	c.CoalescePeriod = 0
	// A query's answer is one UDP datagram (sealed with the gossip key,
	// signed with the pair key); memberlist reads up to 64 KiB. The hand-over record of a
	// volume group with 31 volumes is about 3 KiB.
	c.QueryResponseSizeLimit = QueryResponseLimit
	return c, nil
}

// serfLog carries serf's and memberlist's log lines ("[DEBUG] memberlist:
// ...") into slog at their own level: their debug chatter (a line per
// probe failure, push/pull and stream) stays out of the journal, which
// on a box's console costs CPU that gossip needs.
type serfLog struct{ log *slog.Logger }

func (w serfLog) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[TRACE]": slog.LevelDebug, "[INFO]": slog.LevelInfo, "[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError} {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			line, level = strings.TrimSpace(rest), l
			break
		}
	}
	// memberlist says so on every tag change when its own encryption is
	// off; sand's transport seals every packet and stream.
	if strings.Contains(line, "without encryption") {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, line)
	return len(p), nil
}

// Tags are what a member advertises.
type Tags struct {
	// Witness marks a `sand witness` member (no storage, only votes).
	Witness    bool
	Role       drbd.Role
	Disk       drbd.DiskState
	Generation uint64
	Intent     Intent
}

// Map renders the tags for serf.
func (t Tags) Map() map[string]string {
	if t.Witness {
		return map[string]string{TagRole: RoleWitness}
	}
	return map[string]string{
		TagRole:       t.Role.String(),
		TagDisk:       t.Disk.String(),
		TagGeneration: strconv.FormatUint(t.Generation, 10),
		TagIntent:     t.Intent.String(),
	}
}

// ParseTags reads a member's tags. Unknown or missing values come back as
// zero values (Unknown role, DUnknown disk, generation 0, no intent) with an
// error naming them, so a malformed peer never looks more eligible.
func ParseTags(m map[string]string) (Tags, error) {
	if m[TagRole] == RoleWitness {
		return Tags{Witness: true}, nil
	}
	var t Tags
	var errs []error
	var err error
	if t.Role, err = drbd.ParseRole(m[TagRole]); err != nil {
		errs = append(errs, fmt.Errorf("tag %s: %w", TagRole, err))
	}
	if t.Disk, err = drbd.ParseDiskState(m[TagDisk]); err != nil {
		errs = append(errs, fmt.Errorf("tag %s: %w", TagDisk, err))
	}
	if t.Generation, err = strconv.ParseUint(m[TagGeneration], 10, 64); err != nil {
		errs = append(errs, fmt.Errorf("tag %s: %w", TagGeneration, err))
	}
	if t.Intent, err = ParseIntent(m[TagIntent]); err != nil {
		errs = append(errs, fmt.Errorf("tag %s: %w", TagIntent, err))
	}
	return t, errors.Join(errs...)
}

// Member is one serf member as the failover package sees it.
type Member struct {
	Name   string
	Addr   string // ip:port
	Status MemberStatus
	// Since is when this box saw Status begin (its first sighting for a
	// member present before this box joined).
	Since time.Time
	// Returned is when it last came back alive after being declared
	// failed (zero: never seen to fail): a member that does this within
	// seconds is starved, not dead.
	Returned time.Time
	Tags     Tags
}

// Event is a membership change, timestamped on arrival, for the events log
// and to wake the decision loop.
type Event struct {
	Time   time.Time
	Kind   string // serf's event name: member-join, member-failed, member-update, ...; or EventIntent
	Member Member
	// Intent is set for EventIntent: the admin's wish for the box named
	// in Member.Name.
	Intent Intent
}

// QueryResponseLimit bounds an answer to a query; a handler with more to
// say answers nothing instead, and the asker falls back.
const QueryResponseLimit = 48 << 10

// HandOverQuery asks the peer that just let go for its record of the
// volume group's activation (lvm.Activation): the new primary replays it
// instead of running vgchange. The payload is the volume group's name.
const HandOverQuery = "sand-handover"

// OutdateQuery asks the peer, over the gossip network, to outdate its DRBD
// disk: the fence-peer path that works while the replication link is down.
const OutdateQuery = "sand-outdate"

// Answers to OutdateQuery.
const (
	OutdateDone    = "outdated"
	OutdateRefused = "primary" // the peer is primary: it will not outdate itself
)

// QueryHandler answers the peer's queries; set it before Start. It sees
// only queries that passed the pair's checks (PairAuth), with their
// payload; its answer is signed for the asker. Each query is answered on a
// goroutine of its own, within the asker's timeout (serf drops a late
// answer).
type QueryHandler func(name string, payload []byte) []byte

// SetQueryHandler installs the handler for incoming queries.
func (m *Membership) SetQueryHandler(h QueryHandler) {
	m.mu.Lock()
	m.onQuery = h
	m.mu.Unlock()
}

// Authenticate gives a storage box its pair credentials; call it before
// Start. A member without them (the witness) signs nothing and accepts no
// intent, query or answer: it only gossips and votes.
func (m *Membership) Authenticate(a PairAuth) error {
	g, err := newGuard(a, m.now)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.guard = g
	m.mu.Unlock()
	return nil
}

// OnRefused installs what is told of each refused message (the pair
// records it as an event). Refusals are also logged, both at most
// refusalBurst at once and then one per refusalEvery: a flood of forged
// messages must not flood the journal; the next one passed on says how
// many were left out.
func (m *Membership) OnRefused(f func(Refusal)) {
	m.mu.Lock()
	m.onRefused = f
	m.mu.Unlock()
}

const (
	refusalBurst = 20
	refusalEvery = 500 * time.Millisecond
)

func (m *Membership) refuse(r Refusal) {
	r.Time = m.now()
	m.mu.Lock()
	h := m.onRefused
	// A token bucket: refusalBurst tokens, one more every refusalEvery.
	if !m.refusedAt.IsZero() {
		m.refusalTokens += float64(r.Time.Sub(m.refusedAt)) / float64(refusalEvery)
	} else {
		m.refusalTokens = refusalBurst
	}
	m.refusalTokens = min(m.refusalTokens, refusalBurst)
	m.refusedAt = r.Time
	if m.refusalTokens < 1 {
		m.refusedLeftOut++
		m.mu.Unlock()
		return
	}
	m.refusalTokens--
	if m.refusedLeftOut > 0 {
		r.Reason = fmt.Errorf("%w (and %d more refused messages not recorded)", r.Reason, m.refusedLeftOut)
		m.refusedLeftOut = 0
	}
	m.mu.Unlock()
	m.log.Warn("message refused", "what", r.What, "from", r.From, "reason", r.Reason)
	if h != nil {
		h(r)
	}
}

func (m *Membership) pairGuard() *guard {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.guard
}

// answer checks a query (from the configured peer, signed with the pair
// key, fresh, not seen before) and answers it, signed, through the
// handler. Anything else is refused and answered with nothing.
func (m *Membership) answer(q *serf.Query) {
	m.mu.Lock()
	h := m.onQuery
	m.mu.Unlock()
	g := m.pairGuard()
	if g == nil {
		m.log.Debug("ignoring a query: this member holds no pair key", "query", q.Name, "from", q.SourceNode())
		return
	}
	msg, from, err := g.open(q.Payload, expect{kind: q.Name, from: g.auth.Peer, sender: q.SourceNode()})
	if err != nil {
		m.refuse(Refusal{What: "query " + q.Name, From: from, Reason: err})
		return
	}
	if h == nil {
		return
	}
	b, _, err := g.sign(answerKind(q.Name), g.auth.Peer, msg.Nonce, h(q.Name, msg.Payload))
	if err != nil {
		m.log.Warn("answer a query", "query", q.Name, "err", err)
		return
	}
	if err := q.Respond(b); err != nil {
		m.log.Warn("answer a query", "query", q.Name, "err", err)
	}
}

// Ask sends a signed query to the peer and returns its answer, once that
// is signed by the peer for this very question. A refused answer is
// recorded (OnRefused) and returned as an error: serf takes one answer
// per member, so none better will come.
func (m *Membership) Ask(ctx context.Context, member, name string, payload []byte) ([]byte, error) {
	m.mu.Lock()
	s := m.serf
	m.mu.Unlock()
	g := m.pairGuard()
	switch {
	case s == nil:
		return nil, fmt.Errorf("ask %s %s: membership not started", member, name)
	case g == nil:
		return nil, fmt.Errorf("ask %s %s: this member holds no pair key", member, name)
	case member != g.auth.Peer:
		return nil, fmt.Errorf("ask %s %s: only the peer %s is asked", member, name, g.auth.Peer)
	}
	b, question, err := g.sign(name, member, [16]byte{}, payload)
	if err != nil {
		return nil, fmt.Errorf("ask %s %s: %w", member, name, err)
	}
	timeout := 3 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	resp, err := s.Query(name, b, &serf.QueryParam{FilterNodes: []string{member}, Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("ask %s %s: %w", member, name, err)
	}
	defer resp.Close()
	what := "answer to " + name
	for r := range resp.ResponseCh() {
		if r.From != member {
			m.refuse(Refusal{What: what, From: r.From, Reason: fmt.Errorf("%w: only %s was asked", ErrNotPeer, member)})
			continue
		}
		msg, from, err := g.open(r.Payload, expect{kind: answerKind(name), from: member, re: question.Nonce, sender: r.From})
		if err != nil {
			m.refuse(Refusal{What: what, From: from, Reason: err})
			return nil, fmt.Errorf("ask %s %s: answer refused: %w", member, name, err)
		}
		return msg.Payload, nil
	}
	return nil, fmt.Errorf("ask %s %s: no answer within %s", member, name, timeout.Round(time.Millisecond))
}

// EventIntent is an admin intent (standby, resume) sent to a box through
// the cluster, so an admin can act on either box from whichever box's API
// or UI they use.
const EventIntent = "intent"

// intentEvent is the serf user event that carries an intent, and the kind
// of its signed message.
const intentEvent = "sand-intent"

// SendIntent asks the peer to adopt intent, signed with the pair key.
// Serf delivers user events to every member, this one and the witness
// included; only the peer accepts it.
func (m *Membership) SendIntent(box string, intent Intent) error {
	m.mu.Lock()
	s := m.serf
	m.mu.Unlock()
	g := m.pairGuard()
	switch {
	case s == nil:
		return fmt.Errorf("send intent %s to %s: membership not started", intent, box)
	case g == nil:
		return fmt.Errorf("send intent %s to %s: this member holds no pair key", intent, box)
	case box != g.auth.Peer:
		return fmt.Errorf("send intent %s to %s: intents go to the peer %s only", intent, box, g.auth.Peer)
	}
	b, _, err := g.sign(intentEvent, box, [16]byte{}, []byte(intent.String()))
	if err != nil {
		return fmt.Errorf("send intent %s to %s: %w", intent, box, err)
	}
	if err := s.UserEvent(intentEvent, b, false); err != nil {
		return fmt.Errorf("send intent %s to %s: %w", intent, box, err)
	}
	return nil
}

func (m *Membership) userEvent(ue serf.UserEvent) {
	g := m.pairGuard()
	if g == nil {
		m.log.Debug("ignoring a user event: this member holds no pair key", "event", ue.Name)
		return
	}
	if ue.Name != intentEvent {
		m.refuse(Refusal{What: fmt.Sprintf("user event %q", ue.Name), From: "unknown", Reason: errors.New("sand sends no such event")})
		return
	}
	// This box's own intents come back to it (serf delivers to every
	// member): the peer checks them. A forgery that claims this box's
	// name changes nothing here either.
	if msg, _, _, err := parseMessage(ue.Payload); err == nil && msg.From == g.auth.Self {
		return
	}
	msg, from, err := g.open(ue.Payload, expect{kind: intentEvent, from: g.auth.Peer})
	if err != nil {
		m.refuse(Refusal{What: "intent", From: from, Reason: err})
		return
	}
	intent, err := ParseIntent(string(msg.Payload))
	if err != nil {
		m.refuse(Refusal{What: "intent", From: from, Reason: err})
		return
	}
	m.log.Info("intent from the peer", "from", from, "intent", intent.String())
	select {
	case m.events <- Event{Time: m.now(), Kind: EventIntent, Member: Member{Name: g.auth.Self}, Intent: intent}:
	default:
		m.log.Warn("intent event dropped: reader too slow", "intent", intent.String())
	}
}

// Membership is this box's serf agent.
type Membership struct {
	conf    *serf.Config
	log     *slog.Logger
	now     func() time.Time
	serfCh  chan serf.Event
	events  chan Event
	mu      sync.Mutex
	serf    *serf.Serf
	since   map[string]sinceEntry
	stopped chan struct{}
	onQuery QueryHandler
	// guard signs and checks the pair's messages (nil: a witness, which
	// accepts none).
	guard     *guard
	onRefused func(Refusal)
	// the refusals' token bucket (see refuse), and how many were left
	// out since the last one passed on.
	refusedAt      time.Time
	refusalTokens  float64
	refusedLeftOut int
	once           sync.Once
	loop           sync.WaitGroup
	// answering counts the queries being answered; Shutdown waits for them.
	answering sync.WaitGroup
}

type sinceEntry struct {
	status MemberStatus
	at     time.Time
	// returned is when the member last came back alive after being
	// declared failed (zero: never seen to fail).
	returned time.Time
}

// noteLocked records a member's status as seen at time at and returns its
// entry; the entry changes only when the status does.
func (m *Membership) noteLocked(name string, st MemberStatus, at time.Time) sinceEntry {
	e, ok := m.since[name]
	if ok && e.status == st {
		return e
	}
	if ok && e.status == MemberFailed && st == MemberAlive {
		e.returned = at
	}
	e.status, e.at = st, at
	m.since[name] = e
	return e
}

// NewMembership prepares a member from conf (see NewSerfConfig); Start
// creates it. now is the clock for event times (time.Now in production).
func NewMembership(conf *serf.Config, logger *slog.Logger, now func() time.Time) *Membership {
	if now == nil {
		now = time.Now
	}
	m := &Membership{
		conf:    conf,
		log:     logger,
		now:     now,
		serfCh:  make(chan serf.Event, 256),
		events:  make(chan Event, 256),
		since:   map[string]sinceEntry{},
		stopped: make(chan struct{}),
	}
	conf.EventCh = m.serfCh
	return m
}

// Start binds the gossip port and starts the agent, advertising tags.
func (m *Membership) Start(tags Tags) error {
	m.conf.Tags = tags.Map()
	ml := m.conf.MemberlistConfig
	s, err := serf.Create(m.conf)
	if err != nil {
		// The sealed transport may have bound before serf failed.
		if t, ok := ml.Transport.(*gossipTransport); ok {
			_ = t.Shutdown()
		}
		return fmt.Errorf("start serf member %s on %s:%d: %w", m.conf.NodeName, ml.BindAddr, ml.BindPort, err)
	}
	m.mu.Lock()
	m.serf = s
	m.mu.Unlock()
	m.loop.Add(1)
	go m.run()
	return nil
}

// Addr is the address the agent gossips on (ip:port), useful with port 0.
func (m *Membership) Addr() string {
	n := m.serf.Memberlist().LocalNode()
	return net.JoinHostPort(n.Addr.String(), strconv.Itoa(int(n.Port)))
}

// Join contacts existing members (ip:port each); it succeeds if at least
// one answered.
func (m *Membership) Join(addrs []string) (int, error) {
	n, err := m.serf.Join(addrs, true)
	if err != nil {
		return n, fmt.Errorf("join serf cluster via %s: %w", strings.Join(addrs, ","), err)
	}
	return n, nil
}

// SetTags advertises new tags (role, disk, generation, intent).
func (m *Membership) SetTags(t Tags) error {
	if err := m.serf.SetTags(t.Map()); err != nil {
		return fmt.Errorf("advertise serf tags: %w", err)
	}
	return nil
}

// Leave announces a graceful departure (the peers see Left, not Failed).
// The caller demotes first. Measured: returns after about 1.6 s.
func (m *Membership) Leave() error {
	if err := m.serf.Leave(); err != nil {
		return fmt.Errorf("leave serf cluster: %w", err)
	}
	return nil
}

// Shutdown stops the agent without leaving (the peers see Failed) and
// closes Events. It is idempotent.
func (m *Membership) Shutdown() error {
	var err error
	m.once.Do(func() {
		m.mu.Lock()
		s := m.serf
		m.mu.Unlock()
		if s != nil {
			if e := s.Shutdown(); e != nil {
				err = fmt.Errorf("shut down serf member %s: %w", m.conf.NodeName, e)
			}
		}
		close(m.stopped)
		m.loop.Wait()
		m.answering.Wait()
		close(m.events)
	})
	return err
}

// Events delivers membership changes. It is buffered; when the reader falls
// behind, events are dropped (and logged): Members stays authoritative.
func (m *Membership) Events() <-chan Event { return m.events }

// Members is a snapshot of every member but this one.
func (m *Membership) Members() []Member {
	self := m.conf.NodeName
	var out []Member
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, sm := range m.serf.Members() {
		if sm.Name == self {
			continue
		}
		out = append(out, m.memberLocked(sm, m.now()))
	}
	return out
}

// View maps the membership to the decision's inputs for the named peer and
// witness ("" when no witness is configured). A peer or witness not in the
// member list comes back MemberUnknown.
func (m *Membership) View(peer, witness string) (Peer, Witness) {
	p := Peer{Name: peer, Member: MemberUnknown}
	w := Witness{Configured: witness != "", Name: witness, Member: MemberUnknown}
	for _, mb := range m.Members() {
		switch mb.Name {
		case peer:
			p = Peer{
				Name: peer, Member: mb.Status, Since: mb.Since, Returned: mb.Returned,
				Role: mb.Tags.Role, Disk: mb.Tags.Disk, Intent: mb.Tags.Intent, Generation: mb.Tags.Generation,
			}
		case witness:
			w.Member = mb.Status
		}
	}
	return p, w
}

// memberLocked maps a serf member, noting a status change as seen at at.
func (m *Membership) memberLocked(sm serf.Member, at time.Time) Member {
	st := memberStatus(sm.Status)
	e := m.noteLocked(sm.Name, st, at)
	tags, err := ParseTags(sm.Tags)
	if err != nil {
		m.log.Debug("member advertises unusable tags", "member", sm.Name, "err", err)
	}
	return Member{
		Name:     sm.Name,
		Addr:     net.JoinHostPort(sm.Addr.String(), strconv.Itoa(int(sm.Port))),
		Status:   st,
		Since:    e.at,
		Returned: e.returned,
		Tags:     tags,
	}
}

func memberStatus(s serf.MemberStatus) MemberStatus {
	switch s {
	case serf.StatusAlive:
		return MemberAlive
	case serf.StatusLeaving:
		return MemberLeaving
	case serf.StatusLeft:
		return MemberLeft
	case serf.StatusFailed:
		return MemberFailed
	}
	return MemberUnknown
}

func (m *Membership) run() {
	defer m.loop.Done()
	for {
		select {
		case <-m.stopped:
			return
		case ev := <-m.serfCh:
			if ue, ok := ev.(serf.UserEvent); ok {
				m.userEvent(ue)
				continue
			}
			if q, ok := ev.(*serf.Query); ok {
				// Answered on a goroutine of its own: a handler may run a
				// command (drbdadm outdate), and this loop delivers the
				// membership events the failover decides on.
				m.answering.Add(1)
				go func() {
					defer m.answering.Done()
					m.answer(q)
				}()
				continue
			}
			me, ok := ev.(serf.MemberEvent)
			if !ok {
				continue
			}
			at := m.now()
			for _, sm := range me.Members {
				if sm.Name == m.conf.NodeName {
					continue
				}
				m.mu.Lock()
				mb := m.memberLocked(sm, at)
				m.mu.Unlock()
				m.log.Info("serf member event", "event", me.Type.String(), "member", mb.Name, "status", mb.Status.String(), "addr", mb.Addr)
				select {
				case m.events <- Event{Time: at, Kind: me.Type.String(), Member: mb}:
				default:
					m.log.Warn("membership event dropped: reader too slow", "event", me.Type.String(), "member", mb.Name)
				}
			}
		}
	}
}
