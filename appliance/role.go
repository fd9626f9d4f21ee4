package appliance

import (
	"context"
	"errors"
	"fmt"

	"github.com/sand-appliance/sand/events"
)

// ErrNotServing is returned for a change sent to a box that is not serving
// (the secondary of a pair): changes go to the primary, through the VIP.
var ErrNotServing = errors.New("this box is not serving")

// writable reports whether the box may change the registry; admin is
// held, so the answer holds until it is released.
func (b *Box) writable() error {
	if !b.active.Load() {
		return fmt.Errorf("%w: %s is the secondary; send changes to the primary (the VIP)", ErrNotServing, b.cfg.Name)
	}
	return nil
}

// Activate makes this box the one serving: it loads the registry (in a pair
// from the storage that just became readable here), repairs what a crash
// interrupted, writes ietd.conf and applies the target.
func (b *Box) Activate(ctx context.Context) error {
	b.admin.Lock()
	defer b.admin.Unlock()
	reg, err := b.store.Load()
	if err != nil {
		return fmt.Errorf("activate box: %w", err)
	}
	missing, problems, err := b.reconcile(ctx, reg)
	if err != nil {
		return err
	}
	// The registry and the role change together: a Refresh between them
	// would put back the registry it read before.
	b.mu.Lock()
	b.setRegistry(reg)
	b.missing, b.problems = missing, problems
	b.active.Store(true)
	b.mu.Unlock()
	b.poolChanges.Add(1) // what this box's pool shows may have changed while it did not serve
	b.record(events.ServingStarted, "%s serves %d LUNs (registry generation %d)", b.cfg.Name, len(reg.LUNs), reg.Generation)
	return nil
}

// Deactivate stops serving: every target is removed and its backing stores
// released, and the registry becomes read-only here.
func (b *Box) Deactivate(ctx context.Context) error {
	b.admin.Lock()
	defer b.admin.Unlock()
	b.mu.Lock()
	b.active.Store(false)
	b.mu.Unlock()
	b.poolChanges.Add(1)
	// An import copying into new volumes lets go of them, so the pool can
	// be deactivated; it finds the box not serving and commits nothing.
	if err := b.copies.stop(); err != nil {
		b.log.Error("deactivate box: stop imports", "err", err)
	}
	if err := b.driver.Stop(ctx); err != nil {
		return fmt.Errorf("deactivate box: stop target: %w", err)
	}
	b.record(events.ServingStopped, "%s stopped serving", b.cfg.Name)
	return nil
}

// Active reports whether this box is serving. It takes no lock: the
// failover loop asks every round.
func (b *Box) Active() bool { return b.active.Load() }

// Refresh reloads the registry for display on a box that is not serving
// (the shared or last-known copy); it never writes. It takes mu only, never
// admin: a secondary's failover loop calls it every round, and must not
// wait behind an admin operation.
func (b *Box) Refresh() error {
	reg, err := b.store.Load()
	if err != nil {
		return fmt.Errorf("read registry: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.active.Load() {
		b.setRegistry(reg)
	}
	return nil
}

// Generation is the registry generation this box knows. It takes no lock:
// the failover loop asks every round.
func (b *Box) Generation() uint64 { return b.generation.Load() }

// role names what the box does now.
func (b *Box) role() string {
	switch {
	case !b.cfg.Paired():
		return "standalone"
	case b.active.Load():
		return "primary"
	}
	return "secondary"
}
