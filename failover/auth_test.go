package failover

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/sand-appliance/sand/drbd"
)

func pairKey(b byte) [][]byte { return [][]byte{bytes.Repeat([]byte{b}, PairKeySize)} }

// clock is a settable time for the guards.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testGuard(t *testing.T, self, peer string, keys [][]byte, c *clock) *guard {
	t.Helper()
	g, err := newGuard(PairAuth{Keys: keys, Self: self, Peer: peer, Witness: "dom0"}, c.now)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// Every way a message can be wrong is refused with its reason; a good one
// passes once.
func TestGuardSignAndVerify(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	san1 := testGuard(t, "san1", "san2", pairKey(1), c)
	san2 := testGuard(t, "san2", "san1", pairKey(1), c)
	// The witness has no pair key; a forger signs with what it has.
	witness := testGuard(t, "dom0", "san2", pairKey(9), c)
	// A third box holding the pair key but not san2's peer.
	san3 := testGuard(t, "san3", "san2", pairKey(1), c)
	rotated := testGuard(t, "san1", "san2", append(pairKey(5), pairKey(1)...), c)

	sign := func(g *guard, kind, to string, re [16]byte, payload string) []byte {
		t.Helper()
		b, _, err := g.sign(kind, to, re, []byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	intent := expect{kind: intentEvent, from: "san1"}

	good := sign(san1, intentEvent, "san2", [16]byte{}, "standby")
	msg, from, err := san2.open(good, intent)
	if err != nil || string(msg.Payload) != "standby" || from != "san1" {
		t.Fatalf("a good intent: %q from %s, %v", msg.Payload, from, err)
	}
	if _, _, err := san2.open(good, intent); !errors.Is(err, ErrReplay) {
		t.Errorf("the same intent again: %v, want %v", err, ErrReplay)
	}

	question, q, err := san1.sign(OutdateQuery, "san2", [16]byte{}, []byte("r0"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := san2.open(question, expect{kind: OutdateQuery, from: "san1", sender: "san1"}); err != nil {
		t.Fatalf("a good question: %v", err)
	}
	answer := sign(san2, answerKind(OutdateQuery), "san1", q.Nonce, OutdateDone)
	if msg, _, err := san1.open(answer, expect{kind: answerKind(OutdateQuery), from: "san2", re: q.Nonce, sender: "san2"}); err != nil || string(msg.Payload) != OutdateDone {
		t.Fatalf("a good answer: %q, %v", msg.Payload, err)
	}

	tampered := sign(san1, intentEvent, "san2", [16]byte{}, "none")
	tampered[len(tampered)-macSize-1] ^= 1 // the payload's last byte
	for _, tc := range []struct {
		name string
		msg  []byte
		want expect
		err  error
		from string
	}{
		{"the old unsigned format", []byte("san2=standby"), intent, ErrUnsigned, "unknown"},
		{"empty", nil, intent, ErrUnsigned, "unknown"},
		{"truncated", good[:len(good)-1], intent, ErrUnsigned, "unknown"},
		{"one byte more", append(append([]byte(nil), good...), 0), intent, ErrUnsigned, "unknown"},
		{"a changed payload", tampered, intent, ErrBadMAC, "san1"},
		{"signed by the witness", sign(witness, intentEvent, "san2", [16]byte{}, "standby"), intent, ErrWitness, "dom0"},
		{"the witness claims to be san1", func() []byte {
			b, _ := seal(pairKey(9)[0], message{Kind: intentEvent, From: "san1", To: "san2", Time: c.now(), Payload: []byte("standby")})
			return b
		}(), intent, ErrBadMAC, "san1"},
		{"a good signature from a box that is not the peer", sign(san3, intentEvent, "san2", [16]byte{}, "standby"), intent, ErrNotPeer, "san3"},
		{"for another box", sign(san1, intentEvent, "san9", [16]byte{}, "standby"), intent, ErrMisaddressed, "san1"},
		{"an intent passed off as a query", sign(san1, intentEvent, "san2", [16]byte{}, "r0"), expect{kind: OutdateQuery, from: "san1", sender: "san1"}, ErrMisaddressed, "san1"},
		{"a query sent by the witness", sign(san1, OutdateQuery, "san2", [16]byte{}, "r0"), expect{kind: OutdateQuery, from: "san1", sender: "dom0"}, ErrWitness, "dom0"},
		{"a query sent by another member", sign(san1, OutdateQuery, "san2", [16]byte{}, "r0"), expect{kind: OutdateQuery, from: "san1", sender: "mallory"}, ErrNotPeer, "mallory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, from, err := san2.open(tc.msg, tc.want)
			if !errors.Is(err, tc.err) {
				t.Errorf("open = %v, want %v", err, tc.err)
			}
			if from != tc.from {
				t.Errorf("refusal names the sender %q, want %q", from, tc.from)
			}
		})
	}

	// An answer to another question (an old answer replayed).
	other := sign(san2, answerKind(OutdateQuery), "san1", [16]byte{1}, OutdateDone)
	if _, _, err := san1.open(other, expect{kind: answerKind(OutdateQuery), from: "san2", re: q.Nonce, sender: "san2"}); !errors.Is(err, ErrMisaddressed) {
		t.Errorf("an answer to another question: %v, want %v", err, ErrMisaddressed)
	}

	// Time: 30 s either way passes, more is stale, and a message replayed
	// after the window is stale, not a replay the cache must remember.
	old := sign(san1, intentEvent, "san2", [16]byte{}, "none")
	c.add(MessageMaxAge + time.Second)
	if _, _, err := san2.open(old, intent); !errors.Is(err, ErrStale) {
		t.Errorf("a message %s old: %v, want %v", MessageMaxAge+time.Second, err, ErrStale)
	}
	if _, _, err := san2.open(good, intent); !errors.Is(err, ErrStale) {
		t.Errorf("a replay past the window: %v, want %v", err, ErrStale)
	}
	future := sign(san1, intentEvent, "san2", [16]byte{}, "none")
	c.add(-MessageMaxAge - time.Second)
	if _, _, err := san2.open(future, intent); !errors.Is(err, ErrStale) {
		t.Errorf("a message from %s ahead: %v, want %v", MessageMaxAge+time.Second, err, ErrStale)
	}
	c.add(2 * time.Second)
	if _, _, err := san2.open(future, intent); err != nil {
		t.Errorf("a message %s ahead: %v, want it accepted", MessageMaxAge-time.Second, err)
	}

	// Rotation: a box whose first key is new signs with it; the peer
	// that still has only the old key refuses, one that has both accepts.
	if _, _, err := san2.open(sign(rotated, intentEvent, "san2", [16]byte{}, "none"), intent); !errors.Is(err, ErrBadMAC) {
		t.Errorf("signed with a key the peer lacks: %v, want %v", err, ErrBadMAC)
	}
	both := testGuard(t, "san2", "san1", append(pairKey(1), pairKey(5)...), c)
	if _, _, err := both.open(sign(rotated, intentEvent, "san2", [16]byte{}, "none"), intent); err != nil {
		t.Errorf("signed with the peer's second key: %v", err)
	}
	if _, _, err := both.open(sign(san1, intentEvent, "san2", [16]byte{}, "none"), intent); err != nil {
		t.Errorf("signed with the peer's first key: %v", err)
	}
}

func TestPairAuthChecks(t *testing.T) {
	for _, a := range []PairAuth{
		{Self: "san1", Peer: "san2"},
		{Keys: [][]byte{[]byte("short")}, Self: "san1", Peer: "san2"},
		{Keys: pairKey(1), Self: "san1", Peer: "san1"},
		{Keys: pairKey(1), Self: "san1"},
	} {
		if _, err := newGuard(a, time.Now); err == nil {
			t.Errorf("newGuard(%+v): no error", a)
		}
	}
	if _, err := ParsePairKey("c2hvcnQ="); err == nil || !strings.Contains(err.Error(), "pair key") {
		t.Errorf("ParsePairKey of a short key: %v", err)
	}
}

func FuzzParseMessage(f *testing.F) {
	f0, _ := seal(pairKey(1)[0], message{Kind: intentEvent, From: "san1", To: "san2", Time: time.Unix(1, 0), Payload: []byte("standby")})
	f.Add(f0)
	f.Add([]byte("san2=standby"))
	f.Add([]byte{'s', 'p', 1, 255})
	g, err := newGuard(PairAuth{Keys: pairKey(1), Self: "san2", Peer: "san1", Witness: "dom0"}, func() time.Time { return time.Unix(1, 0) })
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, body, sum, err := parseMessage(b)
		if err == nil {
			if len(body)+len(sum) != len(b) || len(sum) != macSize {
				t.Fatalf("body %d + mac %d bytes of a %d-byte message", len(body), len(sum), len(b))
			}
			again, err := seal(make([]byte, PairKeySize), m)
			if err != nil || !bytes.Equal(again[:len(body)], body) {
				t.Fatalf("re-encoding a parsed message differs: %v", err)
			}
		}
		// Never panics; the fuzzer cannot sign with the pair key.
		if _, _, err := g.open(b, expect{kind: intentEvent, from: "san1"}); err == nil && !bytes.Equal(b, f0) {
			t.Fatalf("accepted %q", b)
		}
	})
}

// recorder keeps a member's refusals.
type recorder struct {
	mu   sync.Mutex
	seen []Refusal
}

func (r *recorder) add(x Refusal) { r.mu.Lock(); r.seen = append(r.seen, x); r.mu.Unlock() }
func (r *recorder) has(what, from string, reason error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, x := range r.seen {
		if x.What == what && x.From == from && errors.Is(x.Reason, reason) {
			return true
		}
	}
	return false
}
func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []string
	for _, x := range r.seen {
		s = append(s, x.String())
	}
	return strings.Join(s, "; ")
}

func startBox(t *testing.T, name, ip, peer string, key [][]byte, rec *recorder) *Membership {
	t.Helper()
	conf, err := NewSerfConfig(name, ip, 0, testKeys(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	m := NewMembership(conf, slog.New(slog.DiscardHandler), nil)
	if err := m.Authenticate(PairAuth{Keys: key, Self: name, Peer: peer, Witness: "dom0"}); err != nil {
		t.Fatal(err)
	}
	m.OnRefused(rec.add)
	if err := m.Start(Tags{Role: drbd.RoleSecondary, Disk: drbd.DiskUpToDate}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

// rawMember is a serf member with the gossip key and no pair key (a
// witness's credentials) that the test drives directly: it sends what it
// likes and answers queries with what answer returns.
func rawMember(t *testing.T, name, ip string, answer func(q *serf.Query) []byte) *serf.Serf {
	t.Helper()
	conf, err := NewSerfConfig(name, ip, 0, testKeys(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan serf.Event, 64)
	conf.EventCh = ch
	conf.Tags = Tags{Witness: true}.Map()
	s, err := serf.Create(conf)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-s.ShutdownCh():
				return
			case ev := <-ch:
				if q, ok := ev.(*serf.Query); ok && answer != nil {
					_ = q.Respond(answer(q))
				}
			}
		}
	}()
	t.Cleanup(func() {
		_ = s.Shutdown()
		<-done
	})
	return s
}

func joinAll(t *testing.T, to string, ms ...interface {
	Join([]string, bool) (int, error)
}) {
	t.Helper()
	for _, m := range ms {
		if _, err := m.Join([]string{to}, true); err != nil {
			t.Fatal(err)
		}
	}
}

type joiner struct{ m *Membership }

func (j joiner) Join(addrs []string, _ bool) (int, error) { return j.m.Join(addrs) }

// Real serf members on loopback: the boxes exchange signed intents and
// queries; the witness's (and a forger's) are refused and recorded, and
// the witness cannot touch the gossip keyring.
func TestMembershipAuthenticates(t *testing.T) {
	rec1, rec2 := &recorder{}, &recorder{}
	san1 := startBox(t, "san1", "127.0.0.21", "san2", pairKey(1), rec1)
	san2 := startBox(t, "san2", "127.0.0.22", "san1", pairKey(1), rec2)
	san2.SetQueryHandler(func(name string, payload []byte) []byte {
		if name == OutdateQuery && string(payload) == "r0" {
			return []byte(OutdateDone)
		}
		return []byte("unknown query")
	})
	wit := rawMember(t, "dom0", "127.0.0.23", func(q *serf.Query) []byte { return []byte("from the witness") })
	joinAll(t, san1.Addr(), joiner{san2}, wit)
	waitFor(t, 5*time.Second, "three members alive at san2", func() bool {
		p, w := san2.View("san1", "dom0")
		return p.Member == MemberAlive && w.Member == MemberAlive
	})

	intents := func(m *Membership) []Intent {
		var got []Intent
		for {
			select {
			case ev := <-m.Events():
				if ev.Kind == EventIntent {
					got = append(got, ev.Intent)
				}
			default:
				return got
			}
		}
	}

	t.Run("a signed intent from the peer is taken", func(t *testing.T) {
		if err := san1.SendIntent("san2", IntentStandby); err != nil {
			t.Fatal(err)
		}
		var got []Intent
		waitFor(t, 3*time.Second, "the intent at san2", func() bool { got = append(got, intents(san2)...); return len(got) > 0 })
		if len(got) != 1 || got[0] != IntentStandby {
			t.Errorf("san2 got %v, want [standby]", got)
		}
		if err := san1.SendIntent("dom0", IntentStandby); err == nil {
			t.Error("an intent for the witness was sent")
		}
	})

	t.Run("the witness's intents are refused and recorded", func(t *testing.T) {
		forged, _ := seal(pairKey(9)[0], message{Kind: intentEvent, From: "dom0", To: "san2", Time: time.Now(), Payload: []byte("standby")})
		asPeer, _ := seal(pairKey(9)[0], message{Kind: intentEvent, From: "san1", To: "san2", Time: time.Now(), Payload: []byte("standby")})
		for _, p := range [][]byte{[]byte("san2=standby"), forged, asPeer} {
			if err := wit.UserEvent(intentEvent, p, false); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, 3*time.Second, "san2 to record three refused intents", func() bool {
			return rec2.has("intent", "unknown", ErrUnsigned) && rec2.has("intent", "dom0", ErrWitness) && rec2.has("intent", "san1", ErrBadMAC)
		})
		if got := intents(san2); len(got) != 0 {
			t.Errorf("san2 took %v from the witness", got)
		}
	})

	t.Run("a replayed intent is refused", func(t *testing.T) {
		g := testGuard(t, "san1", "san2", pairKey(1), &clock{t: time.Now()})
		b, _, err := g.sign(intentEvent, "san2", [16]byte{}, []byte("none"))
		if err != nil {
			t.Fatal(err)
		}
		// Each call is a new serf event (serf drops only the same event
		// seen twice) carrying the same signed message.
		for range 3 {
			if err := wit.UserEvent(intentEvent, b, false); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, 3*time.Second, "san2 to refuse the replay", func() bool { return rec2.has("intent", "san1", ErrReplay) })
		if got := intents(san2); len(got) != 1 || got[0] != IntentNone {
			t.Errorf("san2 took %v, want the intent once", got)
		}
	})

	t.Run("a signed question gets a signed answer", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		got, err := san1.Ask(ctx, "san2", OutdateQuery, []byte("r0"))
		if err != nil || string(got) != OutdateDone {
			t.Fatalf("Ask = %q, %v", got, err)
		}
		if _, err := san1.Ask(ctx, "dom0", OutdateQuery, []byte("r0")); err == nil {
			t.Error("asked the witness")
		}
	})

	t.Run("the witness's questions are refused and not answered", func(t *testing.T) {
		forged, _ := seal(pairKey(9)[0], message{Kind: OutdateQuery, From: "san1", To: "san2", Time: time.Now(), Payload: []byte("r0")})
		for _, p := range [][]byte{[]byte("r0"), forged} {
			resp, err := wit.Query(OutdateQuery, p, &serf.QueryParam{FilterNodes: []string{"san2"}, Timeout: 500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			for r := range resp.ResponseCh() {
				t.Errorf("%s answered the witness: %q", r.From, r.Payload)
			}
		}
		waitFor(t, 3*time.Second, "san2 to record the refused questions", func() bool {
			return rec2.has("query "+OutdateQuery, "dom0", ErrWitness)
		})
	})

	t.Run("the witness cannot rotate the gossip keyring", func(t *testing.T) {
		resp, err := wit.KeyManager().InstallKey("CAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAg=")
		if err == nil {
			t.Errorf("install-key succeeded: %+v", resp)
		}
		if resp == nil || resp.NumErr != resp.NumNodes || resp.NumNodes != 3 {
			t.Fatalf("install-key: %+v, %v; want every member to refuse", resp, err)
		}
		for node, msg := range resp.Messages {
			if !strings.Contains(msg, "encryption not enabled") {
				t.Errorf("%s answered %q", node, msg)
			}
		}
		// Gossip is unchanged: the boxes still see each other.
		if err := san1.SetTags(Tags{Role: drbd.RoleSecondary, Disk: drbd.DiskUpToDate, Generation: 9}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 3*time.Second, "san1's new tags at san2", func() bool { p, _ := san2.View("san1", "dom0"); return p.Generation == 9 })
	})
	if t.Failed() {
		t.Logf("san1 refused: %s", rec1)
		t.Logf("san2 refused: %s", rec2)
	}
}

// An impostor under the peer's name (the witness's credentials: the
// gossip key, not the pair key) cannot answer for it.
func TestAskRefusesForgedAnswers(t *testing.T) {
	rec := &recorder{}
	san1 := startBox(t, "san1", "127.0.0.31", "san2", pairKey(1), rec)
	var mu sync.Mutex
	var reply func(q *serf.Query) []byte
	impostor := rawMember(t, "san2", "127.0.0.32", func(q *serf.Query) []byte {
		mu.Lock()
		defer mu.Unlock()
		return reply(q)
	})
	joinAll(t, san1.Addr(), impostor)
	waitFor(t, 5*time.Second, "the impostor alive at san1", func() bool { p, _ := san1.View("san2", ""); return p.Member == MemberAlive })

	knowsKey := testGuard(t, "san2", "san1", pairKey(1), &clock{t: time.Now()})
	for _, tc := range []struct {
		name  string
		reply func(q *serf.Query) []byte
		err   error
	}{
		{"unsigned", func(*serf.Query) []byte { return []byte(OutdateDone) }, ErrUnsigned},
		{"signed with another key", func(q *serf.Query) []byte {
			b, _ := seal(pairKey(9)[0], message{Kind: answerKind(q.Name), From: "san2", To: "san1", Time: time.Now(), Payload: []byte(OutdateDone)})
			return b
		}, ErrBadMAC},
		{"an answer to another question", func(q *serf.Query) []byte {
			b, _, _ := knowsKey.sign(answerKind(q.Name), "san1", [16]byte{7}, []byte(OutdateDone))
			return b
		}, ErrMisaddressed},
		{"the question sent back", func(q *serf.Query) []byte { return q.Payload }, ErrNotPeer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			reply = tc.reply
			mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			got, err := san1.Ask(ctx, "san2", OutdateQuery, []byte("r0"))
			if !errors.Is(err, tc.err) {
				t.Fatalf("Ask = %q, %v; want %v", got, err, tc.err)
			}
			if !rec.has("answer to "+OutdateQuery, "san2", tc.err) {
				t.Errorf("no refusal recorded: %s", rec)
			}
		})
	}
}

// A member with another gossip key cannot gossip with the pair at all.
func TestGossipNeedsTheKey(t *testing.T) {
	san1 := startMember(t, "san1", "127.0.0.41", Tags{Role: drbd.RoleSecondary})
	conf, err := NewSerfConfig("stranger", "127.0.0.42", 0, [][]byte{bytes.Repeat([]byte{3}, KeySize)}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	stranger := NewMembership(conf, slog.New(slog.DiscardHandler), nil)
	if err := stranger.Start(Tags{Witness: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stranger.Shutdown() })
	if n, err := stranger.Join([]string{san1.Addr()}); err == nil {
		t.Errorf("a member with another gossip key joined (%d contacted)", n)
	}
	if ms := san1.Members(); len(ms) != 0 {
		t.Errorf("san1 lists %v", ms)
	}

	// A key file with the old key second: a member that has both gossips
	// with one that has only the old key, and with one that has only the
	// new key.
	newKey := bytes.Repeat([]byte{4}, KeySize)
	confBoth, err := NewSerfConfig("rotating", "127.0.0.43", 0, [][]byte{newKey, testKey()}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	both := NewMembership(confBoth, slog.New(slog.DiscardHandler), nil)
	if err := both.Start(Tags{Witness: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = both.Shutdown() })
	if _, err := both.Join([]string{san1.Addr()}); err == nil {
		t.Error("a member sealing with a key san1 lacks joined it")
	}
	newOnly := startMemberKeys(t, "fresh", "127.0.0.44", [][]byte{newKey})
	if _, err := newOnly.Join([]string{both.Addr()}); err != nil {
		t.Fatalf("join a member that has the new key too: %v", err)
	}
	waitFor(t, 3*time.Second, "fresh and rotating to see each other", func() bool {
		p, _ := both.View("fresh", "")
		return p.Member == MemberAlive
	})
}

func startMemberKeys(t *testing.T, name, ip string, keys [][]byte) *Membership {
	t.Helper()
	conf, err := NewSerfConfig(name, ip, 0, keys, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	m := NewMembership(conf, slog.New(slog.DiscardHandler), nil)
	if err := m.Start(Tags{Witness: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

// A flood of forged messages is recorded at a bounded rate, and the next
// record says how many were left out.
func TestRefusalsAreRateLimited(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	conf, err := NewSerfConfig("san2", "127.0.0.1", 0, testKeys(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	m := NewMembership(conf, slog.New(slog.DiscardHandler), c.now)
	rec := &recorder{}
	m.OnRefused(rec.add)
	for range refusalBurst + 5 {
		m.refuse(Refusal{What: "intent", From: "unknown", Reason: ErrUnsigned})
	}
	if n := len(rec.seen); n != refusalBurst {
		t.Fatalf("%d refusals recorded at once, want %d", n, refusalBurst)
	}
	c.add(refusalEvery)
	m.refuse(Refusal{What: "intent", From: "unknown", Reason: ErrUnsigned})
	if n := len(rec.seen); n != refusalBurst+1 {
		t.Fatalf("%d refusals recorded, want %d", n, refusalBurst+1)
	}
	if last := rec.seen[len(rec.seen)-1]; !errors.Is(last.Reason, ErrUnsigned) || !strings.Contains(last.Reason.Error(), "and 5 more") {
		t.Errorf("the record after the flood: %v", last.Reason)
	}
}
