package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// HostTools are the programs the lab needs on the host, with the Debian
// package of each.
var HostTools = map[string]string{
	"qemu-system-x86_64": "qemu-system-x86",
	"ip":                 "iproute2",
	"qemu-io":            "qemu-utils",
	"iscsi-ls":           "libiscsi-bin",
	"iscsi-inq":          "libiscsi-bin",
}

// HostPackages are the Debian packages the lab needs on the host
// (qemu-block-extra gives qemu-io its iscsi:// driver).
const HostPackages = "qemu-system-x86 qemu-utils qemu-block-extra libiscsi-bin iproute2"

// CheckHost says what the host lacks to run a lab: root, the tools, the
// tun device.
func CheckHost() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces, taps)")
	}
	for tool := range HostTools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		missing = append(missing, "/dev/net/tun")
	}
	// qemu-io's iscsi:// driver
	if matches, _ := filepath.Glob("/usr/lib/*/qemu/block-iscsi.so"); len(matches) == 0 {
		missing = append(missing, "block-iscsi.so (qemu-block-extra)")
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("the lab needs %s (apt-get install %s)", strings.Join(missing, ", "), HostPackages)
}

func nsPath(ns string) string { return filepath.Join("/run/netns", ns) }

func nsExists(ns string) bool {
	_, err := os.Stat(nsPath(ns))
	return err == nil
}

func (l *Lab) ip(ctx context.Context, args ...string) error {
	_, err := l.run.Run(ctx, "ip", args...)
	return err
}

// makeNetwork makes the lab namespace with the front and replication
// bridges and a tap per box and network, and the client namespace on the
// front bridge.
func (l *Lab) makeNetwork(ctx context.Context) error {
	ns, cns := l.NS, l.ClientNS
	front := fmt.Sprintf("%s/24", FrontHost())
	client := fmt.Sprintf("%s/24", ClientIP())
	steps := [][]string{
		{"netns", "add", ns},
		{"netns", "add", cns},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", cns, "link", "set", "lo", "up"},
		{"-n", ns, "link", "add", "front", "type", "bridge", "stp_state", "0", "forward_delay", "0"},
		{"-n", ns, "link", "add", "repl", "type", "bridge", "stp_state", "0", "forward_delay", "0"},
		{"-n", ns, "addr", "add", front, "dev", "front"},
		{"-n", ns, "link", "set", "front", "up"},
		{"-n", ns, "link", "set", "repl", "up"},
		{"-n", ns, "link", "add", "client", "type", "veth", "peer", "name", "eth0", "netns", cns},
		{"-n", ns, "link", "set", "client", "master", "front", "up"},
		{"-n", cns, "addr", "add", client, "dev", "eth0"},
		{"-n", cns, "link", "set", "eth0", "up"},
	}
	for _, b := range l.Boxes {
		for _, tb := range [][2]string{{b.FrontTap, "front"}, {b.ReplTap, "repl"}} {
			steps = append(steps,
				[]string{"-n", ns, "tuntap", "add", "dev", tb[0], "mode", "tap"},
				[]string{"-n", ns, "link", "set", tb[0], "master", tb[1], "up"})
		}
	}
	if d := l.State.Dom0; d != nil {
		steps = append(steps,
			[]string{"-n", ns, "tuntap", "add", "dev", d.FrontTap, "mode", "tap"},
			[]string{"-n", ns, "link", "set", d.FrontTap, "master", "front", "up"})
	}
	for _, s := range steps {
		if err := l.ip(ctx, s...); err != nil {
			return fmt.Errorf("make the lab network: %w", err)
		}
	}
	l.log.Info("lab network up", "namespace", ns, "client", cns, "front", FrontPrefix+".0/24", "repl", ReplPrefix+".0/24")
	return nil
}

// Link names one of a box's two networks.
type Link string

const (
	Front Link = "front"
	Repl  Link = "repl"
)

func (b *Box) tap(link Link) (string, error) {
	s := b.state()
	switch link {
	case Front:
		return s.FrontTap, nil
	case Repl:
		return s.ReplTap, nil
	}
	return "", fmt.Errorf("unknown link %q: use front or repl", link)
}

// Cut takes the box's port on the link's bridge down, as a failed switch
// port or pulled cable would: the guest keeps its carrier and addresses
// but nothing passes either way until Restore.
func (b *Box) Cut(ctx context.Context, link Link) error {
	tap, err := b.tap(link)
	if err != nil {
		return err
	}
	if err := b.lab.ip(ctx, "-n", b.lab.NS, "link", "set", "dev", tap, "nomaster"); err != nil {
		return fmt.Errorf("cut %s link of %s: %w", link, b.Name, err)
	}
	b.lab.log.Info("link cut", "box", b.Name, "link", link)
	return nil
}

// Restore puts the box's port back on the link's bridge.
func (b *Box) Restore(ctx context.Context, link Link) error {
	tap, err := b.tap(link)
	if err != nil {
		return err
	}
	if err := b.lab.ip(ctx, "-n", b.lab.NS, "link", "set", "dev", tap, "master", string(link), "up"); err != nil {
		return fmt.Errorf("restore %s link of %s: %w", link, b.Name, err)
	}
	b.lab.log.Info("link restored", "box", b.Name, "link", link)
	return nil
}

// Host is a network namespace of the lab where commands can run.
type Host struct {
	lab  *Lab
	Name string // namespace
}

// Host is the lab namespace: on the front bridge as 10.99.0.1, beside the
// QEMUs.
func (l *Lab) Host() *Host { return &Host{lab: l, Name: l.NS} }

// Client is the client namespace (10.99.0.50 on the front network) where
// initiators run: iscsi-ls, iscsi-inq, qemu-io with iscsi:// URLs.
func (l *Lab) Client() *Host { return &Host{lab: l, Name: l.ClientNS} }

// Run runs a program in the namespace and returns its standard output; the
// error carries the command and its standard error.
func (h *Host) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := h.lab.run.Run(ctx, "ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
	return string(out), err
}

// Proc is a program running in the background in a namespace; the lab ends
// it (by PID) in Close or Down.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	out  *lockedBuffer
}

// Start runs a program in the background in the namespace.
func (h *Host) Start(name string, args ...string) (*Proc, error) {
	return h.StartTee(nil, name, args...)
}

// StartTee is Start that also copies the program's output to w as it
// comes (e.g. to timestamp each line).
func (h *Host) StartTee(w io.Writer, name string, args ...string) (*Proc, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	p := &Proc{Name: h.Name + ":" + name, cmd: cmd, done: make(chan struct{}), out: &lockedBuffer{}}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if w != nil {
		cmd.Stdout = io.MultiWriter(p.out, w)
		cmd.Stderr = cmd.Stdout
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, h.Name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	h.lab.mu.Lock()
	h.lab.procs = append(h.lab.procs, p)
	h.lab.mu.Unlock()
	return p, nil
}

// Output is what the process printed so far.
func (p *Proc) Output() string { return p.out.String() }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits for the process to end.
func (p *Proc) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop kills the process (by its PID) and waits for it.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// HTTPClient returns an HTTP client whose connections are made inside the
// namespace, so the test process reaches the boxes without leaving its
// own network namespace.
func (h *Host) HTTPClient(timeout time.Duration) *http.Client {
	path := nsPath(h.Name)
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, address string) (net.Conn, error) {
			return dialInNetns(ctx, path, network, address)
		},
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// dialInNetns dials from inside the network namespace at nsPath. The
// socket is made by a goroutine on a locked OS thread that joins the
// namespace and never unlocks: the thread ends with the goroutine, so the
// namespace cannot leak to other goroutines. A socket stays in the
// namespace it was made in.
func dialInNetns(ctx context.Context, nsPath, network, address string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(nsPath)
		if err != nil {
			ch <- result{err: fmt.Errorf("open network namespace: %w", err)}
			return
		}
		defer f.Close()
		if sysSetns < 0 {
			ch <- result{err: fmt.Errorf("enter network namespace: setns is not known on %s", runtime.GOARCH)}
			return
		}
		if _, _, e := syscall.RawSyscall(uintptr(setnsTrap()), f.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
			ch <- result{err: fmt.Errorf("enter network namespace %s: %w", nsPath, e)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, address)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// removeNetwork deletes the namespaces; the bridges, taps and veths in them
// go with them once no process holds them.
func (l *Lab) removeNetwork(ctx context.Context) error {
	var errs []error
	for _, ns := range []string{l.ClientNS, l.NS} {
		if ns == "" || !nsExists(ns) {
			continue
		}
		if err := l.ip(ctx, "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// leftovers lists what of the lab still exists: namespaces, processes,
// files.
func (l *Lab) leftovers() []string {
	var left []string
	for _, ns := range []string{l.NS, l.ClientNS} {
		if ns != "" && nsExists(ns) {
			left = append(left, "network namespace "+ns)
		}
	}
	for _, b := range l.Boxes {
		if b.PID != 0 && ourQEMU(l.Name, b) {
			left = append(left, fmt.Sprintf("QEMU of %s (pid %d)", b.Name, b.PID))
		}
	}
	if d := l.State.Dom0; d != nil && d.PID != 0 && ourQEMU(l.Name, d.asBox()) {
		left = append(left, fmt.Sprintf("QEMU of the dom0 (pid %d)", d.PID))
	}
	// Taps and bridges live only in the lab namespace; make sure none
	// escaped to the host's.
	for _, b := range l.Boxes {
		for _, dev := range []string{b.FrontTap, b.ReplTap} {
			if _, err := os.Stat(filepath.Join("/sys/class/net", dev)); err == nil {
				left = append(left, "host interface "+dev)
			}
		}
	}
	if _, err := os.Stat(l.Dir); !errors.Is(err, fs.ErrNotExist) {
		left = append(left, "directory "+l.Dir)
	}
	return left
}

// setnsTrap is sysSetns as a variable, so that the conversion to uintptr
// also compiles where it is -1 (and never reached).
func setnsTrap() int { return sysSetns }
