package drbd

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// seedFiles adds every file of testdata/<dir> to the fuzz corpus.
func seedFiles(f *testing.F, dir string) {
	f.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// formatProc writes p the way drbd_seq_show (DRBD 8.4, drbd_proc.c) does,
// for the fields Status keeps.
func formatProc(p Proc) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: %s (api:%d/proto:%d-%d)\nsrcversion: 0123456789ABCDEF0123456 \n", p.Version, p.Version.API, p.Version.ProtoMin, p.Version.ProtoMax)
	for i, st := range p.Devices {
		if i > 0 && p.Devices[i-1].Minor != st.Minor-1 {
			b.WriteString("\n")
		}
		if st.Connection == ConnUnconfigured {
			fmt.Fprintf(&b, "%2d: cs:Unconfigured\n", st.Minor)
			if st.OutOfSync != 0 {
				fmt.Fprintf(&b, "    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:%d\n", st.OutOfSync/1024)
			}
		} else {
			proto := " "
			if st.Protocol != "" {
				proto = st.Protocol
			}
			flags := []byte("r-----")
			if st.Suspended {
				flags[0] = 's'
			}
			if st.ResyncSuspended {
				flags[3] = 'u'
			}
			fmt.Fprintf(&b, "%2d: cs:%s ro:%s/%s ds:%s/%s %s %s\n", st.Minor, st.Connection, st.Role, st.PeerRole, st.Disk, st.PeerDisk, proto, flags)
			fmt.Fprintf(&b, "    ns:0 nr:0 dw:0 dr:0 al:0 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:%d\n", st.OutOfSync/1024)
		}
		if st.SyncPercent != 0 || st.SyncRemaining != 0 {
			rt := int64(st.SyncRemaining / time.Second)
			fmt.Fprintf(&b, "\t[=>..................] sync'ed:%5.1f%% (1/2)K\n", st.SyncPercent)
			fmt.Fprintf(&b, "\tfinish: %d:%02d:%02d speed: 1,024 (1,024) K/sec\n", rt/3600, rt%3600/60, rt%60)
		}
	}
	return b.String()
}

// FuzzParseProcDRBD: never panics, and what it parses survives a round trip
// through the kernel's format.
func FuzzParseProcDRBD(f *testing.F) {
	seedFiles(f, "proc")
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseProcDRBD(data)
		if err != nil {
			return
		}
		seen := map[int]bool{}
		for _, st := range p.Devices {
			if st.Minor < 0 || st.Minor > maxMinor || seen[st.Minor] {
				t.Fatalf("bad or repeated minor %d", st.Minor)
			}
			seen[st.Minor] = true
			if st.SyncPercent < 0 || st.SyncPercent > 100 || st.OutOfSync < 0 || st.SyncRemaining < 0 {
				t.Fatalf("out of range: %+v", st)
			}
		}
		again, err := ParseProcDRBD([]byte(formatProc(p)))
		if err != nil {
			t.Fatalf("reparse of %q: %v", formatProc(p), err)
		}
		if diff := cmp.Diff(p, again); diff != "" {
			t.Fatalf("round trip mismatch (-first +second):\n%s", diff)
		}
	})
}

// FuzzParseStatusJSON: never panics, and only returns known states and sane
// numbers.
func FuzzParseStatusJSON(f *testing.F) {
	seedFiles(f, "status-json")
	f.Add([]byte(`[{"name":"r0","role":"Primary","devices":[{"disk-state":"UpToDate"}],"connections":[{"connection-state":"Connected","peer-role":"Secondary","peer_devices":[{"replication-state":"SyncSource","peer-disk-state":"Inconsistent","percent-resync-done":1e309,"estimated-seconds-to-finish":-1}]}]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		sts, err := ParseStatusJSON(data)
		if err != nil {
			return
		}
		for _, st := range sts {
			checkStatus(t, st)
		}
	})
}

func checkStatus(t *testing.T, st Status) {
	t.Helper()
	for _, s := range []string{st.Role.String(), st.PeerRole.String(), st.Connection.String(), st.Disk.String(), st.PeerDisk.String()} {
		if strings.Contains(s, "(") {
			t.Fatalf("unknown enum value in %+v", st)
		}
	}
	if st.SyncPercent < 0 || st.SyncPercent > 100 || st.OutOfSync < 0 || st.SyncRemaining < 0 {
		t.Fatalf("out of range: %+v", st)
	}
}

func formatEvent(ev Event) string {
	var parts []string
	if !ev.Time.IsZero() {
		parts = append(parts, ev.Time.Format("2006-01-02T15:04:05.000000-07:00"))
	}
	if ev.Action == "skipped" {
		return strings.Join(append(parts, "-", "skipped", fmt.Sprint(ev.Skipped)), " ")
	}
	parts = append(parts, ev.Action, ev.Object)
	keys := make([]string, 0, len(ev.Fields))
	for k := range ev.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		parts = append(parts, k+":"+ev.Fields[k])
	}
	return strings.Join(parts, " ")
}

// FuzzEvents2: lines never panic the parser or the fold; a parsed line
// survives a round trip; the fold only reports known states.
func FuzzEvents2(f *testing.F) {
	seedFiles(f, "events2")
	f.Fuzz(func(t *testing.T, data []byte) {
		var s EventState
		for _, line := range strings.Split(string(data), "\n") {
			ev, err := ParseEvent(line)
			if err != nil {
				continue
			}
			again, err := ParseEvent(formatEvent(ev))
			if err != nil {
				t.Fatalf("reparse of %q: %v", formatEvent(ev), err)
			}
			if diff := cmp.Diff(ev, again, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
				t.Fatalf("round trip mismatch (-first +second):\n%s", diff)
			}
			_ = s.Apply(ev)
		}
		for _, st := range s.Statuses() {
			if st.Connection == ConnStateUnknown {
				continue // a peer device seen before its connection
			}
			checkStatus(t, st)
		}
	})
}

// FuzzValidateRender: whatever Validate accepts renders to a config that
// reads back unambiguously, with every value where it belongs.
func FuzzValidateRender(f *testing.F) {
	f.Add("r0", "san1", "10.99.1.11", "/dev/vda", "san2", "10.99.1.12", "/dev/vda", uint16(7789), 0, "/usr/sbin/sand drbd fence-peer", "disconnect", int64(102400))
	f.Add("data-1", "a.example", "fd00::a", "/dev/disk/by-id/x", "b.example", "fd00::b", "/dev/sdb", uint16(1), 7, "", "call-pri-lost-after-sb", int64(1))
	f.Add("r0", "san1", "10.0.0.1", "/dev/vda", "san2", "10.0.0.2", "/dev/vda", uint16(7789), 0, `/bin/sh -c "x"`, "consensus", int64(0))
	f.Fuzz(func(t *testing.T, name, n1, a1, d1, n2, a2, d2 string, port uint16, minor int, handler, policy string, rate int64) {
		addr := func(s string) netip.Addr {
			a, _ := netip.ParseAddr(s)
			return a
		}
		r := Resource{
			Name: name, Minor: minor, Port: port,
			Nodes: [2]Node{{Name: n1, Address: addr(a1), Disk: d1}, {Name: n2, Address: addr(a2), Disk: d2}},
			Net:   Net{AfterSB1Pri: AfterSB(policy), AfterSB2Pri: AfterSB(policy)},
			Disk:  Disk{ResyncRate: rate},
			Handlers: Handlers{
				FencePeer: handler, PriLostAfterSB: handler,
			},
		}
		if handler != "" {
			r.Fencing = FencingResourceOnly
		}
		if r.Validate() != nil {
			return
		}
		for _, render := range []func(Resource) []byte{Render84, Render9} {
			stmts, err := parseConf(string(render(r)))
			if err != nil {
				t.Fatalf("rendered config does not read back: %v\n%s", err, render(r))
			}
			found := map[string]string{}
			for _, s := range stmts {
				if len(s.path) == 0 || s.path[0] != "resource "+name {
					t.Fatalf("statement outside resource %q: %+v", name, s)
				}
				if s.key == "disk" {
					found[strings.Join(s.path, "/")] = s.val
				}
				if s.key == "fence-peer" && s.val != `"`+handler+`"` {
					t.Fatalf("fence-peer %s, want %q", s.val, handler)
				}
			}
			if len(found) != 2 {
				t.Fatalf("want two disk statements, got %v", found)
			}
			for path, disk := range found {
				if !strings.Contains(path, "on "+n1) && !strings.Contains(path, "on "+n2) || disk != d1 && disk != d2 {
					t.Fatalf("disk %q under %q", disk, path)
				}
			}
		}
	})
}
