package drbd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseStatusJSONGolden(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []Status
	}{
		{
			name: "connected primary",
			file: "connected-primary.json",
			want: []Status{{
				Resource: "r0", Role: RolePrimary, PeerRole: RoleSecondary, Connection: ConnConnected,
				Disk: DiskUpToDate, PeerDisk: DiskUpToDate,
			}},
		},
		{
			name: "resync source with sync details",
			file: "syncsource.json",
			want: []Status{{
				Resource: "r0", Role: RolePrimary, PeerRole: RoleSecondary, Connection: ConnSyncSource,
				Disk: DiskUpToDate, PeerDisk: DiskInconsistent,
				SyncPercent: 33.34, SyncRemaining: 3 * time.Second, OutOfSync: 87344 << 10,
			}},
		},
		{
			name: "secondary waiting for its peer",
			file: "connecting-secondary.json",
			want: []Status{{
				Resource: "r0", Role: RoleSecondary, PeerRole: RoleUnknown, Connection: ConnWFConnection,
				Disk: DiskOutdated, PeerDisk: DiskDUnknown,
			}},
		},
		{
			name: "StandAlone primary with frozen I/O",
			file: "standalone-suspended.json",
			want: []Status{{
				Resource: "r0", Role: RolePrimary, PeerRole: RoleUnknown, Connection: ConnStandAlone,
				Disk: DiskUpToDate, PeerDisk: DiskDUnknown, Suspended: true, OutOfSync: 4096 << 10,
			}},
		},
		{
			name: "two resources, no connections",
			file: "two-resources-no-connection.json",
			want: []Status{
				{Resource: "meta", Minor: 1, Role: RoleSecondary, Connection: ConnStandAlone, Disk: DiskDiskless},
				{Resource: "r0", Role: RoleSecondary, Connection: ConnStandAlone, Disk: DiskConsistent},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "status-json", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseStatusJSON(data)
			if err != nil {
				t.Fatalf("ParseStatusJSON: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseStatusJSONErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "not json", in: "r0 role:Primary", want: "parse drbdsetup status --json"},
		{name: "object, not a list", in: `{"name":"r0"}`, want: "cannot unmarshal"},
		{name: "unknown role", in: `[{"name":"r0","role":"Boss","devices":[{"disk-state":"UpToDate"}]}]`, want: `unknown drbd role "Boss"`},
		{name: "unknown disk", in: `[{"name":"r0","role":"Primary","devices":[{"disk-state":"Fine"}]}]`, want: `unknown drbd disk state "Fine"`},
		{
			name: "unknown replication state",
			in:   `[{"name":"r0","role":"Primary","devices":[{"disk-state":"UpToDate"}],"connections":[{"connection-state":"Connected","peer-role":"Secondary","peer_devices":[{"replication-state":"Dancing","peer-disk-state":"UpToDate"}]}]}]`,
			want: `unknown drbd replication state "Dancing"`,
		},
		{
			name: "unknown connection state",
			in:   `[{"name":"r0","role":"Primary","devices":[{"disk-state":"UpToDate"}],"connections":[{"connection-state":"Waving","peer-role":"Unknown"}]}]`,
			want: `unknown drbd connection state "Waving"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseStatusJSON([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestConnState9(t *testing.T) {
	tests := []struct {
		name       string
		conn, repl string
		want       ConnState
	}{
		{name: "connecting", conn: "Connecting", repl: "Off", want: ConnWFConnection},
		{name: "handshake", conn: "Connected", repl: "Off", want: ConnWFReportParams},
		{name: "established", conn: "Connected", repl: "Established", want: ConnConnected},
		{name: "resync", conn: "Connected", repl: "SyncTarget", want: ConnSyncTarget},
		{name: "paused", conn: "Connected", repl: "PausedSyncS", want: ConnPausedSyncS},
		{name: "ahead", conn: "Connected", repl: "Ahead", want: ConnAhead},
		{name: "standalone", conn: "StandAlone", repl: "Off", want: ConnStandAlone},
		{name: "network failure", conn: "NetworkFailure", want: ConnNetworkFailure},
		{name: "tear down", conn: "TearDown", want: ConnTearDown},
		{name: "8.4 spelling of a connected state", conn: "SyncSource", repl: "SyncSource", want: ConnSyncSource},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := connState9(tt.conn, tt.repl)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("connState9(%q, %q) = %v, want %v", tt.conn, tt.repl, got, tt.want)
			}
		})
	}
}
