//go:build vm

package vm

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sand-appliance/sand/events"
	"github.com/sand-appliance/sand/tests/lab"
	"github.com/sand-appliance/sand/ui"
)

// stampedLines keeps a program's output line by line with the host time
// each line arrived.
type stampedLines struct {
	mu      sync.Mutex
	partial []byte
	lines   []stampedLine
}

type stampedLine struct {
	at   time.Time
	text string
}

func (s *stampedLines) Write(p []byte) (int, error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partial = append(s.partial, p...)
	for {
		i := bytes.IndexByte(s.partial, '\n')
		if i < 0 {
			return len(p), nil
		}
		s.lines = append(s.lines, stampedLine{at: now, text: string(s.partial[:i])})
		s.partial = s.partial[i+1:]
	}
}

func (s *stampedLines) snapshot() []stampedLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lines)
}

const (
	writerBlock = 4096
	writerBase  = 1 * mib // the first MiB keeps the LUN's seed pattern
	writerPace  = 20      // ms between writes, as a busy guest's journal
)

// writer is a dom0's guest writing through the VIP: one qemu-io (libiscsi,
// which reconnects by itself) writing 4 KiB blocks one after the other,
// each with its own pattern byte, 20 ms apart. Every write qemu-io reports
// done was acknowledged by the target; the test checks each of them later.
type writer struct {
	proc  *lab.Proc
	out   *stampedLines
	salt  int
	n     int
	start time.Time
}

var ackLine = regexp.MustCompile(`^wrote (\d+)/(\d+) bytes at offset (\d+)`)

func lunOpts(portal, iqn string, lun int) string {
	return fmt.Sprintf("driver=iscsi,transport=tcp,portal=%s,target=%s,lun=%d,initiator-name=%s", portal, iqn, lun, clientIQN)
}

// startWriter starts n writes (n*4 KiB from offset 1 MiB must fit the LUN).
func startWriter(tb testing.TB, l *lab.Lab, portal string, lu ui.LUNView, n int) *writer {
	tb.Helper()
	var b [1]byte
	rand.Read(b[:])
	w := &writer{out: &stampedLines{}, salt: int(b[0]), n: n}
	// qemu-io buffers its output in full when it goes to a pipe: the
	// acknowledgements would reach the test in bursts of about a second,
	// stamped late. stdbuf makes it line-buffered, so each line's stamp is
	// when the write completed (to within the pipe's latency).
	args := []string{"-oL", "qemu-io", "--image-opts"}
	for i := range n {
		args = append(args, "-c", fmt.Sprintf("write -P 0x%02x %d %d", w.pattern(i), writerBase+int64(i)*writerBlock, writerBlock),
			"-c", fmt.Sprintf("sleep %d", writerPace))
	}
	args = append(args, lunOpts(portal, lu.Target, lu.Number))
	w.start = time.Now()
	p, err := l.Client().StartTee(w.out, "stdbuf", args...)
	if err != nil {
		tb.Fatal(err)
	}
	w.proc = p
	tb.Cleanup(p.Stop)
	return w
}

// pattern is the byte written in block i; a per-run salt makes sure data
// left by an earlier run cannot pass the check.
func (w *writer) pattern(i int) byte { return byte((i+w.salt)%255 + 1) }

type ack struct {
	at    time.Time
	block int
}

// acks are the acknowledged writes so far, in order.
func (w *writer) acks() []ack {
	var out []ack
	for _, ln := range w.out.snapshot() {
		if m := ackLine.FindStringSubmatch(ln.text); m != nil {
			off, _ := strconv.ParseInt(m[3], 10, 64)
			out = append(out, ack{at: ln.at, block: int((off - writerBase) / writerBlock)})
		}
	}
	return out
}

// errors are the lines where qemu-io reported a failed request ("write
// failed: Input/output error" is what a guest would see as an I/O error).
func (w *writer) errors() []string {
	var out []string
	for _, ln := range w.out.snapshot() {
		if strings.Contains(ln.text, "write failed") {
			out = append(out, ln.at.Format("15:04:05.000")+" "+ln.text)
		}
	}
	return out
}

// notes are the writer's lines that are neither acknowledgements nor
// statistics (libiscsi's reconnect messages, say).
func (w *writer) notes() []string {
	var out []string
	for _, ln := range w.out.snapshot() {
		if !ackLine.MatchString(ln.text) && !strings.Contains(ln.text, " ops; ") && strings.TrimSpace(ln.text) != "" {
			out = append(out, ln.at.Format("15:04:05.000")+" "+ln.text)
		}
	}
	return out
}

// waitAcks waits until n writes were acknowledged after t; it fails the
// test if the writer reports an error or ends first.
func (w *writer) waitAcks(tb testing.TB, t time.Time, n int, timeout time.Duration) []ack {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if errs := w.errors(); len(errs) > 0 {
			tb.Fatalf("the writer saw I/O errors:\n%s", strings.Join(errs, "\n"))
		}
		var after []ack
		for _, a := range w.acks() {
			if a.at.After(t) {
				after = append(after, a)
			}
		}
		if len(after) >= n {
			return after
		}
		if w.proc.Exited() {
			tb.Fatalf("the writer ended after %d acknowledged writes:\n%s", len(w.acks()), tail(w.proc.Output(), 20))
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d writes acknowledged in %v after %s, want %d; writer output ends:\n%s",
				len(after), timeout, t.Format("15:04:05.000"), n, tail(w.proc.Output(), 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// maxGap is the longest time between two consecutive acknowledgements and
// when it ended.
func maxGap(acks []ack) (time.Duration, time.Time) {
	var gap time.Duration
	var end time.Time
	for i := 1; i < len(acks); i++ {
		if d := acks[i].at.Sub(acks[i-1].at); d > gap {
			gap, end = d, acks[i].at
		}
	}
	return gap, end
}

// verify reads the whole LUN back through the VIP (qemu-img convert in the
// client namespace) and checks every acknowledged write. It returns how
// many were checked.
func (w *writer) verify(tb testing.TB, ctx context.Context, l *lab.Lab, portal string, lu ui.LUNView) int {
	tb.Helper()
	acks := w.acks()
	data := readLUN(tb, ctx, l, portal, lu)
	var bad []int
	for _, a := range acks {
		off := writerBase + int64(a.block)*writerBlock
		if off+writerBlock > int64(len(data)) || !bytes.Equal(data[off:off+writerBlock], bytes.Repeat([]byte{w.pattern(a.block)}, writerBlock)) {
			bad = append(bad, a.block)
		}
	}
	if len(bad) > 0 {
		tb.Fatalf("%d of %d acknowledged writes lost or wrong after the failover (blocks %v)", len(bad), len(acks), bad[:min(len(bad), 20)])
	}
	return len(acks)
}

// readLUN copies a LUN through the portal into memory.
func readLUN(tb testing.TB, ctx context.Context, l *lab.Lab, portal string, lu ui.LUNView) []byte {
	tb.Helper()
	file := filepath.Join(tb.TempDir(), lu.Name+".raw")
	if out, err := client(ctx, l, "qemu-img", "convert", "--image-opts", lunOpts(portal, lu.Target, lu.Number), "-O", "raw", file); err != nil {
		tb.Fatalf("read %s back through %s: %v\n%s", lu.Name, portal, err, out)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	os.Remove(file)
	return data
}

// sample is one look at a box's pair status.
type sample struct {
	sent, recv time.Time
	ok         bool
	primary    bool // DRBD role Primary
	peerAlso   bool // DRBD sees the peer Primary too
	vip        bool // the box holds the VIP
	clock      time.Time
}

// monitor polls both boxes' DRBD role and VIP ownership (every 200 ms,
// each box over its own address) for as long as a test runs.
type monitor struct {
	mu      sync.Mutex
	samples map[string][]sample
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func startMonitor(tb testing.TB, ctx context.Context, l *lab.Lab) *monitor {
	ctx, cancel := context.WithCancel(ctx)
	m := &monitor{samples: map[string][]sample{}, cancel: cancel}
	for _, n := range l.Names() {
		api := l.Box(n).API()
		api.HTTP.Timeout = time.Second
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			for ctx.Err() == nil {
				s := sample{sent: time.Now()}
				p, err := api.Pair(ctx)
				s.recv = time.Now()
				if err == nil {
					s.ok, s.clock = true, p.Clock
					if d := p.DRBD; d != nil {
						s.primary, s.peerAlso = d.LocalRole == "Primary", d.LocalRole == "Primary" && d.PeerRole == "Primary"
					}
					s.vip = p.VIP != nil && p.VIP.Holder == n
				}
				m.mu.Lock()
				m.samples[n] = append(m.samples[n], s)
				m.mu.Unlock()
				select {
				case <-ctx.Done():
				case <-time.After(200 * time.Millisecond):
				}
			}
		}()
	}
	tb.Cleanup(m.stop)
	return m
}

func (m *monitor) stop() { m.cancel(); m.wg.Wait() }

// offset is how far box n's clock is ahead of the host's, from the
// sample with the shortest round trip.
func (m *monitor) offset(n string) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	best, off := time.Hour, time.Duration(0)
	for _, s := range m.samples[n] {
		if rtt := s.recv.Sub(s.sent); s.ok && rtt < best {
			best, off = rtt, s.clock.Sub(s.sent.Add(rtt/2))
		}
	}
	return off
}

// violations lists every moment two boxes were primary, or held the VIP,
// at once. A box is taken as certainly primary (or VIP holder) between two
// consecutive samples that both say so; the other box saying so in a
// sample that lies within such a span is a violation, and so is a box
// whose DRBD shows both sides Primary.
func (m *monitor) violations() (found []string, polls int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.samples))
	for n, ss := range m.samples {
		names = append(names, n)
		polls += len(ss)
		for _, s := range ss {
			if s.peerAlso {
				found = append(found, fmt.Sprintf("%s: DRBD shows both sides Primary at %s", n, s.recv.Format("15:04:05.000")))
			}
		}
	}
	check := func(what string, a, b string, flag func(sample) bool) {
		sa, sb := m.samples[a], m.samples[b]
		for i := 1; i < len(sa); i++ {
			if !sa[i-1].ok || !sa[i].ok || !flag(sa[i-1]) || !flag(sa[i]) {
				continue
			}
			from, to := sa[i-1].recv, sa[i].sent
			for _, s := range sb {
				if s.ok && flag(s) && !s.sent.Before(from) && !s.recv.After(to) {
					found = append(found, fmt.Sprintf("%s: %s from %s to %s, and %s at %s", what, a,
						from.Format("15:04:05.000"), to.Format("15:04:05.000"), b, s.recv.Format("15:04:05.000")))
				}
			}
		}
	}
	if len(names) == 2 {
		for _, pair := range [][2]string{{names[0], names[1]}, {names[1], names[0]}} {
			check("two DRBD primaries", pair[0], pair[1], func(s sample) bool { return s.primary })
			check("two VIP holders", pair[0], pair[1], func(s sample) bool { return s.vip })
		}
	}
	return found, polls
}

// holder is the box that holds the VIP as the boxes report it, "" if none.
func holder(ctx context.Context, l *lab.Lab) string {
	for _, n := range l.Names() {
		p, err := l.Box(n).API().Pair(ctx)
		if err == nil && p.VIP != nil && p.VIP.Holder == n {
			return n
		}
	}
	return ""
}

// waitHealthy waits for both boxes to be Connected UpToDate/UpToDate with
// one of them holding the VIP, and returns that one.
func waitHealthy(tb testing.TB, ctx context.Context, l *lab.Lab, what string) string {
	tb.Helper()
	var primary string
	waitFor(tb, ctx, 10*time.Minute, what, func() error {
		if err := inSync(ctx, l); err != nil {
			return err
		}
		if primary = holder(ctx, l); primary == "" {
			return fmt.Errorf("no box holds the VIP")
		}
		return nil
	})
	return primary
}

// inSync says why the pair is not Connected and UpToDate/UpToDate on
// both boxes, as their APIs report DRBD; nil when it is.
func inSync(ctx context.Context, l *lab.Lab) error {
	for _, n := range l.Names() {
		p, err := l.Box(n).API().Pair(ctx)
		if err != nil {
			return err
		}
		if d := p.DRBD; d == nil || d.Connection != "Connected" || d.LocalDisk != "UpToDate" || d.PeerDisk != "UpToDate" {
			return fmt.Errorf("%s: drbd %+v", n, p.DRBD)
		}
	}
	return nil
}

// failoverSplit places the new primary's events on the host's clock: when
// it declared the old one failed and when its promotion finished.
type failoverSplit struct {
	detected, promoted time.Time
	promotedMsg        string
}

func splitFromEvents(ctx context.Context, l *lab.Lab, m *monitor, survivor, dead string, after time.Time) (failoverSplit, error) {
	events, err := l.Box(survivor).API().Events(ctx)
	if err != nil {
		return failoverSplit{}, err
	}
	off := m.offset(survivor)
	var s failoverSplit
	for _, e := range events {
		at := e.Time.Add(-off)
		if at.Before(after.Add(-time.Second)) { // clock estimate error margin
			continue
		}
		switch {
		case s.detected.IsZero() && e.Kind == "membership" && strings.Contains(e.Message, "member-failed: "+dead):
			s.detected = at
		case s.promoted.IsZero() && e.Kind == "failover-promoted":
			s.promoted, s.promotedMsg = at, e.Message
		}
	}
	if s.detected.IsZero() || s.promoted.IsZero() {
		return s, fmt.Errorf("events of %s lack the failure of %s or the promotion: %v", survivor, dead, lastEvents(events, 12))
	}
	return s, nil
}

func lastEvents(list []events.Event, n int) []string {
	var out []string
	for _, e := range list[max(0, len(list)-n):] {
		out = append(out, e.Time.Format("15:04:05.000")+" "+string(e.Kind)+" "+e.Message)
	}
	return out
}
