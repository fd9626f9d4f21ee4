package failover

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// RunWitness runs a storage-less member that only votes, the third member
// of the quorum (self + peer + witness, 2 of 3), until ctx ends; then it
// leaves. The boxes may come up later than the witness: they join it.
func RunWitness(ctx context.Context, m *Membership, join []string, log *slog.Logger) error {
	if err := m.Start(Tags{Witness: true}); err != nil {
		return err
	}
	defer func() {
		if err := m.Shutdown(); err != nil {
			log.Error("shut down witness", "err", err)
		}
	}()
	if len(join) > 0 {
		if n, err := m.Join(join); err != nil {
			log.Warn("join failed; waiting for the boxes to join this witness", "peers", strings.Join(join, ","), "err", err)
		} else {
			log.Info("joined", "contacted", n)
		}
	}
	log.Info("witness running", "addr", m.Addr())
	events := m.Events()
	for {
		select {
		case <-ctx.Done():
			log.Info("leaving the cluster")
			if err := m.Leave(); err != nil {
				return fmt.Errorf("witness: %w", err)
			}
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			log.Info("member", "event", ev.Kind, "member", ev.Member.Name, "status", ev.Member.Status.String())
		}
	}
}
