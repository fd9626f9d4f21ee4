//go:build netns

package security

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/events"
	"github.com/sand-appliance/sand/failover"
	"github.com/sand-appliance/sand/tests/netlab"
	"github.com/sand-appliance/sand/ui"
)

// TestWitnessOnlyVotes: a real pair (two sand serve, tgtd, shared disk)
// with a real `sand witness`. The witness is then replaced by an attacker
// with its credentials (the gossip key, the witness's name and address),
// who sends both boxes intents (unsigned as before, signed with a key of
// its own, claiming to be the peer, and with the stolen pair key under its
// own name), asks them the fence's and the hand-over's questions, and
// tries serf's key rotation. Both boxes keep their roles, answer nothing,
// record each refusal with the sender and the reason, and keep their
// gossip key. A gossip member then replays a real intent it overheard
// (standby, after a resume): refused as a replay. The pair still works:
// standby and resume of the peer through signed intents, and a switchover.
func TestWitnessOnlyVotes(t *testing.T) {
	netlab.Require(t, netlab.Tools...)
	lab := netlab.New(t, "10.236.0")
	san1, san2 := lab.AddHost("san1", 11), lab.AddHost("san2", 12)
	wit := lab.AddHost("witness", 13)
	admin := lab.AddHost("admin", 100)
	const vip = "10.236.0.50"
	p := netlab.NewPair(t, netlab.BuildSand(t), san1, san2, netlab.Pair{Witness: wit}, vip)
	p.StartWitness()
	for _, b := range p.Boxes {
		b.Start(admin)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, b := range p.Boxes {
				t.Logf("--- %s events:\n%s", b.Host.Name, b.MustCLI(admin, "events"))
			}
		}
	})
	var holder *netlab.SandBox
	netlab.WaitFor(t, 20*time.Second, "the pair to elect a primary", func() (err error) {
		holder, err = p.VIPHolder()
		return err
	})
	// A LUN, so that serving shows (a target) as well as the VIP.
	for _, args := range [][]string{{"group", "create", "xen", "iqn.2026-12.org.example:dom0"}, {"lun", "create", "vm01", "--size", "16M", "--group", "xen"}} {
		holder.MustCLI(admin, append(args, "--api", holder.VIPURL())...)
	}
	primary, secondary := mustPrimary(t, p)
	pn, sn := primary.Host.Name, secondary.Host.Name
	netlab.WaitFor(t, 10*time.Second, "both boxes to see the witness", func() error {
		for _, b := range p.Boxes {
			if w := pairView(t, b, admin).Witness; w == nil || !w.Reachable {
				return fmt.Errorf("%s: witness %+v", b.Host.Name, w)
			}
		}
		return nil
	})

	// The attacker takes the witness's place: same name, address and
	// gossip key.
	if err := p.StopWitness(); err != nil {
		t.Fatal(err)
	}
	spec := attackSpec{Mode: "forge", Name: wit.Name, Bind: wit.IP, Join: []string{san1.IP + ":7946", san2.IP + ":7946"},
		GossipKeyFile: p.GossipKeyFile(), PairKeyFile: p.PairKeyFile(), Primary: pn, Secondary: sn}
	res := runAttacker(t, wit, spec)
	for _, r := range res {
		t.Logf("attack %-40s -> %s", r.Step, r.Result)
	}
	want := map[string]string{
		"ask " + sn + " outdate, own key":               "no answer",
		"ask " + pn + " hand-over, own key":             "no answer",
		"ask " + sn + " outdate, stolen pair key":       "no answer",
		"raw query " + sn + " outdate":                  "0 answers",
		"raw query " + pn + " hand-over":                "0 answers",
		"install-key":                                   "encryption not enabled",
		"use-key":                                       "encryption not enabled",
		"remove-key":                                    "encryption not enabled",
		"still a member after the key queries of " + sn: "alive",
	}
	for step, w := range want {
		i := slices.IndexFunc(res, func(r attackResult) bool { return r.Step == step })
		if i < 0 || !strings.Contains(res[i].Result, w) {
			t.Errorf("attack step %q: got %+v, want %q", step, res, w)
		}
	}

	// Nothing changed: the same primary serving, the secondary not in
	// standby, neither box in standby.
	checkRoles := func(when string) {
		t.Helper()
		pr, _, err := p.Primary()
		if err != nil || pr != primary {
			t.Fatalf("%s: primary %v (want %s), %v", when, pr, pn, err)
		}
		for _, b := range p.Boxes {
			if role := localRole(t, b, admin); role == ui.RoleStandby {
				t.Fatalf("%s: %s is in standby", when, b.Host.Name)
			}
		}
	}
	checkRoles("after the witness's attack")

	// Each refusal is recorded where it arrived, with the sender and why.
	for _, tc := range []struct {
		box  *netlab.SandBox
		want []string
	}{
		{secondary, []string{
			"refused intent from unknown: not a signed message",
			"refused intent from witness: from the witness, which only votes",
			"refused intent from " + pn + ": bad MAC",
			"refused query sand-outdate from witness: from the witness, which only votes",
			"refused query sand-outdate from mallory: not from the configured peer",
		}},
		{primary, []string{
			"refused intent from " + sn + ": bad MAC",
			"refused query sand-handover from witness: from the witness, which only votes",
		}},
	} {
		netlab.WaitFor(t, 5*time.Second, tc.box.Host.Name+" to record the refusals", func() error {
			got := refusedEvents(t, tc.box, admin)
			for _, w := range tc.want {
				if !slices.ContainsFunc(got, func(m string) bool { return strings.Contains(m, w) }) {
					return fmt.Errorf("no event with %q in %q", w, got)
				}
			}
			return nil
		})
	}

	// The real witness again; the pair hears it (the gossip key is the
	// one configured).
	p.StartWitness()
	netlab.WaitFor(t, 10*time.Second, "both boxes to see the real witness again", func() error {
		for _, b := range p.Boxes {
			if w := pairView(t, b, admin).Witness; w == nil || !w.Reachable {
				return fmt.Errorf("%s: witness %+v", b.Host.Name, w)
			}
		}
		return nil
	})
	checkRoles("with the witness back")

	// A member with the gossip key overhears a real standby intent and
	// replays it after the resume: the secondary stays in service.
	replay := wit.Start(os.Args[0], attackerArgs(t, attackSpec{Mode: "replay", Name: "mallory", Bind: wit.IP,
		Join: spec.Join, GossipKeyFile: p.GossipKeyFile()})...)
	netlab.WaitFor(t, 10*time.Second, "the eavesdropper to join", func() error {
		if !reported(replay.Output(), "joined") {
			return fmt.Errorf("output so far: %q", replay.Output())
		}
		return nil
	})
	primary.MustCLI(admin, "standby", sn)
	netlab.WaitFor(t, 10*time.Second, sn+" to go into standby at the peer's signed intent", func() error {
		if r := localRole(t, secondary, admin); r != ui.RoleStandby {
			return fmt.Errorf("%s is %s", sn, r)
		}
		return nil
	})
	primary.MustCLI(admin, "resume", sn)
	netlab.WaitFor(t, 10*time.Second, sn+" to resume", func() error {
		if r := localRole(t, secondary, admin); r == ui.RoleStandby {
			return fmt.Errorf("%s is %s", sn, r)
		}
		return nil
	})
	netlab.WaitFor(t, 15*time.Second, "the eavesdropper to replay the standby intent", func() error {
		if !reported(replay.Output(), "replayed") {
			return fmt.Errorf("output so far: %q", replay.Output())
		}
		return nil
	})
	netlab.WaitFor(t, 5*time.Second, sn+" to refuse the replay", func() error {
		got := refusedEvents(t, secondary, admin)
		if !slices.ContainsFunc(got, func(m string) bool { return strings.Contains(m, "refused intent from "+pn+": replayed") }) {
			return fmt.Errorf("refusals: %q", got)
		}
		return nil
	})
	// Give a wrongly accepted replay the time to show.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if r := localRole(t, secondary, admin); r == ui.RoleStandby {
			t.Fatalf("%s went into standby at a replayed intent", sn)
		}
		time.Sleep(200 * time.Millisecond)
	}
	checkRoles("after the replay")

	// A planned switchover still works.
	primary.MustCLI(admin, "switchover")
	netlab.WaitFor(t, 20*time.Second, "the switchover to "+sn, func() error {
		pr, _, err := p.Primary()
		if err != nil {
			return err
		}
		if pr != secondary {
			return fmt.Errorf("%s is still primary", pr.Host.Name)
		}
		return nil
	})
}

func mustPrimary(t *testing.T, p *netlab.Pair) (*netlab.SandBox, *netlab.SandBox) {
	t.Helper()
	pr, se, err := p.Primary()
	if err != nil {
		t.Fatal(err)
	}
	return pr, se
}

func pairView(t *testing.T, b *netlab.SandBox, in *netlab.Host) ui.PairView {
	t.Helper()
	var st struct {
		Pair ui.PairView `json:"pair"`
	}
	if err := json.Unmarshal([]byte(b.MustCLI(in, "status", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	return st.Pair
}

// localRole is the box's own role as it reports it.
func localRole(t *testing.T, b *netlab.SandBox, in *netlab.Host) string {
	t.Helper()
	for _, x := range pairView(t, b, in).Boxes {
		if x.Local {
			return x.Role
		}
	}
	t.Fatalf("%s reports no local box", b.Host.Name)
	return ""
}

func refusedEvents(t *testing.T, b *netlab.SandBox, in *netlab.Host) []string {
	t.Helper()
	var evs []events.Event
	if err := json.Unmarshal([]byte(b.MustCLI(in, "events", "-o", "json")), &evs); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		if e.Kind == events.MessageRefused {
			out = append(out, e.Message)
		}
	}
	return out
}

// attackSpec tells the attacker process (this test binary, run again in a
// lab host: serf dials from the host's namespace) what to do.
type attackSpec struct {
	// Mode forge: join as Name (the witness's) and send forgeries; replay:
	// join as Name, overhear two intents, replay the first.
	Mode          string
	Name, Bind    string
	Join          []string
	GossipKeyFile string
	PairKeyFile   string
	Primary       string
	Secondary     string
}

type attackResult struct{ Step, Result string }

// reported says whether the attacker's output reports step.
func reported(out, step string) bool {
	return strings.Contains(out, `ATTACK {"Step":"`+step+`"`)
}

func attackerArgs(t *testing.T, spec attackSpec) []string {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"-test.run=^TestWitnessAttacker$", "-test.count=1", "-test.v", "--", string(b)}
}

func runAttacker(t *testing.T, in *netlab.Host, spec attackSpec) []attackResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := in.Run(ctx, os.Args[0], attackerArgs(t, spec)...)
	if err != nil {
		t.Fatalf("attacker: %v\n%s", err, out)
	}
	var res []attackResult
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "ATTACK "); ok {
			var r attackResult
			if json.Unmarshal([]byte(rest), &r) == nil {
				res = append(res, r)
			}
		}
	}
	if len(res) == 0 {
		t.Fatalf("the attacker reported nothing:\n%s", out)
	}
	return res
}

// TestWitnessAttacker is the attacker of TestWitnessOnlyVotes, run by it
// in a lab host with its spec after "--"; on its own it does nothing.
func TestWitnessAttacker(t *testing.T) {
	if len(flag.Args()) != 1 {
		t.Skip("the attacker of TestWitnessOnlyVotes: run by it, in a lab host")
	}
	var spec attackSpec
	if err := json.Unmarshal([]byte(flag.Args()[0]), &spec); err != nil {
		t.Fatal(err)
	}
	report := func(step, format string, args ...any) {
		b, _ := json.Marshal(attackResult{Step: step, Result: fmt.Sprintf(format, args...)})
		fmt.Printf("ATTACK %s\n", b)
	}
	gossip := readKeys(t, spec.GossipKeyFile, failover.ParseGossipKeys)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	switch spec.Mode {
	case "forge":
		forge(t, spec, gossip, log, report)
	case "replay":
		eavesdrop(t, spec, gossip, log, report)
	default:
		t.Fatalf("mode %q", spec.Mode)
	}
}

func readKeys(t *testing.T, file string, parse func(string) ([][]byte, error)) [][]byte {
	t.Helper()
	text, err := appliance.ReadSecretFile(file)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := parse(text)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

func randomKey() [][]byte {
	k := make([]byte, failover.PairKeySize)
	rand.Read(k)
	return [][]byte{k}
}

// rawSerf is a serf member with the gossip key only, driven directly.
func rawSerf(t *testing.T, name, bind string, port int, gossip [][]byte, log *slog.Logger) (*serf.Serf, chan serf.Event) {
	t.Helper()
	conf, err := failover.NewSerfConfig(name, bind, port, gossip, log)
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan serf.Event, 256)
	conf.EventCh = ch
	s, err := serf.Create(conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Leave(); _ = s.Shutdown() })
	return s, ch
}

func forge(t *testing.T, spec attackSpec, gossip [][]byte, log *slog.Logger, report func(step, format string, args ...any)) {
	conf, err := failover.NewSerfConfig(spec.Name, spec.Bind, 7946, gossip, log)
	if err != nil {
		t.Fatal(err)
	}
	m := failover.NewMembership(conf, log, nil)
	if err := m.Start(failover.Tags{Witness: true}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = m.Leave(); _ = m.Shutdown() }()
	if _, err := m.Join(spec.Join); err != nil {
		t.Fatal(err)
	}
	mallory, _ := rawSerf(t, "mallory", spec.Bind, 7947, gossip, log)
	if _, err := mallory.Join(spec.Join, true); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, m, spec.Primary, spec.Secondary)

	as := func(self, peer string, keys [][]byte) {
		if err := m.Authenticate(failover.PairAuth{Keys: keys, Self: self, Peer: peer, Witness: spec.Name}); err != nil {
			t.Fatal(err)
		}
	}
	intent := func(step, box string) {
		err := m.SendIntent(box, failover.IntentStandby)
		report(step, "sent: %v", err)
	}
	// Intents: the old unsigned format to both boxes, the witness's own
	// signature, the peer's name under another key, the stolen pair key
	// under the witness's name.
	for _, box := range []string{spec.Secondary, spec.Primary} {
		report("unsigned intent "+box, "sent: %v", mallory.UserEvent("sand-intent", []byte(box+"=standby"), false))
	}
	as(spec.Name, spec.Secondary, randomKey())
	intent("witness-signed intent "+spec.Secondary, spec.Secondary)
	as(spec.Primary, spec.Secondary, randomKey())
	intent("intent as "+spec.Primary+", own key", spec.Secondary)
	as(spec.Secondary, spec.Primary, randomKey())
	intent("intent as "+spec.Secondary+", own key", spec.Primary)
	pairKey := readKeys(t, spec.PairKeyFile, failover.ParsePairKey)
	as(spec.Name, spec.Secondary, pairKey)
	intent("intent under the witness's name, stolen pair key", spec.Secondary)

	// Questions: the fence's and the hand-over's.
	ask := func(step, box, query, payload string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		b, err := m.Ask(ctx, box, query, []byte(payload))
		if err != nil {
			report(step, "no answer: %v", err)
			return
		}
		report(step, "ANSWERED %q", b)
	}
	as(spec.Name, spec.Secondary, randomKey())
	ask("ask "+spec.Secondary+" outdate, own key", spec.Secondary, failover.OutdateQuery, "r0")
	as(spec.Name, spec.Primary, randomKey())
	ask("ask "+spec.Primary+" hand-over, own key", spec.Primary, failover.HandOverQuery, "sand")
	as(spec.Name, spec.Secondary, pairKey)
	ask("ask "+spec.Secondary+" outdate, stolen pair key", spec.Secondary, failover.OutdateQuery, "r0")
	raw := func(step, box, query, payload string) {
		resp, err := mallory.Query(query, []byte(payload), &serf.QueryParam{FilterNodes: []string{box}, Timeout: 2 * time.Second})
		if err != nil {
			report(step, "error %v", err)
			return
		}
		n := 0
		for r := range resp.ResponseCh() {
			n++
			report(step+" answer", "%s: %q", r.From, r.Payload)
		}
		report(step, "%d answers", n)
	}
	raw("raw query "+spec.Secondary+" outdate", spec.Secondary, failover.OutdateQuery, "r0")
	raw("raw query "+spec.Primary+" hand-over", spec.Primary, failover.HandOverQuery, "sand")

	// Serf's key rotation: a key only the attacker knows, then drop the
	// configured one.
	newKey := base64.StdEncoding.EncodeToString(randomKey()[0])
	km := mallory.KeyManager()
	for _, op := range []struct {
		name string
		do   func(string) (*serf.KeyResponse, error)
		key  string
	}{
		{"install-key", km.InstallKey, newKey},
		{"use-key", km.UseKey, newKey},
		{"remove-key", km.RemoveKey, base64.StdEncoding.EncodeToString(gossip[0])},
	} {
		resp, err := op.do(op.key)
		var msgs []string
		if resp != nil {
			for node, msg := range resp.Messages {
				msgs = append(msgs, node+": "+msg)
			}
		}
		report(op.name, "%v; %s", err, strings.Join(msgs, "; "))
	}
	// The boxes still hear the configured key: a fresh member that has
	// only it joins through the secondary.
	probe, _ := rawSerf(t, "probe", spec.Bind, 7948, gossip, log)
	if _, err := probe.Join([]string{spec.Join[0]}, true); err != nil {
		report("still a member after the key queries of "+spec.Secondary, "join failed: %v", err)
		return
	}
	state := "absent"
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && state != "alive" {
		for _, mb := range probe.Members() {
			if mb.Name == spec.Secondary {
				state = mb.Status.String()
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	report("still a member after the key queries of "+spec.Secondary, "%s", state)
}

func waitMembers(t *testing.T, m *failover.Membership, names ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		alive := 0
		for _, mb := range m.Members() {
			if slices.Contains(names, mb.Name) && mb.Status == failover.MemberAlive {
				alive++
			}
		}
		if alive == len(names) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v not all alive: %+v", names, m.Members())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// eavesdrop joins with the gossip key, keeps the first intent it
// overhears, and once it has seen a second one, sends the first again.
func eavesdrop(t *testing.T, spec attackSpec, gossip [][]byte, log *slog.Logger, report func(step, format string, args ...any)) {
	s, ch := rawSerf(t, spec.Name, spec.Bind, 7947, gossip, log)
	if _, err := s.Join(spec.Join, true); err != nil {
		t.Fatal(err)
	}
	report("joined", "%s", net.JoinHostPort(spec.Bind, "7947"))
	var heard [][]byte
	timeout := time.After(90 * time.Second)
	for len(heard) < 2 {
		select {
		case ev := <-ch:
			if ue, ok := ev.(serf.UserEvent); ok && ue.Name == "sand-intent" {
				heard = append(heard, bytes.Clone(ue.Payload))
				report("heard", "%d bytes", len(ue.Payload))
			}
		case <-timeout:
			t.Fatal("overheard fewer than two intents in 90 s")
		}
	}
	time.Sleep(time.Second) // the resume has been applied by now
	for range 2 {
		if err := s.UserEvent("sand-intent", heard[0], false); err != nil {
			t.Fatal(err)
		}
	}
	report("replayed", "%d bytes", len(heard[0]))
	time.Sleep(3 * time.Second) // let the replay spread before leaving
}
