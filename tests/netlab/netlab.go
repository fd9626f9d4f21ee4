// Package netlab builds throwaway network labs for sand's integration tests:
// a bridge in a namespace of its own and hosts (namespaces) wired to it by
// veth pairs. Nothing in a lab has an uplink, so test traffic can reach
// only the lab's own hosts. Everything a lab makes is removed by Close,
// which tests register with t.Cleanup.
package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Lab is one private L2 network.
type Lab struct {
	t      testing.TB
	prefix string
	subnet string // e.g. "10.210.0"
	bridge string // namespace holding the bridge
	hosts  []*Host
	mu     sync.Mutex
	procs  []*Proc
}

// Host is one namespace on the lab's bridge.
type Host struct {
	lab  *Lab
	Name string // short name, e.g. box1
	NS   string // namespace name
	IP   string
	veth string // bridge-side end of the host's veth
}

// New creates a lab on subnet (three octets, e.g. "10.210.0"). The subnet is
// private to the lab: no route leads out of it.
func New(t testing.TB, subnet string) *Lab {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	l := &Lab{t: t, prefix: "sand" + hex.EncodeToString(b), subnet: subnet}
	l.bridge = l.prefix + "-br"
	t.Cleanup(l.Close)
	l.ip("netns", "add", l.bridge)
	l.ip("-n", l.bridge, "link", "set", "lo", "up")
	l.ip("-n", l.bridge, "link", "add", "br0", "type", "bridge")
	l.ip("-n", l.bridge, "link", "set", "br0", "up")
	return l
}

// AddHost adds a namespace with address subnet.octet/24 on eth0.
func (l *Lab) AddHost(name string, octet int) *Host {
	l.t.Helper()
	i := len(l.hosts)
	h := &Host{lab: l, Name: name, NS: l.prefix + "-" + name, IP: fmt.Sprintf("%s.%d", l.subnet, octet)}
	h.veth = fmt.Sprintf("%sp%d", l.prefix[4:], i)
	inner := fmt.Sprintf("%sh%d", l.prefix[4:], i)
	l.ip("netns", "add", h.NS)
	l.hosts = append(l.hosts, h)
	l.ip("-n", h.NS, "link", "set", "lo", "up")
	l.ip("link", "add", inner, "type", "veth", "peer", "name", h.veth)
	l.ip("link", "set", inner, "netns", h.NS)
	l.ip("link", "set", h.veth, "netns", l.bridge)
	l.ip("-n", l.bridge, "link", "set", h.veth, "master", "br0")
	l.ip("-n", l.bridge, "link", "set", h.veth, "up")
	l.ip("-n", h.NS, "link", "set", inner, "name", "eth0")
	l.ip("-n", h.NS, "addr", "add", h.IP+"/24", "dev", "eth0")
	l.ip("-n", h.NS, "link", "set", "eth0", "up")
	return h
}

func (l *Lab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Cut takes the host's link down at the bridge; Restore brings it back.
func (h *Host) Cut()     { h.lab.ip("-n", h.lab.bridge, "link", "set", h.veth, "down") }
func (h *Host) Restore() { h.lab.ip("-n", h.lab.bridge, "link", "set", h.veth, "up") }

// Run runs a command in the host and returns its combined output.
func (h *Host) Run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), h.Name, err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// MustRun is Run that fails the test on error.
func (h *Host) MustRun(ctx context.Context, name string, args ...string) string {
	h.lab.t.Helper()
	out, err := h.Run(ctx, name, args...)
	if err != nil {
		h.lab.t.Fatal(err)
	}
	return out
}

// Proc is a background process in a host, ended by the lab on Close.
type Proc struct {
	Name   string
	cmd    *exec.Cmd
	done   chan struct{}
	output *syncBuffer
	err    error
}

// Start runs a command in the background in the host.
func (h *Host) Start(name string, args ...string) *Proc {
	h.lab.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	p := &Proc{Name: h.Name + ":" + name, cmd: cmd, done: make(chan struct{}), output: &syncBuffer{}}
	cmd.Stdout, cmd.Stderr = p.output, p.output
	if err := cmd.Start(); err != nil {
		h.lab.t.Fatalf("start %s in %s: %v", name, h.Name, err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	h.lab.mu.Lock()
	h.lab.procs = append(h.lab.procs, p)
	h.lab.mu.Unlock()
	return p
}

// PID of the process (ip netns exec execs the command, so it is the
// command's own PID).
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Output returns what the process printed so far.
func (p *Proc) Output() string { return p.output.String() }

// Signal sends sig and, for SIGKILL and SIGTERM, waits up to 10 s for exit.
func (p *Proc) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s did not exit within 10s of %v", p.Name, sig)
	}
}

// Err is the process's exit error once it has ended (nil for exit 0).
func (p *Proc) Err() error {
	<-p.done
	return p.err
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Close ends the lab's processes by PID and deletes its namespaces.
func (l *Lab) Close() {
	l.mu.Lock()
	procs := l.procs
	l.procs = nil
	l.mu.Unlock()
	for _, p := range procs {
		if err := p.Signal(syscall.SIGKILL); err != nil {
			l.t.Logf("end %s: %v", p.Name, err)
		}
	}
	for _, h := range l.hosts {
		exec.Command("ip", "netns", "del", h.NS).Run()
	}
	l.hosts = nil
	if l.bridge != "" {
		exec.Command("ip", "netns", "del", l.bridge).Run()
		l.bridge = ""
	}
}

// WaitFor polls cond until it returns nil or the timeout passes, then fails
// the test saying what it waited for and the last error.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s: %v", timeout, what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
