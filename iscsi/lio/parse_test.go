package lio

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sand-appliance/sand/iscsi"
)

const loggedIn = `InitiatorName: iqn.2026-11.org.example:dom0-a
InitiatorAlias: dom0-a
LIO Session ID: 3   ISID: 0x23 3d 00 00 01 00  TSIH: 3  SessionType: Normal
Session State: TARG_SESS_STATE_LOGGED_IN
---------------------[iSCSI Session Values]-----------------------
  CmdSN/WR  :  CmdSN/WC  :  ExpCmdSN  :  MaxCmdSN  :     ITT    :     TTT
 0x00000040   0x00000040   0x00000137   0x00000176   0x00000108   0xffffffff
----------------------[iSCSI Connections]-------------------------
CID: 0  Connection State: TARG_CONN_STATE_LOGGED_IN
   Address 10.99.0.1 TCP  StatSN: 0x00000137
`

func TestParseACLInfo(t *testing.T) {
	tests := []struct {
		name string
		info string
		want iscsi.Session
		ok   bool
	}{
		{name: "logged in", info: loggedIn, want: iscsi.Session{Initiator: dom0A, Address: "10.99.0.1"}, ok: true},
		{name: "no session", info: "No active iSCSI Session for Initiator Endpoint: " + dom0A + "\n"},
		{name: "ipv6", info: strings.Replace(loggedIn, "10.99.0.1", "fd00:99::1", 1), want: iscsi.Session{Initiator: dom0A, Address: "fd00:99::1"}, ok: true},
		{name: "failed session", info: strings.Replace(loggedIn, "TARG_SESS_STATE_LOGGED_IN", "TARG_SESS_STATE_FAILED", 1), want: iscsi.Session{Initiator: dom0A, Address: "10.99.0.1"}},
		{name: "discovery", info: strings.Replace(loggedIn, "SessionType: Normal", "SessionType: Discovery", 1), want: iscsi.Session{Initiator: dom0A, Address: "10.99.0.1"}},
		{
			name: "two connections",
			info: loggedIn + "CID: 1  Connection State: TARG_CONN_STATE_LOGGED_IN\n   Address 10.99.2.1 TCP  StatSN: 0x00000001\n",
			want: iscsi.Session{Initiator: dom0A, Address: "10.99.0.1"}, ok: true,
		},
		{name: "empty", info: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseACLInfo(tc.info)
			if ok != tc.ok {
				t.Errorf("ok = %v, want %v", ok, tc.ok)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("session (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSessions(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	if got, err := r.d.Sessions(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Sessions before any target: %v, %v", got, err)
	}
	if err := r.d.Apply(ctx, edit(func(tg *iscsi.TargetGroup) { tg.Targets[0].Initiators = []string{dom0A, dom0C} })); err != nil {
		t.Fatal(err)
	}
	r.k.tamper("iscsi/"+iqnA+"/tpgt_1/acls/"+dom0A+"/info", loggedIn)
	got, err := r.d.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []iscsi.Session{{Target: iqnA, Initiator: dom0A, Address: "10.99.0.1"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Sessions (-want +got):\n%s", diff)
	}
}

func TestParseDeviceInfo(t *testing.T) {
	tests := []struct {
		name string
		info string
		want deviceInfo
	}{
		{
			name: "exported file",
			info: "Status: ACTIVATED  Max Queue Depth: 128  SectorSize: 512  HwMaxSectors: 16384\n        TCM FILEIO ID: 0        File: /srv/sand/vm1.img  Size: 1073741824  Mode: O_DSYNC Async: 0\n",
			want: deviceInfo{exported: true, file: "/srv/sand/vm1.img", size: 1 << 30},
		},
		{
			name: "buffered, not exported",
			info: "Status: DEACTIVATED  Max Queue Depth: 0  SectorSize: 512  HwMaxSectors: 16384\n        TCM FILEIO ID: 1        File: /dev/drbd0  Size: 0  Mode: Buffered-WCE Async: 0\n",
			want: deviceInfo{file: "/dev/drbd0", buffered: true},
		},
		{
			name: "async",
			info: "Status: DEACTIVATED  Max Queue Depth: 0  SectorSize: 512  HwMaxSectors: 16384\n        TCM FILEIO ID: 1        File: /dev/drbd0  Size: 0  Mode: O_DSYNC Async: 1\n",
			want: deviceInfo{file: "/dev/drbd0", async: true},
		},
		{
			name: "older kernel without Async",
			info: "Status: ACTIVATED  Max Queue Depth: 128  SectorSize: 512  HwMaxSectors: 16384\n        TCM FILEIO ID: 0        File: /dev/drbd0  Size: 0  Mode: O_DSYNC\n",
			want: deviceInfo{exported: true, file: "/dev/drbd0"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, parseDeviceInfo(tc.info), cmp.AllowUnexported(deviceInfo{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSerial(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "set", in: "T10 VPD Unit Serial Number: 5a4e4c4142303031\n", want: "5a4e4c4142303031"},
		{name: "unset", in: "T10 VPD Unit Serial Number: \n", want: ""},
		{name: "bare", in: "abc\n", want: "abc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseSerial(tc.in); got != tc.want {
				t.Errorf("parseSerial(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestBackstoreName(t *testing.T) {
	tests := []struct {
		name string
		lu   iscsi.LogicalUnit
		want string
	}{
		{name: "plain", lu: iscsi.LogicalUnit{Name: "vm1", Path: "/x"}, want: "vm1"},
		{name: "dots and dashes", lu: iscsi.LogicalUnit{Name: "web-01.disk_0", Path: "/x"}, want: "web-01.disk_0"},
		{name: "slash", lu: iscsi.LogicalUnit{Name: "a/b", Path: "/x"}, want: "a_b-" + shortHash("a/b")},
		{name: "leading dot", lu: iscsi.LogicalUnit{Name: "..", Path: "/x"}, want: "-" + shortHash("..")},
		{name: "no name", lu: iscsi.LogicalUnit{Path: "/dev/vg/lv"}, want: "lun-" + shortHash("/dev/vg/lv")},
		{name: "long", lu: iscsi.LogicalUnit{Name: strings.Repeat("x", 80), Path: "/x"}, want: strings.Repeat("x", 51) + "-" + shortHash(strings.Repeat("x", 80))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := backstoreName(tc.lu)
			if got != tc.want {
				t.Errorf("backstoreName = %q, want %q", got, tc.want)
			}
			if len(got) > maxBackstoreName {
				t.Errorf("%q is longer than %d", got, maxBackstoreName)
			}
		})
	}
}

func TestPortalName(t *testing.T) {
	tests := []struct {
		name, in, want string
		err            bool
	}{
		{name: "ipv4", in: "10.99.0.100:3260", want: "10.99.0.100:3260"},
		{name: "ipv4 no port", in: "10.99.0.100", want: "10.99.0.100:3260"},
		{name: "ipv6", in: "[fd00:99::100]:3260", want: "[fd00:99::100]:3260"},
		{name: "ipv6 long form", in: "[fd00:99:0:0:0:0:0:100]:3261", want: "[fd00:99::100]:3261"},
		{name: "ipv6 no port", in: "fd00:99::100", want: "[fd00:99::100]:3260"},
		{name: "mapped ipv4", in: "[::ffff:10.0.0.1]:3260", want: "10.0.0.1:3260"},
		{name: "any", in: "0.0.0.0:3260", want: "0.0.0.0:3260"},
		{name: "host name", in: "san:3260", err: true},
		{name: "bad port", in: "10.0.0.1:iscsi", err: true},
		{name: "port 0", in: "10.0.0.1:0", err: true},
		{name: "zone", in: "[fe80::1%eth0]:3260", err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := portalName(tc.in)
			if (err != nil) != tc.err {
				t.Fatalf("portalName(%q) error = %v, want error %v", tc.in, err, tc.err)
			}
			if got != tc.want {
				t.Errorf("portalName(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestLUNNumber(t *testing.T) {
	tests := []struct {
		dir string
		n   int
		ok  bool
	}{
		{"lun_0", 0, true}, {"lun_17", 17, true}, {"lun_00", 0, false}, {"lun_0x1", 0, false}, {"lun_-1", 0, false}, {"statistics", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.dir, func(t *testing.T) {
			n, ok := lunNumber(tc.dir)
			if n != tc.n || ok != tc.ok {
				t.Errorf("lunNumber(%q) = %d, %v; want %d, %v", tc.dir, n, ok, tc.n, tc.ok)
			}
		})
	}
}
