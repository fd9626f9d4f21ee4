package appliance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sand-appliance/sand/appliance/durable"
	"github.com/sand-appliance/sand/appliance/pool"
	"github.com/sand-appliance/sand/events"
	"github.com/sand-appliance/sand/iscsi"
)

// Box is one appliance box: it owns the registry and keeps the storage pool,
// ietd.conf and the live iSCSI target matching it. Every change is one
// transaction: validate, change the pool, commit the registry, apply the
// target; a failure undoes the steps already taken, so a bad request or a
// failed step leaves the box as it was.
//
// Two locks keep the failover's reads apart from admin work. admin
// serializes the changes; it is held across pool and target commands
// (lvcreate, the LIO apply). mu guards what readers see and is never held
// across a command or a file write. The failover loop reads Active and
// Generation (atomics) and Refresh (mu only): none of them waits behind an
// admin operation. Lock order: admin, then mu.
type Box struct {
	cfg    Config
	store  Store
	pool   pool.Pool // counts its changes in poolChanges
	driver iscsi.Driver
	log    *slog.Logger
	now    func() time.Time

	// admin serializes the changes of the box: every transaction (LUNs,
	// groups, import), the role changes (Activate, Deactivate) and the
	// removals of a sweep.
	admin sync.Mutex

	// mu guards reg, missing and problems. They change with admin and mu
	// held, except that Refresh replaces reg with mu alone on a box that is
	// not active; so code holding admin on an active box reads them without
	// mu, and everyone else reads them under mu.
	mu  sync.RWMutex
	reg Registry
	// missing names LUNs whose volume the last reconcile did not find;
	// they stay in the registry but are not exported.
	missing  map[string]bool
	problems []string

	// active is true while this box is the one serving: standalone, or
	// primary of a pair. Only an active box writes the registry. It changes
	// with admin and mu held.
	active atomic.Bool
	// generation is reg.Generation, for readers that take no lock.
	generation atomic.Uint64
	// poolChanges counts the changes of the pool's volumes (each counted
	// once its command returned) and of the box's role. A pool listing
	// taken without admin still holds under admin if the count did not
	// move since before the listing began: every change runs under admin.
	poolChanges atomic.Uint64
	events      events.Log

	// copies are the imports filling new volumes outside admin.
	copies volumeCopies
	// host is where an import's copy sources are looked at; nil means the
	// real box (hostViewOf), tests point it at fakes.
	host *hostView
}

// NewBox wires a box together; Start brings it up.
func NewBox(cfg Config, p pool.Pool, driver iscsi.Driver, logger *slog.Logger) *Box {
	b := &Box{
		cfg: cfg, store: Store{Path: cfg.RegistryPath()}, driver: driver,
		log: logger, now: time.Now,
	}
	b.pool = countingPool{Pool: p, changes: &b.poolChanges}
	return b
}

// countingPool counts the changes made through it, once each returned
// (done or failed: a failed command may have changed the pool too).
type countingPool struct {
	pool.Pool
	changes *atomic.Uint64
}

func (p countingPool) Create(ctx context.Context, name string, size int64) (pool.Volume, error) {
	defer p.changes.Add(1)
	return p.Pool.Create(ctx, name, size)
}

func (p countingPool) Grow(ctx context.Context, name string, size int64) error {
	defer p.changes.Add(1)
	return p.Pool.Grow(ctx, name, size)
}

func (p countingPool) Delete(ctx context.Context, name string) error {
	defer p.changes.Add(1)
	return p.Pool.Delete(ctx, name)
}

// setRegistry makes reg the box's registry; mu is held.
func (b *Box) setRegistry(reg Registry) {
	b.reg = reg
	b.generation.Store(reg.Generation)
}

// Start brings up a standalone box: it is always the one serving.
func (b *Box) Start(ctx context.Context) error {
	if err := b.Activate(ctx); err != nil {
		return err
	}
	return b.Sweep(ctx)
}

// Reconcile makes the pool and the target match the registry again, then
// sweeps the orphan volumes.
func (b *Box) Reconcile(ctx context.Context) error {
	if err := b.reconcileServing(ctx); err != nil {
		return err
	}
	return b.Sweep(ctx)
}

func (b *Box) reconcileServing(ctx context.Context) error {
	b.admin.Lock()
	defer b.admin.Unlock()
	if err := b.writable(); err != nil {
		return err
	}
	missing, problems, err := b.reconcile(ctx, b.reg)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.missing, b.problems = missing, problems
	b.mu.Unlock()
	return nil
}

// reconcile finishes what a crash interrupted on the way to serving the
// registry: a volume smaller than its entry is an unfinished grow and is
// grown; a LUN whose volume is gone is reported and not exported. Then it
// writes ietd.conf and applies the target. It looks at each LUN's volume
// alone (pool.Stat: a stat and a sysfs read), never lists the pool: it is
// on the failover's critical path, where a listing (lvs) cost 0.5-1.7 s in
// the TCG lab. Orphan volumes are Sweep's, once the box serves. It returns
// the LUNs whose volume is missing and the problems to report, for the
// caller to publish under mu; admin is held.
func (b *Box) reconcile(ctx context.Context, reg Registry) (missing map[string]bool, problems []string, err error) {
	start := b.now()
	missing = map[string]bool{}
	for _, l := range reg.LUNs {
		if _, err := volumePath(l, b.pool.Path); err != nil {
			msg := err.Error()
			b.log.Error(msg)
			problems = append(problems, msg)
			missing[l.Name] = true
			continue
		}
		v, err := b.pool.Stat(ctx, l.Name)
		switch {
		case errors.Is(err, pool.ErrNotFound):
			msg := fmt.Sprintf("LUN %s: its volume %s is missing; the LUN is not exported", l.Name, b.pool.Path(l.Name))
			b.log.Error(msg)
			problems = append(problems, msg)
			missing[l.Name] = true
		case err != nil:
			return nil, nil, fmt.Errorf("reconcile: %w", err)
		case v.Size < l.Size:
			b.log.Warn("finishing an interrupted grow", "lun", l.Name, "from", v.Size, "to", l.Size)
			if err := b.pool.Grow(ctx, l.Name, l.Size); err != nil {
				return nil, nil, fmt.Errorf("reconcile: %w", err)
			}
		}
	}
	checked := b.now().Sub(start)
	if err := b.applyTarget(ctx, reg, missing); err != nil {
		return nil, nil, fmt.Errorf("reconcile: %w", err)
	}
	b.log.Info("reconciled", "luns", len(reg.LUNs), "generation", reg.Generation, "took", b.now().Sub(start), "volumes_checked", checked)
	return missing, problems, nil
}

// Sweep removes the orphan volumes of a box that serves: a volume without
// a registry entry is an unacknowledged create or an unfinished delete.
// Orphans are never exported, so a box that just took over serves first
// and sweeps after. The pool is listed without admin (lvs takes seconds
// under load); each orphan is checked again under admin against the
// registry as it is then, so a LUN created while the pool was listed keeps
// its volume.
func (b *Box) Sweep(ctx context.Context) error {
	if !b.active.Load() {
		return nil // the primary sweeps
	}
	start := b.now()
	vols, err := b.pool.List(ctx)
	if err != nil {
		return fmt.Errorf("sweep orphan volumes: %w", err)
	}
	listed := b.now().Sub(start)
	b.admin.Lock()
	defer b.admin.Unlock()
	if !b.active.Load() {
		return nil // demoted meanwhile: the next primary sweeps
	}
	removed := 0
	for _, v := range vols {
		if i := b.reg.FindLUN(v.Name); i >= 0 && b.reg.LUNs[i].Path == "" {
			continue
		}
		if b.copies.reserved(v.Name) {
			continue // an import is filling it
		}
		b.log.Warn("removing orphan volume left by an interrupted create or delete", "volume", v.Path)
		if err := b.pool.Delete(ctx, v.Name); err != nil {
			if errors.Is(err, pool.ErrNotFound) {
				continue // a create that failed meanwhile removed its volume
			}
			return fmt.Errorf("sweep orphan volumes: %w", err)
		}
		removed++
	}
	b.log.Info("swept orphan volumes", "volumes", len(vols), "removed", removed, "took", b.now().Sub(start), "listed", listed)
	return nil
}

// targetGroup derives the target configuration from a registry, leaving out
// the LUNs whose volume is missing.
func (b *Box) targetGroup(reg Registry, missing map[string]bool) (iscsi.TargetGroup, error) {
	portal, err := b.cfg.PortalAddr()
	if err != nil {
		return iscsi.TargetGroup{}, err
	}
	export := reg.Clone()
	export.LUNs = slices.DeleteFunc(export.LUNs, func(l LUN) bool { return missing[l.Name] })
	return export.TargetGroup([]string{portal.String()}, b.pool.IOType(), b.pool.Path), nil
}

// applyTarget writes ietd.conf for reg and makes the live target match it.
func (b *Box) applyTarget(ctx context.Context, reg Registry, missing map[string]bool) error {
	tg, err := b.targetGroup(reg, missing)
	if err != nil {
		return err
	}
	if err := tg.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	// A box taking over finds ietd.conf as the old primary wrote it, on
	// the replicated volume: rewriting the same bytes would cost four
	// synchronous writes over DRBD (0.3-0.5 s in the TCG lab) on the
	// failover's path.
	conf := iscsi.RenderIETD(tg)
	if cur, err := os.ReadFile(b.cfg.IETDPath()); err != nil || !bytes.Equal(cur, conf) {
		t0 := b.now()
		if err := durable.WriteFile(b.cfg.IETDPath(), conf, 0o600); err != nil {
			return fmt.Errorf("write target configuration: %w", err)
		}
		b.log.Info("target configuration written", "path", b.cfg.IETDPath(), "bytes", len(conf), "took", b.now().Sub(t0))
	}
	if err := b.driver.Apply(ctx, tg); err != nil {
		return fmt.Errorf("apply target configuration: %w", err)
	}
	return nil
}

// commit saves next as the new registry, runs afterSave (if any) and
// applies the target. If a step fails, the old registry and target are
// restored. admin is held and the box is active.
func (b *Box) commit(ctx context.Context, next Registry, afterSave func() error) error {
	next.Generation = b.reg.Generation + 1
	if err := next.Validate(); err != nil {
		return err
	}
	if err := b.store.Save(next); err != nil {
		return fmt.Errorf("commit registry: %w", err)
	}
	if afterSave != nil {
		if err := afterSave(); err != nil {
			b.rollback(ctx)
			return err
		}
	}
	if err := b.applyTarget(ctx, next, b.missing); err != nil {
		b.rollback(ctx)
		return err
	}
	b.mu.Lock()
	b.setRegistry(next)
	b.mu.Unlock()
	return nil
}

// rollback restores the registry and target of b.reg after a failed commit.
func (b *Box) rollback(ctx context.Context) {
	if err := b.store.Save(b.reg); err != nil {
		b.log.Error("roll back registry", "err", err)
	}
	if err := b.applyTarget(ctx, b.reg, b.missing); err != nil {
		b.log.Error("roll back target configuration", "err", err)
	}
}

// LUNRequest asks for a new LUN.
type LUNRequest struct {
	Name  string `json:"name"`
	Size  int64  `json:"size"`
	Group string `json:"group,omitempty"`
	// Target, when set, puts the LUN into that shared target (a short name
	// under the base IQN) at the next free LUN number; by default each LUN
	// gets a target of its own.
	Target string `json:"target,omitempty"`
}

// CreateLUN creates a volume and exports it.
func (b *Box) CreateLUN(ctx context.Context, req LUNRequest) (LUN, error) {
	space := b.readCapacity(ctx)
	b.admin.Lock()
	defer b.admin.Unlock()
	if err := b.writable(); err != nil {
		return LUN{}, err
	}
	next := b.reg.Clone()
	lun, err := b.newLUN(ctx, &next, req, space)
	if err != nil {
		return LUN{}, err
	}
	if _, err := b.pool.Create(ctx, lun.Name, lun.Size); err != nil {
		return LUN{}, fmt.Errorf("create LUN %s: %w", lun.Name, err)
	}
	if err := b.commit(ctx, next, nil); err != nil {
		if derr := b.pool.Delete(ctx, lun.Name); derr != nil {
			b.log.Error("roll back volume of a failed create", "lun", lun.Name, "err", derr)
		}
		return LUN{}, fmt.Errorf("create LUN %s: %w", lun.Name, err)
	}
	b.log.Info("LUN created", "lun", lun.Name, "size", lun.Size, "target", lun.Target, "number", lun.Number, "group", lun.Group)
	b.record(events.LUNCreated, "LUN %s created: %s, target %s LUN %d, %s", lun.Name, FormatSize(lun.Size), lun.Target, lun.Number, groupPhrase(lun.Group))
	return lun, nil
}

// newLUN validates req against the registry, space included (see
// checkSpace for space), and adds the new LUN to next.
func (b *Box) newLUN(ctx context.Context, next *Registry, req LUNRequest, space *capacityRead) (LUN, error) {
	if err := ValidateName("LUN", req.Name); err != nil {
		return LUN{}, err
	}
	if next.FindLUN(req.Name) >= 0 {
		return LUN{}, fmt.Errorf("%w: LUN %q already exists: pick another name or delete it first", ErrExists, req.Name)
	}
	if b.copies.reserved(req.Name) {
		return LUN{}, fmt.Errorf("%w: LUN %q is being imported (its data is being copied): pick another name", ErrExists, req.Name)
	}
	if err := CheckSize(req.Size); err != nil {
		return LUN{}, err
	}
	if req.Group != "" && next.FindGroup(req.Group) < 0 {
		return LUN{}, fmt.Errorf("%w: initiator group %q does not exist: create it first (sand group create %s)", ErrNotFound, req.Group, req.Group)
	}
	if err := b.checkSpace(ctx, req.Size, space); err != nil {
		return LUN{}, err
	}
	target := b.cfg.BaseIQN + ":" + req.Name
	if req.Target != "" {
		if err := ValidateName("target", req.Target); err != nil {
			return LUN{}, err
		}
		target = b.cfg.BaseIQN + ":" + req.Target
	}
	number := b.driver.FirstLUN()
	for _, l := range next.LUNs {
		if l.Target != target {
			continue
		}
		if req.Target == "" {
			return LUN{}, fmt.Errorf("%w: target %s already exists", ErrExists, target)
		}
		number = max(number, l.Number+1)
	}
	serial, err := b.uniqueSerial(next)
	if err != nil {
		return LUN{}, err
	}
	lun := LUN{
		Name: req.Name, Size: req.Size, Serial: serial, NAA: iscsi.NAAFromSerial(serial),
		Target: target, Number: number, Group: req.Group, Created: b.now().UTC().Truncate(time.Second),
	}
	next.LUNs = append(next.LUNs, lun)
	if err := next.Validate(); err != nil {
		return LUN{}, err
	}
	return lun, nil
}

func (b *Box) uniqueSerial(reg *Registry) (string, error) {
	for {
		s, err := iscsi.NewSerial()
		if err != nil {
			return "", err
		}
		if !slices.ContainsFunc(reg.LUNs, func(l LUN) bool { return l.Serial == s }) {
			return s, nil
		}
	}
}

// capacityRead is the pool's capacity as read before admin was taken, with
// the count of pool changes from before the read.
type capacityRead struct {
	changes uint64
	c       pool.Capacity
	err     error
}

// readCapacity reads the pool's capacity without admin, for a change that
// will need it: on LVM it is a listing (lvs), seconds under load, which
// should not hold up the admin operations and role changes queued behind
// this one. A box that does not serve reads nothing: it refuses the change
// anyway, and its pool may not be readable.
func (b *Box) readCapacity(ctx context.Context) *capacityRead {
	if !b.active.Load() {
		return nil
	}
	r := &capacityRead{changes: b.poolChanges.Load()}
	r.c, r.err = b.pool.Capacity(ctx)
	return r
}

// checkSpace refuses to provision more than the pool holds, unless the
// config allows thin overcommit (then only a LUN larger than the whole pool
// is refused). admin is held. It uses the capacity read before (pre) when no
// change of the pool returned since that read began: every change runs
// under admin, so the read is still current; otherwise it reads the pool
// again now.
func (b *Box) checkSpace(ctx context.Context, more int64, pre *capacityRead) error {
	var c pool.Capacity
	if pre != nil && pre.changes == b.poolChanges.Load() {
		if pre.err != nil {
			return pre.err
		}
		c = pre.c
	} else {
		var err error
		if c, err = b.pool.Capacity(ctx); err != nil {
			return err
		}
	}
	free := c.Size - c.Provisioned
	if b.cfg.Pool.Overcommit {
		free = c.Size
	}
	if more > free {
		return fmt.Errorf("%w: %s asked, %s free in the pool (%s of %s provisioned)", ErrNoSpace,
			FormatSize(more), FormatSize(max(free, 0)), FormatSize(c.Provisioned), FormatSize(c.Size))
	}
	return nil
}

// LUNUpdate changes a LUN; nil fields stay as they are.
type LUNUpdate struct {
	// Size grows the LUN; shrinking is refused (it would cut a guest's
	// file system).
	Size *int64 `json:"size,omitempty"`
	// Group moves the LUN to another initiator group ("" for none).
	Group *string `json:"group,omitempty"`
}

// UpdateLUN grows a LUN and/or changes its group.
func (b *Box) UpdateLUN(ctx context.Context, name string, u LUNUpdate) (LUN, error) {
	var space *capacityRead
	if l, err := b.LUN(name); err == nil && u.Size != nil && *u.Size > l.Size && l.Path == "" {
		space = b.readCapacity(ctx) // a grow: its space is checked
	}
	b.admin.Lock()
	defer b.admin.Unlock()
	if err := b.writable(); err != nil {
		return LUN{}, err
	}
	i := b.reg.FindLUN(name)
	if i < 0 {
		return LUN{}, fmt.Errorf("%w: LUN %q does not exist", ErrNotFound, name)
	}
	next := b.reg.Clone()
	lun := &next.LUNs[i]
	grow := int64(0)
	if u.Size != nil {
		if err := CheckSize(*u.Size); err != nil {
			return LUN{}, err
		}
		switch {
		case *u.Size < lun.Size:
			return LUN{}, fmt.Errorf("%w: LUN %s is %s; shrinking to %s is refused because it would cut off the data at its end", ErrInvalid, name, FormatSize(lun.Size), FormatSize(*u.Size))
		case *u.Size > lun.Size && lun.Path != "":
			return LUN{}, fmt.Errorf("%w: LUN %s was imported with backing store %s, which sand does not own: grow that volume yourself", ErrInvalid, name, lun.Path)
		case *u.Size > lun.Size:
			grow = *u.Size - lun.Size
			if err := b.checkSpace(ctx, grow, space); err != nil {
				return LUN{}, err
			}
			lun.Size = *u.Size
		}
	}
	if u.Group != nil && *u.Group != lun.Group {
		if *u.Group != "" && next.FindGroup(*u.Group) < 0 {
			return LUN{}, fmt.Errorf("%w: initiator group %q does not exist", ErrNotFound, *u.Group)
		}
		lun.Group = *u.Group
	}
	updated := *lun
	// The registry is committed before the volume grows: a crash in
	// between leaves a volume smaller than its entry, which reconcile grows.
	var growVolume func() error
	if grow > 0 && lun.Path == "" {
		growVolume = func() error { return b.pool.Grow(ctx, name, updated.Size) }
	}
	if err := b.commit(ctx, next, growVolume); err != nil {
		return LUN{}, fmt.Errorf("update LUN %s: %w", name, err)
	}
	b.log.Info("LUN updated", "lun", name, "size", updated.Size, "group", updated.Group)
	b.record(events.LUNUpdated, "LUN %s updated: %s, %s", name, FormatSize(updated.Size), groupPhrase(updated.Group))
	return updated, nil
}

// DeleteLUN stops exporting a LUN and deletes its volume.
func (b *Box) DeleteLUN(ctx context.Context, name string) error {
	b.admin.Lock()
	defer b.admin.Unlock()
	if err := b.writable(); err != nil {
		return err
	}
	i := b.reg.FindLUN(name)
	if i < 0 {
		return fmt.Errorf("%w: LUN %q does not exist", ErrNotFound, name)
	}
	lun := b.reg.LUNs[i]
	next := b.reg.Clone()
	next.LUNs = slices.Delete(next.LUNs, i, i+1)
	if err := b.commit(ctx, next, nil); err != nil {
		return fmt.Errorf("delete LUN %s: %w", name, err)
	}
	// The registry no longer names the volume: if this fails or sand dies
	// here, the next reconcile removes the orphan.
	if lun.Path == "" {
		if err := b.pool.Delete(ctx, name); err != nil && !errors.Is(err, pool.ErrNotFound) {
			b.log.Error("delete volume of a deleted LUN; reconcile will retry", "lun", name, "err", err)
		}
	}
	b.log.Info("LUN deleted", "lun", name)
	b.record(events.LUNDeleted, "LUN %s deleted (target %s)", name, lun.Target)
	return nil
}

// LUNs returns every LUN, sorted by name.
func (b *Box) LUNs() []LUN {
	b.mu.RLock()
	defer b.mu.RUnlock()
	luns := slices.Clone(b.reg.LUNs)
	slices.SortFunc(luns, func(a, c LUN) int { return strings.Compare(a.Name, c.Name) })
	return luns
}

// LUN returns one LUN.
func (b *Box) LUN(name string) (LUN, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	i := b.reg.FindLUN(name)
	if i < 0 {
		return LUN{}, fmt.Errorf("%w: LUN %q does not exist", ErrNotFound, name)
	}
	return b.reg.LUNs[i], nil
}

// Group returns one initiator group.
func (b *Box) Group(name string) (InitiatorGroup, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	i := b.reg.FindGroup(name)
	if i < 0 {
		return InitiatorGroup{}, fmt.Errorf("%w: initiator group %q does not exist", ErrNotFound, name)
	}
	return b.reg.Clone().Groups[i], nil
}

// Groups returns every initiator group, sorted by name.
func (b *Box) Groups() []InitiatorGroup {
	b.mu.RLock()
	defer b.mu.RUnlock()
	groups := b.reg.Clone().Groups
	slices.SortFunc(groups, func(a, c InitiatorGroup) int { return strings.Compare(a.Name, c.Name) })
	return groups
}

// CreateGroup adds an initiator group.
func (b *Box) CreateGroup(ctx context.Context, g InitiatorGroup) (InitiatorGroup, error) {
	b.admin.Lock()
	defer b.admin.Unlock()
	if err := b.writable(); err != nil {
		return InitiatorGroup{}, err
	}
	if err := g.Validate(); err != nil {
		return InitiatorGroup{}, err
	}
	if b.reg.FindGroup(g.Name) >= 0 {
		return InitiatorGroup{}, fmt.Errorf("%w: initiator group %q already exists", ErrExists, g.Name)
	}
	next := b.reg.Clone()
	next.Groups = append(next.Groups, g)
	if err := b.commit(ctx, next, nil); err != nil {
		return InitiatorGroup{}, fmt.Errorf("create initiator group %s: %w", g.Name, err)
	}
	b.log.Info("initiator group created", "group", g.Name, "initiators", len(g.Initiators))
	b.record(events.GroupCreated, "initiator group %s created; initiators: %d", g.Name, len(g.Initiators))
	return g, nil
}

// GroupUpdate changes a group; nil fields stay as they are.
type GroupUpdate struct {
	Add    []string `json:"add,omitempty"`
	Remove []string `json:"remove,omitempty"`
	// CHAP and MutualCHAP replace the accounts; an account with an empty
	// user removes it.
	CHAP       *iscsi.CHAP `json:"chap,omitempty"`
	MutualCHAP *iscsi.CHAP `json:"mutual_chap,omitempty"`
}

// UpdateGroup adds or removes initiators and sets CHAP; the targets of the
// group's LUNs follow at once.
func (b *Box) UpdateGroup(ctx context.Context, name string, u GroupUpdate) (InitiatorGroup, error) {
	b.admin.Lock()
	defer b.admin.Unlock()
	if err := b.writable(); err != nil {
		return InitiatorGroup{}, err
	}
	i := b.reg.FindGroup(name)
	if i < 0 {
		return InitiatorGroup{}, fmt.Errorf("%w: initiator group %q does not exist", ErrNotFound, name)
	}
	next := b.reg.Clone()
	g := &next.Groups[i]
	for _, iqn := range u.Add {
		if err := iscsi.ValidateIQN(iqn); err != nil {
			return InitiatorGroup{}, fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		if slices.Contains(g.Initiators, iqn) {
			return InitiatorGroup{}, fmt.Errorf("%w: %s is already in initiator group %s", ErrExists, iqn, name)
		}
		g.Initiators = append(g.Initiators, iqn)
	}
	for _, iqn := range u.Remove {
		j := slices.Index(g.Initiators, iqn)
		if j < 0 {
			return InitiatorGroup{}, fmt.Errorf("%w: %s is not in initiator group %s", ErrNotFound, iqn, name)
		}
		g.Initiators = slices.Delete(g.Initiators, j, j+1)
	}
	if u.CHAP != nil {
		g.CHAP = nilIfEmpty(u.CHAP)
	}
	if u.MutualCHAP != nil {
		g.MutualCHAP = nilIfEmpty(u.MutualCHAP)
	}
	if err := g.Validate(); err != nil {
		return InitiatorGroup{}, err
	}
	updated := *g
	if err := b.commit(ctx, next, nil); err != nil {
		return InitiatorGroup{}, fmt.Errorf("update initiator group %s: %w", name, err)
	}
	b.log.Info("initiator group updated", "group", name, "initiators", len(updated.Initiators))
	b.record(events.GroupUpdated, "initiator group %s updated; initiators: %d, CHAP %s", name, len(updated.Initiators), onOff(updated.CHAP != nil))
	return updated, nil
}

func nilIfEmpty(c *iscsi.CHAP) *iscsi.CHAP {
	if c.User == "" && c.Secret == "" {
		return nil
	}
	chap := *c
	return &chap
}

// DeleteGroup removes an initiator group no LUN uses.
func (b *Box) DeleteGroup(ctx context.Context, name string) error {
	b.admin.Lock()
	defer b.admin.Unlock()
	if err := b.writable(); err != nil {
		return err
	}
	i := b.reg.FindGroup(name)
	if i < 0 {
		return fmt.Errorf("%w: initiator group %q does not exist", ErrNotFound, name)
	}
	for _, l := range b.reg.LUNs {
		if l.Group == name {
			return fmt.Errorf("%w: initiator group %s is used by LUN %s: move or delete its LUNs first", ErrInUse, name, l.Name)
		}
	}
	next := b.reg.Clone()
	next.Groups = slices.Delete(next.Groups, i, i+1)
	if err := b.commit(ctx, next, nil); err != nil {
		return fmt.Errorf("delete initiator group %s: %w", name, err)
	}
	b.record(events.GroupDeleted, "initiator group %s deleted", name)
	return nil
}

// TargetConfig returns the rendered ietd.conf of the current registry.
func (b *Box) TargetConfig() ([]byte, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	tg, err := b.targetGroup(b.reg, b.missing)
	if err != nil {
		return nil, err
	}
	return iscsi.RenderIETD(tg), nil
}

// Portal is the iSCSI portal initiators connect to.
func (b *Box) Portal() string {
	ap, _ := b.cfg.PortalAddr()
	return ap.String()
}

// Status is a summary of the box for the API, the CLI and the UI.
type Status struct {
	Name       string   `json:"name"`
	Role       string   `json:"role"`
	Portal     string   `json:"portal"`
	Driver     string   `json:"driver"`
	Pool       string   `json:"pool"`
	Generation uint64   `json:"generation"`
	LUNs       int      `json:"luns"`
	Groups     int      `json:"groups"`
	Sessions   int      `json:"sessions"`
	Capacity   Capacity `json:"capacity"`
	Problems   []string `json:"problems,omitempty"`
}

// Capacity of the pool in bytes.
type Capacity struct {
	Size        int64 `json:"size"`
	Provisioned int64 `json:"provisioned"`
	Used        int64 `json:"used"`
}

// Status reports the box's state; parts that cannot be read are named in
// Problems rather than failing the whole report.
func (b *Box) Status(ctx context.Context) Status {
	b.mu.RLock()
	s := Status{
		Name: b.cfg.Name, Role: b.role(), Portal: b.Portal(), Driver: b.cfg.Target.Driver,
		Pool: b.pool.Kind(), Generation: b.reg.Generation, LUNs: len(b.reg.LUNs), Groups: len(b.reg.Groups),
		Problems: slices.Clone(b.problems),
	}
	b.mu.RUnlock()
	if c, err := b.pool.Capacity(ctx); err != nil {
		s.Problems = append(s.Problems, err.Error())
	} else {
		s.Capacity = Capacity{Size: c.Size, Provisioned: c.Provisioned, Used: c.Used}
	}
	if sess, err := b.driver.Sessions(ctx); err != nil {
		s.Problems = append(s.Problems, err.Error())
	} else {
		s.Sessions = len(sess)
	}
	return s
}

// Sessions lists the initiators logged in to the target now.
func (b *Box) Sessions(ctx context.Context) ([]iscsi.Session, error) {
	return b.driver.Sessions(ctx)
}
