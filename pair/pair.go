// Package pair is the runtime of a box of a pair: it joins the membership,
// brings up the replicated storage, builds the resource group the failover
// decision starts and stops, runs the decision loop, answers the peer's
// queries (outdate, hand-over record) and the fence-peer handler, and
// shows the pair to the UI. `sand serve` constructs it with its
// dependencies, starts it, and shuts it down on every exit path.
package pair

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/appliance/command"
	"github.com/sand-appliance/sand/drbd"
	"github.com/sand-appliance/sand/events"
	"github.com/sand-appliance/sand/failover"
)

// Deps are what a pair runs on. Run, Mounts and Devices reach the system;
// the rest is the box's own.
type Deps struct {
	Config  appliance.Config
	Box     *appliance.Box
	Members *failover.Membership
	Run     command.Runner
	Mounts  Mounter
	Devices Devices
	// DRBD drives the pair's resource; drbd.NewAdmin(Run) if nil.
	DRBD *drbd.Admin
	Log  *slog.Logger
	// Self is the sand binary, for DRBD's handlers.
	Self string
	// Now is the clock of the decision loop; time.Now if nil.
	Now func() time.Time
}

// Pair is the running failover machinery of a box of a pair.
type Pair struct {
	cfg      appliance.Config
	box      *appliance.Box
	members  *failover.Membership
	log      *slog.Logger
	ctrl     *failover.Controller
	vip      failover.VIP
	block    failover.PortBlock
	ping     *failover.Pinger      // nil with a witness or no ping targets
	storage  *Storage              // nil for shared storage
	drbd     *failover.DRBDStorage // nil for shared storage
	fence    *Fence                // nil for shared storage
	initiats *failover.Initiators

	// ctx ends at Shutdown; every goroutine of the pair runs under it and
	// is counted in running.
	ctx      context.Context
	cancel   context.CancelFunc
	running  sync.WaitGroup
	loopDone chan error
	// loopStarted is set by Start once the decision loop runs.
	loopStarted bool
	shutdown    sync.Once
	stopErr     error
}

// New builds the pair's parts; Start brings them up.
func New(d Deps) (*Pair, error) {
	cfg, p := d.Config, d.Config.Pair
	now := d.Now
	if now == nil {
		now = time.Now
	}
	vipPrefix, err := p.VIPPrefix()
	if err != nil {
		return nil, err
	}
	portal, err := cfg.PortalAddr()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	pr := &Pair{
		cfg: cfg, box: d.Box, members: d.Members, log: d.Log,
		vip:      failover.VIP{Prefix: vipPrefix, Interface: p.VIPInterface},
		block:    failover.PortBlock{Portal: portal},
		initiats: &failover.Initiators{Portal: portal, File: filepath.Join(cfg.StateDir, "initiators.json"), Log: d.Log},
		ctx:      ctx, cancel: cancel, loopDone: make(chan error, 1),
	}
	pr.ctrl = &failover.Controller{
		Name: cfg.Name, PeerName: p.Peer, WitnessName: p.Witness,
		Members: d.Members, Group: pr.group(), Record: pr.record,
		Generation: pr.generation, Log: d.Log, Policy: failover.DefaultPolicy(), Now: now,
	}
	// Without a witness, the ping targets are the third vote (pingd's
	// rule); with one, they are ignored (Validate says so).
	if p.Witness == "" && len(p.PingTargets) > 0 {
		if pr.ping, err = failover.NewPinger(p.PingTargets, d.Log); err != nil {
			return nil, fmt.Errorf("config pair.ping_targets: %w", err)
		}
		pr.ctrl.Ping = pr.ping.View
	}
	chores := []failover.Chore{{Name: "sweep orphan volumes", Run: d.Box.Sweep}}
	switch p.Storage {
	case "shared":
		pr.ctrl.Storage = failover.SharedStorage{Primary: pr.ctrl.Primary}
	case "drbd":
		res, err := Resource(cfg, d.Self)
		if err != nil {
			return nil, err
		}
		admin := d.DRBD
		if admin == nil {
			admin = drbd.NewAdmin(d.Run)
		}
		pr.storage = &Storage{Config: cfg, Resource: res, Admin: admin, Run: d.Run, Mounts: d.Mounts, Devices: d.Devices, Log: d.Log,
			AskPeer: func(ctx context.Context) ([]byte, error) {
				return d.Members.Ask(ctx, p.Peer, failover.HandOverQuery, []byte(cfg.Pool.VG))
			}}
		pr.drbd = &failover.DRBDStorage{Admin: admin, Resource: res}
		pr.fence = &Fence{Peer: p.Peer, Witness: p.Witness, Resource: res.Name, Members: d.Members, Record: pr.record}
		pr.ctrl.Storage = pr.drbd
		// DRBD primary and the pool come before the registry and target.
		g := pr.ctrl.Group
		g.Steps = append([]failover.Step{g.Steps[0], pr.storage.AskStep(), pr.drbd.Step(), pr.storage.PoolStep()}, g.Steps[1:]...)
		chores = append(chores, pr.storage.Monitoring())
	default:
		return nil, fmt.Errorf("config pair.storage %q: want drbd or shared", p.Storage)
	}
	pr.ctrl.Group.Steps = append(pr.ctrl.Group.Steps, failover.Background(d.Log, chores...))
	return pr, nil
}

// group is the resource group without the storage steps: the portal is
// blocked while the registry and target come up, then the VIP, then
// initiators are let in and tickled.
func (p *Pair) group() *failover.Group {
	return &failover.Group{Log: p.log, Steps: []failover.Step{
		{Name: "portal block", Start: p.block.Block, Stop: p.block.Unblock},
		{Name: "registry and target", Start: p.box.Activate, Stop: p.box.Deactivate},
		{Name: "vip", Start: p.vip.Up, Stop: p.vip.Down},
		// No block on the way down: the VIP goes next, and a box without
		// the VIP gets no new connections to block (saves an nft call on
		// every switchover).
		{Name: "portal unblock", Start: p.block.Unblock, Stop: func(context.Context) error { return nil }},
		{Name: "tickle initiators", Start: func(ctx context.Context) error {
			// Best effort: without it initiators reconnect on their own
			// retransmission, so it never fails a promotion.
			if err := p.initiats.Tickle(ctx); err != nil {
				p.log.Warn("tickle the old primary's initiators", "err", err)
			}
			return nil
		}, Stop: func(context.Context) error { p.initiats.Forget(); return nil }},
	}}
}

// record adds an event to the box's log and the journal.
func (p *Pair) record(kind events.Kind, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.box.Events().Add(events.Event{Kind: kind, Message: msg})
	p.log.Info("event", "kind", kind, "msg", msg)
}

// generation is the registry generation this box holds. A secondary reads
// the shared registry each round so it never believes the peer's registry
// is newer than what it would serve.
func (p *Pair) generation() uint64 {
	if !p.box.Active() {
		if err := p.box.Refresh(); err != nil {
			p.log.Warn("read the shared registry", "err", err)
		}
	}
	return p.box.Generation()
}

// Start brings the box up as a clean secondary (a sand that died as
// primary may have left the VIP or the portal block behind), prepares the
// storage, joins the pair and starts the decision loop, which promotes the
// box when the rules say so.
func (p *Pair) Start(ctx context.Context) error {
	if err := p.vip.Down(ctx); err != nil {
		return err
	}
	if err := p.block.Unblock(ctx); err != nil {
		return err
	}
	if p.storage != nil {
		if err := p.storage.Prepare(ctx); err != nil {
			return err
		}
		if err := p.storage.Bootstrap(ctx); err != nil {
			return err
		}
	}
	if err := p.box.Refresh(); err != nil {
		p.log.Warn("read the registry for display", "err", err)
	}
	p.listen()
	if err := p.members.Start(failover.Tags{Generation: p.box.Generation()}); err != nil {
		return err
	}
	p.goRun(func(ctx context.Context) { p.joinUntilDone(ctx) })
	if p.ping != nil {
		p.goRun(func(ctx context.Context) {
			if err := p.ping.Run(ctx); err != nil && ctx.Err() == nil {
				p.log.Error("ping targets: no quorum through them", "err", err)
			}
		})
	}
	p.loopStarted = true
	p.goRun(func(ctx context.Context) { p.loopDone <- p.ctrl.Run(ctx) })
	p.goRun(p.recordInitiators)
	return nil
}

// goRun runs f under the pair's context, counted for Shutdown.
func (p *Pair) goRun(f func(ctx context.Context)) {
	p.running.Add(1)
	go func() {
		defer p.running.Done()
		f(p.ctx)
	}()
}

// listen has the membership pass the peer's checked queries to answer,
// and record every message it refuses.
func (p *Pair) listen() {
	p.members.SetQueryHandler(p.answer)
	p.members.OnRefused(func(r failover.Refusal) {
		p.record(events.MessageRefused, "%s", r)
	})
}

// answer answers the peer's queries; the membership calls it on a
// goroutine per query, once the query passed the pair's checks (from the
// configured peer, signed with the pair key, fresh, not replayed).
func (p *Pair) answer(name string, payload []byte) []byte {
	switch {
	case p.storage == nil:
		return nil
	case name == failover.HandOverQuery:
		return p.storage.AnswerHandOver(payload)
	case name == failover.OutdateQuery && string(payload) == p.storage.Resource.Name:
		return answerOutdate(p.ctx, p.storage.Admin, p.storage.Resource, p.ctrl.Primary(), p.record)
	}
	return []byte("unknown query")
}

// joinUntilDone keeps trying to join the peer and the witness: at boot the
// other boxes may not be up yet.
func (p *Pair) joinUntilDone(ctx context.Context) {
	for {
		n, err := p.members.Join(p.cfg.Pair.Join)
		if err == nil && n > 0 {
			p.log.Info("joined the pair", "contacted", n)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// recordInitiators keeps the primary's list of initiator connections
// current (checked every second, written only when it changed): the box
// that takes over tickles them so they reconnect at once instead of at
// their next TCP retransmission.
func (p *Pair) recordInitiators(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// Active: the registry, and so the metadata volume, is in use
		// here; never write into the mount point of an unmounted volume.
		if !p.ctrl.Primary() || !p.box.Active() {
			continue
		}
		if err := p.initiats.Record(); err != nil {
			p.log.Warn("record initiator connections", "err", err)
		}
	}
}

// Shutdown hands over (the decision loop stops the resource group in
// order when the pair's context ends), leaves the membership so the peer
// promotes without waiting for a failure detection, and waits for every
// goroutine the pair started. It is idempotent, and safe before Start.
func (p *Pair) Shutdown() error {
	p.shutdown.Do(func() {
		p.cancel()
		var errs []error
		if p.loopStarted {
			// The loop runs once the membership started.
			select {
			case err := <-p.loopDone:
				errs = append(errs, err)
			case <-time.After(45 * time.Second):
				errs = append(errs, errors.New("the decision loop did not stop within 45s"))
			}
			if err := p.members.Leave(); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, p.members.Shutdown())
		p.running.Wait()
		p.stopErr = errors.Join(errs...)
	})
	return p.stopErr
}
