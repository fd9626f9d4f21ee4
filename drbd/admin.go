package drbd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sand-appliance/sand/appliance/command"
	"github.com/sand-appliance/sand/appliance/durable"
)

// Tool paths and defaults.
const (
	// Drbdadm is drbd-utils' drbdadm. With the 8.4 module loaded it execs
	// /lib/drbd/drbdadm-84 by itself (adding /lib/drbd to PATH), so the
	// image must ship /lib/drbd/drbdadm-84 and drbdsetup-84.
	Drbdadm = "drbdadm"
	// Drbdsetup is DRBD 9's drbdsetup.
	Drbdsetup = "drbdsetup"
	// Drbdsetup84 is drbd-utils' drbdsetup for the 8.4 module; the plain
	// drbdsetup does not dispatch to it.
	Drbdsetup84 = "/lib/drbd/drbdsetup-84"
	// DefaultConfDir is where drbd.conf includes *.res from.
	DefaultConfDir = "/etc/drbd.d"
	// DefaultProcPath is the 8.4 status file (and DRBD 9's version).
	DefaultProcPath = "/proc/drbd"
)

// ErrNotLoaded: the DRBD kernel module is not loaded.
var ErrNotLoaded = errors.New("drbd kernel module not loaded")

// Admin drives DRBD through drbdadm/drbdsetup. All commands go through Run
// (argv only, LC_ALL=C); status on 8.4 is read from /proc/drbd through
// ReadFile. Errors say what was attempted and wrap the command's error.
type Admin struct {
	Run command.Runner
	// ReadFile reads /proc/drbd; os.ReadFile if nil.
	ReadFile func(name string) ([]byte, error)
	// ConfDir is where WriteConfig writes <name>.res; DefaultConfDir if "".
	ConfDir string
	// ProcPath is /proc/drbd; DefaultProcPath if "".
	ProcPath string
	// Hostname names this box among a resource's nodes; os.Hostname if nil.
	Hostname func() (string, error)
}

// NewAdmin returns an Admin with the default paths.
func NewAdmin(run command.Runner) *Admin {
	return &Admin{Run: run}
}

func (a *Admin) drbdadm(ctx context.Context, what, name string, args ...string) error {
	argv := append(args, name)
	if _, err := a.Run.Run(ctx, Drbdadm, argv...); err != nil {
		return fmt.Errorf("%s drbd resource %q: %w", what, name, err)
	}
	return nil
}

// CreateMD writes fresh DRBD meta-data on this node's backing disk
// (`drbdadm create-md --force`: --force answers drbdmeta's questions, it
// does not prompt). It is for a new resource only: on a disk that holds
// meta-data it starts the resource over (and drbdmeta refuses while the
// device is up).
func (a *Admin) CreateMD(ctx context.Context, name string) error {
	return a.drbdadm(ctx, "create meta-data for", name, "create-md", "--force")
}

// Up attaches the disk and starts connecting (`drbdadm up`).
func (a *Admin) Up(ctx context.Context, name string) error {
	return a.drbdadm(ctx, "bring up", name, "up")
}

// Down disconnects, detaches and removes the resource (`drbdadm down`).
func (a *Admin) Down(ctx context.Context, name string) error {
	return a.drbdadm(ctx, "take down", name, "down")
}

// Primary promotes this node. force is for the very first promotion of a
// new resource, whose disks are both Inconsistent (`primary --force`;
// 8.3's `-- --overwrite-data-of-peer` is not used), or for a deliberate
// promotion of data that is not known to be UpToDate. While this node
// still thinks it is connected to a dead peer, primary fails: disconnect
// first (see Disconnect).
func (a *Admin) Primary(ctx context.Context, r Resource, force bool) error {
	if force {
		return a.setRole(ctx, "force-promote", r, "primary", "--force")
	}
	return a.setRole(ctx, "promote", r, "primary")
}

// Secondary demotes this node.
func (a *Admin) Secondary(ctx context.Context, r Resource) error {
	return a.setRole(ctx, "demote", r, "secondary")
}

// setRole runs drbdsetup itself, not drbdadm: a role change needs nothing
// of the configuration, and on 8.4 drbdadm parses it and execs drbdadm-84,
// which execs drbdsetup-84. Both role changes are on the failover's
// critical path, where each exec costs 100-300 ms in the TCG lab. 8.4's
// drbdsetup names the device by minor, DRBD 9's by resource.
func (a *Admin) setRole(ctx context.Context, what string, r Resource, role string, args ...string) error {
	v, err := a.Version(ctx)
	if err != nil {
		return fmt.Errorf("%s drbd resource %q: %w", what, r.Name, err)
	}
	bin, obj := Drbdsetup, r.Name
	if v.Is84() {
		bin, obj = Drbdsetup84, strconv.Itoa(r.Minor)
	}
	if _, err := a.Run.Run(ctx, bin, append([]string{role, obj}, args...)...); err != nil {
		return fmt.Errorf("%s drbd resource %q: %w", what, r.Name, err)
	}
	return nil
}

// Connect (re)starts connecting to the peer (`drbdadm connect`).
func (a *Admin) Connect(ctx context.Context, name string) error {
	return a.drbdadm(ctx, "connect", name, "connect")
}

// Disconnect drops the replication link. force (`disconnect --force`)
// returns at once instead of waiting up to the net timeout for the peer's
// answer. Force it only once the peer has been decided dead:
// force-disconnecting a live peer leaves this node StandAlone and invites a
// split brain (the lab lost acknowledged writes that way).
//
// On 8.4 it runs drbdsetup itself, as drbdadm would (`drbdsetup-84
// disconnect ipv4:LOCAL:PORT ipv4:PEER:PORT`): the forced disconnect is on
// a takeover's critical path, where drbdadm's three execs took 200 ms in
// the TCG lab. This box's end is the node named as the host; DRBD 9 and a
// resource that does not name this host go through drbdadm.
func (a *Admin) Disconnect(ctx context.Context, r Resource, force bool) error {
	what, args := "disconnect", []string{"disconnect"}
	if force {
		what, args = "force-disconnect", []string{"disconnect", "--force"}
	}
	v, err := a.Version(ctx)
	if err != nil {
		return fmt.Errorf("%s drbd resource %q: %w", what, r.Name, err)
	}
	local, peer, ok := a.ends(r)
	if !v.Is84() || !ok {
		return a.drbdadm(ctx, what, r.Name, args...)
	}
	argv := []string{"disconnect", endpoint(local.Address, r.Port), endpoint(peer.Address, r.Port)}
	if force {
		argv = append(argv, "--force")
	}
	if _, err := a.Run.Run(ctx, Drbdsetup84, argv...); err != nil {
		return fmt.Errorf("%s drbd resource %q: %w", what, r.Name, err)
	}
	return nil
}

// ends returns this box's node of r (named as the host) and the peer's.
func (a *Admin) ends(r Resource) (local, peer Node, ok bool) {
	hostname := a.Hostname
	if hostname == nil {
		hostname = os.Hostname
	}
	host, err := hostname()
	if err != nil {
		return Node{}, Node{}, false
	}
	for i, n := range r.Nodes {
		if n.Name == host {
			return n, r.Nodes[1-i], true
		}
	}
	return Node{}, Node{}, false
}

// endpoint is an address as drbdsetup-84 takes it: ipv4:10.0.0.1:7789,
// ipv6:[fd00::1]:7789.
func endpoint(a netip.Addr, port uint16) string {
	if a.Is6() {
		return fmt.Sprintf("ipv6:[%s]:%d", a, port)
	}
	return fmt.Sprintf("ipv4:%s:%d", a, port)
}

// Outdate marks this node's data Outdated (`drbdadm outdate`), so it can
// not be promoted without --force. DRBD refuses it while connected.
func (a *Admin) Outdate(ctx context.Context, name string) error {
	return a.drbdadm(ctx, "outdate", name, "outdate")
}

// Adjust makes the running resource match its config file (`drbdadm
// adjust`); it also brings a down resource up.
func (a *Admin) Adjust(ctx context.Context, name string) error {
	return a.drbdadm(ctx, "adjust", name, "adjust")
}

// Version reports the loaded DRBD module: from /proc/drbd's version line,
// or, if /proc/drbd cannot be read, from `drbdadm --version`
// (DRBD_KERNEL_VERSION_CODE). ErrNotLoaded if no module is loaded.
func (a *Admin) Version(ctx context.Context) (Version, error) {
	data, err := a.readProc()
	if err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		v, err := ParseVersionLine(line)
		if err != nil {
			return Version{}, fmt.Errorf("detect drbd version: %w", err)
		}
		return v, nil
	}
	out, err2 := a.Run.Run(ctx, Drbdadm, "--version")
	if err2 != nil {
		return Version{}, fmt.Errorf("detect drbd version: %w", errors.Join(err, err2))
	}
	v, err := ParseDrbdadmVersion(out)
	if err != nil {
		return Version{}, fmt.Errorf("detect drbd version: %w", err)
	}
	return v, nil
}

// ParseDrbdadmVersion reads the kernel module version from `drbdadm
// --version` (DRBD_KERNEL_VERSION_CODE=0x08040b). ErrNotLoaded if the code
// is 0.
func ParseDrbdadmVersion(out []byte) (Version, error) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || k != "DRBD_KERNEL_VERSION_CODE" {
			continue
		}
		code, err := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 32)
		if err != nil || !strings.HasPrefix(v, "0x") {
			return Version{}, fmt.Errorf("parse drbdadm --version: DRBD_KERNEL_VERSION_CODE %q: want 0xMMmmpp", v)
		}
		if code == 0 {
			return Version{}, ErrNotLoaded
		}
		return Version{Major: int(code >> 16 & 0xff), Minor: int(code >> 8 & 0xff), Patch: int(code & 0xff)}, nil
	}
	return Version{}, fmt.Errorf("parse drbdadm --version: no DRBD_KERNEL_VERSION_CODE")
}

func (a *Admin) readProc() ([]byte, error) {
	read := a.ReadFile
	if read == nil {
		read = os.ReadFile
	}
	path := a.ProcPath
	if path == "" {
		path = DefaultProcPath
	}
	data, err := read(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w: %w", path, ErrNotLoaded, err)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

// Status reports resource r on this node. On 8.4 it reads /proc/drbd (the
// minor's line; a minor that is not listed means the resource is down:
// ConnUnconfigured); on DRBD 9 it runs `drbdsetup status --json <name>`
// (exit code 10, "No such resource", means down too).
func (a *Admin) Status(ctx context.Context, r Resource) (Status, error) {
	fail := func(err error) (Status, error) {
		return Status{}, fmt.Errorf("read status of drbd resource %q: %w", r.Name, err)
	}
	down := Status{Resource: r.Name, Minor: r.Minor, Connection: ConnUnconfigured}
	data, err := a.readProc()
	if err != nil {
		return fail(err)
	}
	p, err := ParseProcDRBD(data)
	if err != nil {
		return fail(err)
	}
	if !p.Version.Is9() {
		if !p.Version.Is84() {
			return fail(fmt.Errorf("drbd %s is not supported (want 8.4 or 9)", p.Version))
		}
		for _, st := range p.Devices {
			if st.Minor == r.Minor {
				st.Resource = r.Name
				return st, nil
			}
		}
		return down, nil
	}
	out, err := a.Run.Run(ctx, Drbdsetup, "status", "--json", r.Name)
	if err != nil {
		if command.ExitCode(err) == 10 {
			return down, nil
		}
		return fail(err)
	}
	sts, err := ParseStatusJSON(out)
	if err != nil {
		return fail(err)
	}
	for _, st := range sts {
		if st.Resource == r.Name && st.Volume == 0 {
			return st, nil
		}
	}
	return down, nil
}

// WriteConfig validates r and writes it to <ConfDir>/<name>.res in the
// syntax of the loaded module (Render84 or Render9), atomically and durably
// (renameio, then an fsync of the directory), readable by root only (mode
// 0600: it holds the shared secret). It does not apply it: see Up and
// Adjust.
func (a *Admin) WriteConfig(ctx context.Context, r Resource) error {
	fail := func(err error) error {
		return fmt.Errorf("write drbd config for resource %q: %w", r.Name, err)
	}
	if err := r.Validate(); err != nil {
		return fail(err)
	}
	v, err := a.Version(ctx)
	if err != nil {
		return fail(err)
	}
	var data []byte
	switch {
	case v.Is84():
		data = Render84(r)
	case v.Is9():
		data = Render9(r)
	default:
		return fail(fmt.Errorf("drbd %s is not supported (want 8.4 or 9)", v))
	}
	dir := a.ConfDir
	if dir == "" {
		dir = DefaultConfDir
	}
	if err := durable.WriteFile(filepath.Join(dir, r.Name+".res"), data, 0o600); err != nil {
		return fail(err)
	}
	return nil
}
