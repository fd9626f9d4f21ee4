package pair

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/sand-appliance/sand/drbd"
	"github.com/sand-appliance/sand/events"
	"github.com/sand-appliance/sand/failover"
)

// Cluster is what the pair asks of the membership (*failover.Membership;
// a fake in unit tests).
type Cluster interface {
	View(peer, witness string) (failover.Peer, failover.Witness)
	Ask(ctx context.Context, member, name string, payload []byte) ([]byte, error)
}

// FenceWait bounds how long a fence keeps trying before it leaves I/O
// frozen for the admin. DRBD often notices a lost link (its ping timeout)
// before serf declares the peer failed (about 1 s): the answer comes within
// a few rounds.
const FenceWait = 15 * time.Second

// FenceRetry is the pause between two attempts.
const FenceRetry = 300 * time.Millisecond

// Fence is the primary's side of DRBD's fence-peer handler: it makes sure
// the peer cannot be promoted with older data. It asks the peer to outdate
// its disk over the gossip network (the other path), or, once the peer is
// gone, confirms that with the witness's vote.
type Fence struct {
	Peer, Witness string // Witness "" without one
	Resource      string // the DRBD resource, the outdate query's payload
	Members       Cluster
	Record        failover.Recorder
	// Wait and Retry default to FenceWait and FenceRetry.
	Wait, Retry time.Duration
}

// Run retries until the peer is outdated, confirmed gone or refuses, or
// Wait has passed (FenceUnreachable: I/O stays frozen).
func (f *Fence) Run(ctx context.Context) drbd.FenceOutcome {
	wait, retry := cmp.Or(f.Wait, FenceWait), cmp.Or(f.Retry, FenceRetry)
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	start := time.Now()
	for {
		outcome, err := f.once(ctx)
		if err == nil {
			return outcome
		}
		select {
		case <-ctx.Done():
			f.Record(events.Decision, "fence-peer: gave up after %s: %v; I/O stays frozen until the link is back or the admin decides", time.Since(start).Round(time.Millisecond), err)
			return drbd.FenceUnreachable
		case <-time.After(retry):
		}
	}
}

// once is one attempt; an error means "no answer yet".
func (f *Fence) once(ctx context.Context) (drbd.FenceOutcome, error) {
	peer, witness := f.Members.View(f.Peer, f.Witness)
	if peer.Member == failover.MemberFailed || peer.Member == failover.MemberLeft {
		// Only a witness can confirm the peer's death: ping targets vouch
		// for this box's own reach, and with both links cut both boxes
		// still reach the gateway. Confirming on them would let both
		// sides resume I/O and lose the old primary's acknowledged writes.
		if witness.Configured && witness.Member == failover.MemberAlive {
			f.Record(events.Decision, "fence-peer: %s is %s and the witness agrees: fenced", f.Peer, peer.Member)
			return drbd.FenceDead, nil
		}
		if !witness.Configured {
			return 0, fmt.Errorf("%s is %s but no witness is configured to confirm it", f.Peer, peer.Member)
		}
		return 0, fmt.Errorf("%s is %s but the witness is %s: no quorum confirms it", f.Peer, peer.Member, witness.Member)
	}
	ask, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	answer, err := f.Members.Ask(ask, f.Peer, failover.OutdateQuery, []byte(f.Resource))
	switch {
	case err != nil:
		return 0, fmt.Errorf("ask %s to outdate: %w", f.Peer, err)
	case string(answer) == failover.OutdateDone:
		f.Record(events.Decision, "fence-peer: %s outdated its disk", f.Peer)
		return drbd.FenceOutdated, nil
	case string(answer) == failover.OutdateRefused:
		f.Record(events.Decision, "fence-peer: %s is primary and refused to outdate", f.Peer)
		return drbd.FenceRefused, nil
	}
	return 0, fmt.Errorf("%s answered %q", f.Peer, answer)
}

// Outdater is what the peer's side of the fence needs of drbd.Admin.
type Outdater interface {
	Outdate(ctx context.Context, name string) error
	Status(ctx context.Context, r drbd.Resource) (drbd.Status, error)
}

// answerOutdate is the peer's side of the fence: a secondary outdates its
// disk when the primary lost the replication link to it. DRBD refuses
// while its side still sees the link up; the primary's fence retries
// until this side's ping timeout has passed too.
func answerOutdate(ctx context.Context, admin Outdater, res drbd.Resource, primary bool, record failover.Recorder) []byte {
	if primary {
		return []byte(failover.OutdateRefused)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := admin.Outdate(ctx, res.Name); err != nil {
		return []byte("error: " + err.Error())
	}
	// While DRBD still sees the link up it turns "outdate" into "nothing
	// to do" and reports success: only the disk state read back counts.
	st, err := admin.Status(ctx, res)
	if err != nil {
		return []byte("error: " + err.Error())
	}
	if st.Disk != drbd.DiskOutdated {
		return []byte(fmt.Sprintf("error: disk still %s, connection %s", st.Disk, st.Connection))
	}
	record(events.Decision, "outdated the local disk at the peer's request (it lost the replication link)")
	return []byte(failover.OutdateDone)
}
