// Package lab runs sand's VM lab: two appliance boxes (san1, san2) booted
// from the image mkimage.sh builds, under QEMU with TCG, wired to two
// bridges inside a network namespace of their own, plus a client namespace
// with the initiator tools. The VM test tier (tests/vm) and the sand-lab
// program (cmd/sand-lab) drive it.
//
// The picture, all inside namespaces this package makes (no route leads
// out of them):
//
//	namespace <name> (the lab)                      namespace <name>-client
//	  bridge front 10.99.0.1/24 ---- veth ----------- eth0 10.99.0.50/24
//	    |- tap san1-front  (san1 eth0 10.99.0.11)       libiscsi, qemu-io
//	    |- tap san2-front  (san2 eth0 10.99.0.12)
//	  bridge repl (no address: DRBD only)
//	    |- tap san1-repl   (san1 eth1 10.98.0.11)
//	    |- tap san2-repl   (san2 eth1 10.98.0.12)
//	  qemu-system-x86_64 san1, san2 (each with a sparse data disk file, a
//	  console log, a QMP socket and a report port)
//
// The front network carries the iSCSI portal, the VIP (10.99.0.10), the
// web UI and the API; the replication network carries DRBD only, so a test
// can cut either one per box. The boxes get their node settings on the
// kernel command line (sand.name=san1 sand.addr=... ), which the image's
// sand-node-setup turns into /etc/sand/sand.yaml.
//
// Typing into a TCG guest's console is unreliable (input arrives only when
// more input follows), so the lab never does: it talks to the boxes over
// the front network (sand's API) and reads what they write out (console
// log, the report port).
//
// Everything a lab makes is recorded in DIR/state.json as it is made, so
// another process can report on it or take it down (Open, Down), and Down
// proves nothing is left behind.
package lab

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/renameio/v2"

	"github.com/sand-appliance/sand/appliance/command"
)

// The lab's networks. They live only inside the lab's namespaces; tests/netns
// uses 10.210.0.0/24, so these never meet it.
const (
	FrontPrefix = "10.99.0" // portal, VIP, UI/API, clients
	ReplPrefix  = "10.98.0" // DRBD only
	HostOctet   = 1         // the lab namespace's own address on the front bridge
	VIPOctet    = 10
	ClientOctet = 50
	APIPort     = 7443 // HTTPS; 7480 only redirects
)

// DefaultName is the lab sand-lab runs.
const DefaultName = "sandlab"

// Options configure a lab.
type Options struct {
	// Name names the namespaces (<Name>, <Name>-client) and the state
	// directory. Two labs with different names can run side by side.
	Name string
	// Repo is the sand repository (mkimage.sh, the sand sources, out/).
	Repo string
	// Dir holds the lab's state, disks and logs (default
	// <Repo>/out/lab/<Name>). Down removes it.
	Dir string
	// ImageDir holds vmlinuz and initrd.img (default <Repo>/out/image).
	ImageDir string
	// Image says when to (re)build the image; the default is ImageAuto.
	Image ImagePolicy
	// Pair makes the boxes a pair: "drbd" gives each box the node setting
	// pair=drbd (sand.yaml's pair block, the pool on /dev/drbd0) with the
	// other box as its peer and a shared gossip key. Empty: standalone
	// boxes, the pool on each data disk.
	Pair string
	// Boot says how the boxes boot: the kernel and initramfs with the node
	// settings on the command line (BootKernel, the default), or the disk
	// image for real hardware through UEFI firmware and systemd-boot, with
	// the node settings in node.conf on its SANDCFG partition (BootDisk).
	Boot BootMode
	// Boxes to boot, default san1 and san2.
	Boxes []string
	// MemoryMiB per box (default 1024: the system runs from RAM).
	MemoryMiB int
	// DiskSize of each box's sparse data disk in bytes (default 1 GiB).
	DiskSize int64
	// Token is the API token of every box (default: random).
	Token string
	// BootTimeout bounds the wait for a box's API (default 5 min: TCG on a
	// busy 2-core machine is slow).
	BootTimeout time.Duration
	Logger      *slog.Logger
	// Dom0 adds a Xen dom0 on the front network (see Dom0), with Dom0IQN
	// as its initiator name (default the constant Dom0IQN).
	Dom0    bool
	Dom0IQN string
	// BoxAgent boots the boxes with the lab's hook: the lab agent beside
	// sand, for benchmarks that set something up by hand on a box (see
	// hook.go). The product image never has it.
	BoxAgent bool
}

// ImagePolicy says when Up builds the appliance image.
type ImagePolicy string

const (
	// ImageAuto builds the image when it is missing or when the sand binary
	// built from the repository differs from the one in the image.
	ImageAuto ImagePolicy = "auto"
	// ImageKeep uses the image as it is, building it only when missing.
	ImageKeep ImagePolicy = "keep"
	// ImageRebuild always builds it.
	ImageRebuild ImagePolicy = "rebuild"
)

// BootMode says how the lab boots its boxes.
type BootMode string

const (
	BootKernel BootMode = "kernel"
	BootDisk   BootMode = "disk"
)

// State is what a lab records in DIR/state.json.
type State struct {
	Name     string `json:"name"`
	Dir      string `json:"dir"`
	NS       string `json:"namespace"`
	ClientNS string `json:"client_namespace"`
	Token    string `json:"token"`
	Pair     string `json:"pair,omitempty"`
	// WitnessPID is the pair's `sand witness` in the lab namespace.
	WitnessPID int      `json:"witness_pid,omitempty"`
	SerfKey    string   `json:"serf_key,omitempty"`
	PairKey    string   `json:"pair_key,omitempty"` // the boxes' alone: never the witness's
	Boot       BootMode `json:"boot"`
	Kernel     string   `json:"kernel"`
	Initrd     string   `json:"initrd"`
	// KernelArgs are the image's own (image/cmdline); the lab adds its
	// console and the node settings.
	KernelArgs []string   `json:"kernel_args"`
	DiskImg    string     `json:"disk_image,omitempty"`
	Firmware   string     `json:"firmware,omitempty"`
	Memory     int        `json:"memory_mib"`
	Created    time.Time  `json:"created"`
	Boxes      []BoxState `json:"boxes"`
	// Dom0 is the lab's Xen dom0, if it has one.
	Dom0 *Dom0State `json:"dom0,omitempty"`
	// BoxAgent: the boxes boot with the lab's hook (Initrd is the hooked
	// copy in the lab directory).
	BoxAgent bool `json:"box_agent,omitempty"`
}

// BoxState is one box of the lab.
type BoxState struct {
	Name     string `json:"name"`
	Octet    int    `json:"octet"`
	FrontIP  string `json:"front_ip"`
	ReplIP   string `json:"repl_ip"`
	FrontMAC string `json:"front_mac"`
	ReplMAC  string `json:"repl_mac"`
	FrontTap string `json:"front_tap"`
	ReplTap  string `json:"repl_tap"`
	Disk     string `json:"disk"`
	Console  string `json:"console"`
	Report   string `json:"report"`
	QMP      string `json:"qmp"`
	QEMULog  string `json:"qemu_log"`
	// BootDisk and FirmwareVars: the box's own copy of the disk image and
	// of the UEFI variables, when it boots from the disk image.
	BootDisk     string `json:"boot_disk,omitempty"`
	FirmwareVars string `json:"firmware_vars,omitempty"`
	PID          int    `json:"pid,omitempty"`
	StartTime    uint64 `json:"start_time,omitempty"` // /proc/PID/stat field 22
}

// Lab is a running (or recorded) lab.
type Lab struct {
	State
	log *slog.Logger
	run command.Runner

	mu    sync.Mutex
	boxes map[string]*Box
	dom0  *Dom0
	procs []*Proc
}

const stateFile = "state.json"

func (o *Options) defaults() error {
	if o.Name == "" {
		o.Name = DefaultName
	}
	if !validName(o.Name) {
		return fmt.Errorf("lab name %q: use 1-8 lower-case letters and digits", o.Name)
	}
	if o.Repo == "" {
		repo, err := FindRepo("")
		if err != nil {
			return err
		}
		o.Repo = repo
	}
	if o.Dir == "" {
		o.Dir = filepath.Join(o.Repo, "out", "lab", o.Name)
	}
	if o.ImageDir == "" {
		o.ImageDir = filepath.Join(o.Repo, "out", "image")
	}
	if o.Image == "" {
		o.Image = ImageAuto
	}
	if o.Pair != "" && o.Pair != "drbd" {
		return fmt.Errorf("pair mode %q: use drbd or nothing", o.Pair)
	}
	switch o.Boot {
	case "":
		o.Boot = BootKernel
	case BootKernel, BootDisk:
	default:
		return fmt.Errorf("boot mode %q: use kernel or disk", o.Boot)
	}
	if len(o.Boxes) == 0 {
		o.Boxes = []string{"san1", "san2"}
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 1024
	}
	if o.DiskSize == 0 {
		o.DiskSize = 1 << 30
	}
	if o.Token == "" {
		b := make([]byte, 16)
		rand.Read(b)
		o.Token = hex.EncodeToString(b)
	}
	if o.BootTimeout == 0 {
		o.BootTimeout = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Dom0 && o.Dom0IQN == "" {
		o.Dom0IQN = Dom0IQN
	}
	return nil
}

// validName keeps interface and namespace names short and plain: the lab
// name prefixes nothing longer than "<name>-client".
func validName(s string) bool {
	if len(s) == 0 || len(s) > 8 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// FindRepo finds the sand repository from dir (default: the working
// directory) upwards.
func FindRepo(dir string) (string, error) {
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("find the sand repository: %w", err)
		}
		dir = wd
	}
	for d := dir; ; d = filepath.Dir(d) {
		data, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.HasPrefix(string(data), "module github.com/sand-appliance/sand\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no sand repository (go.mod of github.com/sand-appliance/sand) at or above %s", dir)
		}
	}
}

// Up builds the image if needed, makes the namespaces, bridges and taps,
// boots every box and waits until each box's API answers over the front
// network. On error it takes down whatever it made.
func Up(ctx context.Context, o Options) (l *Lab, err error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	if err := CheckHost(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(o.Dir, stateFile)); err == nil {
		return nil, fmt.Errorf("lab %s already has state in %s: take it down first (sand-lab down --name %s)", o.Name, o.Dir, o.Name)
	}
	if nsExists(o.Name) || nsExists(o.Name+"-client") {
		return nil, fmt.Errorf("network namespace %s or %s-client exists but lab %s has no state in %s: remove it (ip netns del) or pick another lab name", o.Name, o.Name, o.Name, o.Dir)
	}
	img, err := ensureImage(ctx, o)
	if err != nil {
		return nil, err
	}
	var dimg dom0Image
	if o.Dom0 {
		if dimg, err = ensureDom0Image(ctx, o); err != nil {
			return nil, err
		}
	}
	var firmware, diskImg string
	if o.Boot == BootDisk {
		if firmware, err = ensureFirmware(ctx, o.Logger); err != nil {
			return nil, err
		}
		diskImg = filepath.Join(o.ImageDir, "sand-disk.img")
		if !exists(diskImg) {
			return nil, fmt.Errorf("boot from the disk image: %s is missing (mkimage.sh without --no-disk makes it)", diskImg)
		}
	}
	l = &Lab{
		State: State{
			Name: o.Name, Dir: o.Dir, NS: o.Name, ClientNS: o.Name + "-client", Token: o.Token, Pair: o.Pair,
			Boot: o.Boot, Kernel: img.Kernel, Initrd: img.Initrd, KernelArgs: img.Args, DiskImg: diskImg, Firmware: firmware,
			Memory: o.MemoryMiB, Created: time.Now().UTC(),
		},
		log: o.Logger, run: command.Exec{}, boxes: map[string]*Box{},
	}
	if o.Pair != "" {
		key := make([]byte, 32)
		rand.Read(key)
		l.SerfKey = base64.StdEncoding.EncodeToString(key)
		rand.Read(key)
		l.PairKey = base64.StdEncoding.EncodeToString(key)
	}
	for i, name := range o.Boxes {
		if !validName(name) {
			return nil, fmt.Errorf("box name %q: use 1-8 lower-case letters and digits", name)
		}
		octet := 11 + i
		dir := filepath.Join(o.Dir, name)
		l.Boxes = append(l.Boxes, BoxState{
			Name: name, Octet: octet,
			FrontIP: fmt.Sprintf("%s.%d", FrontPrefix, octet), ReplIP: fmt.Sprintf("%s.%d", ReplPrefix, octet),
			FrontMAC: fmt.Sprintf("52:54:00:99:00:%02x", octet), ReplMAC: fmt.Sprintf("52:54:00:98:00:%02x", octet),
			FrontTap: name + "-front", ReplTap: name + "-repl",
			Disk: filepath.Join(dir, "disk.img"), Console: filepath.Join(dir, "console.log"),
			Report: filepath.Join(dir, "report.log"), QMP: filepath.Join(dir, "qmp.sock"),
			QEMULog: filepath.Join(dir, "qemu.log"),
		})
		if o.Boot == BootDisk {
			l.Boxes[i].BootDisk = filepath.Join(dir, "boot.img")
			l.Boxes[i].FirmwareVars = filepath.Join(dir, "vars.fd")
		}
	}
	if o.Dom0 {
		l.State.Dom0 = newDom0State(o.Dir, dimg, o.Dom0IQN)
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create lab directory: %w", err)
	}
	defer func() {
		if err != nil {
			if derr := l.Down(context.Background()); derr != nil {
				l.log.Error("take down the half-made lab", "err", derr)
			}
		}
	}()
	if err := l.save(); err != nil {
		return l, err
	}
	if o.BoxAgent {
		if err := l.setupHook(ctx, o.Repo); err != nil {
			return l, err
		}
	}
	if err := l.makeNetwork(ctx); err != nil {
		return l, err
	}
	if o.Pair != "" {
		if err := l.startWitness(ctx, o); err != nil {
			return l, err
		}
	}
	for i := range l.Boxes {
		if err := l.makeDisk(&l.Boxes[i], o.DiskSize); err != nil {
			return l, err
		}
		if o.Boot == BootDisk {
			if err := l.makeBootDisk(ctx, l.Box(l.Boxes[i].Name)); err != nil {
				return l, err
			}
		}
	}
	// Boot all boxes at once, then wait for all.
	for _, b := range l.Boxes {
		if err := l.Box(b.Name).Start(ctx); err != nil {
			return l, err
		}
	}
	if d := l.Dom0(); d != nil {
		if err := d.Start(ctx); err != nil {
			return l, err
		}
	}
	errs := make([]error, len(l.Boxes)+1)
	var wg sync.WaitGroup
	for i, b := range l.Boxes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = l.Box(b.Name).WaitReady(ctx, o.BootTimeout)
		}()
	}
	if d := l.Dom0(); d != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[len(l.Boxes)] = d.WaitReady(ctx, o.BootTimeout)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return l, err
	}
	return l, nil
}

// Open reads a lab's state from its directory, for another process to
// report on it or take it down.
func Open(dir string, log *slog.Logger) (*Lab, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no lab in %s: %w", dir, err)
		}
		return nil, fmt.Errorf("read lab state: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Lab{log: log, run: command.Exec{}, boxes: map[string]*Box{}}
	if err := json.Unmarshal(data, &l.State); err != nil {
		return nil, fmt.Errorf("parse lab state %s: %w", filepath.Join(dir, stateFile), err)
	}
	return l, nil
}

func (l *Lab) save() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	data, err := json.MarshalIndent(l.State, "", "  ")
	if err != nil {
		return fmt.Errorf("encode lab state: %w", err)
	}
	if err := renameio.WriteFile(filepath.Join(l.Dir, stateFile), append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	return nil
}

// Box returns the named box, or nil.
func (l *Lab) Box(name string) *Box {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.boxes[name]; ok {
		return b
	}
	for i := range l.Boxes {
		if l.Boxes[i].Name == name {
			b := &Box{lab: l, idx: i, Name: name}
			l.boxes[name] = b
			return b
		}
	}
	return nil
}

// Names of the boxes.
func (l *Lab) Names() []string {
	var names []string
	for _, b := range l.Boxes {
		names = append(names, b.Name)
	}
	return names
}

// FrontHost is the lab namespace's own address on the front network.
func FrontHost() netip.Addr { return addr(FrontPrefix, HostOctet) }

// VIP is the floating address reserved for the pair.
func VIP() netip.Addr { return addr(FrontPrefix, VIPOctet) }

// ClientIP is the client namespace's address.
func ClientIP() netip.Addr { return addr(FrontPrefix, ClientOctet) }

func addr(prefix string, octet int) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("%s.%d", prefix, octet))
}

func (l *Lab) makeDisk(b *BoxState, size int64) error {
	if err := os.MkdirAll(filepath.Dir(b.Disk), 0o755); err != nil {
		return fmt.Errorf("create directory of box %s: %w", b.Name, err)
	}
	f, err := os.OpenFile(b.Disk, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create data disk of %s: %w", b.Name, err)
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("size data disk of %s: %w", b.Name, err)
	}
	return nil
}

// witnessName is the lab witness's serf name.
const witnessName = "witness"

// startWitness runs `sand witness` in the lab namespace (10.99.0.1), the
// pair's third vote, as a dom0 would run it.
func (l *Lab) startWitness(ctx context.Context, o Options) error {
	bin := filepath.Join(o.Repo, "out", "build", "lab-sand")
	if !exists(bin) {
		if _, err := buildSand(ctx, o.Repo, bin); err != nil {
			return fmt.Errorf("build sand for the witness: %w", err)
		}
	}
	keyFile := filepath.Join(l.Dir, "serf.key")
	if err := os.WriteFile(keyFile, []byte(l.SerfKey+"\n"), 0o600); err != nil {
		return fmt.Errorf("write the witness's gossip key: %w", err)
	}
	var join []string
	for _, b := range l.Boxes {
		join = append(join, b.FrontIP+":7946")
	}
	p, err := l.Host().Start(bin, "witness", "--name", witnessName, "--bind", FrontHost().String()+":7946",
		"--join", strings.Join(join, ","), "--key-file", keyFile)
	if err != nil {
		return err
	}
	l.WitnessPID = p.cmd.Process.Pid
	l.log.Info("witness running", "addr", FrontHost().String()+":7946", "pid", l.WitnessPID)
	return l.save()
}
