package failover

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sand-appliance/sand/drbd"
)

// Scenario transcripts (testdata/scenarios/*.txt) replay a timeline
// through a Decider, one line per step:
//
//	# a comment; blank lines are skipped
//	setup name=san2 peer-name=san1 settle=1s    (before the first step)
//	@1.5s peer=failed witness=alive -> promote S7 force "disk UpToDate"
//	@1.8s report promote failed
//
// A step is the time since the start, the inputs that change (the rest
// keep their values), "->", and the expected decision: the action, the
// rule, the flags that are set (force, handover, done, admin, no-quorum,
// next=DURATION; the others are expected unset, and quorum held), and
// optionally a quoted text the reason must contain. A report tells the
// Decider what came of an action (promote or demote, ok or failed).
//
// Input keys: role, disk, conn, drbd-peer, drbd-peer-disk (DRBD's view of
// the peer), split-brain (yes/no), gen; peer (serf: alive, leaving, left,
// failed, unknown; its time of change is the step's unless peer-since is
// given), peer-since, peer-returned (offsets), peer-role, peer-disk,
// peer-intent, peer-gen (its tags); witness (alive, failed, unknown...,
// or none: not configured); ping (reachable/targets); intent; running
// (yes/no: the resource group runs here).
// Setup keys: name, peer-name, witness-name, settle, flap-window,
// flap-settle.

// scenario is a parsed transcript.
type scenario struct {
	setup Snapshot
	lines []scenarioLine
}

// scenarioLine is a step or a report.
type scenarioLine struct {
	n    int    // line number
	text string // as written
	at   time.Duration
	// A step: the changes to apply, and the expected decision.
	changes []func(*Snapshot, time.Time)
	want    expected
	// A report (report is set): the outcome to report.
	report  bool
	outcome Action
	failed  bool
}

type expected struct {
	action                            Action
	rule                              string
	force, handOver, done, admin, noQ bool
	next                              time.Duration
	reason                            string // a part of the reason
}

// String is the expectation as a transcript writes it.
func (e expected) String() string {
	f := []string{e.action.String(), e.rule}
	for _, flag := range []struct {
		set  bool
		name string
	}{{e.force, "force"}, {e.handOver, "handover"}, {e.done, "done"}, {e.admin, "admin"}, {e.noQ, "no-quorum"}} {
		if flag.set {
			f = append(f, flag.name)
		}
	}
	if e.next != 0 {
		f = append(f, "next="+e.next.String())
	}
	return strings.Join(f, " ")
}

// expectationOf is a decision as a transcript would expect it.
func expectationOf(d Decision) expected {
	return expected{action: d.Action, rule: d.Rule, force: d.ForceDisconnect, handOver: d.HandOver,
		done: d.IntentDone, admin: d.NeedsAdmin, noQ: !d.Quorum, next: d.Next}
}

func parseScenario(text string) (*scenario, error) {
	sc := &scenario{setup: Snapshot{Input: Input{
		Local: Local{Name: "san1"}, Peer: Peer{Name: "san2"}, Witness: Witness{Name: "dom0"}, Policy: DefaultPolicy(),
	}}}
	var errs []error
	last := time.Duration(-1 << 63)
	for i, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		l, err := parseScenarioLine(sc, line, len(sc.lines) == 0)
		if err == nil && l != nil && l.at < last {
			err = fmt.Errorf("time goes back: @%s after @%s", l.at, last)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %q: %w", i+1, line, err))
			continue
		}
		if l != nil {
			l.n, l.text, last = i+1, line, l.at
			sc.lines = append(sc.lines, *l)
		}
	}
	if len(errs) == 0 && len(sc.lines) == 0 {
		errs = append(errs, errors.New("no steps"))
	}
	return sc, errors.Join(errs...)
}

// parseScenarioLine parses one line that is not blank or a comment; a
// setup line changes sc.setup and returns nil.
func parseScenarioLine(sc *scenario, line string, first bool) (*scenarioLine, error) {
	if rest, ok := strings.CutPrefix(line, "setup "); ok {
		if !first {
			return nil, errors.New("setup after the first step")
		}
		return nil, parseSetup(&sc.setup, strings.Fields(rest))
	}
	at, rest, ok := strings.Cut(line, " ")
	if !strings.HasPrefix(at, "@") {
		return nil, errors.New(`want "# comment", "setup KEY=VALUE ...", "@OFFSET KEY=VALUE ... -> ACTION RULE [FLAGS]" or "@OFFSET report ACTION ok|failed"`)
	}
	offset, err := time.ParseDuration(at[1:])
	if err != nil {
		return nil, fmt.Errorf("offset: %w", err)
	}
	l := &scenarioLine{at: offset}
	if !ok {
		return nil, errors.New(`a step without "->"`)
	}
	if r, ok := strings.CutPrefix(rest, "report "); ok {
		return l, parseReport(l, strings.Fields(r))
	}
	inputs, want, ok := strings.Cut(rest, "->")
	if !ok {
		return nil, errors.New(`a step without "->"`)
	}
	for _, kv := range strings.Fields(inputs) {
		f, err := parseChange(kv)
		if err != nil {
			return nil, err
		}
		l.changes = append(l.changes, f)
	}
	l.want, err = parseExpected(strings.TrimSpace(want))
	return l, err
}

func parseSetup(s *Snapshot, fields []string) error {
	for _, kv := range fields {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("%q: want KEY=VALUE", kv)
		}
		var err error
		switch k {
		case "name":
			s.Local.Name = v
		case "peer-name":
			s.Peer.Name = v
		case "witness-name":
			s.Witness.Name = v
		case "settle":
			s.Policy.Settle, err = time.ParseDuration(v)
		case "flap-window":
			s.Policy.FlapWindow, err = time.ParseDuration(v)
		case "flap-settle":
			s.Policy.FlapSettle, err = time.ParseDuration(v)
		default:
			return fmt.Errorf("unknown setup key %q", k)
		}
		if err != nil {
			return fmt.Errorf("setup %s: %w", k, err)
		}
	}
	return nil
}

func parseReport(l *scenarioLine, f []string) error {
	l.report = true
	if len(f) != 2 || (f[0] != "promote" && f[0] != "demote") || (f[1] != "ok" && f[1] != "failed") {
		return errors.New(`want "report promote|demote ok|failed"`)
	}
	l.outcome = Promote
	if f[0] == "demote" {
		l.outcome = Demote
	}
	l.failed = f[1] == "failed"
	return nil
}

// parseChange parses one KEY=VALUE of a step into the change it makes.
func parseChange(kv string) (func(*Snapshot, time.Time), error) {
	k, v, ok := strings.Cut(kv, "=")
	if !ok || v == "" {
		return nil, fmt.Errorf("%q: want KEY=VALUE", kv)
	}
	bad := func(err error) (func(*Snapshot, time.Time), error) { return nil, fmt.Errorf("%s: %w", k, err) }
	switch k {
	case "role", "drbd-peer", "peer-role":
		r, err := drbd.ParseRole(v)
		if err != nil {
			return bad(err)
		}
		return func(s *Snapshot, _ time.Time) {
			switch k {
			case "role":
				s.Local.Role = r
			case "drbd-peer":
				s.Local.PeerRole = r
			default:
				s.Peer.Role = r
			}
		}, nil
	case "disk", "drbd-peer-disk", "peer-disk":
		d, err := drbd.ParseDiskState(v)
		if err != nil {
			return bad(err)
		}
		return func(s *Snapshot, _ time.Time) {
			switch k {
			case "disk":
				s.Local.Disk = d
			case "drbd-peer-disk":
				s.Local.PeerDisk = d
			default:
				s.Peer.Disk = d
			}
		}, nil
	case "conn":
		c, err := drbd.ParseConnState(v)
		if err != nil {
			return bad(err)
		}
		return func(s *Snapshot, _ time.Time) { s.Local.Conn = c }, nil
	case "split-brain", "running":
		b, err := parseYes(v)
		if err != nil {
			return bad(err)
		}
		return func(s *Snapshot, _ time.Time) {
			if k == "running" {
				s.Running = b
			} else {
				s.Local.SplitBrain = b
			}
		}, nil
	case "gen", "peer-gen":
		g, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return bad(err)
		}
		return func(s *Snapshot, _ time.Time) {
			if k == "gen" {
				s.Local.Generation = g
			} else {
				s.Peer.Generation = g
			}
		}, nil
	case "peer":
		m, err := parseMember(v)
		if err != nil {
			return bad(err)
		}
		return func(s *Snapshot, now time.Time) { s.Peer.Member, s.Peer.Since = m, now }, nil
	case "peer-since", "peer-returned":
		d, err := time.ParseDuration(v)
		if err != nil {
			return bad(err)
		}
		return func(s *Snapshot, _ time.Time) {
			if k == "peer-since" {
				s.Peer.Since = t0.Add(d)
			} else {
				s.Peer.Returned = t0.Add(d)
			}
		}, nil
	case "peer-intent", "intent":
		i, err := ParseIntent(v)
		if err != nil {
			return bad(err)
		}
		return func(s *Snapshot, _ time.Time) {
			if k == "intent" {
				s.Intent = i
			} else {
				s.Peer.Intent = i
			}
		}, nil
	case "witness":
		if v == "none" {
			return func(s *Snapshot, _ time.Time) { s.Witness.Configured, s.Witness.Member = false, MemberUnknown }, nil
		}
		m, err := parseMember(v)
		if err != nil {
			return bad(err)
		}
		return func(s *Snapshot, _ time.Time) { s.Witness.Configured, s.Witness.Member = true, m }, nil
	case "ping":
		r, n, ok := strings.Cut(v, "/")
		reach, err1 := strconv.Atoi(r)
		targets, err2 := strconv.Atoi(n)
		if !ok || err1 != nil || err2 != nil || reach < 0 || reach > targets {
			return bad(fmt.Errorf("%q: want REACHABLE/TARGETS", v))
		}
		return func(s *Snapshot, _ time.Time) { s.Ping = Ping{Targets: targets, Reachable: reach} }, nil
	}
	return nil, fmt.Errorf("unknown key %q", k)
}

func parseYes(v string) (bool, error) {
	switch v {
	case "yes":
		return true, nil
	case "no":
		return false, nil
	}
	return false, fmt.Errorf("%q: want yes or no", v)
}

func parseMember(v string) (MemberStatus, error) {
	for m, n := range memberNames {
		if n == v {
			return m, nil
		}
	}
	return MemberUnknown, fmt.Errorf("unknown member status %q", v)
}

// parseExpected parses "ACTION RULE [FLAG ...] ["REASON PART"]".
func parseExpected(s string) (expected, error) {
	var e expected
	if i := strings.Index(s, `"`); i >= 0 {
		q, err := strconv.Unquote(strings.TrimSpace(s[i:]))
		if err != nil {
			return e, fmt.Errorf("reason %s: want one quoted text at the end", s[i:])
		}
		e.reason, s = q, s[:i]
	}
	f := strings.Fields(s)
	if len(f) < 2 {
		return e, errors.New(`want "-> ACTION RULE [FLAGS]"`)
	}
	switch f[0] {
	case "stay":
		e.action = Stay
	case "promote":
		e.action = Promote
	case "demote":
		e.action = Demote
	default:
		return e, fmt.Errorf("unknown action %q: want stay, promote or demote", f[0])
	}
	e.rule = f[1]
	for _, flag := range f[2:] {
		switch {
		case flag == "force":
			e.force = true
		case flag == "handover":
			e.handOver = true
		case flag == "done":
			e.done = true
		case flag == "admin":
			e.admin = true
		case flag == "no-quorum":
			e.noQ = true
		case strings.HasPrefix(flag, "next="):
			d, err := time.ParseDuration(strings.TrimPrefix(flag, "next="))
			if err != nil {
				return e, fmt.Errorf("flag %s: %w", flag, err)
			}
			e.next = d
		default:
			return e, fmt.Errorf("unknown flag %q: want force, handover, done, admin, no-quorum or next=DURATION", flag)
		}
	}
	return e, nil
}

// run replays the scenario through a fresh Decider and reports every step
// whose decision differs from the expected one.
func (sc *scenario) run(t *testing.T, file string) {
	t.Helper()
	var k Decider
	s := sc.setup
	for _, l := range sc.lines {
		now := t0.Add(l.at)
		if l.report {
			var err error
			if l.failed {
				err = errors.New("failed in the transcript")
			}
			k.Report(Outcome{Action: l.outcome, At: now, Err: err})
			continue
		}
		for _, change := range l.changes {
			change(&s, now)
		}
		s.Now = now
		d := k.Step(s)
		got := expectationOf(d)
		want := l.want
		want.reason = ""
		if got != want || !strings.Contains(d.Reason, l.want.reason) {
			t.Errorf("%s:%d: %s\n\tgot: -> %s %q", file, l.n, l.text, got, d.Reason)
		}
	}
}

func TestScenarios(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "scenarios", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios in testdata/scenarios (%v)", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			text, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			sc, err := parseScenario(string(text))
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			sc.run(t, file)
		})
	}
}

func TestParseScenarioRejects(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"no steps", "# nothing\n", "no steps"},
		{"no arrow", "@0s role=Primary stay P4", `without "->"`},
		{"bare offset", "@0s", `without "->"`},
		{"no offset", "role=Primary -> stay P4", "want \"# comment\""},
		{"bad offset", "@soon -> stay P4", "offset"},
		{"time goes back", "@1s -> stay U1\n@0.5s -> stay U1", "line 2: \"@0.5s -> stay U1\": time goes back"},
		{"unknown key", "@0s colour=red -> stay U1", `unknown key "colour"`},
		{"not key=value", "@0s Primary -> stay U1", "want KEY=VALUE"},
		{"bad role", "@0s role=Boss -> stay U1", "role: unknown drbd role"},
		{"bad disk", "@0s disk=Shiny -> stay U1", "disk:"},
		{"bad conn", "@0s conn=Maybe -> stay U1", "conn:"},
		{"bad yes", "@0s running=true -> stay U1", `running: "true": want yes or no`},
		{"bad member", "@0s peer=asleep -> stay U1", `unknown member status "asleep"`},
		{"bad ping", "@0s ping=3/2 -> stay U1", "want REACHABLE/TARGETS"},
		{"bad gen", "@0s gen=-1 -> stay U1", "gen:"},
		{"bad intent", "@0s intent=later -> stay U1", `unknown intent "later"`},
		{"no rule", "@0s -> stay", "want \"-> ACTION RULE"},
		{"bad action", "@0s -> wait U1", `unknown action "wait"`},
		{"bad flag", "@0s -> stay U1 quickly", `unknown flag "quickly"`},
		{"bad next", "@0s -> stay U1 next=soon", "flag next=soon"},
		{"bad quote", `@0s -> stay U1 "open`, "want one quoted text at the end"},
		{"setup late", "@0s -> stay U1\nsetup settle=1s", "setup after the first step"},
		{"bad setup", "setup colour=red\n@0s -> stay U1", `unknown setup key "colour"`},
		{"bad settle", "setup settle=long\n@0s -> stay U1", "setup settle"},
		{"bad report", "@0s report promote maybe", "want \"report promote|demote ok|failed\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseScenario(tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("parseScenario(%q): err = %v, want one containing %q", tc.text, err, tc.want)
			}
		})
	}
}
