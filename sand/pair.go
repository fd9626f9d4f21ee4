package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/appliance/command"
	"github.com/sand-appliance/sand/drbd"
	"github.com/sand-appliance/sand/events"
	"github.com/sand-appliance/sand/failover"
	"github.com/sand-appliance/sand/ui"
)

// pair is the running failover machinery of a box of a pair.
type pair struct {
	cfg     appliance.Config
	ctrl    *failover.Controller
	members *failover.Membership
	vip     failover.VIP
	drbd    *failover.DRBDStorage // nil for shared storage
	ping    *failover.Pinger      // nil with a witness or no ping targets
	done    chan error
}

// startPair joins the pair and starts the decision loop. The box starts as
// secondary; the loop promotes it when the rules say so.
func startPair(ctx context.Context, cfg appliance.Config, box *appliance.Box, log *slog.Logger) (*pair, error) {
	p := cfg.Pair
	keyText, err := readSecretFile(p.SerfKeyFile)
	if err != nil {
		return nil, fmt.Errorf("read gossip key: %w", err)
	}
	key, err := failover.ParseKey(keyText)
	if err != nil {
		return nil, err
	}
	bind := netip.MustParseAddrPort(p.SerfBind) // checked by Validate
	conf, err := failover.NewSerfConfig(cfg.Name, bind.Addr().String(), int(bind.Port()), key, log)
	if err != nil {
		return nil, err
	}
	vipPrefix, _ := p.VIPPrefix()
	portal, _ := cfg.PortalAddr()
	vip := failover.VIP{Prefix: vipPrefix, Interface: p.VIPInterface}
	block := failover.PortBlock{Portal: portal}

	// A sand that died as primary may have left the VIP behind: start from
	// a clean secondary.
	if err := vip.Down(ctx); err != nil {
		return nil, err
	}
	if err := block.Unblock(ctx); err != nil {
		return nil, err
	}

	record := func(kind, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		box.Events().Add(events.Event{Kind: events.Kind(kind), Message: msg})
		log.Info("event", "kind", kind, "msg", msg)
	}
	// The primary records its initiators' connections on the replicated
	// volume; the box that takes over tickles them so they reconnect at
	// once instead of at their next TCP retransmission.
	initiators := &failover.Initiators{Portal: portal, File: filepath.Join(cfg.StateDir, "initiators.json"), Log: log}
	group := &failover.Group{Log: log, Steps: []failover.Step{
		{Name: "portal block", Start: block.Block, Stop: block.Unblock},
		// DRBD promotion and the pool come here for pair.storage: drbd.
		{Name: "registry and target", Start: box.Activate, Stop: box.Deactivate},
		{Name: "vip", Start: vip.Up, Stop: vip.Down},
		// No block on the way down: the VIP goes next, and a box without
		// the VIP gets no new connections to block (saves an nft call
		// on every switchover).
		{Name: "portal unblock", Start: block.Unblock, Stop: func(context.Context) error { return nil }},
		{Name: "tickle initiators", Start: func(ctx context.Context) error {
			// Best effort: without it initiators reconnect on their own
			// retransmission, so it never fails a promotion.
			if err := initiators.Tickle(ctx); err != nil {
				log.Warn("tickle the old primary's initiators", "err", err)
			}
			return nil
		}, Stop: func(context.Context) error { initiators.Forget(); return nil }},
	}}
	members := failover.NewMembership(conf, log, time.Now)
	ctrl := &failover.Controller{
		Name: cfg.Name, PeerName: p.Peer, WitnessName: p.Witness,
		Members: members, Group: group,
		// A secondary reads the shared registry each round so it never
		// believes the peer's registry is newer than what it would serve.
		Generation: func() uint64 {
			if !box.Active() {
				if err := box.Refresh(); err != nil {
					log.Warn("read the shared registry", "err", err)
				}
			}
			return box.Generation()
		},
		Record: record, Log: log, Policy: failover.DefaultPolicy(), Now: time.Now,
	}
	// Without a witness, the ping targets are the third vote (pingd's
	// rule); with one, they are ignored (Validate says so).
	var pinger *failover.Pinger
	if p.Witness == "" && len(p.PingTargets) > 0 {
		if pinger, err = failover.NewPinger(p.PingTargets, log); err != nil {
			return nil, fmt.Errorf("config pair.ping_targets: %w", err)
		}
		ctrl.Ping = pinger.View
		go func() {
			if err := pinger.Run(ctx); err != nil {
				log.Error("ping targets: no quorum through them", "err", err)
			}
		}()
	}
	// Orphan volumes are swept once the box serves: listing the pool is
	// slow and no initiator waits for it.
	chores := []failover.Chore{{Name: "sweep orphan volumes", Run: box.Sweep}}
	var drbdStorage *failover.DRBDStorage
	var answer func(*pair) failover.QueryHandler
	switch p.Storage {
	case "shared":
		ctrl.Storage = failover.SharedStorage{Primary: ctrl.Primary}
	case "drbd":
		res, err := drbdResource(cfg)
		if err != nil {
			return nil, err
		}
		dp := &drbdPair{cfg: cfg, res: res, admin: drbd.NewAdmin(command.Exec{Log: log}), run: command.Exec{Log: log}, log: log}
		if err := dp.prepare(ctx); err != nil {
			return nil, err
		}
		if err := dp.bootstrap(ctx); err != nil {
			return nil, err
		}
		dp.askPeer = func(ctx context.Context) ([]byte, error) {
			return members.Ask(ctx, p.Peer, failover.HandOverQuery, []byte(cfg.Pool.VG))
		}
		drbdStorage = &failover.DRBDStorage{Admin: dp.admin, Resource: res}
		answer = func(pr *pair) failover.QueryHandler {
			answerOutdate := pr.answerOutdate(res, dp.admin)
			return func(name string, payload []byte) []byte {
				if name == failover.HandOverQuery {
					return dp.answerHandOver(payload)
				}
				return answerOutdate(name, payload)
			}
		}
		ctrl.Storage = drbdStorage
		// DRBD primary and the pool come before the registry and target.
		group.Steps = append([]failover.Step{group.Steps[0], dp.askStep(), drbdStorage.Step(), dp.poolStep()}, group.Steps[1:]...)
		chores = append(chores, dp.monitoring())
	}
	group.Steps = append(group.Steps, failover.Background(log, chores...))
	if err := box.Refresh(); err != nil {
		log.Warn("read the registry for display", "err", err)
	}
	if err := members.Start(failover.Tags{Generation: box.Generation()}); err != nil {
		return nil, err
	}
	go joinUntilDone(ctx, members, p.Join, log)
	pr := &pair{cfg: cfg, ctrl: ctrl, members: members, vip: vip, drbd: drbdStorage, ping: pinger, done: make(chan error, 1)}
	if answer != nil {
		members.SetQueryHandler(answer(pr))
	}
	go func() { pr.done <- ctrl.Run(ctx) }()
	go recordInitiators(ctx, ctrl, box, initiators, log)
	return pr, nil
}

// recordInitiators keeps the primary's list of initiator connections
// current (checked every second, written only when it changed).
func recordInitiators(ctx context.Context, ctrl *failover.Controller, box *appliance.Box, in *failover.Initiators, log *slog.Logger) {
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
		if !ctrl.Primary() || !box.Active() {
			continue
		}
		if err := in.Record(); err != nil {
			log.Warn("record initiator connections", "err", err)
		}
	}
}

// joinUntilDone keeps trying to join the peer and the witness: at boot the
// other boxes may not be up yet.
func joinUntilDone(ctx context.Context, m *failover.Membership, addrs []string, log *slog.Logger) {
	for {
		n, err := m.Join(addrs)
		if err == nil && n > 0 {
			log.Info("joined the pair", "contacted", n)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

// stop waits for the loop to hand over (it demotes in order when ctx
// ends) and leaves the cluster so the peer promotes without waiting for a
// failure detection.
func (p *pair) stop() error {
	err := <-p.done
	if lerr := p.members.Leave(); lerr != nil && err == nil {
		err = lerr
	}
	p.members.Shutdown()
	return err
}

// allowNonlocalBind lets the target listen on the VIP before the VIP is on
// the box, so the target is ready the moment the VIP arrives (the VIP comes
// last in the resource group). It is a per-namespace setting.
func allowNonlocalBind(v6 bool) error {
	path := "/proc/sys/net/ipv4/ip_nonlocal_bind"
	if v6 {
		path = "/proc/sys/net/ipv6/ip_nonlocal_bind"
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(1)), 0o644); err != nil {
		return fmt.Errorf("allow the target to bind the VIP: %w", err)
	}
	return nil
}

// State is the pair as the UI and the API show it.
func (p *pair) State(ctx context.Context) ui.PairState {
	st := p.ctrl.Status()
	peer, witness := p.members.View(p.cfg.Pair.Peer, p.cfg.Pair.Witness)
	self := ui.PairBox{Name: p.cfg.Name, Address: p.cfg.Pair.SerfBind, Local: true, Role: ui.RoleSecondary}
	if p.ctrl.Primary() {
		self.Role = ui.RolePrimary
	}
	if p.ctrl.Intent() == failover.IntentStandby {
		self.Role = ui.RoleStandby
	}
	self.Detail = st.Reason
	other := ui.PairBox{Name: peer.Name, Role: ui.RoleSecondary}
	switch {
	case peer.Member == failover.MemberUnknown:
		other.Role, other.Detail = ui.RoleDown, "never seen"
	case peer.Member == failover.MemberFailed || peer.Member == failover.MemberLeft:
		other.Role, other.Detail = ui.RoleDown, fmt.Sprintf("%s %s ago", peer.Member, time.Since(peer.Since).Round(time.Second))
	case peer.Intent == failover.IntentStandby:
		other.Role = ui.RoleStandby
	case peer.Role == drbd.RolePrimary:
		other.Role = ui.RolePrimary
	}
	vip, _ := p.cfg.Pair.VIPPrefix()
	s := ui.PairState{
		Boxes: []ui.PairBox{self, other},
		VIP:   &ui.VIPState{Address: vip.Addr().String()},
		// Shared-disk pairs have no replication link to show.
		Failovers: p.ctrl.Promotions(),
	}
	if held, err := p.vip.Held(); err == nil && held {
		s.VIP.Holder = p.cfg.Name
	} else if other.Role == ui.RolePrimary {
		s.VIP.Holder = other.Name
	}
	if witness.Configured {
		s.Witness = &ui.WitnessState{Name: witness.Name, Reachable: witness.Member == failover.MemberAlive}
	}
	if p.ping != nil {
		s.Ping = &ui.PingState{Reachable: p.ping.View(time.Now()).Reachable}
		for _, t := range p.ping.Targets {
			s.Ping.Targets = append(s.Ping.Targets, t.String())
		}
	}
	if p.drbd != nil {
		if st, split, err := p.drbd.Status(ctx); err == nil {
			s.DRBD = &ui.DRBDState{
				Resource: p.cfg.Pair.DRBD.Resource, Connection: st.Connection.String(),
				LocalRole: st.Role.String(), PeerRole: st.PeerRole.String(),
				LocalDisk: st.Disk.String(), PeerDisk: st.PeerDisk.String(), Protocol: "C",
				Syncing: st.Connection.Syncing(), SyncPercent: st.SyncPercent, SyncLeft: st.SyncRemaining,
				SplitBrain: split,
			}
		}
	}
	if self.Role != ui.RolePrimary {
		s.WhyNoSwitchover = "switchover runs on the primary: open the UI or API on the VIP"
	} else if other.Role != ui.RoleSecondary {
		s.WhyNoSwitchover = fmt.Sprintf("the peer %s is %s: it cannot take over now", other.Name, other.Role)
	}
	if self.Role == ui.RoleStandby && other.Role == ui.RoleStandby {
		s.WhyNoStandby = "both boxes are in standby"
	}
	if self.Role != ui.RoleStandby && other.Role != ui.RoleStandby {
		s.WhyNoResume = "no box is in standby"
	}
	return s
}

// Switchover hands the primary role to the peer: this box demotes once the
// peer is ready, the peer promotes once it sees this box secondary.
func (p *pair) Switchover(ctx context.Context) error {
	if why := p.State(ctx).WhyNoSwitchover; why != "" {
		return fmt.Errorf("%w: %s", appliance.ErrInvalid, why)
	}
	p.setIntentAfterAnswer(failover.IntentSwitchover)
	return nil
}

// answerGrace is how long an intent that makes this box let go waits, so
// the API's answer leaves through the VIP before the VIP does: without it,
// under load, `sand switchover` got "connection reset by peer" for a
// switchover that then ran (seen in the VM lab, 1 of 5).
const answerGrace = 300 * time.Millisecond

// setIntentAfterAnswer applies intent on this box once answerGrace has
// passed; the request that asked for it has been answered by then.
func (p *pair) setIntentAfterAnswer(intent failover.Intent) {
	time.AfterFunc(answerGrace, func() { p.ctrl.SetIntent(intent) })
}

// Standby takes a box (this one or the peer) out of service for maintenance.
func (p *pair) Standby(ctx context.Context, box string) error {
	return p.sendIntent(box, failover.IntentStandby)
}

// Resume puts a box in standby back into the pair as secondary.
func (p *pair) Resume(ctx context.Context, box string) error {
	return p.sendIntent(box, failover.IntentNone)
}

func (p *pair) sendIntent(box string, intent failover.Intent) error {
	switch box {
	case p.cfg.Name:
		// Applied here (the event reaches the peer's view too).
		p.setIntentAfterAnswer(intent)
		return nil
	case p.cfg.Pair.Peer:
		return p.members.SendIntent(box, intent)
	}
	return fmt.Errorf("%w: %q is neither this box (%s) nor its peer (%s)", appliance.ErrNotFound, box, p.cfg.Name, p.cfg.Pair.Peer)
}

// Fence outcomes, mapped by `sand fence-peer` to DRBD's handler exit codes.
const (
	fenceOutdated    = "outdated"    // exit 4: the peer's disk is Outdated
	fenceDead        = "dead"        // exit 7: the peer is gone and quorum confirms it
	fenceUnreachable = "unreachable" // exit 1: neither: I/O stays frozen
	fenceRefused     = "refused"     // exit 6: the peer is primary
)

// FenceWait bounds how long FencePeer keeps trying before it leaves I/O
// frozen for the admin. DRBD often notices a lost link (its ping timeout)
// before serf declares the peer failed (about 1 s): the answer comes within
// a few rounds.
const FenceWait = 15 * time.Second

// FencePeer makes sure the peer cannot be promoted with older data: it
// asks the peer to outdate its disk over the gossip network (the other
// path), or, once the peer is gone, confirms that with the witness's vote.
// It retries until one of them answers or FenceWait has passed.
func (p *pair) FencePeer(ctx context.Context) (string, error) {
	if p.drbd == nil {
		return "", fmt.Errorf("%w: fencing applies to DRBD storage only", appliance.ErrInvalid)
	}
	ctx, cancel := context.WithTimeout(ctx, FenceWait)
	defer cancel()
	start := time.Now()
	var last error
	for {
		outcome, err := p.fenceOnce(ctx)
		if err == nil {
			return outcome, nil
		}
		last = err
		select {
		case <-ctx.Done():
			p.ctrl.Record(failover.EventDecision, "fence-peer: gave up after %s: %v; I/O stays frozen until the link is back or the admin decides", time.Since(start).Round(time.Millisecond), last)
			return fenceUnreachable, nil
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// fenceOnce is one attempt; an error means "no answer yet".
func (p *pair) fenceOnce(ctx context.Context) (string, error) {
	peer, witness := p.members.View(p.cfg.Pair.Peer, p.cfg.Pair.Witness)
	gone := peer.Member == failover.MemberFailed || peer.Member == failover.MemberLeft
	if gone {
		// Only a witness can confirm the peer's death: ping targets vouch
		// for this box's own reach, and with both links cut both boxes
		// still reach the gateway. Confirming on them would let both
		// sides resume I/O and lose the old primary's acknowledged writes.
		if witness.Configured && witness.Member == failover.MemberAlive {
			p.ctrl.Record(failover.EventDecision, "fence-peer: %s is %s and the witness agrees: fenced", peer.Name, peer.Member)
			return fenceDead, nil
		}
		return "", fmt.Errorf("%s is %s but no witness confirms it", peer.Name, peer.Member)
	}
	ask, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	answer, err := p.members.Ask(ask, peer.Name, failover.OutdateQuery, []byte(p.cfg.Pair.DRBD.Resource))
	switch {
	case err != nil:
		return "", fmt.Errorf("ask %s to outdate: %w", peer.Name, err)
	case string(answer) == failover.OutdateDone:
		p.ctrl.Record(failover.EventDecision, "fence-peer: %s outdated its disk", peer.Name)
		return fenceOutdated, nil
	case string(answer) == failover.OutdateRefused:
		p.ctrl.Record(failover.EventDecision, "fence-peer: %s is primary and refused to outdate", peer.Name)
		return fenceRefused, nil
	}
	return "", fmt.Errorf("%s answered %q", peer.Name, answer)
}

// answerOutdate is the peer's side of fence-peer: a secondary outdates its
// disk when the primary lost the replication link to it. DRBD refuses
// while its side still sees the link up; the primary's fence-peer retries
// until this side's ping timeout has passed too.
func (p *pair) answerOutdate(res drbd.Resource, admin *drbd.Admin) failover.QueryHandler {
	return func(name string, payload []byte) []byte {
		if name != failover.OutdateQuery || string(payload) != res.Name {
			return []byte("unknown query")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if p.ctrl.Primary() {
			return []byte(failover.OutdateRefused)
		}
		if err := admin.Outdate(ctx, res.Name); err != nil {
			return []byte("error: " + err.Error())
		}
		// While DRBD still sees the link up (its own ping timeout has not
		// expired yet) it turns "outdate" into "nothing to do" and reports
		// success (seen in the lab): only the disk state read back counts.
		// The primary asks again.
		st, err := admin.Status(ctx, res)
		if err != nil {
			return []byte("error: " + err.Error())
		}
		if st.Disk != drbd.DiskOutdated {
			return []byte(fmt.Sprintf("error: disk still %s, connection %s", st.Disk, st.Connection))
		}
		p.ctrl.Record(failover.EventDecision, "outdated the local disk at the peer's request (it lost the replication link)")
		return []byte(failover.OutdateDone)
	}
}

// SplitBrain is DRBD's report (the split-brain handler): the decision
// never promotes or hands over until the admin has resolved it.
func (p *pair) SplitBrain(ctx context.Context) error {
	if p.drbd == nil {
		return fmt.Errorf("%w: split brain applies to DRBD storage only", appliance.ErrInvalid)
	}
	p.drbd.MarkSplitBrain()
	p.ctrl.Record(string(events.SplitBrain), "DRBD reported a split brain on %s: sand will not resolve it; choose the side whose data survives", p.cfg.Pair.DRBD.Resource)
	return nil
}
