package drbd

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// labResource is lab-proof/r0.res as a Resource value, unsafe policy included.
func labResource() Resource {
	net := TCGNet
	net.AfterSB0Pri = AfterSBDiscardZeroChanges
	net.AfterSB1Pri = AfterSBDiscardSecondary
	net.AfterSB2Pri = AfterSBDisconnect
	return Resource{
		Name: "r0",
		Port: 7789,
		Nodes: [2]Node{
			{Name: "san1", Address: netip.MustParseAddr("10.99.1.11"), Disk: "/dev/vda"},
			{Name: "san2", Address: netip.MustParseAddr("10.99.1.12"), Disk: "/dev/vda"},
		},
		Net:  net,
		Disk: Disk{ResyncRate: 100 << 10, ALExtents: 1237},
	}
}

// safeLabResource is the lab's resource with the after-sb-1pri policy that
// lost acknowledged writes replaced.
func safeLabResource() Resource {
	r := labResource()
	r.Net.AfterSB1Pri = AfterSBDisconnect
	return r
}

// testSecret is the shared secret of the test resources (base64 of 30
// bytes, as first boot makes one).
const testSecret = "c2FuZC10ZXN0LWRyYmQtc2hhcmVkLXNlY3JldC0xMjM0"

// fencedResource is what an appliance pair should run: fencing with
// handlers, a split-brain report, call-pri-lost-after-sb, and a link that
// authenticates the peer with a shared secret.
func fencedResource() Resource {
	r := safeLabResource()
	r.Net.Auth = Auth{HMACAlg: HMACSHA256, Secret: testSecret}
	r.Nodes[0].Disk = "/dev/vdb"
	r.Nodes[1].Disk = "/dev/vdb"
	r.Fencing = FencingResourceAndStonith
	r.Net.AfterSB1Pri = AfterSBCallPriLostAfterSB
	r.Net.AfterSB2Pri = AfterSBCallPriLostAfterSB
	r.Handlers = Handlers{
		FencePeer:         "/usr/sbin/sand drbd fence-peer",
		AfterResyncTarget: "/usr/sbin/sand drbd unfence-peer",
		PriLostAfterSB:    "/usr/sbin/sand drbd pri-lost-after-sb",
		SplitBrain:        "/usr/sbin/sand drbd split-brain",
	}
	return r
}

// ipv6Resource leaves every tuning knob at DRBD's default.
func ipv6Resource() Resource {
	return Resource{
		Name:  "data-1",
		Minor: 7,
		Port:  7790,
		Nodes: [2]Node{
			{Name: "box-a.example.net", Address: netip.MustParseAddr("fd00:99::a"), Disk: "/dev/disk/by-id/nvme-A_1", NodeID: 3},
			{Name: "box-b.example.net", Address: netip.MustParseAddr("fd00:99::b"), Disk: "/dev/disk/by-id/nvme-B_1", NodeID: 4},
		},
	}
}

func TestRenderGolden(t *testing.T) {
	tests := []struct {
		name   string
		r      Resource
		render func(Resource) []byte
		golden string
	}{
		{name: "8.4 lab, safe policy", r: safeLabResource(), render: Render84, golden: "render84-lab-safe.golden"},
		{name: "8.4 fenced", r: fencedResource(), render: Render84, golden: "render84-fenced.golden"},
		{name: "8.4 ipv6, defaults", r: ipv6Resource(), render: Render84, golden: "render84-ipv6-defaults.golden"},
		{name: "9 lab, safe policy", r: safeLabResource(), render: Render9, golden: "render9-lab-safe.golden"},
		{name: "9 fenced", r: fencedResource(), render: Render9, golden: "render9-fenced.golden"},
		{name: "9 ipv6, defaults", r: ipv6Resource(), render: Render9, golden: "render9-ipv6-defaults.golden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.r.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			got := tt.render(tt.r)
			if again := tt.render(tt.r); string(again) != string(got) {
				t.Fatal("render is not deterministic")
			}
			if _, err := parseConf(string(got)); err != nil {
				t.Fatalf("rendered config does not parse: %v\n%s", err, got)
			}
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
				t.Errorf("render mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRender84ReproducesLab: the lab's hand-written r0.res (the 8.4 config
// the VM proof ran on) is reproduced from a Resource value: the same
// effective settings for r0, with protocol C inherited from its common
// section, its global section (not part of a resource file) and its comment
// left aside. The value fails Validate because of the policy that lost
// acknowledged writes in the lab; with that one policy fixed it passes.
func TestRender84ReproducesLab(t *testing.T) {
	lab, err := os.ReadFile(filepath.Join("testdata", "lab-r0.res"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := effectiveSettings(string(lab))
	if err != nil {
		t.Fatalf("parse lab r0.res: %v", err)
	}
	got, err := effectiveSettings(string(Render84(labResource())))
	if err != nil {
		t.Fatalf("parse rendered r0: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rendered r0 differs from the lab's r0.res (-lab +rendered):\n%s", diff)
	}

	err = labResource().Validate()
	if !errors.Is(err, ErrUnsafe) || !strings.Contains(err.Error(), "after-sb-1pri discard-secondary") {
		t.Errorf("Validate(lab r0) = %v, want ErrUnsafe for after-sb-1pri discard-secondary", err)
	}
	if err := safeLabResource().Validate(); err != nil {
		t.Errorf("Validate(lab r0 with after-sb-1pri disconnect) = %v", err)
	}
}

// confStmt is a statement of a drbd.conf file with its section path.
type confStmt struct {
	path []string // section headers: "resource r0", "on san1", "net"
	key  string
	val  string
}

// parseConf is a small reader of drbd.conf syntax for tests: comments,
// quoted strings, sections and statements.
func parseConf(text string) ([]confStmt, error) {
	var toks []string
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(text) && text[i] != '\n' {
				i++
			}
		case c == '{' || c == '}' || c == ';':
			toks = append(toks, string(c))
			i++
		case c == '"':
			j := strings.IndexByte(text[i+1:], '"')
			if j < 0 {
				return nil, fmt.Errorf("unterminated string at offset %d", i)
			}
			toks = append(toks, text[i:i+j+2])
			i += j + 2
		default:
			j := i
			for j < len(text) && !strings.ContainsRune(" \t\r\n{};#\"", rune(text[j])) {
				j++
			}
			toks = append(toks, text[i:j])
			i = j
		}
	}
	var out []confStmt
	var stack []string
	var words []string
	for _, tok := range toks {
		switch tok {
		case "{":
			if len(words) == 0 {
				return nil, fmt.Errorf("section without a name in %v", stack)
			}
			stack = append(stack, strings.Join(words, " "))
			words = nil
		case "}":
			if len(words) != 0 || len(stack) == 0 {
				return nil, fmt.Errorf("unexpected } after %v in %v", words, stack)
			}
			stack = stack[:len(stack)-1]
		case ";":
			if len(words) == 0 {
				return nil, fmt.Errorf("empty statement in %v", stack)
			}
			out = append(out, confStmt{path: slices.Clone(stack), key: words[0], val: strings.Join(words[1:], " ")})
			words = nil
		default:
			words = append(words, tok)
		}
	}
	if len(stack) != 0 || len(words) != 0 {
		return nil, fmt.Errorf("unterminated section %v", stack)
	}
	return out, nil
}

// effectiveSettings flattens a config into sorted "resource r0/net: ping-int 2"
// lines: common's settings are copied into every resource, a legacy
// resource-level protocol moves into net, global is dropped.
func effectiveSettings(text string) ([]string, error) {
	stmts, err := parseConf(text)
	if err != nil {
		return nil, err
	}
	var common []confStmt
	resources := map[string]bool{}
	var out []string
	add := func(res string, s confStmt, rest []string) {
		if len(rest) == 0 && s.key == "protocol" {
			rest = []string{"net"}
		}
		out = append(out, strings.Join(append([]string{res}, rest...), "/")+": "+s.key+" "+s.val)
	}
	for _, s := range stmts {
		if len(s.path) == 0 {
			return nil, fmt.Errorf("top-level statement %q", s.key)
		}
		switch {
		case s.path[0] == "global":
		case s.path[0] == "common":
			common = append(common, s)
		case strings.HasPrefix(s.path[0], "resource "):
			resources[s.path[0]] = true
			add(s.path[0], s, s.path[1:])
		default:
			return nil, fmt.Errorf("unknown section %q", s.path[0])
		}
	}
	for res := range resources {
		for _, s := range common {
			add(res, s, s.path[1:])
		}
	}
	slices.Sort(out)
	return out, nil
}
