package pair

import (
	"context"
	"fmt"
	"time"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/drbd"
	"github.com/sand-appliance/sand/events"
	"github.com/sand-appliance/sand/failover"
	"github.com/sand-appliance/sand/ui"
)

// State is the pair as the UI and the API show it.
func (p *Pair) State(ctx context.Context) ui.PairState {
	st := p.ctrl.Status()
	peer, witness := p.members.View(p.cfg.Pair.Peer, p.cfg.Pair.Witness)
	self := ui.PairBox{Name: p.cfg.Name, Address: p.cfg.Pair.SerfBind, Local: true, Role: ui.RoleSecondary, Detail: st.Reason}
	if p.ctrl.Primary() {
		self.Role = ui.RolePrimary
	}
	if p.ctrl.Intent() == failover.IntentStandby {
		self.Role = ui.RoleStandby
	}
	other := peerBox(peer, time.Now())
	vip, _ := p.cfg.Pair.VIPPrefix()
	s := ui.PairState{
		Boxes:     []ui.PairBox{self, other},
		VIP:       &ui.VIPState{Address: vip.Addr().String()},
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
	// Shared-disk pairs have no replication link to show.
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
	s.WhyNoSwitchover, s.WhyNoStandby, s.WhyNoResume = whyNot(self, other)
	return s
}

// peerBox is the peer as the membership sees it at now.
func peerBox(peer failover.Peer, now time.Time) ui.PairBox {
	b := ui.PairBox{Name: peer.Name, Role: ui.RoleSecondary}
	switch {
	case peer.Member == failover.MemberUnknown:
		b.Role, b.Detail = ui.RoleDown, "never seen"
	case peer.Member == failover.MemberFailed || peer.Member == failover.MemberLeft:
		b.Role, b.Detail = ui.RoleDown, fmt.Sprintf("%s %s ago", peer.Member, now.Sub(peer.Since).Round(time.Second))
	case peer.Intent == failover.IntentStandby:
		b.Role = ui.RoleStandby
	case peer.Role == drbd.RolePrimary:
		b.Role = ui.RolePrimary
	}
	return b
}

// whyNot says why each admin action is impossible now ("" when possible).
func whyNot(self, other ui.PairBox) (switchover, standby, resume string) {
	if self.Role != ui.RolePrimary {
		switchover = "switchover runs on the primary: open the UI or API on the VIP"
	} else if other.Role != ui.RoleSecondary {
		switchover = fmt.Sprintf("the peer %s is %s: it cannot take over now", other.Name, other.Role)
	}
	if self.Role == ui.RoleStandby && other.Role == ui.RoleStandby {
		standby = "both boxes are in standby"
	}
	if self.Role != ui.RoleStandby && other.Role != ui.RoleStandby {
		resume = "no box is in standby"
	}
	return switchover, standby, resume
}

// Switchover hands the primary role to the peer: this box demotes once the
// peer is ready, the peer promotes once it sees this box secondary.
func (p *Pair) Switchover(ctx context.Context) error {
	if why := p.State(ctx).WhyNoSwitchover; why != "" {
		return fmt.Errorf("%w: %s", appliance.ErrInvalid, why)
	}
	p.setIntentAfterAnswer(failover.IntentSwitchover)
	return nil
}

// answerGrace is how long an intent that makes this box let go waits, so
// the API's answer leaves through the VIP before the VIP does: without it,
// under load, `sand switchover` got "connection reset by peer" for a
// switchover that then ran.
const answerGrace = 300 * time.Millisecond

// setIntentAfterAnswer applies intent on this box once answerGrace has
// passed; the request that asked for it has been answered by then.
func (p *Pair) setIntentAfterAnswer(intent failover.Intent) {
	p.goRun(func(ctx context.Context) {
		select {
		case <-ctx.Done():
		case <-time.After(answerGrace):
			p.ctrl.SetIntent(intent)
		}
	})
}

// Standby takes a box (this one or the peer) out of service for maintenance.
func (p *Pair) Standby(ctx context.Context, box string) error {
	return p.sendIntent(box, failover.IntentStandby)
}

// Resume puts a box in standby back into the pair as secondary.
func (p *Pair) Resume(ctx context.Context, box string) error {
	return p.sendIntent(box, failover.IntentNone)
}

func (p *Pair) sendIntent(box string, intent failover.Intent) error {
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

// FencePeer is DRBD's fence-peer handler's question (see Fence).
func (p *Pair) FencePeer(ctx context.Context) (drbd.FenceOutcome, error) {
	if p.fence == nil {
		return drbd.FenceUnreachable, fmt.Errorf("%w: fencing applies to DRBD storage only", appliance.ErrInvalid)
	}
	return p.fence.Run(ctx), nil
}

// SplitBrain is DRBD's report (the split-brain handler): the decision
// never promotes or hands over until the admin has resolved it.
func (p *Pair) SplitBrain(ctx context.Context) error {
	if p.drbd == nil {
		return fmt.Errorf("%w: split brain applies to DRBD storage only", appliance.ErrInvalid)
	}
	p.drbd.MarkSplitBrain()
	p.record(events.SplitBrain, "DRBD reported a split brain on %s: sand will not resolve it; choose the side whose data survives", p.cfg.Pair.DRBD.Resource)
	return nil
}
