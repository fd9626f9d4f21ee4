package iscsi

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// standaloneGroup is a single box without a VIP: one target, one LUN that
// has no registry facts (no sand lun line), one initiator.
func standaloneGroup() TargetGroup {
	return TargetGroup{
		Portals: []string{"10.0.0.7:3260"},
		Targets: []Target{{
			IQN:        "iqn.2026-11.org.example.lab:disk0",
			Initiators: []string{"iqn.1994-05.com.redhat:185ce16b55ad"},
			LUNs:       []LogicalUnit{{Number: 0, Path: "/srv/iscsi/disk0.img", Type: FileIO}},
		}},
	}
}

func TestRenderIETD(t *testing.T) {
	tests := []struct {
		name   string
		tg     TargetGroup
		golden string
	}{
		{name: "empty", tg: TargetGroup{}, golden: "render-empty.golden"},
		{name: "standalone", tg: standaloneGroup(), golden: "render-standalone.golden"},
		{name: "pair", tg: pairGroup(), golden: "render-pair.golden"},
		// What "sand import" would write for a Heartbeat-era file.
		{name: "imported", tg: mustParseFile(t, "ietd-heartbeat.conf"), golden: "render-imported.golden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.tg.Validate(); err != nil {
				t.Fatalf("test group is invalid: %v", err)
			}
			got := RenderIETD(tt.tg)
			path := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden file (run go test -update to write it): %v", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("RenderIETD differs from %s (-want +got):\n%s", path, diff)
			}
			if again := RenderIETD(tt.tg); !bytes.Equal(again, got) {
				t.Errorf("RenderIETD is not deterministic")
			}
		})
	}
}

func TestParseIETDFiles(t *testing.T) {
	tests := []struct {
		name string
		file string
		want TargetGroup
	}{
		{
			name: "heartbeat era",
			file: "ietd-heartbeat.conf",
			want: TargetGroup{Targets: []Target{
				{
					IQN:        "iqn.2008-03.lan.example.san:xen-web01",
					Alias:      "web01",
					CHAP:       &CHAP{User: "xen", Secret: "webdisksecret"},
					MutualCHAP: &CHAP{User: "san01", Secret: "sanmutual0001"},
					LUNs: []LogicalUnit{
						{Number: 0, Path: "/dev/vg_san/web01-disk", Type: BlockIO, Serial: "web01disk", NAA: NAAFromSerial("web01disk")},
						{Number: 1, Path: "/dev/vg_san/web01-swap", Type: BlockIO, Serial: "web01swap", NAA: NAAFromSerial("web01swap")},
					},
				},
				{
					IQN:   "iqn.2008-03.lan.example.san:xen-db01",
					Alias: "db01 (PostgreSQL)",
					CHAP:  &CHAP{User: "xen", Secret: "dbdisksecret1"},
					LUNs: []LogicalUnit{
						{Number: 0, Path: "/dev/vg_san/db01-disk", Type: BlockIO, Serial: "DB01-0001", NAA: NAAFromSerial("DB01-0001")},
						// No ScsiSN: the ScsiId is a valid serial.
						{Number: 1, Path: "/dev/vg_san/db01-data", Type: FileIO, Serial: "db01data", NAA: NAAFromSerial("db01data")},
					},
				},
				{
					IQN: "iqn.2008-03.lan.example.san:templates",
					LUNs: []LogicalUnit{
						// No Type: IET's default.
						{Number: 0, Path: "/srv/iscsi/templates.img", Type: FileIO},
						// ScsiId too long for a serial: no identity.
						{Number: 3, Path: "/srv/iscsi/debian-lenny.img", Type: FileIO},
					},
				},
			}},
		},
		{
			name: "debian sample",
			file: "ietd-debian.conf",
			want: TargetGroup{Targets: []Target{{
				IQN:   "iqn.2001-04.com.example:storage.disk2.sys1.xyz",
				Alias: "Test",
				LUNs:  []LogicalUnit{{Number: 0, Path: "/dev/sdc", Type: FileIO}},
			}}},
		},
		{
			name: "CRLF line ends",
			file: "ietd-crlf.conf",
			want: TargetGroup{Targets: []Target{{
				IQN:  "iqn.2010-06.local.office:nas.backup",
				CHAP: &CHAP{User: "backup", Secret: "backupsecret12"},
				LUNs: []LogicalUnit{{Number: 0, Path: "/dev/md1", Type: BlockIO, Serial: "NAS-BACKUP-01", NAA: NAAFromSerial("NAS-BACKUP-01")}},
			}}},
		},
		{name: "rendered pair", file: "render-pair.golden", want: pairGroup()},
		{name: "rendered standalone", file: "render-standalone.golden", want: standaloneGroup()},
		{name: "rendered empty", file: "render-empty.golden", want: TargetGroup{}},
		{name: "rendered import", file: "render-imported.golden", want: mustParseFile(t, "ietd-heartbeat.conf")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseIETD(data)
			if err != nil {
				t.Fatalf("ParseIETD: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseIETD(%s) (-want +got):\n%s", tt.file, diff)
			}
		})
	}
}

func mustParseFile(t *testing.T, name string) TargetGroup {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	tg, err := ParseIETD(data)
	if err != nil {
		t.Fatalf("ParseIETD(%s): %v", name, err)
	}
	return tg
}

// lines joins its arguments as the lines of a file, so that a test's line
// numbers can be counted in its source.
func lines(l ...string) string { return strings.Join(l, "\n") + "\n" }

const (
	t1 = "Target iqn.2026-11.org.example:t1"
	t2 = "Target iqn.2026-11.org.example:t2"
)

// parseErrorTests are files ParseIETD must reject: the line it must name
// and what the message must mention. The fuzzer starts from them too.
var parseErrorTests = []struct {
	name string
	conf string
	line int
	want []string // each must be in the message
}{
	// Structure.
	{name: "Lun before Target", conf: lines("# no target yet", "Lun 0 Path=/dev/vg/lv"), line: 2,
		want: []string{"Lun 0 comes before any Target", "inside a Target"}},
	{name: "Alias before Target", conf: lines("Alias x"), line: 1, want: []string{"Alias comes before any Target"}},
	{name: "unknown keyword", conf: lines(t1, "\tLun 0 Path=/dev/vg/lv", "\tinitiator-address 10.0.0.1"), line: 3,
		want: []string{`unknown keyword "initiator-address"`, "fix the spelling"}},
	{name: "Alias without name", conf: lines(t1, "\tMaxConnections 1", "\tAlias", ""), line: 3, want: []string{"Alias has no name"}},

	// Target.
	{name: "Target without name", conf: lines("Target"), line: 1, want: []string{"Target needs one IQN, got 0 words"}},
	{name: "Target with two names", conf: lines("Target iqn.2026-11.org.example:t1 extra"), line: 1, want: []string{"got 2 words"}},
	{name: "malformed Target name", conf: lines("", "Target iqn.2026-11.org.example:T1"), line: 2,
		want: []string{"Target name", `"iqn.2026-11.org.example:T1" has upper-case letters`}},
	{name: "Target name without date", conf: lines("Target iqn.org.example:t1"), line: 1, want: []string{`"iqn.org.example:t1" is malformed`}},
	{name: "duplicate Target", conf: lines(t1, "\tLun 0 Path=/dev/vg/a", t2, t1), line: 4,
		want: []string{"Target iqn.2026-11.org.example:t1 is already defined on line 1"}},
	{name: "second Alias", conf: lines(t1, "\tAlias a", "\tAlias b"), line: 3, want: []string{"second Alias", "line 2"}},
	{name: "Alias with tab", conf: lines(t1, "\tAlias a\tb"), line: 2, want: []string{"Alias", "tab"}},

	// Lun numbers.
	{name: "Lun number not a number", conf: lines(t1, "\tLun zero Path=/dev/vg/lv"), line: 2, want: []string{`LUN number "zero" is not a number`}},
	{name: "Lun without number", conf: lines(t1, "\tLun"), line: 2, want: []string{"Lun needs a number"}},
	{name: "Lun number negative", conf: lines(t1, "\tLun -1 Path=/dev/vg/lv"), line: 2, want: []string{"LUN number -1 is negative"}},
	{name: "Lun number too large", conf: lines(t1, "\tLun 16384 Path=/dev/vg/lv"), line: 2, want: []string{"LUN number 16384 is too large", "0 to 16383"}},
	{name: "Lun number huge", conf: lines(t1, "\tLun 99999999999999999999 Path=/dev/vg/lv"), line: 2, want: []string{"99999999999999999999 is out of range"}},
	{name: "duplicate Lun", conf: lines(t1, "\tLun 0 Path=/dev/vg/a", "\tLun 1 Path=/dev/vg/b", "\tLun 0 Path=/dev/vg/c"), line: 4,
		want: []string{"Lun 0 is already defined on line 2"}},

	// Lun options.
	{name: "missing Path", conf: lines(t1, "\tLun 0 Type=blockio"), line: 2, want: []string{"Lun 0 has no Path=: add Path=/dev/vg/lv"}},
	{name: "no options", conf: lines(t1, "\tLun 0"), line: 2, want: []string{"Lun 0 has no Path="}},
	{name: "blanks in options", conf: lines(t1, "\tLun 0 Path=/dev/vg/lv, Type=blockio"), line: 2, want: []string{"Lun 0 options have blanks"}},
	{name: "relative path", conf: lines(t1, "\tLun 0 Path=dev/vg/lv"), line: 2, want: []string{`path "dev/vg/lv" is relative`}},
	{name: "empty path", conf: lines(t1, "\tLun 0 Path=,Type=fileio"), line: 2, want: []string{"Lun 0: path is empty"}},
	{name: "unclean path", conf: lines(t1, "\tLun 0 Path=/dev//vg/lv"), line: 2, want: []string{`"/dev//vg/lv" is not clean: write it as /dev/vg/lv`}},
	{name: "path with control character", conf: lines(t1, "\tLun 0 Path=/dev/vg/l\x00v"), line: 2, want: []string{"control character"}},
	{name: "unknown Type with control byte", conf: lines(t1, "\tLun 0 Path=/dev/vg/lv,Type=file\x1bio"), line: 2, want: []string{`Type="file\x1bio" is unknown`}},
	{name: "unknown Type", conf: lines(t1, "\tLun 0 Path=/dev/vg/lv,Type=rdwr"), line: 2, want: []string{"Lun 0 Type=rdwr is unknown", "fileio", "blockio"}},
	{name: "nullio", conf: lines(t1, "\tLun 1 Blocks=10000,BlockSize=4096,Type=nullio"), line: 2, want: []string{"Lun 1 is Type=nullio", "real storage"}},
	{name: "unknown option", conf: lines(t1, "\tLun 0 Path=/dev/vg/lv,Readonly=1"), line: 2, want: []string{"Lun 0 option Readonly= is unknown", "ScsiSN"}},
	{name: "option without value", conf: lines(t1, "\tLun 0 Path=/dev/vg/lv,blockio"), line: 2, want: []string{`option "blockio" has no '='`}},
	{name: "option twice", conf: lines(t1, "\tLun 0 Path=/dev/vg/lv,path=/dev/vg/other"), line: 2, want: []string{"Lun 0 gives path= twice"}},
	{name: "ScsiSN too long", conf: lines(t1, "\tLun 0 Path=/dev/vg/lv,ScsiSN=0123456789abcdef0"), line: 2,
		want: []string{"Lun 0 ScsiSN", `serial "0123456789abcdef0" must be 1 to 16 characters`}},
	{name: "ScsiSN with equals", conf: lines(t1, "\tLun 0 Path=/dev/vg/lv,ScsiSN=a=b"), line: 2, want: []string{`serial "a=b"`}},
	{name: "ScsiId too long", conf: lines(t1, "\tLun 0 Path=/dev/vg/lv,ScsiId=0123456789abcdef012345678"), line: 2, want: []string{"ScsiId=0123456789abcdef012345678 is 25 characters long"}},
	{name: "ScsiId empty", conf: lines(t1, "\tLun 0 Path=/dev/vg/lv,ScsiId="), line: 2, want: []string{"ScsiId= is empty"}},
	{name: "IOMode ro", conf: lines(t1, "\tLun 0 Path=/dev/vg/lv,IOMode=ro"), line: 2, want: []string{"Lun 0 is IOMode=ro", "read-write only"}},
	{name: "IOMode unknown", conf: lines(t1, "\tLun 0 Path=/dev/vg/lv,IOMode=rw"), line: 2, want: []string{"IOMode=rw is unknown"}},
	{name: "BlockSize 4096", conf: lines(t1, "\tLun 0 Path=/dev/vg/lv,BlockSize=4096"), line: 2, want: []string{"BlockSize=4096", "512-byte blocks"}},
	{name: "BlockSize invalid", conf: lines(t1, "\tLun 0 Path=/dev/vg/lv,BlockSize=1000"), line: 2, want: []string{"BlockSize=1000 is invalid"}},

	// Identity across LUNs.
	{name: "path twice", conf: lines(t1, "\tLun 0 Path=/dev/vg/lv", t2, "\tLun 0 Path=/dev/vg/lv"), line: 4,
		want: []string{"path /dev/vg/lv is already exported by target iqn.2026-11.org.example:t1 Lun 0 on line 2"}},
	{name: "serial twice", conf: lines(t1, "\tLun 0 Path=/dev/vg/a,ScsiSN=abc", "\tLun 1 Path=/dev/vg/b,ScsiSN=abc"), line: 3,
		want: []string{"serial abc is already used by target iqn.2026-11.org.example:t1 Lun 0 on line 2"}},
	{name: "NAA twice", conf: lines(t1, "\tLun 0 Path=/dev/vg/a,ScsiSN=disk1", "\tLun 1 Path=/dev/vg/b,ScsiSN=disk-1"), line: 3,
		want: []string{"serial disk-1 gives NAA", "Lun 0 on line 2", "other hex digits"}},

	// CHAP.
	{name: "IncomingUser without secret", conf: lines(t1, "\tIncomingUser joe"), line: 2,
		want: []string{"IncomingUser needs a user and a secret, got 1 word"}},
	{name: "IncomingUser without anything", conf: lines(t1, "\tIncomingUser"), line: 2, want: []string{"got 0 words"}},
	{name: "OutgoingUser with three words", conf: lines(t1, "\tOutgoingUser jim secret12chars x"), line: 2, want: []string{"OutgoingUser needs a user and a secret, got 3 words"}},
	{name: "IncomingUser short secret", conf: lines(t1, "\tIncomingUser joe secret"), line: 2,
		want: []string{"IncomingUser", `CHAP secret for "joe" is 6 characters long`}},
	{name: "OutgoingUser long secret", conf: lines(t1, "\tIncomingUser joe secretsecret", "\tOutgoingUser jim 0123456789abcdefg"), line: 3,
		want: []string{"OutgoingUser", `"jim" is 17 characters long`}},
	{name: "discovery short secret", conf: lines("IncomingUser joe secret", t1), line: 1, want: []string{"IncomingUser", `"joe" is 6 characters`}},
	{name: "second OutgoingUser", conf: lines(t1, "\tIncomingUser joe secretsecret", "\tOutgoingUser jim secretsecret1", "\tOutgoingUser jack secretsecret2"), line: 4,
		want: []string{"second OutgoingUser for target iqn.2026-11.org.example:t1", "line 3", "IET allows one"}},
	{name: "second discovery OutgoingUser", conf: lines("OutgoingUser jim secretsecret1", "OutgoingUser jack secretsecret2"), line: 2,
		want: []string{"second OutgoingUser for discovery"}},
	{name: "second IncomingUser", conf: lines(t1, "\tIncomingUser joe secretsecret", "\tIncomingUser ann secretsecret"), line: 3,
		want: []string{"second IncomingUser", "one CHAP account per target"}},
	{name: "OutgoingUser alone", conf: lines("", t1, "\tOutgoingUser jim secretsecret1", "\tLun 0 Path=/dev/vg/lv", t2), line: 2,
		want: []string{"iqn.2026-11.org.example:t1 has mutual CHAP (OutgoingUser) but no CHAP (IncomingUser)"}},
	{name: "OutgoingUser alone at end", conf: lines(t1, "\tOutgoingUser jim secretsecret1"), line: 1, want: []string{"but no CHAP"}},

	// sand lines.
	{name: "empty sand line", conf: lines("#sand:"), line: 1, want: []string{`"#sand:" has nothing after it`}},
	{name: "unknown sand line", conf: lines("#sand: vip 10.0.0.1"), line: 1, want: []string{`unknown sand line "#sand: vip"`}},
	{name: "sand portal without address", conf: lines("#sand: portal"), line: 1, want: []string{"#sand: portal needs one ip:port, got 0 words"}},
	{name: "sand portal malformed", conf: lines("#sand: portal 10.0.0.300:3260"), line: 1, want: []string{`portal "10.0.0.300:3260" is not ip:port`}},
	{name: "sand portal not canonical", conf: lines("#sand: portal [2001:DB8::1]:3260"), line: 1, want: []string{"write it as [2001:db8::1]:3260"}},
	{name: "sand portal twice", conf: lines("#sand: portal 10.0.0.1:3260", "#sand: portal 10.0.0.1:3260"), line: 2, want: []string{"already listed on line 1"}},
	{name: "sand portal in target", conf: lines(t1, "\t#sand: portal 10.0.0.1:3260"), line: 2, want: []string{"inside target", "above the first Target"}},
	{name: "sand allow before Target", conf: lines("#sand: allow iqn.2026-11.org.example:dom0"), line: 1, want: []string{"comes before any Target"}},
	{name: "sand allow malformed", conf: lines(t1, "\t#sand: allow dom0"), line: 2, want: []string{`initiator IQN "dom0" is malformed`}},
	{name: "sand allow two words", conf: lines(t1, "\t#sand: allow iqn.2026-11.org.example:a iqn.2026-11.org.example:b"), line: 2, want: []string{"got 2 words"}},
	{name: "sand allow twice", conf: lines(t1, "\t#sand: allow iqn.2026-11.org.example:a", "\t#sand: allow iqn.2026-11.org.example:a"), line: 3, want: []string{"already listed on line 2"}},
	{name: "sand lun before Target", conf: lines("#sand: lun 0 name=a"), line: 1, want: []string{"#sand: lun comes before any Target"}},
	{name: "sand lun without number", conf: lines(t1, "\t#sand: lun"), line: 2, want: []string{"#sand: lun needs a LUN number"}},
	{name: "sand lun bad number", conf: lines(t1, "\t#sand: lun x"), line: 2, want: []string{`LUN number "x" is not a number`}},
	{name: "sand lun not key=value", conf: lines(t1, "\t#sand: lun 0 vm01"), line: 2, want: []string{`"vm01" is not key=value`}},
	{name: "sand lun unknown key", conf: lines(t1, "\t#sand: lun 0 wwn=1"), line: 2, want: []string{`unknown key "wwn"`}},
	{name: "sand lun key twice", conf: lines(t1, "\t#sand: lun 0 name=a name=b"), line: 2, want: []string{"gives name= twice"}},
	{name: "sand lun bad name", conf: lines(t1, "\t#sand: lun 0 name=a/b"), line: 2, want: []string{`LUN name "a/b" is malformed`}},
	{name: "sand lun empty name", conf: lines(t1, "\t#sand: lun 0 name="), line: 2, want: []string{"LUN name is empty"}},
	{name: "sand lun bad size", conf: lines(t1, "\t#sand: lun 0 size=20G"), line: 2, want: []string{"size=20G is not a size in bytes"}},
	{name: "sand lun negative size", conf: lines(t1, "\t#sand: lun 0 size=-1"), line: 2, want: []string{"size=-1 is not a size in bytes"}},
	{name: "sand lun bad naa", conf: lines(t1, "\t#sand: lun 0 naa=6001405XYZ"), line: 2, want: []string{`NAA "6001405XYZ" is malformed`}},
	{name: "sand lun then other line", conf: lines(t1, "\t#sand: lun 0 name=a", "\tAlias x", "\tLun 0 Path=/dev/vg/lv"), line: 2,
		want: []string{"#sand: lun 0 is not followed by its Lun line (line 3 is Alias)"}},
	{name: "sand lun then sand line", conf: lines(t1, "\t#sand: lun 0 name=a", "\t#sand: lun 1 name=b"), line: 2,
		want: []string{"line 3 is another #sand: line"}},
	{name: "sand lun then other Lun", conf: lines(t1, "\t#sand: lun 0 name=a", "\tLun 1 Path=/dev/vg/lv"), line: 2,
		want: []string{"#sand: lun 0 is followed by Lun 1 on line 3"}},
	{name: "sand lun at end", conf: lines(t1, "\t#sand: lun 0 name=a", "# the end"), line: 2, want: []string{"the file ends first"}},
	{name: "sand lun then Target", conf: lines(t1, "\t#sand: lun 0 name=a", t2), line: 2, want: []string{"line 3 is Target"}},
	{name: "sand lun naa mismatch", conf: lines(t1, "\t#sand: lun 0 naa="+NAAFromSerial("abc"), "\tLun 0 Path=/dev/vg/lv,ScsiSN=abd"), line: 2,
		want: []string{"naa=" + NAAFromSerial("abc"), "serial abd of Lun 0 on line 3 gives " + NAAFromSerial("abd")}},
	{name: "sand lun naa without serial", conf: lines(t1, "\t#sand: lun 0 naa="+NAAFromSerial("abc"), "\tLun 0 Path=/dev/vg/lv"), line: 2,
		want: []string{"has no ScsiSN="}},
	{name: "sand name twice", conf: lines(t1, "\t#sand: lun 0 name=a", "\tLun 0 Path=/dev/vg/a", "\t#sand: lun 1 name=a", "\tLun 1 Path=/dev/vg/b"), line: 5,
		want: []string{"name a is already used by target iqn.2026-11.org.example:t1 Lun 0 on line 3"}},
}

func TestParseIETDErrors(t *testing.T) {
	for _, tt := range parseErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			tg, err := ParseIETD([]byte(tt.conf))
			if err == nil {
				t.Fatalf("ParseIETD succeeded with %+v, want an error on line %d", tg, tt.line)
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %q is not a *ParseError", err)
			}
			if pe.Line != tt.line {
				t.Errorf("error %q is on line %d, want %d", err, pe.Line, tt.line)
			}
			msg := err.Error()
			if prefix := "ietd.conf line "; !strings.HasPrefix(msg, prefix) {
				t.Errorf("error %q does not start with %q", msg, prefix)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

func TestParseIETDAccepts(t *testing.T) {
	const lv = "\tLun 0 Path=/dev/vg/lv"
	tests := []struct {
		name string
		conf string
		want TargetGroup
	}{
		{name: "empty file", conf: "", want: TargetGroup{}},
		{name: "comments and blanks only", conf: lines("# nothing", "", "   \t", "\t# indented"), want: TargetGroup{}},
		{name: "no final newline", conf: t1 + "\n" + lv,
			want: TargetGroup{Targets: []Target{{IQN: "iqn.2026-11.org.example:t1", LUNs: []LogicalUnit{{Number: 0, Path: "/dev/vg/lv", Type: FileIO}}}}}},
		{name: "keywords in any case", conf: lines("TARGET iqn.2026-11.org.example:t1", "\tlun 0 PATH=/dev/vg/lv,TYPE=BlockIO", "\tALIAS Disk", "\tmaxconnections 1"),
			want: TargetGroup{Targets: []Target{{IQN: "iqn.2026-11.org.example:t1", Alias: "Disk", LUNs: []LogicalUnit{{Number: 0, Path: "/dev/vg/lv", Type: BlockIO}}}}}},
		{name: "tuning keys before any Target", conf: lines("MaxConnections 1", "HeaderDigest CRC32C,None", "iSNSServer 10.0.0.1", "iSNSAccessControl No"), want: TargetGroup{}},
		{name: "discovery CHAP dropped", conf: lines("IncomingUser a secretsecret1", "IncomingUser b secretsecret2", "OutgoingUser c secretsecret3", t1),
			want: TargetGroup{Targets: []Target{{IQN: "iqn.2026-11.org.example:t1"}}}},
		{name: "empty Lun options skipped", conf: lines(t1, "\tLun 0 ,Path=/dev/vg/lv,,Type=blockio,"),
			want: TargetGroup{Targets: []Target{{IQN: "iqn.2026-11.org.example:t1", LUNs: []LogicalUnit{{Number: 0, Path: "/dev/vg/lv", Type: BlockIO}}}}}},
		{name: "IOMode wb and wt, BlockSize 512", conf: lines(t1, "\tLun 0 Path=/dev/vg/a,IOMode=wb,BlockSize=512", "\tLun 1 Path=/dev/vg/b,IOMode=WT"),
			want: TargetGroup{Targets: []Target{{IQN: "iqn.2026-11.org.example:t1", LUNs: []LogicalUnit{
				{Number: 0, Path: "/dev/vg/a", Type: FileIO},
				{Number: 1, Path: "/dev/vg/b", Type: FileIO},
			}}}}},
		{name: "ScsiSN wins over ScsiId", conf: lines(t1, "\tLun 0 Path=/dev/vg/lv,ScsiId=aaaa,ScsiSN=bbbb"),
			want: TargetGroup{Targets: []Target{{IQN: "iqn.2026-11.org.example:t1", LUNs: []LogicalUnit{{Number: 0, Path: "/dev/vg/lv", Type: FileIO, Serial: "bbbb", NAA: NAAFromSerial("bbbb")}}}}}},
		{name: "sand lun with plain comment and blank before Lun", conf: lines(t1, "\t#sand: lun 0 size=512 name=a", "", "\t# the disk", lv),
			want: TargetGroup{Targets: []Target{{IQN: "iqn.2026-11.org.example:t1", LUNs: []LogicalUnit{{Number: 0, Name: "a", Size: 512, Path: "/dev/vg/lv", Type: FileIO}}}}}},
		{name: "byte order mark", conf: "\ufeff" + lines(t1),
			want: TargetGroup{Targets: []Target{{IQN: "iqn.2026-11.org.example:t1"}}}},
		{name: "other hash comments are plain", conf: lines("# sand: portal nonsense", "#SAND: whatever", "#sandbox"), want: TargetGroup{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIETD([]byte(tt.conf))
			if err != nil {
				t.Fatalf("ParseIETD: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseIETD (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		tg   TargetGroup
	}{
		{name: "empty", tg: TargetGroup{}},
		{name: "standalone", tg: standaloneGroup()},
		{name: "pair", tg: pairGroup()},
		{name: "empty slices", tg: TargetGroup{Portals: []string{}, Targets: []Target{{IQN: "iqn.2026-11.org.example:t1", LUNs: []LogicalUnit{}, Initiators: []string{}}}}},
		{name: "edges", tg: TargetGroup{
			Portals: []string{"[::1]:3261", "127.0.0.1:65535"},
			Targets: []Target{{
				IQN:        "iqn.2026-11.org.example:" + strings.Repeat("x", maxIQNLen-len("iqn.2026-11.org.example:")),
				Alias:      "Disque  de « test » #1",
				CHAP:       &CHAP{User: "#user", Secret: "#=,;'\"secret!!\\"},
				MutualCHAP: &CHAP{User: "u", Secret: strings.Repeat("~", MaxCHAPSecret)},
				LUNs: []LogicalUnit{
					{Number: MaxLUN, Path: "/srv/a=b#c", Type: FileIO, Size: 1<<63 - 1, Serial: "S/N:x_1", NAA: NAAFromSerial("S/N:x_1")},
					{Number: 0, Name: strings.Repeat("n", 64), Path: "/", Type: BlockIO},
				},
			}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.tg.Validate(); err != nil {
				t.Fatalf("test group is invalid: %v", err)
			}
			conf := RenderIETD(tt.tg)
			got, err := ParseIETD(conf)
			if err != nil {
				t.Fatalf("ParseIETD(RenderIETD(tg)): %v\n%s", err, conf)
			}
			if diff := cmp.Diff(tt.tg, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("ParseIETD(RenderIETD(tg)) (-want +got):\n%s\n%s", diff, conf)
			}
		})
	}
}

// FuzzParseIETD checks that ParseIETD never panics, that what it accepts
// is valid, and that rendering and parsing again gives the same group and
// the same bytes.
func FuzzParseIETD(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range seeds {
		if !strings.HasSuffix(path, ".conf") && !strings.HasSuffix(path, ".golden") {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, tt := range parseErrorTests {
		f.Add([]byte(tt.conf))
	}
	f.Add([]byte(lines(t1, "\t#sand: lun 0 name=a size=1 naa="+NAAFromSerial("abc"), "\tLun 0 Path=/dev/vg/lv,ScsiSN=abc")))
	f.Add([]byte(lines(t1, "\tAlias  a  b ", "\tLun 0 Path=/x,ScsiId=abcdef")))

	f.Fuzz(func(t *testing.T, data []byte) {
		tg, err := ParseIETD(data)
		if err != nil {
			// Every problem has a line: the final Validate in ParseIETD
			// is a safety net that should never catch anything.
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error without a line number: %v", err)
			}
			return
		}
		if err := tg.Validate(); err != nil {
			t.Fatalf("ParseIETD returned a group that Validate rejects: %v", err)
		}
		conf := RenderIETD(tg)
		again, err := ParseIETD(conf)
		if err != nil {
			t.Fatalf("ParseIETD(RenderIETD(ParseIETD(x))): %v\n%s", err, conf)
		}
		if diff := cmp.Diff(tg, again); diff != "" {
			t.Fatalf("ParseIETD(RenderIETD(ParseIETD(x))) differs (-first +second):\n%s", diff)
		}
		if conf2 := RenderIETD(again); !bytes.Equal(conf, conf2) {
			t.Fatalf("rendering differs the second time:\n%s\n----\n%s", conf, conf2)
		}
	})
}
