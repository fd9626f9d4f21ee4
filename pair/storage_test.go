package pair

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/sand-appliance/sand/drbd"
	"github.com/sand-appliance/sand/failover"
)

var update = flag.Bool("update", false, "rewrite the golden transcripts in testdata")

// checkGolden compares a transcript with testdata/NAME.golden.
func checkGolden(t *testing.T, name string, got []string) {
	t.Helper()
	file := name + ".golden"
	if *update {
		text := strings.Join(got, "\n") + "\n"
		if len(got) == 0 {
			text = ""
		}
		if err := os.WriteFile(filepath.Join("testdata", file), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if diff := cmp.Diff(readGolden(t, file), got); diff != "" {
		t.Errorf("transcript differs from testdata/%s (-want +got):\n%s", file, diff)
	}
}

func TestBringUpTranscripts(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		box     string // san1 sorts first and bootstraps a new pair
		proc    []string
		fail    map[string]error
		run     func(s *Storage) error
		wantErr string
	}{
		{
			name: "new disk: meta-data created, resource up, the first box lays out the pool",
			box:  "san1",
			proc: []string{procDown, procDown,
				proc84("WFConnection", "Secondary/Unknown", "Inconsistent/DUnknown"),
				proc84("Connected", "Secondary/Secondary", "Inconsistent/Inconsistent")},
			fail: map[string]error{"exec drbdadm dump-md": errors.New("No valid meta data found")},
			run:  func(s *Storage) error { return errors.Join(s.Prepare(ctx), s.Bootstrap(ctx)) },
		},
		{
			name: "new disk on the second box: it waits for the peer's sync",
			box:  "san2",
			proc: []string{procDown, procDown,
				proc84("Connected", "Secondary/Secondary", "Inconsistent/Inconsistent"),
				proc84("SyncTarget", "Secondary/Primary", "Inconsistent/UpToDate")},
			fail: map[string]error{"exec drbdadm dump-md": errors.New("No valid meta data found")},
			run:  func(s *Storage) error { return errors.Join(s.Prepare(ctx), s.Bootstrap(ctx)) },
		},
		{
			name: "unclean meta-data after a crash: attached as it is, never created anew",
			box:  "san1",
			proc: []string{procDown, procDown, proc84("WFConnection", "Secondary/Unknown", "UpToDate/DUnknown")},
			fail: map[string]error{"exec drbdadm dump-md": errors.New("Found meta data is \"unclean\", please apply-al first")},
			run:  func(s *Storage) error { return errors.Join(s.Prepare(ctx), s.Bootstrap(ctx)) },
		},
		{
			name: "sand restarted on a box whose resource is up: nothing to do",
			box:  "san1",
			proc: []string{proc84("Connected", "Primary/Secondary", "UpToDate/UpToDate")},
			run:  func(s *Storage) error { return errors.Join(s.Prepare(ctx), s.Bootstrap(ctx)) },
		},
		{
			name:    "a failed create-md stops the bring-up",
			box:     "san1",
			proc:    []string{procDown},
			fail:    map[string]error{"exec drbdadm dump-md": errors.New("No valid meta data found"), "exec drbdadm create-md": errors.New("device busy")},
			run:     func(s *Storage) error { return s.Prepare(ctx) },
			wantErr: "create meta-data for drbd resource \"r0\"",
		},
		{
			name:    "the peer of a new pair never comes",
			box:     "san1",
			proc:    []string{proc84("WFConnection", "Secondary/Unknown", "Inconsistent/DUnknown")},
			run:     func(s *Storage) error { s.BootstrapWait = 20 * time.Millisecond; return s.Bootstrap(ctx) },
			wantErr: "waited 20ms for the peer to connect (connection WFConnection, disk Inconsistent/DUnknown)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, tt.proc...)
			for k, v := range tt.fail {
				w.fail[k] = v
			}
			peer := "san2"
			if tt.box == "san2" {
				peer = "san1"
			}
			err := tt.run(newStorage(t, w, tt.box, peer))
			if tt.wantErr == "" && err != nil {
				t.Fatalf("bring-up: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("bring-up: error %v, want one containing %q", err, tt.wantErr)
			}
			checkGolden(t, "bringup-"+slug(tt.name), w.transcript())
		})
	}
}

// slug is a test name as a file name: its words before the colon.
func slug(name string) string {
	name, _, _ = strings.Cut(name, ":")
	return strings.ReplaceAll(strings.TrimSpace(name), " ", "-")
}

func TestPoolStepTranscripts(t *testing.T) {
	t.Run("crash start: vgchange with thin_check, metadata volume, dbroot", func(t *testing.T) {
		w := newWorld(t)
		s := newStorage(t, w, "san2", "san1")
		if err := s.PoolStep().Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		checkGolden(t, "pool-crash-start", w.transcript())
	})
	t.Run("demotion: unmount, record, deactivate; the record is the peer's answer", func(t *testing.T) {
		w := newWorld(t)
		w.active = activeGroup(t)
		w.mounted["/var/lib/sand"], w.mounted["/var/target"] = true, true
		s := newStorage(t, w, "san1", "san2")
		if err := s.PoolStep().Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		checkGolden(t, "pool-demotion", w.transcript())
		if len(s.AnswerHandOver([]byte("sand"))) == 0 {
			t.Error("no hand-over record for the peer after a demotion")
		}
		if got := s.AnswerHandOver([]byte("other")); got != nil {
			t.Errorf("answered %d bytes for another volume group", len(got))
		}
	})
	t.Run("hand-over start: the peer's record replayed, no LVM", func(t *testing.T) {
		old := newWorld(t)
		old.active = activeGroup(t)
		from := newStorage(t, old, "san1", "san2")
		if err := from.PoolStep().Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
		w := newWorld(t)
		s := newStorage(t, w, "san2", "san1")
		s.AskPeer = func(ctx context.Context) ([]byte, error) { return from.AnswerHandOver([]byte("sand")), nil }
		ctx := failover.WithHandOver(context.Background())
		if err := errors.Join(s.AskStep().Start(ctx), s.PoolStep().Start(ctx)); err != nil {
			t.Fatal(err)
		}
		checkGolden(t, "pool-handover-start", w.transcript())
	})
	t.Run("hand-over start without a record: vgchange without thin_check", func(t *testing.T) {
		w := newWorld(t)
		s := newStorage(t, w, "san2", "san1")
		s.AskPeer = func(ctx context.Context) ([]byte, error) { return nil, nil }
		ctx := failover.WithHandOver(context.Background())
		if err := errors.Join(s.AskStep().Start(ctx), s.PoolStep().Start(ctx)); err != nil {
			t.Fatal(err)
		}
		checkGolden(t, "pool-handover-no-record", w.transcript())
	})
	t.Run("hand-over start with a forged record: refused, vgchange instead", func(t *testing.T) {
		w := newWorld(t)
		s := newStorage(t, w, "san2", "san1")
		forged := activeGroup(t)
		forged.Devices[0].Name = "root-disk" // not a volume of the group
		b, err := forged.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		s.AskPeer = func(ctx context.Context) ([]byte, error) { return b, nil }
		ctx := failover.WithHandOver(context.Background())
		if err := errors.Join(s.AskStep().Start(ctx), s.PoolStep().Start(ctx)); err != nil {
			t.Fatal(err)
		}
		checkGolden(t, "pool-handover-forged", w.transcript())
	})
}

// TestPromotionRolledBack runs DRBD, pool and a failing step after them as
// the failover's group does: what started is stopped again, in reverse.
func TestPromotionRolledBack(t *testing.T) {
	for _, tt := range []struct {
		name string
		fail string
	}{
		{"mount fails", "mount /dev/sand/meta"},
		{"vgchange fails", "exec vgchange"},
		{"dbroot bind fails", "mount /var/lib/sand/lio-dbroot"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, proc84("Connected", "Secondary/Secondary", "UpToDate/UpToDate"))
			w.fail[tt.fail] = errors.New("injected failure")
			s := newStorage(t, w, "san1", "san2")
			st := &failover.DRBDStorage{Admin: s.Admin, Resource: s.Resource}
			g := &failover.Group{Log: slog.New(slog.DiscardHandler), Steps: []failover.Step{st.Step(), s.PoolStep()}}
			_, err := g.Start(context.Background())
			if err == nil || !strings.Contains(err.Error(), "injected failure") {
				t.Fatalf("group start: %v, want the injected failure", err)
			}
			checkGolden(t, "rollback-"+slug(tt.name), w.transcript())
		})
	}
}

func TestResourceFromConfig(t *testing.T) {
	a, err := Resource(testConfig("san1", "san2"), "/usr/sbin/sand")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Resource(testConfig("san2", "san1"), "/usr/sbin/sand")
	if err != nil {
		t.Fatal(err)
	}
	if string(drbd.Render84(a)) != string(drbd.Render84(b)) {
		t.Errorf("the two boxes render different resources:\n%s\n---\n%s", drbd.Render84(a), drbd.Render84(b))
	}
	if a.Protocol != "C" || a.Fencing != drbd.FencingResourceAndStonith || a.Handlers.FencePeer != "/usr/sbin/sand fence-peer" {
		t.Errorf("resource %+v: want protocol C, resource-and-stonith fencing through sand fence-peer", a)
	}
	bad := testConfig("san1", "san2")
	bad.Pair.DRBD.PeerAddress = "not-an-address"
	if _, err := Resource(bad, "/usr/sbin/sand"); err == nil || !strings.Contains(err.Error(), "pair.drbd.peer_address") {
		t.Errorf("bad peer address: %v, want an error naming pair.drbd.peer_address", err)
	}
}
