package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/appliance/command"
	"github.com/sand-appliance/sand/appliance/pool/lvm"
	"github.com/sand-appliance/sand/dm"
	"github.com/sand-appliance/sand/drbd"
	"github.com/sand-appliance/sand/failover"
	"github.com/sand-appliance/sand/iscsi/lio"
)

// drbdResource is the pair's DRBD resource as the node config describes it:
// protocol C, the tuned net timeouts, fencing through sand, and
// after-split-brain policies that never discard a side.
func drbdResource(cfg appliance.Config) (drbd.Resource, error) {
	d := cfg.Pair.DRBD
	self, err := os.Executable()
	if err != nil {
		return drbd.Resource{}, fmt.Errorf("find the sand binary for the DRBD handlers: %w", err)
	}
	local := drbd.Node{Name: cfg.Name, Address: netip.MustParseAddr(d.Address), Disk: d.Disk}
	peer := drbd.Node{Name: cfg.Pair.Peer, Address: netip.MustParseAddr(d.PeerAddress), Disk: d.Disk}
	nodes := [2]drbd.Node{local, peer}
	if peer.Name < local.Name {
		nodes = [2]drbd.Node{peer, local} // both boxes render the same file
	}
	r := drbd.Resource{
		Name: d.Resource, Minor: d.Minor, Port: uint16(d.Port), Protocol: "C", Nodes: nodes,
		Net: drbd.TCGNet,
		// Writes freeze when the link drops until the fence-peer handler
		// proves the peer cannot be promoted with older data (it outdated
		// the peer, or the peer is dead with quorum): no acknowledged write
		// can be lost to a promotion of the other side.
		Fencing: drbd.FencingResourceAndStonith,
		Handlers: drbd.Handlers{
			FencePeer:  self + " fence-peer",
			SplitBrain: self + " split-brain",
		},
	}
	return r, r.Validate()
}

// drbdDevice is the pair's DRBD device (/dev/drbdMINOR): the pool's only
// physical volume.
func drbdDevice(cfg appliance.Config) string {
	return drbd.Resource{Minor: cfg.Pair.DRBD.Minor}.Device()
}

// drbdPair brings the DRBD resource and the LVM pool on it up to where the
// decision loop can take over.
type drbdPair struct {
	cfg   appliance.Config
	res   drbd.Resource
	admin *drbd.Admin
	run   command.Runner
	log   *slog.Logger
	// askPeer asks the peer for its hand-over record (HandOverQuery).
	askPeer func(ctx context.Context) ([]byte, error)

	mu sync.Mutex
	// asked is the answer to the question askStep put to the peer.
	asked chan peerAnswer
	// handOver is this box's record of the pool's activation, taken as it
	// last deactivated the pool, for the peer to replay; nil while the
	// pool is active here.
	handOver []byte
}

// prepare writes the resource, creates its metadata the first time, and
// brings it up (attach and connect) if it is not up yet.
func (p *drbdPair) prepare(ctx context.Context) error {
	if err := p.admin.WriteConfig(ctx, p.res); err != nil {
		return err
	}
	st, err := p.admin.Status(ctx, p.res)
	if err != nil {
		return err
	}
	if st.Connection != drbd.ConnUnconfigured {
		return nil // up already: sand restarted
	}
	// Only a disk without meta-data gets new meta-data: anything else
	// (notably "unclean" meta-data after a crash of the primary, whose
	// activity log `up` applies by itself) is attached as it is.
	if _, err := p.run.Run(ctx, "drbdadm", "dump-md", p.res.Name); err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "no valid meta") {
			p.log.Info("creating DRBD meta-data on a new disk", "resource", p.res.Name, "disk", p.cfg.Pair.DRBD.Disk)
			if err := p.admin.CreateMD(ctx, p.res.Name); err != nil {
				return err
			}
		} else {
			p.log.Warn("DRBD meta-data not clean (a crash?): attaching lets DRBD apply its activity log", "resource", p.res.Name, "err", err)
		}
	}
	return p.admin.Up(ctx, p.res.Name)
}

// bootstrap runs once in the life of a pair: both disks are brand new
// (Inconsistent on both sides). The box whose name sorts first forces
// itself primary, which starts the initial sync, lays out the pool (volume
// group, metadata volume, thin pool) on the DRBD device, and steps back to
// secondary; the decision loop then promotes the UpToDate side.
func (p *drbdPair) bootstrap(ctx context.Context) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		st, err := p.admin.Status(ctx, p.res)
		if err != nil {
			return err
		}
		switch {
		case st.Disk != drbd.DiskInconsistent:
			return nil // not new (or the peer already started the sync)
		case st.Connection == drbd.ConnConnected && st.PeerDisk == drbd.DiskInconsistent && p.cfg.Name < p.cfg.Pair.Peer:
			return p.initialize(ctx)
		case st.Connection.Syncing():
			return nil // the peer bootstrapped: this side is the sync target
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bootstrap drbd %s: waited 2m for the peer to connect (connection %s, disk %s/%s)", p.res.Name, st.Connection, st.Disk, st.PeerDisk)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (p *drbdPair) initialize(ctx context.Context) error {
	p.log.Info("new pair: forcing this side primary to start the initial sync", "resource", p.res.Name)
	if err := p.admin.Primary(ctx, p.res, true); err != nil {
		return err
	}
	vg, dev := p.cfg.Pool.VG, p.res.Device()
	steps := [][]string{
		{"pvcreate", "--yes", dev},
		{"vgcreate", vg, dev},
		{"lvcreate", "--yes", "--size", sizeArg(p.cfg.Pair.DRBD.MetaSize), "--name", "meta", vg},
		// Initialized in full now, not by ext4's lazyinit thread after
		// the first mount: zeroing inode tables through DRBD slowed the
		// first promotions (a 2.3 s mount, measured under TCG).
		{"mkfs.ext4", "-q", "-L", "sand-meta", "-E", "lazy_itable_init=0,lazy_journal_init=0", "/dev/" + vg + "/meta"},
		{"lvcreate", "--yes", "--type", "thin-pool", "--extents", "90%FREE", "--name", p.cfg.Pool.ThinPool, vg},
		{"vgchange", "--activate", "n", vg},
	}
	for _, s := range steps {
		if _, err := p.run.Run(ctx, s[0], s[1:]...); err != nil {
			return fmt.Errorf("lay out the pool on %s: %w", dev, err)
		}
	}
	return p.admin.Secondary(ctx, p.res)
}

func sizeArg(s string) string {
	n, _ := appliance.ParseSize(s) // checked by Validate
	return strconv.FormatInt(n, 10) + "b"
}

// poolStep activates the volume group on the DRBD device and mounts the
// metadata volume (the registry's home) on the state directory; in
// reverse it unmounts and deactivates, so DRBD can be demoted.
//
// It is on the failover's critical path, and LVM is slow under load (2-3 s
// for a plain vgchange in the TCG lab, mostly waiting for udev to run its
// rules on each new device), so LVM looks at the DRBD device only
// (--devices), makes its device nodes itself instead of waiting for udev
// (lvmFast), and skips dmeventd (--ignoremonitoring); thin-pool
// monitoring is switched on in the background once the box serves.
// A hand-over skips LVM altogether: the peer recorded the group's devices
// as it let go, and this box makes the same ones (replayPeer).
func (p *drbdPair) poolStep() failover.Step {
	vg, dir := p.cfg.Pool.VG, p.cfg.StateDir
	meta := "/dev/" + vg + "/meta"
	return failover.Step{
		Name: "pool " + vg,
		Start: func(ctx context.Context) error {
			t0 := time.Now()
			p.setHandOver(nil)
			how, err := p.activate(ctx)
			if err != nil {
				return fmt.Errorf("activate volume group %s: %w", vg, err)
			}
			t1 := time.Now()
			if !mounted(dir) {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					return fmt.Errorf("create %s: %w", dir, err)
				}
				// mount(2) directly: mount(8) probes the filesystem type
				// first, 1.4 s of the failover under TCG (measured).
				if err := syscall.Mount(meta, dir, "ext4", syscall.MS_SYNCHRONOUS|syscall.MS_DIRSYNC, ""); err != nil {
					return fmt.Errorf("mount the metadata volume %s on %s: %w", meta, dir, err)
				}
			}
			t2 := time.Now()
			if err := p.mountDBRoot(); err != nil {
				return err
			}
			p.log.Info("pool active", "vg", vg, "activation", how, "activate", t1.Sub(t0), "mount", t2.Sub(t1), "dbroot", time.Since(t2))
			return nil
		},
		Stop: func(ctx context.Context) error {
			t0 := time.Now()
			if mounted(lio.DefaultDBRoot) {
				if err := syscall.Unmount(lio.DefaultDBRoot, 0); err != nil {
					return fmt.Errorf("unmount LIO's dbroot %s: %w", lio.DefaultDBRoot, err)
				}
			}
			if mounted(dir) {
				if err := syscall.Unmount(dir, 0); err != nil {
					return fmt.Errorf("unmount the metadata volume from %s: %w", dir, err)
				}
			}
			return p.deactivate(ctx, time.Since(t0))
		},
	}
}

// activate makes the volume group's devices: in a hand-over from the
// peer's record, else (or when that fails) with vgchange, which checks the
// thin pool's metadata unless the peer let go in order. It says which.
func (p *drbdPair) activate(ctx context.Context) (string, error) {
	if !failover.HandingOver(ctx) {
		return "vgchange with thin_check", p.vgchange(ctx, lvmFast, "--activate", "y", "--ignoremonitoring")
	}
	if p.replayPeer(ctx) {
		return "the peer's record", nil
	}
	return "vgchange", p.vgchange(ctx, lvmHandOver, "--activate", "y", "--ignoremonitoring")
}

// deactivate records the volume group's activation for the peer (a
// hand-over replays it), then removes its devices and links; unmount is
// what the unmounts before it took, for the log.
func (p *drbdPair) deactivate(ctx context.Context, unmount time.Duration) error {
	vg := p.cfg.Pool.VG
	ctl, err := dm.Open()
	if err != nil {
		return fmt.Errorf("deactivate volume group %s: %w", vg, err)
	}
	defer ctl.Close()
	t0 := time.Now()
	var record []byte
	a, err := lvm.Record(ctl, lvm.Sysfs, lvm.DevDir, vg)
	if err == nil && len(a.Devices) > 0 { // none: the pool was not active
		record, err = a.Marshal()
	}
	if err != nil {
		p.log.Warn("no hand-over record for the peer: it activates with LVM", "err", err)
	}
	t1 := time.Now()
	if err := lvm.Deactivate(ctx, ctl, lvm.Sysfs, lvm.DevDir, vg); err != nil {
		return err
	}
	p.setHandOver(record)
	p.log.Info("pool deactivated", "vg", vg, "devices", len(a.Devices), "unmount", unmount, "record", t1.Sub(t0), "remove", time.Since(t1))
	return nil
}

func (p *drbdPair) setHandOver(b []byte) {
	p.mu.Lock()
	p.handOver = b
	p.mu.Unlock()
}

// answerHandOver gives the peer this box's record (empty if there is none
// or it is too large for a query's answer).
func (p *drbdPair) answerHandOver(payload []byte) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if string(payload) != p.cfg.Pool.VG || len(p.handOver) > failover.QueryResponseLimit-1024 {
		return nil
	}
	return p.handOver
}

type peerAnswer struct {
	record []byte
	err    error
	took   time.Duration
}

// askStep puts the question for the peer's record at the start of a
// hand-over promotion, so the answer (a gossip round or two) travels while
// DRBD is promoted; the pool step waits for it.
func (p *drbdPair) askStep() failover.Step {
	return failover.Step{
		Name: "ask the peer for its record",
		Start: func(ctx context.Context) error {
			if !failover.HandingOver(ctx) || p.askPeer == nil {
				return nil
			}
			ch := make(chan peerAnswer, 1)
			p.mu.Lock()
			p.asked = ch
			p.mu.Unlock()
			go func() {
				t0 := time.Now()
				ask, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				b, err := p.askPeer(ask)
				ch <- peerAnswer{record: b, err: err, took: time.Since(t0)}
			}()
			return nil
		},
		Stop: func(context.Context) error { return nil },
	}
}

// replayPeer activates the pool from the record of the peer that just let
// go, and reports whether it did; on any failure it has made nothing and
// the caller runs vgchange.
func (p *drbdPair) replayPeer(ctx context.Context) bool {
	p.mu.Lock()
	ch := p.asked
	p.asked = nil
	p.mu.Unlock()
	err := func() error {
		if ch == nil {
			return errors.New("the peer was not asked")
		}
		t0 := time.Now()
		var ans peerAnswer
		select {
		case ans = <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		waited := time.Since(t0)
		b, err := ans.record, ans.err
		if err != nil {
			return err
		}
		if len(b) == 0 {
			return errors.New("the peer has no record")
		}
		a, err := lvm.UnmarshalActivation(b, p.cfg.Pool.VG)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Stat(p.res.Device(), &st); err != nil {
			return fmt.Errorf("stat the DRBD device: %w", err)
		}
		pv := dm.Dev{Major: unix.Major(st.Rdev), Minor: unix.Minor(st.Rdev)}
		ctl, err := dm.Open()
		if err != nil {
			return err
		}
		defer ctl.Close()
		t1 := time.Now()
		if err := a.Replay(ctx, ctl, lvm.DevDir, func(d dm.Dev) bool { return d == pv }); err != nil {
			return err
		}
		p.log.Info("pool replayed from the peer's record", "devices", len(a.Devices), "record_bytes", len(b), "answer", ans.took, "waited", waited, "replay", time.Since(t1))
		return nil
	}()
	if err != nil {
		p.log.Warn("activate the pool from the peer's record: activating with LVM instead", "err", err)
		return false
	}
	return true
}

// vgchange runs vgchange on the pool's volume group, looking at the DRBD
// device only, with LVM configuration conf (lvmFast or lvmHandOver).
func (p *drbdPair) vgchange(ctx context.Context, conf string, args ...string) error {
	_, err := p.run.Run(ctx, "vgchange", append(args, "--devices", p.res.Device(), "--config", conf, p.cfg.Pool.VG)...)
	return err
}

// monitoring switches thin-pool monitoring (dmeventd: autoextend, the
// full-pool warning) on once the box serves: the pool step skips it
// because its vgchange holds the volume group's lock for about a second
// under TCG.
func (p *drbdPair) monitoring() failover.Chore {
	return failover.Chore{Name: "thin pool monitoring", Run: func(ctx context.Context) error {
		if err := p.vgchange(ctx, lvmFast, "--monitor", "y"); err != nil {
			return fmt.Errorf("monitor volume group %s: %w", p.cfg.Pool.VG, err)
		}
		return nil
	}}
}

// mountDBRoot puts LIO's dbroot (persistent reservations, ALUA state) on
// the replicated metadata volume: a bind mount over the kernel's default,
// because the kernel takes a new dbroot only before iscsi_target_mod
// loads, and the image loads it at boot. The LIO driver restores the
// recorded reservations when it creates each device.
func (p *drbdPair) mountDBRoot() error {
	if p.cfg.Target.Driver != "lio" || mounted(lio.DefaultDBRoot) {
		return nil
	}
	src := filepath.Join(p.cfg.StateDir, "lio-dbroot")
	for _, d := range []string{src, lio.DefaultDBRoot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := syscall.Mount(src, lio.DefaultDBRoot, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind LIO's dbroot %s to %s on the metadata volume: %w", lio.DefaultDBRoot, src, err)
	}
	return nil
}

// lvmFast has LVM create and remove the volume group's /dev nodes and
// links itself (LVM's mode for systems without udev): activation does not
// wait for udev's rules, and udev's rules leave these devices alone; the
// pool step's deactivation removes the devices and links the same way.
// LVM skips the md, multipath and firmware-RAID component checks of the
// device it is given (DRBD's, never such a component). thin_check skips
// the per-block mappings (superblock and space maps are still checked);
// it refuses --clear-needs-check-flag together with --skip-mappings
// ("cannot perform fix without a full examination": every promotion
// failed in the VM lab), so a pool the kernel flagged needs_check stays
// flagged (and read-only) until the admin runs a full check.
const lvmFast = lvmNoUdev + ` global { thin_check_options = [ "-q", "--skip-mappings" ] }`

// lvmHandOver is lvmFast without thin_check, for a promotion after the
// peer let go in order (failover.HandingOver): it closed the pool a moment
// ago, the kernel committing the pool's metadata as it removed it, and
// the check costs about 0.2 s of the switchover under TCG. A promotion
// after a crash keeps the check.
const lvmHandOver = lvmNoUdev + ` global { thin_check_executable = "" }`

const lvmNoUdev = `activation { udev_sync = 0 udev_rules = 0 } ` +
	`devices { md_component_detection = 0 multipath_component_detection = 0 fw_raid_component_detection = 0 }`

// mounted reports whether dir is a mount point, from /proc/self/mounts.
func mounted(dir string) bool {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[1] == dir {
			return true
		}
	}
	return false
}
