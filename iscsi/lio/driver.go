package lio

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/sand-appliance/sand/iscsi"
)

// ErrNotLoaded means the configfs target directory is missing:
// target_core_mod is not loaded or configfs is not mounted.
var ErrNotLoaded = errors.New("LIO configfs tree is missing: load target_core_mod and mount configfs on /sys/kernel/config")

// ErrBusy means a backstore still holds a backing device open.
var ErrBusy = errors.New("LIO still holds backing devices")

// DefaultDBRoot is the kernel's dbroot when /etc/target is missing at load
// time (LAB.md), used when the attribute cannot be read. A pair bind-mounts
// a directory of the replicated metadata volume over it while primary.
const DefaultDBRoot = "/var/target"

// Driver is the LIO implementation of iscsi.Driver. It writes configfs
// directly through FS. Its methods are serialised, so a reader never sees
// a half-applied change.
type Driver struct {
	fs     FS
	host   Host
	log    *slog.Logger
	dbroot string

	mu sync.Mutex
}

var _ iscsi.Driver = (*Driver)(nil)

// Option configures a Driver.
type Option func(*Driver)

// WithDBRoot makes LIO keep its persistent reservation (APTPL) and ALUA
// state in dir instead of the node-local default (/var/target). In a pair
// dir must be on the replicated metadata volume, so that reservations
// follow a failover. The kernel accepts a new dbroot only while no fabric
// module is registered (target_core_item_dbroot_store refuses once
// iscsi_target_mod has loaded), so the first Apply after boot must run
// before anything loads iscsi_target_mod; Apply writes it before any other
// configfs change.
func WithDBRoot(dir string) Option {
	return func(d *Driver) {
		if dir != "" {
			dir = path.Clean(dir)
		}
		d.dbroot = dir
	}
}

// WithHost replaces the local filesystem checks (tests).
func WithHost(h Host) Option {
	return func(d *Driver) { d.host = h }
}

// New returns a driver writing configfs through fsys (NewOSFS("") on a real
// box).
func New(fsys FS, logger *slog.Logger, opts ...Option) *Driver {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Driver{fs: fsys, host: OSHost{}, log: logger}
	for _, o := range opts {
		o(d)
	}
	return d
}

// FirstLUN implements iscsi.Driver: LIO exports data at LUN 0.
func (d *Driver) FirstLUN() int { return 0 }

// Apply implements iscsi.Driver. It reads the live tree, plans the
// difference and changes only that: a second Apply of the same group writes
// nothing, and removing one LUN or target touches no other. It does not roll
// back: a failed Apply leaves a state the next Apply converges from, and a
// target it was building stays disabled because enable is written last.
func (d *Driver) Apply(ctx context.Context, tg iscsi.TargetGroup) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("apply LIO target group: %w", err)
	}
	start := time.Now()
	w, err := newDesired(tg, d.dbroot, d.host.IsBlockDevice)
	if err != nil {
		return fmt.Errorf("apply LIO target group: %w", err)
	}
	l, err := d.loadedLive()
	if err != nil {
		return fmt.Errorf("apply LIO target group: %w", err)
	}
	if err := d.prepareDBRoot(l); err != nil {
		return fmt.Errorf("apply LIO target group: %w", err)
	}
	if err := d.loadAPTPL(l, w); err != nil {
		return fmt.Errorf("apply LIO target group: %w", err)
	}
	planned := time.Now()
	steps := planApply(l, w)
	n, err := d.run(ctx, steps)
	if err != nil {
		return fmt.Errorf("apply LIO target group: %w", err)
	}
	d.log.Info("LIO target group applied", "targets", len(w.targets), "backstores", len(w.backstores), "changes", n,
		"took", time.Since(start), "read", planned.Sub(start))
	return nil
}

// dbrootDir is the dbroot LIO uses: the configured one, else the live
// one, else the kernel's default.
func (d *Driver) dbrootDir(l *live) string {
	switch {
	case d.dbroot != "":
		return d.dbroot
	case l.dbroot != "":
		return l.dbroot
	}
	return DefaultDBRoot
}

// prepareDBRoot makes the pr/ and alua/ directories under the dbroot LIO
// will use: without pr/, PERSISTENT RESERVE OUT fails with NOT READY
// (LAB.md), and the kernel accepts a dbroot only if the directory exists.
func (d *Driver) prepareDBRoot(l *live) error {
	dir := d.dbrootDir(l)
	for _, sub := range []string{"pr", "alua"} {
		if err := d.host.MkdirAll(path.Join(dir, sub)); err != nil {
			return fmt.Errorf("prepare LIO dbroot %s: %w", dir, err)
		}
	}
	return nil
}

// loadAPTPL reads the persistent reservations LIO recorded for each
// device (pr/aptpl_SERIAL under the dbroot; on the replicated metadata
// volume in a pair), so a backstore made anew, on this box after a
// failover, gets them back before it is exported. LIO itself writes the
// files but never reads them (targetcli restores them the same way).
func (d *Driver) loadAPTPL(l *live, w *desired) error {
	dir := d.dbrootDir(l)
	for _, wb := range w.backstores {
		file := path.Join(dir, "pr", "aptpl_"+wb.serial)
		data, err := d.host.ReadFile(file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read persistent reservations of %s: %w", wb.usedBy, err)
		}
		regs, err := ParseAPTPL(data)
		if err != nil {
			// A damaged file must not keep the LUN from being served.
			d.log.Warn("persistent reservations not restored", "file", file, "err", err)
			continue
		}
		wb.aptpl = regs
	}
	return nil
}

// ParseAPTPL splits LIO's APTPL file (PR_REG_START: n ... PR_REG_END: n
// blocks of key=value lines) into one res_aptpl_metadata string per
// registration, keys joined with commas as the kernel's parser takes them.
func ParseAPTPL(data []byte) ([]string, error) {
	var regs []string
	var cur []string
	in := false
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line == "\x00":
			continue
		case strings.HasPrefix(line, "PR_REG_START:"):
			if in {
				return nil, fmt.Errorf("APTPL line %d: PR_REG_START inside a registration", i+1)
			}
			in, cur = true, nil
		case strings.HasPrefix(line, "PR_REG_END:"):
			if !in {
				return nil, fmt.Errorf("APTPL line %d: PR_REG_END without PR_REG_START", i+1)
			}
			regs = append(regs, strings.Join(cur, ","))
			in = false
		case !in:
			return nil, fmt.Errorf("APTPL line %d: %q outside a registration", i+1, line)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || k == "" || strings.ContainsAny(v, ",") {
				return nil, fmt.Errorf("APTPL line %d: %q is not key=value", i+1, line)
			}
			cur = append(cur, line)
		}
	}
	if in {
		return nil, errors.New("APTPL file ends inside a registration")
	}
	return regs, nil
}

// Stop implements iscsi.Driver: it removes every iSCSI target and every
// backstore (sand's or not) in reverse order, each target disabled first,
// and then checks that no backstore holds a device, so that a DRBD demote
// that follows does not find the device busy.
func (d *Driver) Stop(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, err := d.loadedLive()
	if errors.Is(err, ErrNotLoaded) {
		return nil // nothing can be exported
	}
	if err != nil {
		return fmt.Errorf("stop LIO: %w", err)
	}
	n, err := d.run(ctx, planStop(l))
	if err != nil {
		return fmt.Errorf("stop LIO: %w", err)
	}
	if err := d.released(); err != nil {
		return fmt.Errorf("stop LIO: %w", err)
	}
	d.log.Info("LIO stopped", "changes", n)
	return nil
}

// loadedLive reads the live configfs tree; ErrNotLoaded if the target
// core is not loaded.
func (d *Driver) loadedLive() (*live, error) {
	l, err := readLive(d.fs)
	if err != nil {
		return nil, fmt.Errorf("read live configfs: %w", err)
	}
	if !l.loaded {
		return nil, ErrNotLoaded
	}
	return l, nil
}

// Warm builds a throwaway target (one LUN on the scratch file, a size of
// at least 1 MiB, a portal on loopback and an ACL for an initiator that
// does not exist) and removes it again, when LIO holds nothing. A pair's
// standby does it at start: it proves that the box can build a target
// before a takeover depends on it, and the kernel's first target of a boot
// is the slow one (the first HBA alone took 0.4-1.2 s; under the lab's
// emulated CPU every kernel path runs slowly the first time). Beside a
// serving configuration (sand restarted on a primary) it changes nothing.
func (d *Driver) Warm(ctx context.Context, file string, size int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, err := d.loadedLive()
	if err != nil {
		return fmt.Errorf("warm LIO: %w", err)
	}
	if len(l.hbas) > 0 || len(l.targets) > 0 || len(l.backstores) > 0 {
		return nil
	}
	t0 := time.Now()
	w, err := newDesired(warmGroup(file, size), "", d.host.IsBlockDevice)
	if err != nil {
		return fmt.Errorf("warm LIO: %w", err)
	}
	built, err := d.run(ctx, planApply(l, w))
	// Whatever was built goes again, also after a failure.
	l, lerr := d.loadedLive()
	if lerr != nil {
		return errors.Join(fmt.Errorf("warm LIO: %w", err), fmt.Errorf("warm LIO: read what to remove: %w", lerr))
	}
	removed, serr := d.run(ctx, planStop(l))
	if err != nil || serr != nil {
		return fmt.Errorf("warm LIO: %w", errors.Join(err, serr))
	}
	d.log.Info("LIO warmed", "changes", built+removed, "took", time.Since(t0))
	return nil
}

// warmGroup is Warm's throwaway target.
func warmGroup(file string, size int64) iscsi.TargetGroup {
	const serial = "5a4e5741524d" // hex of "ZNWARM"
	return iscsi.TargetGroup{
		Portals: []string{"127.0.0.1:3260"},
		Targets: []iscsi.Target{{
			IQN:        "iqn.2026-11.org.sand-appliance:warm",
			Initiators: []string{"iqn.2026-11.org.sand-appliance:warm-nobody"},
			LUNs: []iscsi.LogicalUnit{{
				Number: 0, Name: "sand-warm", Path: file, Type: iscsi.FileIO, Size: size,
				Serial: serial, NAA: iscsi.NAAFromSerial(serial),
			}},
		}},
	}
}

// Released reports, with an error wrapping ErrBusy, any backstore that
// still references a backing path; with paths given, only backstores on
// those paths count. Call it before demoting DRBD.
func (d *Driver) Released(ctx context.Context, paths ...string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("check LIO released its devices: %w", err)
	}
	return d.released(paths...)
}

func (d *Driver) released(paths ...string) error {
	l, err := readLive(d.fs)
	if err != nil {
		return fmt.Errorf("check LIO released its devices: %w", err)
	}
	var busy []string
	for _, key := range sortedKeys(l.backstores) {
		b := l.backstores[key]
		if len(paths) > 0 && !contains(paths, b.path) {
			continue
		}
		busy = append(busy, fmt.Sprintf("core/%s on %s", key, b.path))
	}
	if len(busy) > 0 {
		return fmt.Errorf("%w: %s", ErrBusy, strings.Join(busy, ", "))
	}
	return nil
}

// run executes steps in order and stops at the first error, which names the
// step's purpose, the configfs operation and its path. It returns how many
// changes (not checks) it made.
func (d *Driver) run(ctx context.Context, steps []step) (int, error) {
	changes := 0
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return changes, fmt.Errorf("%s: %w", s.why, err)
		}
		var err error
		t0 := time.Now()
		switch s.kind {
		case opMkdir:
			err = d.fs.Mkdir(s.path)
		case opWrite:
			err = d.fs.WriteFile(s.path, []byte(s.data))
		case opSymlink:
			err = d.fs.Symlink(s.data, s.path)
		case opRmdir, opUnlink:
			err = d.fs.Remove(s.path)
		case opCheck:
			if err = s.check(d.fs); err != nil {
				return changes, fmt.Errorf("%s: check %s: %w", s.why, s.path, err)
			}
			continue
		default:
			err = fmt.Errorf("unknown operation %q", s.kind)
		}
		if err != nil {
			return changes, fmt.Errorf("%s: %s %s: %w", s.why, s.kind, s.path, bareErr(err))
		}
		changes++
		level := slog.LevelDebug
		if time.Since(t0) >= slowStep {
			level = slog.LevelInfo // the kernel's side of a failover: which step costs
		}
		d.log.Log(ctx, level, "configfs", "op", string(s.kind), "path", s.path, "value", redact(s), "took", time.Since(t0))
	}
	return changes, nil
}

// slowStep is the configfs change worth a line in the journal.
const slowStep = 50 * time.Millisecond

// redact hides CHAP secrets from logs.
func redact(s step) string {
	if s.kind == opWrite && strings.Contains(s.path, "/auth/password") && s.data != "NULL" {
		return "(secret)"
	}
	return s.data
}
