package failover

import (
	"context"
	"sync"

	"github.com/sand-appliance/sand/drbd"
)

// DRBDAdmin is what DRBDStorage needs of drbd.Admin.
type DRBDAdmin interface {
	Status(ctx context.Context, r drbd.Resource) (drbd.Status, error)
	Primary(ctx context.Context, r drbd.Resource, force bool) error
	Secondary(ctx context.Context, r drbd.Resource) error
	Disconnect(ctx context.Context, r drbd.Resource, force bool) error
	Connect(ctx context.Context, name string) error
}

// DRBDStorage is the replicated disk of an appliance pair.
type DRBDStorage struct {
	Admin    DRBDAdmin
	Resource drbd.Resource

	mu sync.Mutex
	// synced is the highest registry generation the peer advertised while
	// DRBD was connected and both disks UpToDate: protocol C guarantees
	// this box's copy of the metadata volume holds it, though it cannot
	// read it while secondary.
	synced uint64
	// splitBrain latches DRBD's report until the admin clears it.
	splitBrain bool
}

// State reads DRBD. A StandAlone connection after a connect attempt with
// both sides having been primary is DRBD's split-brain outcome with the
// "disconnect" policies sand sets; the DRBD split-brain handler (sand
// split-brain) latches it through MarkSplitBrain.
func (s *DRBDStorage) State(ctx context.Context, peer Peer) (Local, error) {
	st, err := s.Admin.Status(ctx, s.Resource)
	if err != nil {
		return Local{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.Connection == drbd.ConnConnected && st.Disk == drbd.DiskUpToDate && st.PeerDisk == drbd.DiskUpToDate &&
		peer.Member == MemberAlive && peer.Generation > s.synced {
		s.synced = peer.Generation
	}
	return Local{
		Role: st.Role, Disk: st.Disk, Conn: st.Connection, PeerRole: st.PeerRole, PeerDisk: st.PeerDisk,
		SplitBrain: s.splitBrain, Generation: s.synced,
	}, nil
}

// MarkSplitBrain records that DRBD reported a split brain; only the admin
// clears it (ClearSplitBrain) after choosing which side's data survives.
func (s *DRBDStorage) MarkSplitBrain() {
	s.mu.Lock()
	s.splitBrain = true
	s.mu.Unlock()
}

// ClearSplitBrain is the admin's word that the split brain is resolved.
func (s *DRBDStorage) ClearSplitBrain() {
	s.mu.Lock()
	s.splitBrain = false
	s.mu.Unlock()
}

// Step is the resource group's first step: DRBD primary and back.
func (s *DRBDStorage) Step() Step {
	return Step{
		Name:  "drbd " + s.Resource.Name,
		Start: func(ctx context.Context) error { return s.Admin.Primary(ctx, s.Resource, false) },
		Stop:  func(ctx context.Context) error { return s.Admin.Secondary(ctx, s.Resource) },
	}
}

// ForceDisconnect drops the replication link at once (disconnect --force):
// only for a peer decided dead with quorum (Decision.ForceDisconnect).
func (s *DRBDStorage) ForceDisconnect(ctx context.Context) error {
	return s.Admin.Disconnect(ctx, s.Resource, true)
}

// Reconnect lets DRBD connect to the peer again once it is back.
func (s *DRBDStorage) Reconnect(ctx context.Context) error {
	return s.Admin.Connect(ctx, s.Resource.Name)
}

// Status reads DRBD for display.
func (s *DRBDStorage) Status(ctx context.Context) (drbd.Status, bool, error) {
	st, err := s.Admin.Status(ctx, s.Resource)
	s.mu.Lock()
	defer s.mu.Unlock()
	return st, s.splitBrain, err
}
