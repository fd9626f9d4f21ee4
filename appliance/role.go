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

// writable reports whether the box may change the registry; b.mu is held.
func (b *Box) writable() error {
	if !b.active {
		return fmt.Errorf("%w: %s is the secondary; send changes to the primary (the VIP)", ErrNotServing, b.cfg.Name)
	}
	return nil
}

// Activate makes this box the one serving: it loads the registry (in a pair
// from the storage that just became readable here), repairs what a crash
// interrupted, writes ietd.conf and applies the target.
func (b *Box) Activate(ctx context.Context) error {
	reg, err := b.store.Load()
	if err != nil {
		return fmt.Errorf("activate box: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reg = reg
	if err := b.reconcile(ctx); err != nil {
		return err
	}
	b.active = true
	b.record(events.ServingStarted, "%s serves %d LUNs (registry generation %d)", b.cfg.Name, len(reg.LUNs), reg.Generation)
	return nil
}

// Deactivate stops serving: every target is removed and its backing stores
// released, and the registry becomes read-only here.
func (b *Box) Deactivate(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.active = false
	if err := b.driver.Stop(ctx); err != nil {
		return fmt.Errorf("deactivate box: stop target: %w", err)
	}
	b.record(events.ServingStopped, "%s stopped serving", b.cfg.Name)
	return nil
}

// Active reports whether this box is serving.
func (b *Box) Active() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.active
}

// Refresh reloads the registry for display on a box that is not serving
// (the shared or last-known copy); it never writes.
func (b *Box) Refresh() error {
	reg, err := b.store.Load()
	if err != nil {
		return fmt.Errorf("read registry: %w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.active {
		b.reg = reg
	}
	return nil
}

// Generation is the registry generation this box knows.
func (b *Box) Generation() uint64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.reg.Generation
}

// role names what the box does now; b.mu is held.
func (b *Box) role() string {
	switch {
	case !b.cfg.Paired():
		return "standalone"
	case b.active:
		return "primary"
	}
	return "secondary"
}
