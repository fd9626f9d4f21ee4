package appliance

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sand-appliance/sand/iscsi"
)

// Import turns an existing IET configuration (ietd.conf, as kept by classic
// Heartbeat + IET setups) into registry entries that export the same
// backing stores under the same target names. The backing stores stay the
// admin's: deleting an imported LUN never deletes its volume. With dryRun
// it only reports what it would create.
func (b *Box) Import(ctx context.Context, data []byte, group string, dryRun bool) ([]LUN, error) {
	tg, err := iscsi.ParseIETD(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	b.admin.Lock()
	defer b.admin.Unlock()
	// Read under mu: a dry run is allowed on a box that does not serve,
	// where Refresh may replace the registry meanwhile.
	b.mu.RLock()
	next := b.reg.Clone()
	b.mu.RUnlock()
	var g *InitiatorGroup
	if group != "" {
		i := next.FindGroup(group)
		if i < 0 {
			return nil, fmt.Errorf("%w: initiator group %q does not exist: create it first (sand group create %s)", ErrNotFound, group, group)
		}
		g = &next.Groups[i]
	}
	var added []LUN
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
			l, err := b.importLUN(&next, t, lu, shift, group)
			if err != nil {
				return nil, err
			}
			next.LUNs = append(next.LUNs, l)
			added = append(added, l)
		}
	}
	if err := next.Validate(); err != nil {
		return nil, err
	}
	if dryRun || len(added) == 0 {
		return added, nil
	}
	if err := b.writable(); err != nil {
		return nil, err
	}
	if err := b.commit(ctx, next, nil); err != nil {
		return nil, fmt.Errorf("import ietd.conf: %w", err)
	}
	b.log.Info("imported ietd.conf", "luns", len(added), "targets", len(tg.Targets))
	return added, nil
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

func (b *Box) importLUN(next *Registry, t iscsi.Target, lu iscsi.LogicalUnit, shift int, group string) (LUN, error) {
	name := lu.Name
	if name == "" {
		name = importName(t, lu)
	}
	if err := ValidateName("LUN", name); err != nil {
		return LUN{}, fmt.Errorf("%w (derived from target %s; rename the target or add a sand name comment)", err, t.IQN)
	}
	if next.FindLUN(name) >= 0 {
		return LUN{}, fmt.Errorf("%w: LUN %q already exists (from target %s)", ErrExists, name, t.IQN)
	}
	size, err := backingSize(lu.Path)
	if err != nil {
		return LUN{}, fmt.Errorf("%w: target %s Lun %d: %v", ErrInvalid, t.IQN, lu.Number, err)
	}
	serial := lu.Serial
	if serial == "" {
		if serial, err = b.uniqueSerial(next); err != nil {
			return LUN{}, err
		}
	}
	l := LUN{
		Name: name, Size: size, Serial: serial, NAA: iscsi.NAAFromSerial(serial),
		Target: t.IQN, Number: lu.Number + shift, Group: group, Path: lu.Path, Type: lu.Type,
		Created: b.now().UTC().Truncate(1e9),
	}
	if lu.Path == b.pool.Path(name) {
		l.Path, l.Type = "", ""
	}
	return l, nil
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

// backingSize reads the size of a file or block device.
func backingSize(path string) (int64, error) {
	f, err := os.Open(filepath.Clean(path))
	if err != nil {
		return 0, fmt.Errorf("open backing store: %w", err)
	}
	defer f.Close()
	// Seeking to the end works for files and block devices alike.
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("read size of backing store %s: %w", path, err)
	}
	if size <= 0 || size%BlockSize != 0 {
		return 0, fmt.Errorf("backing store %s is %d bytes: it must be a non-empty multiple of %d", path, size, BlockSize)
	}
	return size, nil
}
