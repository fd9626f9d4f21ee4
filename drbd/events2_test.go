package drbd

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseEvent(t *testing.T) {
	cet := time.FixedZone("", 3600)
	tests := []struct {
		name string
		line string
		want Event
	}{
		{
			name: "8.4 resource",
			line: "exists resource name:r0 role:Primary suspended:no write-ordering:flush",
			want: Event{Action: "exists", Object: "resource", Fields: map[string]string{"name": "r0", "role": "Primary", "suspended": "no", "write-ordering": "flush"}},
		},
		{
			name: "end of initial state",
			line: "exists -",
			want: Event{Action: "exists", Object: "-", Fields: map[string]string{}},
		},
		{
			name: "lost events",
			line: "- skipped 3",
			want: Event{Action: "skipped", Skipped: 3},
		},
		{
			name: "path addresses keep their colons",
			line: "exists path name:r0 peer-node-id:1 conn-name:san2 local:ipv4:10.99.1.11:7789 peer:ipv4:10.99.1.12:7789 established:yes",
			want: Event{Action: "exists", Object: "path", Fields: map[string]string{
				"name": "r0", "peer-node-id": "1", "conn-name": "san2",
				"local": "ipv4:10.99.1.11:7789", "peer": "ipv4:10.99.1.12:7789", "established": "yes",
			}},
		},
		{
			name: "timestamp",
			line: "2026-11-22T10:15:02.500000+01:00 change peer-device name:r0 peer-node-id:0 conn-name:san1 volume:0 done:99.90",
			want: Event{
				Time:   time.Date(2026, 11, 22, 10, 15, 2, 500000000, cet),
				Action: "change", Object: "peer-device",
				Fields: map[string]string{"name": "r0", "peer-node-id": "0", "conn-name": "san1", "volume": "0", "done": "99.90"},
			},
		},
		{
			name: "colors are stripped",
			line: "change device name:r0 volume:0 minor:0 disk:\x1b[1;32mUpToDate\x1b[0m",
			want: Event{Action: "change", Object: "device", Fields: map[string]string{"name": "r0", "volume": "0", "minor": "0", "disk": "UpToDate"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEvent(tt.line)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseEventErrors(t *testing.T) {
	tests := []struct {
		name, line, want string
	}{
		{name: "empty", line: "", want: "want ACTION OBJECT"},
		{name: "unknown action", line: "exploded resource name:r0", want: `unknown action "exploded"`},
		{name: "unknown object", line: "change volcano name:r0", want: `unknown object "volcano"`},
		{name: "not key:value", line: "change resource name:r0 Primary", want: `field "Primary"`},
		{name: "duplicate key", line: "change resource name:r0 role:Primary role:Secondary", want: `field "role" twice`},
		{name: "no name", line: "change resource role:Primary", want: "no resource name"},
		{name: "bad skipped count", line: "- skipped lots", want: "skipped count"},
		{name: "fields after the end marker", line: "exists - name:r0", want: "unexpected fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseEvent(tt.line)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// applyFile feeds a golden events2 capture into an EventState and returns the
// state after the initial dump and at the end.
func applyFile(t *testing.T, name string) (initial, final []Status) {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "events2", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var s EventState
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ev, err := ParseEvent(sc.Text())
		if err != nil {
			t.Fatal(err)
		}
		wasDone := s.InitialDone
		if err := s.Apply(ev); err != nil {
			t.Fatal(err)
		}
		if !wasDone && s.InitialDone {
			initial = s.Statuses()
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return initial, s.Statuses()
}

func TestEventStateGolden(t *testing.T) {
	tests := []struct {
		name          string
		file          string
		wantInitial   []Status
		wantFinal     []Status
		sameAsInitial bool
	}{
		{
			name: "8.4 --now, connected primary",
			file: "drbd84-now-connected-primary.txt",
			wantInitial: []Status{{
				Resource: "r0", Role: RolePrimary, PeerRole: RoleSecondary, Connection: ConnConnected,
				Disk: DiskUpToDate, PeerDisk: DiskUpToDate,
			}},
			sameAsInitial: true,
		},
		{
			name: "8.4 stream: the primary dies, this node takes over",
			file: "drbd84-stream-peer-dies.txt",
			wantInitial: []Status{{
				Resource: "r0", Role: RoleSecondary, PeerRole: RolePrimary, Connection: ConnConnected,
				Disk: DiskUpToDate, PeerDisk: DiskUpToDate,
			}},
			wantFinal: []Status{{
				Resource: "r0", Role: RolePrimary, PeerRole: RoleUnknown, Connection: ConnWFConnection,
				Disk: DiskUpToDate, PeerDisk: DiskDUnknown, OutOfSync: 68 << 10,
			}},
		},
		{
			name: "9 --now, resync source with progress",
			file: "drbd9-now-syncsource.txt",
			wantInitial: []Status{{
				Resource: "r0", Role: RolePrimary, PeerRole: RoleSecondary, Connection: ConnSyncSource,
				Disk: DiskUpToDate, PeerDisk: DiskInconsistent, SyncPercent: 33.34, OutOfSync: 87344 << 10,
			}},
			sameAsInitial: true,
		},
		{
			name: "9 stream with timestamps: resync finishes",
			file: "drbd9-stream-timestamps.txt",
			wantInitial: []Status{{
				Resource: "r0", Role: RoleSecondary, PeerRole: RolePrimary, Connection: ConnSyncTarget,
				Disk: DiskInconsistent, PeerDisk: DiskUpToDate, SyncPercent: 90,
			}},
			wantFinal: []Status{{
				Resource: "r0", Role: RoleSecondary, PeerRole: RolePrimary, Connection: ConnConnected,
				Disk: DiskUpToDate, PeerDisk: DiskUpToDate,
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			initial, final := applyFile(t, tt.file)
			if diff := cmp.Diff(tt.wantInitial, initial); diff != "" {
				t.Errorf("after the initial state (-want +got):\n%s", diff)
			}
			want := tt.wantFinal
			if tt.sameAsInitial {
				want = tt.wantInitial
			}
			if diff := cmp.Diff(want, final); diff != "" {
				t.Errorf("at the end (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEventStateSkippedAndDestroy(t *testing.T) {
	var s EventState
	for _, line := range []string{
		"exists resource name:r0 role:Secondary suspended:no",
		"exists device name:r0 volume:0 minor:0 disk:UpToDate",
		"exists resource name:r1 role:Secondary suspended:no",
		"exists device name:r1 volume:0 minor:1 disk:Diskless",
		"exists -",
		"destroy resource name:r1",
	} {
		ev, err := ParseEvent(line)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Apply(ev); err != nil {
			t.Fatal(err)
		}
	}
	want := []Status{{Resource: "r0", Role: RoleSecondary, Connection: ConnStandAlone, Disk: DiskUpToDate}}
	if diff := cmp.Diff(want, s.Statuses()); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	ev, err := ParseEvent("- skipped 2")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ev); !errors.Is(err, ErrEventsLost) {
		t.Errorf("Apply(skipped) = %v, want ErrEventsLost", err)
	}
	bad, err := ParseEvent("change device name:r0 volume:0 disk:Melted")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(bad); err == nil || !strings.Contains(err.Error(), `unknown drbd disk state "Melted"`) {
		t.Errorf("Apply(bad disk) = %v", err)
	}
	if diff := cmp.Diff(want, s.Statuses()); diff != "" {
		t.Errorf("a rejected event changed the state (-want +got):\n%s", diff)
	}
}

func TestEventsCommand(t *testing.T) {
	tests := []struct {
		name string
		v    Version
		want []string
	}{
		{name: "8.4 needs drbdsetup-84", v: v8411, want: []string{"/lib/drbd/drbdsetup-84", "events2", "--now", "--statistics", "r0"}},
		{name: "9", v: Version{Major: 9, Minor: 2}, want: []string{"drbdsetup", "events2", "--now", "--statistics", "r0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, EventsCommand(tt.v, "r0")); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
