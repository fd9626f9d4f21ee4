package drbd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var v8411 = Version{Major: 8, Minor: 4, Patch: 11, API: 1, ProtoMin: 86, ProtoMax: 101}

func TestParseProcDRBDGolden(t *testing.T) {
	tests := []struct {
		name string
		file string
		want Proc
	}{
		{
			name: "connected primary",
			file: "connected-primary.txt",
			want: Proc{Version: v8411, Devices: []Status{{
				Role: RolePrimary, PeerRole: RoleSecondary, Connection: ConnConnected,
				Disk: DiskUpToDate, PeerDisk: DiskUpToDate, Protocol: "C",
			}}},
		},
		{
			name: "real capture: connected secondary",
			file: "real-blog-connected-secondary.txt",
			want: Proc{Version: v8411, Devices: []Status{{
				Role: RoleSecondary, PeerRole: RolePrimary, Connection: ConnConnected,
				Disk: DiskUpToDate, PeerDisk: DiskUpToDate, Protocol: "C",
			}}},
		},
		{
			name: "real capture: waiting for the peer",
			file: "real-blog-wfconnection.txt",
			want: Proc{Version: v8411, Devices: []Status{{
				Role: RoleSecondary, PeerRole: RoleUnknown, Connection: ConnWFConnection,
				Disk: DiskUpToDate, PeerDisk: DiskDUnknown, Protocol: "C",
			}}},
		},
		{
			name: "real capture: module loaded, resource down",
			file: "real-blog-down.txt",
			want: Proc{Version: v8411},
		},
		{
			name: "initial sync, source, KiB progress",
			file: "syncsource.txt",
			want: Proc{Version: v8411, Devices: []Status{{
				Role: RolePrimary, PeerRole: RoleSecondary, Connection: ConnSyncSource,
				Disk: DiskUpToDate, PeerDisk: DiskInconsistent, Protocol: "C",
				SyncPercent: 34.4, SyncRemaining: 2 * time.Second, OutOfSync: 87344 << 10,
			}}},
		},
		{
			name: "resync target, MiB progress and want",
			file: "synctarget-large.txt",
			want: Proc{Version: v8411, Devices: []Status{{
				Role: RoleSecondary, PeerRole: RolePrimary, Connection: ConnSyncTarget,
				Disk: DiskInconsistent, PeerDisk: DiskUpToDate, Protocol: "C",
				SyncPercent: 33.1, SyncRemaining: 17*time.Minute + 52*time.Second, OutOfSync: 70254592 << 10,
			}}},
		},
		{
			name: "resync paused by the admin",
			file: "pausedsynct.txt",
			want: Proc{Version: v8411, Devices: []Status{{
				Role: RoleSecondary, PeerRole: RolePrimary, Connection: ConnPausedSyncT,
				Disk: DiskInconsistent, PeerDisk: DiskUpToDate, Protocol: "C",
				ResyncSuspended: true, OutOfSync: 120792 << 10,
			}}},
		},
		{
			name: "split brain: StandAlone primary, no net config, no protocol",
			file: "splitbrain-standalone.txt",
			want: Proc{Version: v8411, Devices: []Status{{
				Role: RolePrimary, PeerRole: RoleUnknown, Connection: ConnStandAlone,
				Disk: DiskUpToDate, PeerDisk: DiskDUnknown, OutOfSync: 4096 << 10,
			}}},
		},
		{
			name: "split brain: the other primary keeps waiting",
			file: "splitbrain-wfconnection.txt",
			want: Proc{Version: v8411, Devices: []Status{{
				Role: RolePrimary, PeerRole: RoleUnknown, Connection: ConnWFConnection,
				Disk: DiskUpToDate, PeerDisk: DiskDUnknown, Protocol: "C", OutOfSync: 6144 << 10,
			}}},
		},
		{
			name: "unconfigured minor and a hole in the minors",
			file: "unconfigured-and-hole.txt",
			want: Proc{Version: v8411, Devices: []Status{
				{Minor: 0, Connection: ConnUnconfigured},
				{Minor: 2, Role: RoleSecondary, Connection: ConnStandAlone, Disk: DiskOutdated, PeerDisk: DiskDUnknown},
			}},
		},
		{
			name: "primary detached after an I/O error",
			file: "diskless-primary.txt",
			want: Proc{Version: v8411, Devices: []Status{{
				Role: RolePrimary, PeerRole: RoleSecondary, Connection: ConnConnected,
				Disk: DiskDiskless, PeerDisk: DiskUpToDate, Protocol: "C",
			}}},
		},
		{
			name: "I/O suspended while fence-peer runs",
			file: "suspended-fencing.txt",
			want: Proc{Version: v8411, Devices: []Status{{
				Role: RolePrimary, PeerRole: RoleUnknown, Connection: ConnWFConnection,
				Disk: DiskUpToDate, PeerDisk: DiskDUnknown, Protocol: "C", Suspended: true,
			}}},
		},
		{
			name: "online verify",
			file: "verifys.txt",
			want: Proc{Version: v8411, Devices: []Status{{
				Role: RolePrimary, PeerRole: RoleSecondary, Connection: ConnVerifyS,
				Disk: DiskUpToDate, PeerDisk: DiskUpToDate, Protocol: "C",
				SyncPercent: 78.2, SyncRemaining: time.Second,
			}}},
		},
		{
			name: "new resource before the first promotion",
			file: "new-inconsistent.txt",
			want: Proc{Version: v8411, Devices: []Status{{
				Role: RoleSecondary, PeerRole: RoleUnknown, Connection: ConnWFConnection,
				Disk: DiskInconsistent, PeerDisk: DiskDUnknown, Protocol: "C", OutOfSync: 131032 << 10,
			}}},
		},
		{
			name: "DRBD 9 lists no devices",
			file: "drbd9.txt",
			want: Proc{Version: Version{Major: 9, Minor: 2, Patch: 12, API: 2, ProtoMin: 86, ProtoMax: 122}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "proc", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseProcDRBD(data)
			if err != nil {
				t.Fatalf("ParseProcDRBD: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseProcDRBD mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseProcDRBDVariants(t *testing.T) {
	const head = "version: 8.4.11 (api:1/proto:86-101)\nsrcversion: 5AD0000000000000000000F \n"
	tests := []struct {
		name string
		in   string
		want Status
	}{
		{
			name: "older kernels: MiB progress without a line break before finish",
			in: head + " 0: cs:SyncTarget ro:Secondary/Primary ds:Inconsistent/UpToDate C r-----\n" +
				"    ns:0 nr:1 dw:1 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:b oos:70254592\n" +
				"\t[=====>..............] sync'ed: 33.1% (68608/102400)Mfinish: 1:02:03 speed: 65,536 (61,440) want: 102,400 K/sec (stalled)\n",
			want: Status{Role: RoleSecondary, PeerRole: RolePrimary, Connection: ConnSyncTarget, Disk: DiskInconsistent,
				PeerDisk: DiskUpToDate, Protocol: "C", SyncPercent: 33.1, SyncRemaining: time.Hour + 2*time.Minute + 3*time.Second,
				OutOfSync: 70254592 << 10},
		},
		{
			name: "proc_details lines are skipped",
			in: head + " 0: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----\n" +
				"    ns:1 nr:0 dw:0 dr:1 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:4\n" +
				"\t[>....................] sync'ed:  5.0% (4/4)K\n\tfinish: 0:00:00 speed: 1 (1 -- 1) K/sec\n" +
				"\t  5% sector pos: 8/262064\n" +
				"\tresync: used:0/61 hits:0 misses:0 starving:0 locked:0 changed:0\n" +
				"\tact_log: used:0/1237 hits:0 misses:0 starving:0 locked:0 changed:0\n" +
				"\tblocked on activity log: 0\n",
			want: Status{Role: RolePrimary, PeerRole: RoleSecondary, Connection: ConnSyncSource, Disk: DiskUpToDate,
				PeerDisk: DiskInconsistent, Protocol: "C", SyncPercent: 5, OutOfSync: 4 << 10},
		},
		{
			name: "100 percent",
			in: head + " 0: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----\n" +
				"    ns:1 nr:0 dw:0 dr:1 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0\n" +
				"\t[===================>] sync'ed:100.0% (0/131032)K\n\tfinish: 0:00:00 speed: 32,768 (32,768) K/sec\n",
			want: Status{Role: RolePrimary, PeerRole: RoleSecondary, Connection: ConnSyncSource, Disk: DiskUpToDate,
				PeerDisk: DiskInconsistent, Protocol: "C", SyncPercent: 100},
		},
		{
			name: "CRLF and a resync paused by dependency and peer",
			in: strings.ReplaceAll(head+" 0: cs:PausedSyncS ro:Primary/Secondary ds:UpToDate/Inconsistent C rap---\n"+
				"    ns:1 nr:0 dw:0 dr:1 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:8\n", "\n", "\r\n"),
			want: Status{Role: RolePrimary, PeerRole: RoleSecondary, Connection: ConnPausedSyncS, Disk: DiskUpToDate,
				PeerDisk: DiskInconsistent, Protocol: "C", ResyncSuspended: true, OutOfSync: 8 << 10},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseProcDRBD([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseProcDRBD: %v", err)
			}
			if diff := cmp.Diff([]Status{tt.want}, got.Devices); diff != "" {
				t.Errorf("devices mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseProcDRBDErrors(t *testing.T) {
	const head = "version: 8.4.11 (api:1/proto:86-101)\nsrcversion: X \n"
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "empty", in: "", want: "no version line"},
		{name: "not drbd", in: "hello\n", want: "want \"version:"},
		{name: "unknown connection state", in: head + " 0: cs:Dancing ro:Primary/Secondary ds:UpToDate/UpToDate C r-----\n", want: `unknown drbd connection state "Dancing"`},
		{name: "unknown role", in: head + " 0: cs:Connected ro:Boss/Secondary ds:UpToDate/UpToDate C r-----\n", want: `unknown drbd role "Boss"`},
		{name: "unknown disk state", in: head + " 0: cs:Connected ro:Primary/Secondary ds:Fine/UpToDate C r-----\n", want: `unknown drbd disk state "Fine"`},
		{name: "missing ds", in: head + " 0: cs:Connected ro:Primary/Secondary C r-----\n", want: "want \"ro:LOCAL/PEER ds:LOCAL/PEER\""},
		{name: "bad protocol", in: head + " 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate Z r-----\n", want: `protocol "Z"`},
		{name: "short flags", in: head + " 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r--\n", want: "six flags"},
		{name: "duplicate minor", in: head + " 0: cs:Unconfigured\n 0: cs:Unconfigured\n", want: "minor 0 listed twice"},
		{name: "bad counter", in: head + " 0: cs:Unconfigured\n    ns:x\n", want: "counter ns"},
		{name: "stray line", in: head + " 0: cs:Unconfigured\nwhat\n", want: `unexpected line "what"`},
		{name: "details before a device", in: head + "    ns:0\n", want: "before any device line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseProcDRBD([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseProcDRBD error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestParseVersionLine(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Version
	}{
		{name: "8.4 in-tree", in: "version: 8.4.11 (api:1/proto:86-101)", want: v8411},
		{name: "9.2", in: "version: 9.2.12 (api:2/proto:86-122)", want: Version{Major: 9, Minor: 2, Patch: 12, API: 2, ProtoMin: 86, ProtoMax: 122}},
		{name: "release candidate", in: "version: 9.3.0-rc.1 (api:2/proto:118-123)", want: Version{Major: 9, Minor: 3, Extra: "-rc.1", API: 2, ProtoMin: 118, ProtoMax: 123}},
		{name: "no api", in: "version: 8.3.16", want: Version{Major: 8, Minor: 3, Patch: 16}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseVersionLine(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
