package pair

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sand-appliance/sand/appliance/pool/lvm"
	"github.com/sand-appliance/sand/failover"
)

type peerAnswer struct {
	record []byte
	err    error
	took   time.Duration
}

// AskStep puts the question for the peer's record at the start of a
// hand-over promotion, so the answer (a gossip round or two) travels while
// DRBD is promoted; the pool step waits for it. The question runs under
// the promotion's context, bounded to a second.
func (s *Storage) AskStep() failover.Step {
	return failover.Step{
		Name: "ask the peer for its record",
		Start: func(ctx context.Context) error {
			if !failover.HandingOver(ctx) || s.AskPeer == nil {
				return nil
			}
			ch := make(chan peerAnswer, 1)
			s.mu.Lock()
			s.asked = ch
			s.mu.Unlock()
			go func() {
				t0 := time.Now()
				ask, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
				defer cancel()
				b, err := s.AskPeer(ask)
				ch <- peerAnswer{record: b, err: err, took: time.Since(t0)}
			}()
			return nil
		},
		Stop: func(context.Context) error { return nil },
	}
}

// replayPeer activates the pool from the record of the peer that just let
// go; on any failure it has made nothing and the caller runs vgchange.
func (s *Storage) replayPeer(ctx context.Context) error {
	s.mu.Lock()
	ch := s.asked
	s.asked = nil
	s.mu.Unlock()
	if ch == nil {
		return errNotAsked
	}
	t0 := time.Now()
	var ans peerAnswer
	select {
	case ans = <-ch:
	case <-ctx.Done():
		return ctx.Err()
	}
	waited := time.Since(t0)
	if ans.err != nil {
		return ans.err
	}
	if len(ans.record) == 0 {
		return errors.New("the peer has no record")
	}
	a, err := lvm.UnmarshalActivation(ans.record, s.Config.Pool.VG)
	if err != nil {
		return err
	}
	t1 := time.Now()
	if err := s.Devices.Replay(ctx, a, s.Resource.Device()); err != nil {
		return fmt.Errorf("replay the peer's record: %w", err)
	}
	s.Log.Info("pool replayed from the peer's record", "devices", len(a.Devices), "record_bytes", len(ans.record), "answer", ans.took, "waited", waited, "replay", time.Since(t1))
	return nil
}

func (s *Storage) setHandOver(b []byte) {
	s.mu.Lock()
	s.handOver = b
	s.mu.Unlock()
}

// AnswerHandOver gives the peer this box's record (empty if there is none,
// the volume group is not the pool's, or it is too large for an answer).
func (s *Storage) AnswerHandOver(payload []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if string(payload) != s.Config.Pool.VG || len(s.handOver) > failover.QueryResponseLimit-1024 {
		return nil
	}
	return s.handOver
}
