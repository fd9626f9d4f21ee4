//go:build netns

package tgt

// The netns tier for the tgt driver: a real tgtd in a network namespace
// made for the test, real initiators (libiscsi tools, qemu-io) in the same
// namespace. Needs root, iproute2, tgt, libiscsi-bin and qemu-utils (with
// qemu-block-extra for iscsi:// URLs). Run with
//
//	go test -tags netns ./iscsi/tgt/ -v
//
// All traffic stays on the namespace's loopback and its veth address.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sand-appliance/sand/appliance/command"
	"github.com/sand-appliance/sand/iscsi"
)

// skipOrFail skips the test, or fails it under CI=true, where a missing
// prerequisite is a broken test machine.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s", msg)
	}
	t.Skip(msg)
}

// recorder runs commands for real and remembers their command lines.
type recorder struct {
	command.Exec
	mu   sync.Mutex
	cmds []string
}

func (r *recorder) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	r.mu.Lock()
	r.cmds = append(r.cmds, strings.Join(append([]string{name}, args...), " "))
	r.mu.Unlock()
	return r.Exec.Run(ctx, name, args...)
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.cmds
	r.cmds = nil
	return c
}

// tlog sends slog output to t.Log.
type tlog struct{ t *testing.T }

func (w tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type netns struct {
	t    *testing.T
	name string
}

// run runs argv inside the namespace; output is stdout and stderr.
func (n netns) run(ctx context.Context, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name}, argv...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, out)
	}
	return string(out), nil
}

func (n netns) must(ctx context.Context, argv ...string) string {
	n.t.Helper()
	out, err := n.run(ctx, argv...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

func mustRun(t *testing.T, argv ...string) {
	t.Helper()
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(argv, " "), err, out)
	}
}

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// waitUntil polls cond with a deadline and says what it waited for.
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	if err := waitFor(ctx, what, func() (bool, error) { return cond(), nil }); err != nil {
		t.Fatal(err)
	}
}

func TestNetnsTgtd(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "the netns test needs root (network namespaces, tgtd)")
	}
	var missing []string
	for _, tool := range []string{"ip", "tgtd", "tgtadm", "iscsi-ls", "iscsi-inq", "iscsi-readcapacity16", "qemu-io"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		skipOrFail(t, "the netns test needs %s (apt-get install iproute2 tgt libiscsi-bin qemu-utils qemu-block-extra)", strings.Join(missing, ", "))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(tlog{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))

	// The namespace: lo, and a veth pair with the portal address on one
	// end (no dummy module on these machines).
	ns := netns{t: t, name: "sand-tgt-" + randomHex(t, 4)}
	mustRun(t, "ip", "netns", "add", ns.name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns.name).CombinedOutput(); err != nil {
			t.Errorf("delete namespace %s: %v: %s", ns.name, err, out)
		}
		if _, err := os.Stat(filepath.Join("/run/netns", ns.name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s still exists", ns.name)
		}
	})
	const addr = "10.231.0.1"
	mustRun(t, "ip", "-n", ns.name, "link", "set", "lo", "up")
	mustRun(t, "ip", "-n", ns.name, "link", "add", "sand0", "type", "veth", "peer", "name", "sand1")
	mustRun(t, "ip", "-n", ns.name, "addr", "add", addr+"/24", "dev", "sand0")
	mustRun(t, "ip", "-n", ns.name, "link", "set", "sand0", "up")
	mustRun(t, "ip", "-n", ns.name, "link", "set", "sand1", "up")

	// A control port nobody uses.
	rec := &recorder{}
	var port int
	for {
		b := make([]byte, 2)
		rand.Read(b)
		port = 20000 + int(binary.BigEndian.Uint16(b))%10000
		if _, err := os.Stat(fmt.Sprintf("/var/run/tgtd/socket.%d.lock", port)); errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	t.Cleanup(func() {
		// tgtd leaves its socket and lock file behind; they are ours.
		os.Remove(fmt.Sprintf("/var/run/tgtd/socket.%d", port))
		os.Remove(fmt.Sprintf("/var/run/tgtd/socket.%d.lock", port))
	})

	// A portal address that is not in the namespace: tgtd would fall back
	// to every address; Start must refuse and leave nothing running.
	bad := NewDaemon(rec, port+1, []string{"10.231.0.99:3260"}, logger)
	bad.Wrap = []string{"ip", "netns", "exec", ns.name}
	bad.SystemdRunning = func() bool { return false }
	t.Cleanup(func() {
		os.Remove(fmt.Sprintf("/var/run/tgtd/socket.%d", port+1))
		os.Remove(fmt.Sprintf("/var/run/tgtd/socket.%d.lock", port+1))
	})
	if err := bad.Start(ctx); err == nil || !strings.Contains(err.Error(), "not on [10.231.0.99:3260] as asked") {
		bad.Stop(ctx)
		t.Fatalf("Start with a portal address not in the namespace: %v, want a portal mismatch", err)
	} else {
		t.Logf("as wanted, Start refused: %v", err)
	}
	if bad.PID() != 0 || bad.answers(ctx) {
		t.Fatalf("the tgtd that listened everywhere is still running")
	}

	d := NewDaemon(rec, port, []string{addr + ":3260"}, logger)
	d.Wrap = []string{"ip", "netns", "exec", ns.name}
	d.SystemdRunning = func() bool { return false } // the child path, so the test owns the PID
	start := time.Now()
	if err := d.Start(ctx); err != nil {
		t.Fatalf("start tgtd: %v", err)
	}
	startTook := time.Since(start)
	pid := d.PID()
	t.Cleanup(func() {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("tgtd pid %d still running at cleanup: killing it", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	t.Cleanup(func() { d.Stop(context.Background()) })
	t.Logf("tgtd pid %d started in %s", pid, startTook)

	// tgtd runs in the test's namespace.
	var nsStat, pidStat syscall.Stat_t
	if err := syscall.Stat(filepath.Join("/run/netns", ns.name), &nsStat); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &pidStat); err != nil {
		t.Fatal(err)
	}
	if nsStat.Ino != pidStat.Ino {
		t.Fatalf("tgtd pid %d is not in namespace %s", pid, ns.name)
	}

	// Two file-backed LUNs in two targets.
	dir := t.TempDir()
	pathA, pathB := filepath.Join(dir, "a.img"), filepath.Join(dir, "b.img")
	for path, size := range map[string]int64{pathA: 64 * MiB, pathB: 32 * MiB} {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(size); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	const (
		tgtA    = "iqn.2026-11.org.sand-appliance:netns.a"
		tgtB    = "iqn.2026-11.org.sand-appliance:netns.b"
		dom0    = "iqn.2026-11.org.example:dom0-netns"
		qemu    = "iqn.2008-11.org.linux-kvm" // qemu-io's initiator name
		foreign = "iqn.2026-11.org.example:not-allowed"
		serialA = "5a1d2e3f4b5c6d7e" // no "00" byte, so all of the NAA shows in iscsi-inq
		serialB = "5b1d2e3f4b5c6d7e"
	)
	tg := iscsi.TargetGroup{
		Portals: []string{addr + ":3260"},
		Targets: []iscsi.Target{
			{IQN: tgtA, Initiators: []string{dom0, qemu}, LUNs: []iscsi.LogicalUnit{{Number: 1, Path: pathA, Size: 64 * MiB, Serial: serialA}}},
			{IQN: tgtB, Initiators: []string{dom0, qemu}, LUNs: []iscsi.LogicalUnit{{Number: 1, Path: pathB, Size: 32 * MiB, Serial: serialB}}},
		},
	}
	drv := New(rec, port, logger)
	rec.take()
	start = time.Now()
	if err := drv.Apply(ctx, tg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	t.Logf("first Apply: %d tgtadm commands in %s", len(rec.take()), time.Since(start))

	// Idempotent: only the three reads.
	if err := drv.Apply(ctx, tg); err != nil {
		t.Fatalf("second apply: %v", err)
	}
	if got := rec.take(); len(got) != 3 {
		t.Errorf("second Apply ran %d commands, want the 3 reads: %q", len(got), got)
	}

	url := func(iqn string) string { return "iscsi://" + addr + "/" + iqn + "/1" }
	ls := ns.must(ctx, "iscsi-ls", "-s", "-i", dom0, "iscsi://"+addr+"/")
	for _, want := range []string{"Target:" + tgtA, "Target:" + tgtB, "Lun:1"} {
		if !strings.Contains(ls, want) {
			t.Errorf("iscsi-ls does not show %q:\n%s", want, ls)
		}
	}

	// Identity: serial (VPD 0x80) and NAA (VPD 0x83).
	if out := ns.must(ctx, "iscsi-inq", "-i", dom0, "-e", "1", "-c", "128", url(tgtA)); !strings.Contains(out, serialA+"]") {
		t.Errorf("VPD 0x80 of %s does not hold serial %s:\n%s", tgtA, serialA, out)
	}
	naaA := iscsi.NAAFromSerial(serialA)
	vpd83 := ns.must(ctx, "iscsi-inq", "-i", dom0, "-e", "1", "-c", "131", url(tgtA))
	// iscsi-inq prints a binary designator as a C string: the NAA's bytes
	// up to the first zero byte.
	naaBytes, _ := hex.DecodeString(naaA)
	if i := bytes.IndexByte(naaBytes, 0); i >= 0 {
		naaBytes = naaBytes[:i]
	}
	for _, want := range []string{"Designator Type:(3) NAA\nDesignator:[" + string(naaBytes) + "]", "Designator Type:(1) T10_VENDORT_ID\nDesignator:[" + naaA + "]"} {
		if !strings.Contains(vpd83, want) {
			t.Errorf("VPD 0x83 of %s lacks %q:\n%q", tgtA, want, vpd83)
		}
	}

	// Data: a pattern written over iSCSI lands in the file, reads back.
	ns.must(ctx, "qemu-io", "-f", "raw", "-c", "write -P 0xa5 0 1M", url(tgtA))
	raw, err := os.ReadFile(pathA)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw[:MiB], bytes.Repeat([]byte{0xa5}, MiB)) {
		t.Error("the backing file of LUN A does not hold the pattern written over iSCSI")
	}
	ns.must(ctx, "qemu-io", "-f", "raw", "-r", "-c", "read -P 0xa5 0 1M", url(tgtA))

	// Removing A's LUN while a session to B is in use: B's session
	// carries on (qemu-io writes, sleeps through the change, reads back).
	sess := exec.CommandContext(ctx, "ip", "netns", "exec", ns.name, "qemu-io", "-f", "raw",
		"-c", "write -P 0x5a 0 64k", "-c", "sleep 2500", "-c", "read -P 0x5a 0 64k", url(tgtB))
	var sessOut bytes.Buffer
	sess.Stdout, sess.Stderr = &sessOut, &sessOut
	if err := sess.Start(); err != nil {
		t.Fatal(err)
	}
	sessDone := make(chan error, 1)
	go func() { sessDone <- sess.Wait() }()
	waitUntil(t, ctx, "qemu-io's session to "+tgtB, func() bool {
		ss, err := drv.Sessions(ctx)
		return err == nil && slices.ContainsFunc(ss, func(s iscsi.Session) bool {
			return s.Target == tgtB && s.Initiator == qemu && s.Address == addr
		})
	})
	removed := tg
	removed.Targets = slices.Clone(tg.Targets)
	removed.Targets[0].LUNs = nil
	rec.take()
	start = time.Now()
	if err := drv.Apply(ctx, removed); err != nil {
		t.Fatalf("apply without A's LUN: %v", err)
	}
	t.Logf("removing one LUN: %q in %s", rec.take()[3:], time.Since(start))
	select {
	case err := <-sessDone:
		t.Fatalf("qemu-io on %s ended before the LUN removal was done: %v\n%s", tgtB, err, sessOut.String())
	default:
	}
	if err := <-sessDone; err != nil || !strings.Contains(sessOut.String(), "read 65536/65536 bytes") {
		t.Errorf("the session to %s broke while A's LUN was removed: %v\n%s", tgtB, err, sessOut.String())
	}
	if out := ns.must(ctx, "iscsi-ls", "-s", "-i", dom0, "iscsi://"+addr+"/"); strings.Count(out, "Lun:1") != 1 {
		t.Errorf("after removing A's LUN, iscsi-ls should show one data LUN:\n%s", out)
	}

	// Grow B's backing file: tgt sees it only once the LUN is re-added.
	capacity := func() int64 {
		out := ns.must(ctx, "iscsi-readcapacity16", "-s", "-i", dom0, url(tgtB))
		n, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
		if err != nil {
			t.Fatalf("iscsi-readcapacity16 -s: %q: %v", out, err)
		}
		return n
	}
	if got := capacity(); got != 32*MiB {
		t.Errorf("capacity of B = %d, want %d", got, 32*MiB)
	}
	if err := os.Truncate(pathB, 96*MiB); err != nil {
		t.Fatal(err)
	}
	grown := removed
	grown.Targets = slices.Clone(removed.Targets)
	grown.Targets[1].LUNs = []iscsi.LogicalUnit{{Number: 1, Path: pathB, Size: 96 * MiB, Serial: serialB}}
	start = time.Now()
	if err := drv.Apply(ctx, grown); err != nil {
		t.Fatalf("apply grown B: %v", err)
	}
	t.Logf("growing one LUN: %q in %s", rec.take()[3:], time.Since(start))
	if got := capacity(); got != 96*MiB {
		t.Errorf("capacity of B after the grow = %d, want %d", got, 96*MiB)
	}
	ns.must(ctx, "qemu-io", "-f", "raw", "-r", "-c", "read -P 0x5a 0 64k", url(tgtB))
	if out := ns.must(ctx, "iscsi-inq", "-i", dom0, "-e", "1", "-c", "128", url(tgtB)); !strings.Contains(out, serialB+"]") {
		t.Errorf("VPD 0x80 of %s after the re-add does not hold serial %s:\n%s", tgtB, serialB, out)
	}

	// ACL: an initiator not in it sees no target and cannot log in.
	if out := ns.must(ctx, "iscsi-ls", "-s", "-i", foreign, "iscsi://"+addr+"/"); strings.Contains(out, tgtA) || strings.Contains(out, tgtB) {
		t.Errorf("initiator %s, not in any ACL, discovers targets:\n%s", foreign, out)
	}
	if out, err := ns.run(ctx, "iscsi-inq", "-i", foreign, url(tgtB)); err == nil {
		t.Errorf("initiator %s, not in the ACL, logged in to %s:\n%s", foreign, tgtB, out)
	}

	// CHAP and mutual CHAP on B.
	chap := grown
	chap.Targets = slices.Clone(grown.Targets)
	chap.Targets[1].CHAP = &iscsi.CHAP{User: "dom0", Secret: "dom0-secret-12"}
	chap.Targets[1].MutualCHAP = &iscsi.CHAP{User: "san", Secret: "san-secret-123"}
	if err := drv.Apply(ctx, chap); err != nil {
		t.Fatalf("apply CHAP: %v", err)
	}
	rec.take()
	good := "iscsi://dom0%dom0-secret-12@" + addr + "/" + tgtB + "/1?target_user=san&target_password=san-secret-123"
	ns.must(ctx, "iscsi-inq", "-i", dom0, good)
	for name, u := range map[string]string{
		"no CHAP":                   url(tgtB),
		"wrong secret":              "iscsi://dom0%dom0-secret-99@" + addr + "/" + tgtB + "/1",
		"target's secret not known": "iscsi://dom0%dom0-secret-12@" + addr + "/" + tgtB + "/1?target_user=san&target_password=wrong-secret-1",
	} {
		if out, err := ns.run(ctx, "iscsi-inq", "-i", dom0, u); err == nil {
			t.Errorf("%s: logged in to %s:\n%s", name, tgtB, out)
		}
	}

	// A restarted sand finds tgtd on its control port and keeps it.
	d2 := NewDaemon(rec, port, []string{addr + ":3260"}, logger)
	d2.Wrap = d.Wrap
	d2.SystemdRunning = d.SystemdRunning
	if err := d2.Start(ctx); err != nil {
		t.Fatalf("start a second Daemon on the same port: %v", err)
	}
	if d2.PID() != 0 || d2.mode != modeReused {
		t.Errorf("second Daemon started its own tgtd (mode %s, pid %d) instead of reusing pid %d", d2.mode, d2.PID(), pid)
	}
	ns.must(ctx, "iscsi-inq", "-i", dom0, good)

	// Stop: targets go, tgtd exits, its PID is gone.
	rec.take()
	start = time.Now()
	if err := d.Stop(ctx); err != nil {
		t.Fatalf("stop tgtd: %v", err)
	}
	t.Logf("Stop: %q in %s", rec.take(), time.Since(start))
	waitUntil(t, ctx, fmt.Sprintf("tgtd pid %d to end", pid), func() bool {
		return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
	})
	if out, err := exec.Command("tgtadm", "-C", strconv.Itoa(port), "--op", "show", "--mode", "sys").CombinedOutput(); err == nil {
		t.Errorf("tgtd still answers on control port %d after Stop:\n%s", port, out)
	}
}
