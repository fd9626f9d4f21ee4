package tgt

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sand-appliance/sand/appliance/command"
)

// DefaultStartTimeout bounds how long Start and Stop wait for tgtd when
// their context has no deadline.
const DefaultStartTimeout = 10 * time.Second

// How the running tgtd was obtained.
type runMode int

const (
	modeNone   runMode = iota
	modeReused         // a tgtd already answered on the control port
	modeChild          // a child process of sand
	modeUnit           // a transient systemd service
)

func (m runMode) String() string {
	return [...]string{"none", "reused", "child process", "systemd unit"}[m]
}

// Daemon runs one tgtd: one control port, one set of portals. Set its
// fields before Start and leave them alone afterwards.
//
// Start first asks the control port: if a tgtd answers there, Daemon
// adopts it instead of starting another, so a restart of sand (even after
// kill -9) keeps the initiators' sessions. That is why tgtd is not tied to
// sand's life: as a child process it runs in its own process group and is
// not killed when sand exits (tgtd survives the loss of its log pipe), and
// as a systemd unit it is a service of its own. Stop ends whichever tgtd
// answers on the port.
type Daemon struct {
	// ControlPort is tgtd's -C: the socket /var/run/tgtd/socket.<N>.
	ControlPort int
	// Portals are the "ip:port" tgtd listens on; Start fails if tgtd does
	// not listen on exactly these.
	Portals []string
	// Wrap prefixes tgtd's command line, e.g. {"ip", "netns", "exec",
	// "NS"} to run it in a network namespace (ip netns exec execs tgtd, so
	// the PID stays tgtd's).
	Wrap []string
	// Binary is tgtd's path; "tgtd" (found in PATH) when empty.
	Binary string
	// Systemd runs tgtd as a transient service when systemd is running;
	// nil connects over D-Bus on demand.
	Systemd Systemd
	// SystemdRunning tells whether systemd is running; nil checks
	// /run/systemd/system.
	SystemdRunning func() bool
	// DieWithParent ties a child tgtd to sand's life (the kernel kills it
	// when sand dies, even by SIGKILL). A box of a pair needs that: a
	// primary whose sand died must stop serving before the peer takes the
	// VIP, or two targets would serve one disk. A standalone box leaves it
	// off so initiators ride through a restart of sand.
	DieWithParent bool

	runner command.Runner
	base   *slog.Logger // the constructor's logger, for the Driver
	log    *slog.Logger

	mu    sync.Mutex
	mode  runMode
	child *child
	sd    Systemd
	sdOwn *DBusSystemd // a connection Start opened, closed by Stop
}

// NewDaemon returns a Daemon for tgtd on controlPort serving portals; it
// runs tgtadm through runner.
func NewDaemon(runner command.Runner, controlPort int, portals []string, logger *slog.Logger) *Daemon {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Daemon{
		ControlPort: controlPort,
		Portals:     portals,
		runner:      runner,
		base:        logger,
		log:         logger.With("control_port", controlPort),
	}
}

// driver addresses the tgtd on the control port.
func (d *Daemon) driver() *Driver { return New(d.runner, d.ControlPort, d.base) }

// UnitName is the transient systemd service for tgtd on controlPort.
func UnitName(controlPort int) string {
	return "sand-tgtd-" + strconv.Itoa(controlPort) + ".service"
}

// Argv is tgtd's command line, Wrap included.
func (d *Daemon) Argv() []string {
	bin := d.Binary
	if bin == "" {
		bin = "tgtd"
	}
	var portals []string
	for _, p := range d.Portals {
		ap, _ := parsePortal(p)
		portals = append(portals, "portal="+ap.String())
	}
	argv := slices.Clone(d.Wrap)
	return append(argv, bin, "-f", "-C", strconv.Itoa(d.ControlPort), "--iscsi", strings.Join(portals, ","))
}

// PID is the process id of the tgtd this Daemon started as a child, or 0.
func (d *Daemon) PID() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.child == nil {
		return 0
	}
	return d.child.cmd.Process.Pid
}

func (d *Daemon) wantPortals() ([]netip.AddrPort, error) {
	if d.ControlPort <= 0 {
		return nil, fmt.Errorf("tgtd control port %d: must be positive", d.ControlPort)
	}
	if len(d.Portals) == 0 {
		return nil, fmt.Errorf("tgtd on control port %d: no portal given (tgtd would listen on every address)", d.ControlPort)
	}
	var want []netip.AddrPort
	for _, p := range d.Portals {
		ap, err := parsePortal(p)
		if err != nil {
			return nil, fmt.Errorf("tgtd on control port %d: %w", d.ControlPort, err)
		}
		if !slices.Contains(want, ap) {
			want = append(want, ap)
		}
	}
	return want, nil
}

// answers reports whether a tgtd answers on the control port.
func (d *Daemon) answers(ctx context.Context) bool {
	_, err := d.runner.Run(ctx, "tgtadm", "-C", strconv.Itoa(d.ControlPort), "--op", "show", "--mode", "sys")
	return err == nil
}

// Start makes a tgtd run on the control port and listen on exactly the
// portals: it adopts one that already answers there (and corrects its
// portals), or starts one (a transient systemd service when systemd runs,
// else a child process) and waits until it answers.
func (d *Daemon) Start(ctx context.Context) error {
	want, err := d.wantPortals()
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()

	if d.answers(ctx) {
		if d.mode == modeNone {
			d.mode = modeReused
			d.log.Info("tgtd already answers on the control port: using it, its sessions stay")
		}
		if err := d.ensurePortals(ctx, want); err != nil {
			return fmt.Errorf("adopt the tgtd on control port %d: %w", d.ControlPort, err)
		}
		if err := d.checkPortals(ctx, want); err != nil {
			return fmt.Errorf("adopt the tgtd on control port %d: %w", d.ControlPort, err)
		}
		return nil
	}
	if d.child != nil || d.mode == modeUnit {
		d.log.Warn("the tgtd this daemon started no longer answers: starting another", "mode", d.mode)
		d.forget()
	}

	argv := d.Argv()
	useSystemd := systemdRunning
	if d.SystemdRunning != nil {
		useSystemd = d.SystemdRunning
	}
	started := time.Now()
	if useSystemd() {
		if err := d.startUnit(ctx, argv); err != nil {
			return err
		}
	} else {
		if err := d.startChild(argv); err != nil {
			return err
		}
	}
	err = waitFor(ctx, fmt.Sprintf("tgtd (%s) to answer on control port %d", d.mode, d.ControlPort), func() (bool, error) {
		if d.child != nil && d.child.exited() {
			return false, fmt.Errorf("tgtd exited: %v; its last output: %s", d.child.err, d.child.out.tail())
		}
		if d.answers(ctx) {
			return true, nil
		}
		if d.mode == modeUnit {
			unit := UnitName(d.ControlPort)
			state, err := d.sd.ActiveState(ctx, unit)
			if err != nil {
				return false, err
			}
			if state == "inactive" || state == "failed" {
				return false, fmt.Errorf("systemd service %s is %s (see journalctl -u %s)", unit, state, unit)
			}
		}
		return false, nil
	})
	if err == nil {
		err = d.checkPortals(ctx, want)
	}
	if err != nil {
		// Do not leave a tgtd we started behind, e.g. one that fell back
		// to every address.
		stopCtx, stopCancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultStartTimeout)
		defer stopCancel()
		if serr := d.stop(stopCtx); serr != nil {
			d.log.Error("stop the tgtd that failed to start", "err", serr)
		}
		return fmt.Errorf("start tgtd: %w", err)
	}
	d.log.Info("tgtd started", "mode", d.mode, "pid", d.pidLocked(), "portals", d.Portals, "took", time.Since(started).Round(time.Millisecond))
	return nil
}

func (d *Daemon) pidLocked() int {
	if d.child == nil {
		return 0
	}
	return d.child.cmd.Process.Pid
}

func (d *Daemon) systemd(ctx context.Context) (Systemd, error) {
	if d.sd != nil {
		return d.sd, nil
	}
	if d.Systemd != nil {
		d.sd = d.Systemd
		return d.sd, nil
	}
	conn, err := ConnectSystemd(ctx)
	if err != nil {
		return nil, err
	}
	d.sd, d.sdOwn = conn, conn
	return conn, nil
}

func (d *Daemon) startUnit(ctx context.Context, argv []string) error {
	sd, err := d.systemd(ctx)
	if err != nil {
		return fmt.Errorf("start tgtd as a systemd service: %w", err)
	}
	if !filepath.IsAbs(argv[0]) {
		p, err := exec.LookPath(argv[0])
		if err != nil {
			return fmt.Errorf("start tgtd as a systemd service: find %s: %w", argv[0], err)
		}
		argv = append([]string{p}, argv[1:]...)
	}
	unit := UnitName(d.ControlPort)
	// A unit of the same name that failed earlier would block the name.
	if err := sd.ResetFailed(ctx, unit); err != nil {
		return fmt.Errorf("start tgtd as a systemd service: %w", err)
	}
	desc := fmt.Sprintf("sand iSCSI target (tgtd, control port %d)", d.ControlPort)
	if err := sd.StartTransientService(ctx, unit, desc, argv); err != nil {
		return fmt.Errorf("start tgtd as a systemd service: %w", err)
	}
	d.mode = modeUnit
	d.log.Info("started tgtd as a transient systemd service", "unit", unit, "argv", argv)
	return nil
}

func (d *Daemon) startChild(argv []string) error {
	// Not tied to the caller's context: tgtd outlives Start. Only Stop's
	// fallback (cancel) kills it.
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	// Its own process group: a ^C or a signal to sand's group does not
	// reach tgtd.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out := &lineLog{log: d.log.With("tgtd", true)}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.WaitDelay = 2 * time.Second
	if d.DieWithParent {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := startOnLockedThread(cmd, d.DieWithParent); err != nil {
		cancel()
		return fmt.Errorf("start tgtd (%s): %w", strings.Join(argv, " "), err)
	}
	c := &child{cmd: cmd, cancel: cancel, out: out, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
		d.log.Info("tgtd exited", "pid", cmd.Process.Pid, "status", fmt.Sprint(c.err))
	}()
	d.child = c
	d.mode = modeChild
	d.log.Info("started tgtd as a child process", "pid", cmd.Process.Pid, "argv", argv)
	return nil
}

// ensurePortals adds and removes portals of a running tgtd to match want.
// Removals go first: a wildcard portal would keep a specific one from
// binding.
func (d *Daemon) ensurePortals(ctx context.Context, want []netip.AddrPort) error {
	have, err := d.driver().readPortals(ctx)
	if err != nil {
		return err
	}
	port := strconv.Itoa(d.ControlPort)
	for _, p := range have {
		if !slices.Contains(want, p.Addr) {
			if _, err := d.runner.Run(ctx, "tgtadm", "-C", port, "--lld", "iscsi", "--op", "delete", "--mode", "portal", "--param", "portal="+p.Addr.String()); err != nil {
				return fmt.Errorf("remove tgt portal %s: %w", p.Addr, err)
			}
		}
	}
	for _, ap := range want {
		if !slices.ContainsFunc(have, func(p Portal) bool { return p.Addr == ap }) {
			if _, err := d.runner.Run(ctx, "tgtadm", "-C", port, "--lld", "iscsi", "--op", "new", "--mode", "portal", "--param", "portal="+ap.String()); err != nil {
				return fmt.Errorf("add tgt portal %s: %w", ap, err)
			}
		}
	}
	return nil
}

// checkPortals fails unless tgtd listens on exactly want. tgtd that cannot
// bind a portal (its address is not on the box, or not in tgtd's network
// namespace) keeps running on 0.0.0.0 and [::] instead, without failing.
func (d *Daemon) checkPortals(ctx context.Context, want []netip.AddrPort) error {
	have, err := d.driver().readPortals(ctx)
	if err != nil {
		return err
	}
	var got []netip.AddrPort
	for _, p := range have {
		got = append(got, p.Addr)
	}
	if !samePortals(got, want) {
		return fmt.Errorf("tgtd on control port %d listens on %v, not on %v as asked: is every portal address on this box (in tgtd's network namespace)?", d.ControlPort, got, want)
	}
	return nil
}

func samePortals(a, b []netip.AddrPort) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	cmpAP := func(x, y netip.AddrPort) int { return x.Compare(y) }
	slices.SortFunc(a, cmpAP)
	slices.SortFunc(b, cmpAP)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// Stop removes every target (dropping sessions) and account, asks tgtd to
// exit (--op delete --mode system) and waits until it has. A child tgtd
// that does not exit in time is killed. Stop is idempotent: with no tgtd
// answering it only forgets what it started.
func (d *Daemon) Stop(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	return d.stop(ctx)
}

func (d *Daemon) stop(ctx context.Context) error {
	defer func() {
		if d.sdOwn != nil {
			d.sdOwn.Close()
			d.sd, d.sdOwn = nil, nil
		}
	}()
	if !d.answers(ctx) {
		if d.child != nil {
			// Started but never answered, or already going away.
			d.killChild(ctx)
		}
		d.forget()
		return nil
	}
	started := time.Now()
	err := d.driver().Stop(ctx)
	if err == nil {
		_, err = d.runner.Run(ctx, "tgtadm", "-C", strconv.Itoa(d.ControlPort), "--op", "delete", "--mode", "system")
		if err != nil {
			err = fmt.Errorf("ask tgtd to exit: %w", err)
		}
	}
	if err == nil {
		err = d.waitExit(ctx)
	}
	if err != nil && d.child != nil {
		d.log.Warn("tgtd did not stop cleanly: killing it", "pid", d.child.cmd.Process.Pid, "err", err)
		d.killChild(ctx)
		d.forget()
		return nil
	}
	if err != nil {
		return fmt.Errorf("stop tgtd on control port %d (%s): %w", d.ControlPort, d.mode, err)
	}
	d.log.Info("tgtd stopped", "mode", d.mode, "took", time.Since(started).Round(time.Millisecond))
	d.forget()
	return nil
}

// waitExit waits until the tgtd asked to exit has gone.
func (d *Daemon) waitExit(ctx context.Context) error {
	switch d.mode {
	case modeChild:
		select {
		case <-d.child.done:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("wait for tgtd (pid %d) to exit: %w", d.child.cmd.Process.Pid, ctx.Err())
		}
	case modeUnit:
		unit := UnitName(d.ControlPort)
		return waitFor(ctx, "systemd service "+unit+" to end", func() (bool, error) {
			state, err := d.sd.ActiveState(ctx, unit)
			if err != nil {
				return false, err
			}
			return state == "inactive" || state == "failed", nil
		})
	default:
		// Adopted: no PID to wait on; it is gone when the control port is.
		return waitFor(ctx, fmt.Sprintf("tgtd on control port %d to stop answering", d.ControlPort), func() (bool, error) {
			return !d.answers(ctx), nil
		})
	}
}

// killChild sends SIGKILL and waits for the child to be reaped, even when
// ctx has run out (that is usually why it is killed).
func (d *Daemon) killChild(ctx context.Context) {
	c := d.child
	c.cancel() // SIGKILL through exec.CommandContext
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	select {
	case <-c.done:
	case <-ctx.Done():
		d.log.Error("tgtd did not exit after SIGKILL", "pid", c.cmd.Process.Pid)
	}
}

func (d *Daemon) forget() {
	if d.child != nil {
		d.child.cancel()
	}
	d.child = nil
	d.mode = modeNone
}

// child is a tgtd started by this Daemon.
type child struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	out    *lineLog
	done   chan struct{}
	err    error // cmd.Wait's result, once done is closed
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// lineLog sends tgtd's output to the logger line by line and keeps the
// last lines for error messages.
type lineLog struct {
	log  *slog.Logger
	mu   sync.Mutex
	buf  []byte
	last []string
}

// harmless are start-up lines of tgtd that say nothing about sand's use of
// it (no RDMA, no permission to tune limits, in a container or netns).
var harmless = []string{
	"Failed to initialize RDMA",
	"can't adjust oom-killer's pardon",
	"can't adjust nr_open",
	"use timer_fd based scheduler",
	"use signalfd notification",
	"device_mgmt(", // echoes every LUN request
	"bs_thread_open(",
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSpace(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
		if line == "" {
			continue
		}
		l.last = append(l.last, line)
		if len(l.last) > 10 {
			l.last = l.last[1:]
		}
		switch {
		case slices.ContainsFunc(harmless, func(h string) bool { return strings.Contains(line, h) }):
			l.log.Debug(line)
		case strings.Contains(line, "fail") || strings.Contains(line, "unable") || strings.Contains(line, "can't") || strings.Contains(line, "another tgtd"):
			l.log.Warn(line)
		default:
			l.log.Info(line)
		}
	}
	return len(p), nil
}

func (l *lineLog) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.last) == 0 {
		return "(none)"
	}
	return strings.Join(l.last, " | ")
}

// withDefaultTimeout bounds ctx by DefaultStartTimeout if it has no
// deadline of its own.
func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, DefaultStartTimeout)
}

// waitFor polls cond every 20 ms until it is true, returns an error, or
// ctx ends; the timeout error says what was awaited and the last error.
func waitFor(ctx context.Context, what string, cond func() (bool, error)) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("wait for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: gave up after %s: %w", what, time.Since(start).Round(time.Millisecond), ctx.Err())
		case <-tick.C:
		}
	}
}

// startOnLockedThread starts cmd. With pdeath, the parent-death signal
// fires when the forking OS thread exits, not the process: the fork runs on
// a thread locked for the rest of sand's life, so the Go runtime never
// retires it and tgtd dies exactly when sand does.
func startOnLockedThread(cmd *exec.Cmd, pdeath bool) error {
	if !pdeath {
		return cmd.Start()
	}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		started <- cmd.Start()
		select {} // keep the thread (and its lock) until sand exits
	}()
	return <-started
}
