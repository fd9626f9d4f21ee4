package drbd

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Resource is one DRBD resource of the appliance: one volume mirrored between
// exactly two nodes with protocol C and internal meta-data.
type Resource struct {
	// Name is the resource name (r0); the config file is <Name>.res.
	Name string
	// Minor is the device minor on both nodes: /dev/drbd<Minor>.
	Minor int
	// Port is the TCP port of the replication link on both nodes.
	Port uint16
	// Protocol is the replication protocol. Only "C" is valid: a write is
	// acknowledged once it is on both disks. "" means C.
	Protocol string
	// Nodes are the two boxes. Meta-data is always internal.
	Nodes [2]Node
	Net   Net
	Disk  Disk
	// Fencing is the fencing policy; with resource-only or
	// resource-and-stonith, Handlers.FencePeer must be set.
	Fencing  Fencing
	Handlers Handlers
}

// Node is one box of the pair.
type Node struct {
	// Name must equal the box's `uname -n`: drbdadm picks its own "on"
	// section by host name.
	Name string
	// Address is the box's address on the replication link.
	Address netip.Addr
	// Disk is the backing block device (/dev/vdb, /dev/sdb).
	Disk string
	// NodeID is the DRBD 9 node-id (0 or 1). Unused by 8.4. Render9
	// uses the node's index in Resource.Nodes when both are 0.
	NodeID int
}

// Net is the net section's tuning. A zero duration leaves DRBD's default.
type Net struct {
	// PingInt is how long the link may be idle before DRBD pings the peer
	// (ping-int, whole seconds, 1-120; DRBD default 10 s).
	PingInt time.Duration
	// PingTimeout is how long DRBD waits for the ping's answer
	// (ping-timeout, tenths of a second, 0.1-30 s; default 0.5 s).
	PingTimeout time.Duration
	// Timeout is how long DRBD waits for any expected answer before it
	// declares the peer dead (timeout, tenths, 0.1-60 s; default 6 s). It
	// must be below PingInt and ConnectInt.
	Timeout time.Duration
	// ConnectInt is the wait between connection attempts (connect-int,
	// whole seconds, 1-120; default 10 s).
	ConnectInt time.Duration

	// After-split-brain policies. The zero value is disconnect. See
	// Validate for which policies sand accepts and why.
	AfterSB0Pri AfterSB
	AfterSB1Pri AfterSB
	AfterSB2Pri AfterSB

	// Auth authenticates the peer when the link connects (cram-hmac-alg,
	// shared-secret); the zero value is none.
	Auth Auth
}

// TCGNet are the net timeouts that worked in the lab's QEMU/TCG VMs (dead
// peer detected in 2-3 s instead of 8.4's default of ~10 s, takeover 0.4 s
// with disconnect --force). Do not set them much tighter under TCG.
var TCGNet = Net{
	PingInt:     2 * time.Second,
	PingTimeout: time.Second,
	Timeout:     1500 * time.Millisecond,
	ConnectInt:  3 * time.Second,
}

// Disk is the disk section.
type Disk struct {
	// OnIOError is the reaction to a lower-level I/O error; "" means
	// detach (serve from the peer), the only choice sand makes.
	OnIOError string
	// ResyncRate fixes the resync rate in KiB/s (resync-rate; rendered
	// with a M suffix when it is whole MiB). It also turns off the
	// dynamic resync controller (c-plan-ahead 0), which would otherwise
	// ignore it. 0 leaves the dynamic controller on, with DRBD's defaults.
	ResyncRate int64
	// ALExtents is the activity log size (al-extents, 67-65534); 0 leaves
	// DRBD's default (1237).
	ALExtents int
}

// Handlers are commands DRBD runs on events. Each is an absolute path
// followed by arguments, no quotes or backslashes.
type Handlers struct {
	// FencePeer runs when this node must make sure the peer cannot write
	// (fencing resource-only / resource-and-stonith).
	FencePeer string
	// AfterResyncTarget runs on the resync target when it is UpToDate
	// again: where the fence set by FencePeer is lifted.
	AfterResyncTarget string
	// PriLostAfterSB runs on a primary that lost the after-split-brain
	// decision (after-sb-*pri call-pri-lost-after-sb); it is expected to
	// demote or reboot the box.
	PriLostAfterSB string
	// SplitBrain runs when DRBD detects a split brain that it did not
	// resolve: where sand reports it.
	SplitBrain string
}

// Fencing is DRBD's fencing policy.
type Fencing string

const (
	FencingDontCare           Fencing = "dont-care"
	FencingResourceOnly       Fencing = "resource-only"
	FencingResourceAndStonith Fencing = "resource-and-stonith"
)

// AfterSB is an after-split-brain recovery policy.
type AfterSB string

const (
	AfterSBDisconnect          AfterSB = "disconnect"
	AfterSBDiscardZeroChanges  AfterSB = "discard-zero-changes"
	AfterSBConsensus           AfterSB = "consensus"
	AfterSBCallPriLostAfterSB  AfterSB = "call-pri-lost-after-sb"
	AfterSBDiscardSecondary    AfterSB = "discard-secondary"
	AfterSBDiscardYoungerPri   AfterSB = "discard-younger-primary"
	AfterSBDiscardOlderPri     AfterSB = "discard-older-primary"
	AfterSBDiscardLeastChanges AfterSB = "discard-least-changes"
	AfterSBDiscardLocal        AfterSB = "discard-local"
	AfterSBDiscardRemote       AfterSB = "discard-remote"
	AfterSBViolentlyAs0p       AfterSB = "violently-as0p"
)

// Device is the DRBD block device, /dev/drbd<minor>.
func (r Resource) Device() string { return fmt.Sprintf("/dev/drbd%d", r.Minor) }

// ErrInvalid is wrapped by every Validate error.
var ErrInvalid = errors.New("invalid drbd resource")

// ErrUnsafe is wrapped (with ErrInvalid) by Validate errors for settings
// that can lose acknowledged writes: anything but protocol C, and
// after-split-brain policies that discard a side which may have
// acknowledged writes.
var ErrUnsafe = errors.New("unsafe drbd setting")

var (
	resourceNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	hostLabelRE    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	devicePathRE   = regexp.MustCompile(`^/dev/[A-Za-z0-9_./:+-]+$`)
)

// maxMinor is DRBD_MINOR_NUMBER_MAX.
const maxMinor = 1<<20 - 1

// Validate checks r before it is rendered: names, addresses, ports and paths
// that drbdadm would reject or misread, DRBD's ranges, and the safety rules.
//
// Safety rules:
//   - Protocol C only. With A or B a write is acknowledged before it is on
//     the peer's disk, so a failover can lose acknowledged writes.
//   - After-split-brain policies may only discard a side that cannot have
//     acknowledged a write. The lab saw what the other choice does: a
//     takeover force-disconnected a live peer, both sides then wrote, and on
//     reconnect `after-sb-1pri discard-secondary` "automatically solved" the
//     split brain by throwing away the writes the then-secondary had
//     acknowledged as primary. A secondary may have been a primary during the
//     split, so discard-secondary (and violently-as0p, and every discard-* by
//     age, size or side) is refused. Allowed:
//     0pri: disconnect, or discard-zero-changes (it discards only a side whose
//     bitmap shows no write since the split, i.e. that acknowledged nothing;
//     if both wrote it disconnects);
//     1pri: disconnect, consensus (discards the secondary only when the 0pri
//     rule would, i.e. when it has zero changes), call-pri-lost-after-sb
//     (needs Handlers.PriLostAfterSB);
//     2pri: disconnect, call-pri-lost-after-sb.
//     Anything that is not resolved this way stays StandAlone and is reported
//     to the admin: DRBD split brain is never resolved silently.
func (r Resource) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	unsafe := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %w: "+format, append([]any{ErrInvalid, ErrUnsafe}, args...)...))
	}

	if !resourceNameRE.MatchString(r.Name) {
		bad("resource name %q: want 1-63 letters, digits, '_', '.', '-', starting with a letter or digit", r.Name)
	}
	if r.Minor < 0 || r.Minor > maxMinor {
		bad("minor %d: want 0-%d", r.Minor, maxMinor)
	}
	if r.Port == 0 {
		bad("port 0: want 1-65535")
	}
	if r.Protocol != "" && r.Protocol != "C" {
		unsafe("protocol %q: only protocol C acknowledges a write once it is on both disks", r.Protocol)
	}

	for i, n := range r.Nodes {
		what := fmt.Sprintf("node %d (%q)", i, n.Name)
		if !validHostName(n.Name) {
			bad("%s: name must be the box's host name (uname -n)", what)
		}
		switch {
		case !n.Address.IsValid():
			bad("%s: no replication address", what)
		case n.Address.Zone() != "":
			bad("%s: address %s: zones are not supported", what, n.Address)
		case n.Address.Is4In6():
			bad("%s: address %s: use the plain IPv4 form", what, n.Address)
		case n.Address.IsUnspecified() || n.Address.IsMulticast() || n.Address.IsLoopback():
			bad("%s: address %s: want a unicast address of the box", what, n.Address)
		}
		if !validDevicePath(n.Disk) {
			bad("%s: backing disk %q: want an absolute, clean /dev path", what, n.Disk)
		}
		if n.NodeID < 0 || n.NodeID > 31 {
			bad("%s: node-id %d: want 0-31", what, n.NodeID)
		}
	}
	a, b := r.Nodes[0], r.Nodes[1]
	if a.Name != "" && strings.EqualFold(a.Name, b.Name) {
		bad("both nodes are named %q", a.Name)
	}
	if a.Address.IsValid() && a.Address == b.Address {
		bad("both nodes have address %s", a.Address)
	}
	if a.Address.IsValid() && b.Address.IsValid() && a.Address.Is4() != b.Address.Is4() {
		bad("node addresses %s and %s are of different families", a.Address, b.Address)
	}
	if (a.NodeID != 0 || b.NodeID != 0) && a.NodeID == b.NodeID {
		bad("both nodes have node-id %d", a.NodeID)
	}

	errs = append(errs, r.Net.validate()...)
	errs = append(errs, r.Disk.validate()...)

	switch r.Fencing {
	case "", FencingDontCare:
	case FencingResourceOnly, FencingResourceAndStonith:
		if r.Handlers.FencePeer == "" {
			bad("fencing %s needs a fence-peer handler", r.Fencing)
		}
	default:
		bad("fencing %q: want dont-care, resource-only or resource-and-stonith", r.Fencing)
	}
	for _, h := range []struct{ name, cmd string }{
		{"fence-peer", r.Handlers.FencePeer},
		{"after-resync-target", r.Handlers.AfterResyncTarget},
		{"pri-lost-after-sb", r.Handlers.PriLostAfterSB},
		{"split-brain", r.Handlers.SplitBrain},
	} {
		if h.cmd != "" && !validHandler(h.cmd) {
			bad("handler %s %q: want an absolute program path and plain arguments (no quotes, backslashes, ';', braces or control characters)", h.name, h.cmd)
		}
	}

	// After-split-brain policies: see the doc comment.
	switch r.Net.AfterSB0Pri {
	case "", AfterSBDisconnect, AfterSBDiscardZeroChanges:
	case AfterSBDiscardYoungerPri, AfterSBDiscardOlderPri, AfterSBDiscardLeastChanges, AfterSBDiscardLocal, AfterSBDiscardRemote:
		unsafe("after-sb-0pri %s may discard a side that acknowledged writes; use disconnect or discard-zero-changes", r.Net.AfterSB0Pri)
	default:
		bad("after-sb-0pri %q: not a DRBD policy for this case", r.Net.AfterSB0Pri)
	}
	switch r.Net.AfterSB1Pri {
	case "", AfterSBDisconnect, AfterSBConsensus:
	case AfterSBCallPriLostAfterSB:
		if r.Handlers.PriLostAfterSB == "" {
			bad("after-sb-1pri call-pri-lost-after-sb needs a pri-lost-after-sb handler")
		}
	case AfterSBDiscardSecondary:
		unsafe("after-sb-1pri discard-secondary throws away writes the secondary acknowledged while it was primary during the split (seen in the lab); use disconnect, consensus or call-pri-lost-after-sb")
	case AfterSBViolentlyAs0p:
		unsafe("after-sb-1pri violently-as0p may discard the primary's acknowledged writes; use disconnect, consensus or call-pri-lost-after-sb")
	default:
		bad("after-sb-1pri %q: not a DRBD policy for this case", r.Net.AfterSB1Pri)
	}
	switch r.Net.AfterSB2Pri {
	case "", AfterSBDisconnect:
	case AfterSBCallPriLostAfterSB:
		if r.Handlers.PriLostAfterSB == "" {
			bad("after-sb-2pri call-pri-lost-after-sb needs a pri-lost-after-sb handler")
		}
	case AfterSBViolentlyAs0p:
		unsafe("after-sb-2pri violently-as0p discards the writes one primary acknowledged; use disconnect or call-pri-lost-after-sb")
	default:
		if strings.HasPrefix(string(r.Net.AfterSB2Pri), "discard-") {
			unsafe("after-sb-2pri %s would discard a primary that acknowledged writes; use disconnect or call-pri-lost-after-sb", r.Net.AfterSB2Pri)
		} else {
			bad("after-sb-2pri %q: not a DRBD policy for this case", r.Net.AfterSB2Pri)
		}
	}

	return errors.Join(errs...)
}

func (n Net) validate() []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	inRange := func(name string, d, unit, lo, hi time.Duration) {
		switch {
		case d == 0:
		case d%unit != 0:
			bad("%s %v: want a multiple of %v", name, d, unit)
		case d < lo || d > hi:
			bad("%s %v: want %v-%v", name, d, lo, hi)
		}
	}
	inRange("ping-int", n.PingInt, time.Second, time.Second, 120*time.Second)
	inRange("ping-timeout", n.PingTimeout, 100*time.Millisecond, 100*time.Millisecond, 30*time.Second)
	inRange("timeout", n.Timeout, 100*time.Millisecond, 100*time.Millisecond, 60*time.Second)
	inRange("connect-int", n.ConnectInt, time.Second, time.Second, 120*time.Second)
	// drbd.conf(5): timeout must be lower than connect-int and ping-int.
	timeout := orDefault(n.Timeout, 6*time.Second)
	if pi := orDefault(n.PingInt, 10*time.Second); timeout >= pi {
		bad("timeout %v must be below ping-int %v", timeout, pi)
	}
	if ci := orDefault(n.ConnectInt, 10*time.Second); timeout >= ci {
		bad("timeout %v must be below connect-int %v", timeout, ci)
	}
	return append(errs, n.Auth.validate()...)
}

func (d Disk) validate() []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...))
	}
	if d.OnIOError != "" && d.OnIOError != "detach" {
		bad("on-io-error %q: sand only supports detach", d.OnIOError)
	}
	if d.ResyncRate < 0 || d.ResyncRate > 4<<20 {
		bad("resync-rate %d KiB/s: want 1-%d", d.ResyncRate, 4<<20)
	}
	if d.ALExtents != 0 && (d.ALExtents < 67 || d.ALExtents > 0xfffe) {
		bad("al-extents %d: want 67-65534", d.ALExtents)
	}
	return errs
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if !hostLabelRE.MatchString(label) {
			return false
		}
	}
	return true
}

func validDevicePath(p string) bool {
	return devicePathRE.MatchString(p) && filepath.Clean(p) == p && !strings.Contains(p, "/../")
}

// validHandler accepts what can be written between double quotes in a .res
// file and read back unchanged by drbdadm, and must start with an absolute
// program path.
func validHandler(cmd string) bool {
	if !strings.HasPrefix(cmd, "/") || strings.TrimSpace(cmd) != cmd {
		return false
	}
	for _, c := range cmd {
		if c < 0x20 || c == 0x7f || strings.ContainsRune("\"\\;{}#", c) {
			return false
		}
	}
	return true
}
