package pair

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/appliance/pool/file"
	"github.com/sand-appliance/sand/drbd"
	"github.com/sand-appliance/sand/events"
	"github.com/sand-appliance/sand/failover"
)

// The boxes' keys in these tests: the gossip key all three members hold,
// the pair key only the boxes hold, and another pair key.
var (
	gossipKeys = [][]byte{bytes.Repeat([]byte{7}, failover.KeySize)}
	pairKeys   = [][]byte{bytes.Repeat([]byte{1}, failover.PairKeySize)}
	otherKeys  = [][]byte{bytes.Repeat([]byte{9}, failover.PairKeySize)}
)

// member starts a serf member on ip with pair credentials (none for nil
// keys: a witness).
func member(t *testing.T, name, peer, ip string, keys [][]byte) *failover.Membership {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	conf, err := failover.NewSerfConfig(name, ip, 0, gossipKeys, log)
	if err != nil {
		t.Fatal(err)
	}
	m := failover.NewMembership(conf, log, nil)
	if keys != nil {
		if err := m.Authenticate(failover.PairAuth{Keys: keys, Self: name, Peer: peer, Witness: "dom0"}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

// answeringBox is box name of a DRBD pair in w, its membership started on
// ip with the pair key, answering its peer's queries as in sand.
func answeringBox(t *testing.T, w *world, name, peer, ip string) *Pair {
	t.Helper()
	cfg := testConfig(name, peer)
	cfg.Pair.Witness = "dom0"
	log := slog.New(slog.DiscardHandler)
	m := member(t, name, peer, ip, pairKeys)
	p, err := file.New(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := New(Deps{Config: cfg, Box: appliance.NewBox(cfg, p, nil, log), Members: m,
		Run: w, Mounts: w, Devices: w, DRBD: &drbd.Admin{Run: w, ReadFile: w.readProc, ConfDir: t.TempDir()}, Log: log, Self: "/usr/sbin/sand"})
	if err != nil {
		t.Fatal(err)
	}
	pr.listen()
	if err := m.Start(failover.Tags{}); err != nil {
		t.Fatal(err)
	}
	return pr
}

func join(t *testing.T, to *failover.Membership, ms ...*failover.Membership) {
	t.Helper()
	for _, m := range ms {
		if _, err := m.Join([]string{to.Addr()}); err != nil {
			t.Fatal(err)
		}
	}
}

func waitAlive(t *testing.T, m *failover.Membership, name string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		for _, mb := range m.Members() {
			if mb.Name == name && mb.Status == failover.MemberAlive {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited 5s for %s to be alive", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// refused lists the box's message-refused events.
func refused(pr *Pair) []string {
	var out []string
	for _, e := range pr.box.Events().List() {
		if e.Kind == events.MessageRefused {
			out = append(out, e.Message)
		}
	}
	return out
}

func waitRefused(t *testing.T, pr *Pair, want string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		for _, m := range refused(pr) {
			if strings.Contains(m, want) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no message-refused event with %q; have %q", want, refused(pr))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The fence's outdate question crosses the gossip network signed: the
// peer outdates for its peer only, never for the witness or a box with
// another pair key, and records each refusal.
func TestFenceOutdateQueryIsSigned(t *testing.T) {
	w := newWorld(t, proc84("WFConnection", "Secondary/Unknown", "Outdated/DUnknown"))
	san2 := answeringBox(t, w, "san2", "san1", "127.0.0.61")
	san1 := member(t, "san1", "san2", "127.0.0.62", pairKeys)
	forger := member(t, "san1", "san2", "127.0.0.63", otherKeys)
	witness := member(t, "dom0", "san2", "127.0.0.64", pairKeys)
	fence := func(m *failover.Membership) (drbd.FenceOutcome, []string) {
		var recorded []string
		var mu sync.Mutex
		f := &Fence{Peer: "san2", Witness: "dom0", Resource: "r0", Members: m, Wait: 1500 * time.Millisecond,
			Record: func(kind events.Kind, format string, args ...any) {
				mu.Lock()
				recorded = append(recorded, fmt.Sprintf(format, args...))
				mu.Unlock()
			}}
		out := f.Run(context.Background())
		return out, recorded
	}

	if err := san1.Start(failover.Tags{}); err != nil {
		t.Fatal(err)
	}
	join(t, san2.members, san1)
	waitAlive(t, san1, "san2")
	if out, rec := fence(san1); out != drbd.FenceOutdated {
		t.Fatalf("fence from the peer = %s (%q), want outdated", out, rec)
	}
	if got := w.transcript(); len(got) == 0 || got[0] != "exec drbdadm outdate r0" {
		t.Fatalf("san2 ran %q, want drbdadm outdate r0", got)
	}
	if err := san1.Shutdown(); err != nil {
		t.Fatal(err)
	}

	// The same name under another pair key: a forger that took san1's
	// place on the network.
	if err := forger.Start(failover.Tags{}); err != nil {
		t.Fatal(err)
	}
	join(t, san2.members, forger)
	waitAlive(t, forger, "san2")
	if out, _ := fence(forger); out != drbd.FenceUnreachable {
		t.Errorf("fence under another pair key = %s, want unreachable", out)
	}
	waitRefused(t, san2, "refused query sand-outdate from san1: bad MAC")

	// The witness, even were it to hold the pair key.
	if err := witness.Start(failover.Tags{Witness: true}); err != nil {
		t.Fatal(err)
	}
	join(t, san2.members, witness)
	waitAlive(t, witness, "san2")
	if _, err := witness.Ask(context.Background(), "san2", failover.OutdateQuery, []byte("r0")); err == nil {
		t.Error("the witness got an answer")
	}
	waitRefused(t, san2, "refused query sand-outdate from dom0: from the witness, which only votes")
	if got := w.transcript(); len(got) != 0 {
		t.Errorf("san2 ran %q for a refused question", got)
	}
}

// The hand-over record: the peer's signed answer is replayed; an
// impostor's (the gossip key, not the pair key) is refused and recorded,
// and the box activates with LVM instead.
func TestHandOverAnswerIsChecked(t *testing.T) {
	record, err := activeGroup(t).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the peer's signed record is replayed", func(t *testing.T) {
		san1 := answeringBox(t, newWorld(t), "san1", "san2", "127.0.0.71")
		san1.storage.setHandOver(record)
		asker := member(t, "san2", "san1", "127.0.0.72", pairKeys)
		if err := asker.Start(failover.Tags{}); err != nil {
			t.Fatal(err)
		}
		join(t, san1.members, asker)
		waitAlive(t, asker, "san1")
		w := newWorld(t)
		s := newStorage(t, w, "san2", "san1")
		s.AskPeer = func(ctx context.Context) ([]byte, error) {
			return asker.Ask(ctx, "san1", failover.HandOverQuery, []byte("sand"))
		}
		ctx := failover.WithHandOver(context.Background())
		if err := errors.Join(s.AskStep().Start(ctx), s.PoolStep().Start(ctx)); err != nil {
			t.Fatal(err)
		}
		checkGolden(t, "pool-handover-start", w.transcript())
	})

	forged := activeGroup(t)
	forged.Devices[0].Targets[0].Params = "/dev/vda 0"
	forgedRecord, err := forged.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	t.Run("a signed record that maps /dev/vda is refused by its content", func(t *testing.T) {
		// A peer that holds the pair key and lies (compromised): the
		// record's own checks still refuse it, and LVM activates.
		san1 := answeringBox(t, newWorld(t), "san1", "san2", "127.0.0.75")
		san1.storage.setHandOver(forgedRecord)
		asker := member(t, "san2", "san1", "127.0.0.76", pairKeys)
		if err := asker.Start(failover.Tags{}); err != nil {
			t.Fatal(err)
		}
		join(t, san1.members, asker)
		waitAlive(t, asker, "san1")
		w := newWorld(t)
		s := newStorage(t, w, "san2", "san1")
		s.AskPeer = func(ctx context.Context) ([]byte, error) {
			return asker.Ask(ctx, "san1", failover.HandOverQuery, []byte("sand"))
		}
		ctx := failover.WithHandOver(context.Background())
		if err := errors.Join(s.AskStep().Start(ctx), s.PoolStep().Start(ctx)); err != nil {
			t.Fatal(err)
		}
		checkGolden(t, "pool-handover-forged", w.transcript())
	})
	for _, tc := range []struct {
		name   string
		answer func(q *serf.Query) []byte
		want   string
	}{
		{"an unsigned record", func(*serf.Query) []byte { return record }, "not a signed message"},
		{"a record that maps /dev/vda, unsigned", func(*serf.Query) []byte { return forgedRecord }, "not a signed message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			san2 := answeringBox(t, w, "san2", "san1", "127.0.0.73")
			impostor := rawMember(t, "san1", "127.0.0.74", tc.answer)
			if _, err := impostor.Join([]string{san2.members.Addr()}, true); err != nil {
				t.Fatal(err)
			}
			waitAlive(t, san2.members, "san1")
			san2.storage.AskPeer = func(ctx context.Context) ([]byte, error) {
				return san2.members.Ask(ctx, "san1", failover.HandOverQuery, []byte("sand"))
			}
			ctx := failover.WithHandOver(context.Background())
			if err := errors.Join(san2.storage.AskStep().Start(ctx), san2.storage.PoolStep().Start(ctx)); err != nil {
				t.Fatal(err)
			}
			checkGolden(t, "pool-handover-forged", w.transcript())
			waitRefused(t, san2, "refused answer to sand-handover from san1: "+tc.want)
		})
	}
}

// rawMember is a serf member with the gossip key only (a witness's
// credentials) that answers every query with answer's bytes.
func rawMember(t *testing.T, name, ip string, answer func(q *serf.Query) []byte) *serf.Serf {
	t.Helper()
	conf, err := failover.NewSerfConfig(name, ip, 0, gossipKeys, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan serf.Event, 64)
	conf.EventCh = ch
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
				if q, ok := ev.(*serf.Query); ok {
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

func TestPairAuthFromConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig("san1", "san2")
	cfg.Pair.Witness = "dom0"
	if _, err := PairAuth(cfg); err == nil || !strings.Contains(err.Error(), "pair_key_file is empty") {
		t.Errorf("no pair key file: %v", err)
	}
	key := filepath.Join(dir, "pair.key")
	cfg.Pair.PairKeyFile = key
	if err := os.WriteFile(key, []byte("AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := PairAuth(cfg); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a pair key readable by others: %v", err)
	}
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := PairAuth(cfg)
	if err != nil || len(a.Keys) != 1 || !bytes.Equal(a.Keys[0], pairKeys[0]) || a.Self != "san1" || a.Peer != "san2" || a.Witness != "dom0" {
		t.Errorf("PairAuth = %+v, %v", a, err)
	}
	if err := os.WriteFile(key, []byte("c2hvcnQ=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := PairAuth(cfg); err == nil || !strings.Contains(err.Error(), "pair key") {
		t.Errorf("a short pair key: %v", err)
	}
}
