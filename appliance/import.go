package appliance

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sand-appliance/sand/events"
	"github.com/sand-appliance/sand/iscsi"
)

// ImportRequest asks Import to turn an IET configuration into sand LUNs.
type ImportRequest struct {
	// Conf is the ietd.conf.
	Conf []byte
	// Group names the initiator group of the new LUNs ("" for none).
	Group string
	// DryRun reports what an import would make and changes nothing.
	DryRun bool
	// CopyFrom lists Path= values of the file whose data the admin asks
	// sand to copy into the new LUNs. They are the only paths an import
	// ever opens, and each must be a block device under /dev or a regular
	// file under /mnt, /media or /srv that the box does not use
	// (openSource says what is refused).
	CopyFrom []string
}

// ImportedLUN is one LUN an import made or, in a dry run, would make.
type ImportedLUN struct {
	LUN
	// CopiedFrom is the path whose data fills the new LUN; "" for a new
	// empty LUN.
	CopiedFrom string `json:"copied_from,omitempty"`
}

// Import turns an existing IET configuration (ietd.conf, as kept by
// classic Heartbeat + IET setups, or as sand renders it) into new LUNs of
// sand's pool: each Lun becomes a new pool volume under the same target
// IQN, LUN number (shifted past the driver's first) and serial, so
// initiators see the same disk identity. The path a Lun line names is
// never exported. The new volume's size is the file's own ("#sand: lun
// ... size=" lines, which files sand wrote carry); a Lun without one needs
// its path in CopyFrom, and the new volume then takes the size of the data
// copied in. Nothing changes if any entry is wrong.
//
// The copy sources are opened and checked first, outside every lock of
// the box (a slow or hostile path cannot hold up the API or the failover);
// a dry run opens only them and only to check them and read their sizes.
// The volumes are made under admin, filled with admin released (Sweep
// leaves them alone and Deactivate stops the copies), and committed under
// admin; a copy that fails or is cancelled (the client went away, the box
// stopped serving) removes its volumes.
func (b *Box) Import(ctx context.Context, req ImportRequest) ([]ImportedLUN, error) {
	tg, err := iscsi.ParseIETD(req.Conf)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := checkCopyFrom(tg, req.CopyFrom); err != nil {
		return nil, err
	}
	srcs, err := openSources(b.hostView(), tg, req.CopyFrom)
	defer srcs.close()
	if err != nil {
		return nil, err
	}
	if req.DryRun {
		return b.importDry(ctx, tg, req.Group, srcs)
	}
	space := b.readCapacity(ctx)
	b.admin.Lock()
	items, fill, end, err := b.importVolumes(ctx, tg, req.Group, srcs, space)
	b.admin.Unlock()
	if err != nil {
		return nil, err
	}
	names := make([]string, len(items))
	for i, it := range items {
		names[i] = it.Name
	}
	copied, err := b.fill(fill, items, srcs)
	srcs.close()
	end()
	b.admin.Lock()
	defer b.admin.Unlock()
	defer b.copies.release(names)
	if err == nil {
		err = b.writable()
	}
	if err == nil {
		next := b.reg.Clone()
		for _, it := range items {
			next.LUNs = append(next.LUNs, it.LUN)
		}
		err = b.commit(ctx, next, nil)
	}
	if err != nil {
		b.removeVolumes(ctx, names)
		return nil, fmt.Errorf("import ietd.conf: %w", err)
	}
	b.log.Info("imported ietd.conf", "luns", len(items), "targets", len(tg.Targets), "copied_bytes", copied)
	for _, it := range items {
		what := "a new empty volume"
		if it.CopiedFrom != "" {
			what = "data copied from " + it.CopiedFrom
		}
		b.record(events.LUNCreated, "LUN %s imported: %s, target %s LUN %d, %s, %s", it.Name, FormatSize(it.Size), it.Target, it.Number, groupPhrase(it.Group), what)
	}
	return items, nil
}

// importDry plans an import against the registry as it is now, without
// admin: nothing is made, so nothing needs to hold.
func (b *Box) importDry(ctx context.Context, tg iscsi.TargetGroup, group string, srcs sources) ([]ImportedLUN, error) {
	b.mu.RLock()
	next := b.reg.Clone()
	b.mu.RUnlock()
	items, err := b.planImport(&next, tg, group, srcs)
	if err != nil {
		return nil, err
	}
	// A box that does not serve may not read its pool; its answer is
	// refused anyway when the import is sent for real.
	if space := b.readCapacity(ctx); space != nil {
		if err := b.checkSpace(ctx, totalSize(items), space); err != nil {
			return nil, err
		}
	}
	return items, nil
}

// importVolumes plans the import against the registry and makes its
// volumes, reserved in b.copies (volumeCopies.begin) for the copies that
// fill them. admin is held.
func (b *Box) importVolumes(ctx context.Context, tg iscsi.TargetGroup, group string, srcs sources, space *capacityRead) (items []ImportedLUN, fill context.Context, end func(), err error) {
	if err := b.writable(); err != nil {
		return nil, nil, nil, err
	}
	next := b.reg.Clone()
	if items, err = b.planImport(&next, tg, group, srcs); err != nil {
		return nil, nil, nil, err
	}
	if err := b.checkSpace(ctx, totalSize(items), space); err != nil {
		return nil, nil, nil, err
	}
	var made []string
	for _, it := range items {
		if _, err := b.pool.Create(ctx, it.Name, it.Size); err != nil {
			b.removeVolumes(ctx, made)
			return nil, nil, nil, fmt.Errorf("import ietd.conf: LUN %s: %w", it.Name, err)
		}
		made = append(made, it.Name)
	}
	fill, end = b.copies.begin(ctx, made)
	return items, fill, end, nil
}

// fill copies each item's source into its new volume, with admin
// released.
func (b *Box) fill(ctx context.Context, items []ImportedLUN, srcs sources) (int64, error) {
	var copied int64
	for _, it := range items {
		src := srcs[it.CopiedFrom]
		if src == nil {
			continue
		}
		dst, err := volumePath(it.LUN, b.pool.Path)
		if err != nil {
			return copied, err
		}
		t0 := b.now()
		n, err := copyInto(ctx, src, dst, b.copies.chunkHook)
		copied += n
		if err != nil {
			return copied, fmt.Errorf("LUN %s: %w", it.Name, err)
		}
		b.log.Info("import copied data", "lun", it.Name, "from", src.path, "bytes", n, "took", b.now().Sub(t0))
	}
	return copied, nil
}

// removeVolumes undoes the volumes of an import that failed. On a box
// that no longer serves they stay: its pool may be on its way down, and
// the next primary sweeps them as orphans. admin is held.
func (b *Box) removeVolumes(ctx context.Context, names []string) {
	if !b.active.Load() {
		if len(names) > 0 {
			b.log.Warn("import stopped: its volumes are left to the next primary's sweep", "volumes", names)
		}
		return
	}
	// The request's context may be what ended the import.
	ctx = context.WithoutCancel(ctx)
	for _, n := range names {
		if err := b.pool.Delete(ctx, n); err != nil {
			b.log.Error("remove volume of a failed import; the orphan sweep will retry", "lun", n, "err", err)
		}
	}
}

func totalSize(items []ImportedLUN) int64 {
	var n int64
	for _, it := range items {
		n += it.Size
	}
	return n
}

// checkCopyFrom refuses copy requests that name no Lun of the file: the
// admin names paths as the file writes them, and nothing else is opened.
func checkCopyFrom(tg iscsi.TargetGroup, copyFrom []string) error {
	inFile := map[string]bool{}
	for _, t := range tg.Targets {
		for _, lu := range t.LUNs {
			inFile[lu.Path] = true
		}
	}
	seen := map[string]bool{}
	for _, p := range copyFrom {
		switch {
		case seen[p]:
			return fmt.Errorf("%w: copy_from names %s twice: name each path once", ErrInvalid, p)
		case !inFile[p]:
			return fmt.Errorf("%w: copy_from names %s, but no Lun line of the file has Path=%s: name the Path= of each LUN whose data sand should copy, as the file writes it", ErrInvalid, p, p)
		}
		seen[p] = true
	}
	return nil
}

// planImport adds the file's LUNs to next and returns them. srcs are the
// opened copy sources by path.
func (b *Box) planImport(next *Registry, tg iscsi.TargetGroup, group string, srcs sources) ([]ImportedLUN, error) {
	var g *InitiatorGroup
	if group != "" {
		i := next.FindGroup(group)
		if i < 0 {
			return nil, fmt.Errorf("%w: initiator group %q does not exist: create it first (sand group create %s)", ErrNotFound, group, group)
		}
		g = &next.Groups[i]
	}
	var items []ImportedLUN
	for _, t := range tg.Targets {
		if err := importCHAP(t, g); err != nil {
			return nil, err
		}
		if len(t.LUNs) == 0 {
			return nil, fmt.Errorf("%w: target %s has no Lun line: there is nothing to import", ErrInvalid, t.IQN)
		}
		shift := 0
		if t.LUNs[0].Number < b.driver.FirstLUN() {
			shift = b.driver.FirstLUN()
		}
		for _, lu := range t.LUNs {
			it, err := b.importLUN(next, t, lu, shift, group, srcs[lu.Path])
			if err != nil {
				return nil, err
			}
			next.LUNs = append(next.LUNs, it.LUN)
			items = append(items, it)
		}
	}
	if err := next.Validate(); err != nil {
		return nil, err
	}
	return items, nil
}

// importCHAP accepts a target's CHAP only if the group carries the same
// accounts, since sand keeps CHAP per initiator group.
func importCHAP(t iscsi.Target, g *InitiatorGroup) error {
	same := func(a, b *iscsi.CHAP) bool { return (a == nil && b == nil) || (a != nil && b != nil && *a == *b) }
	if t.CHAP == nil && t.MutualCHAP == nil {
		return nil
	}
	if g == nil || !same(t.CHAP, g.CHAP) || !same(t.MutualCHAP, g.MutualCHAP) {
		return fmt.Errorf("%w: target %s uses CHAP: import it into an initiator group that has the same CHAP accounts (set them with sand group chap)", ErrInvalid, t.IQN)
	}
	return nil
}

// importLUN makes the registry entry of one Lun line: a new pool volume,
// never the line's path.
func (b *Box) importLUN(next *Registry, t iscsi.Target, lu iscsi.LogicalUnit, shift int, group string, src *copySource) (ImportedLUN, error) {
	where := fmt.Sprintf("target %s Lun %d", t.IQN, lu.Number)
	name := lu.Name
	if name == "" {
		name = importName(t, lu)
	}
	if err := ValidateName("LUN", name); err != nil {
		return ImportedLUN{}, fmt.Errorf("%w (derived from target %s; rename the target or add a sand name comment)", err, t.IQN)
	}
	if next.FindLUN(name) >= 0 {
		return ImportedLUN{}, fmt.Errorf("%w: LUN %q already exists (from target %s)", ErrExists, name, t.IQN)
	}
	if b.copies.reserved(name) {
		return ImportedLUN{}, fmt.Errorf("%w: LUN %q is being imported (its data is being copied) (from target %s)", ErrExists, name, t.IQN)
	}
	size := lu.Size
	switch {
	case src != nil && size == 0:
		size = src.size
	case src != nil && src.size > size:
		return ImportedLUN{}, fmt.Errorf("%w: %s: %s holds %d bytes, more than the %d the file gives the LUN (#sand: lun %d size=): copy into a LUN that large, or fix size=", ErrInvalid, where, src.path, src.size, size, lu.Number)
	case size == 0:
		return ImportedLUN{}, fmt.Errorf("%w: %s (Path=%s): the file does not give the LUN's size (only files sand wrote carry \"#sand: lun\" lines), and sand never exports the path itself: to copy the old LUN's data into a new LUN of its size, name the path with --copy-data %s (API: copy_from; sand reads only a block device under /dev or a regular file under /mnt, /media or /srv that the box does not use); to start with an empty LUN, add \"#sand: lun %d size=BYTES\" above the Lun line", ErrInvalid, where, lu.Path, lu.Path, lu.Number)
	}
	if err := CheckSize(size); err != nil {
		return ImportedLUN{}, fmt.Errorf("%w: %s: %v", ErrInvalid, where, err)
	}
	serial := lu.Serial
	if serial == "" {
		var err error
		if serial, err = b.uniqueSerial(next); err != nil {
			return ImportedLUN{}, err
		}
	}
	it := ImportedLUN{LUN: LUN{
		Name: name, Size: size, Serial: serial, NAA: iscsi.NAAFromSerial(serial),
		Target: t.IQN, Number: lu.Number + shift, Group: group,
		Created: b.now().UTC().Truncate(time.Second),
	}}
	if src != nil {
		it.CopiedFrom = src.path
	}
	return it, nil
}

// importName derives a LUN name from the unique part of the target's IQN.
func importName(t iscsi.Target, lu iscsi.LogicalUnit) string {
	base := t.IQN
	if i := strings.LastIndexByte(base, ':'); i >= 0 {
		base = base[i+1:]
	}
	base = strings.Trim(strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		}
		return '-'
	}, strings.ToLower(base)), "-.")
	if len(t.LUNs) > 1 {
		base += "-lun" + strconv.Itoa(lu.Number)
	}
	return base
}

// copyStopWait bounds how long Deactivate waits for the imports' copies to
// let go of their volumes: a copy sees the cancel at its next chunk, but
// a write into frozen storage (an isolated DRBD primary) may not return.
const copyStopWait = 10 * time.Second

// volumeCopies tracks the imports filling new volumes outside admin. The
// volumes' names stay reserved from begin until release (committed or
// removed), so Sweep, a LUN create and another import leave them alone;
// stop cancels the copies and waits until they let go of the volumes.
type volumeCopies struct {
	mu      sync.Mutex
	names   map[string]int // reserved volume names, counted
	cancels map[int]context.CancelFunc
	id      int
	filling sync.WaitGroup
	// chunkHook, if set, runs before each chunk a copy writes (tests).
	chunkHook func()
}

// begin reserves names and returns the context their copies run under,
// which stop cancels, and end, to call once the copies are done with the
// volumes. admin is held and the box serves.
func (c *volumeCopies) begin(ctx context.Context, names []string) (fill context.Context, end func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.names == nil {
		c.names, c.cancels = map[string]int{}, map[int]context.CancelFunc{}
	}
	for _, n := range names {
		c.names[n]++
	}
	fill, cancel := context.WithCancel(ctx)
	c.id++
	id := c.id
	c.cancels[id] = cancel
	c.filling.Add(1)
	return fill, func() {
		c.mu.Lock()
		delete(c.cancels, id)
		c.mu.Unlock()
		cancel()
		c.filling.Done()
	}
}

// release frees names once their import committed or removed them; admin
// is held.
func (c *volumeCopies) release(names []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range names {
		if c.names[n]--; c.names[n] <= 0 {
			delete(c.names, n)
		}
	}
}

// reserved reports whether an import holds the name.
func (c *volumeCopies) reserved(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.names[name] > 0
}

// stop cancels every copy and waits, at most copyStopWait, until they let
// go of their volumes. admin is held, so no copy begins meanwhile; a copy
// takes no lock of the box while it fills.
func (c *volumeCopies) stop() error {
	c.mu.Lock()
	for id, cancel := range c.cancels {
		cancel()
		delete(c.cancels, id)
	}
	c.mu.Unlock()
	done := make(chan struct{})
	go func() { c.filling.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-time.After(copyStopWait):
		return errors.New("an import's copy did not let go of its volumes within " + copyStopWait.String())
	}
}

// hostView is where the box's copy sources are looked at.
func (b *Box) hostView() hostView {
	if b.host != nil {
		return *b.host
	}
	return hostViewOf(b.cfg)
}
