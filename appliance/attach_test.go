package appliance

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sand-appliance/sand/iscsi"
)

// runShellLine runs one attach line in sh with iscsiadm replaced by a
// function that prints its arguments, and returns them. env sets the CHAP
// secret variables.
func runShellLine(t *testing.T, dir, line string, env []string) []string {
	t.Helper()
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("needs sh to check the attach lines as a shell reads them")
	}
	script := `iscsiadm() { for a in "$@"; do printf '%s\0' "$a"; done; }` + "\n" + line + "\n"
	cmd := exec.Command(sh, "-c", script)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("sh ran %q: %v %s", line, err, stderr.String())
	}
	return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
}

// TestAttachLinesAreShellSafe: whatever a name, IQN, portal or CHAP
// account holds (the registry's checks aside: an account set before sand
// restricted CHAP users loads as it is), each line is read by a shell as
// exactly the intended arguments, nothing runs, and no line carries a CHAP
// secret.
func TestAttachLinesAreShellSafe(t *testing.T) {
	const secret, mutual = `s3cr$t'x"1;$(a)`, "mutual-secret-9"
	tests := []struct {
		name           string
		portal, target string
		group          InitiatorGroup
	}{
		{"plain", "10.0.0.50:3260", "iqn.2026-11.org.sand-appliance:vm01", InitiatorGroup{Name: "xen"}},
		{"ipv6 portal", "[fd00::50]:3260", "iqn.2026-11.org.sand-appliance:vm01", InitiatorGroup{Name: "xen"}},
		{"chap", "10.0.0.50:3260", "iqn.2026-11.org.sand-appliance:vm01",
			InitiatorGroup{Name: "xen", CHAP: &iscsi.CHAP{User: "dom0@example.org", Secret: "0123456789abcd"}}},
		{"hostile chap user", "10.0.0.50:3260", "iqn.2026-11.org.sand-appliance:vm01",
			InitiatorGroup{Name: "xen", CHAP: &iscsi.CHAP{User: `u';touch pwned-user;'$(touch pwned-sub)` + "`touch pwned-bq`", Secret: secret},
				MutualCHAP: &iscsi.CHAP{User: `m"$HOME\`, Secret: mutual}}},
		{"hostile target", "10.0.0.50:3260", `iqn.x;touch pwned-target #'`, InitiatorGroup{Name: "xen"}},
		{"glob and tilde", "~/*", "iqn.[a-z]*?", InitiatorGroup{Name: "xen", CHAP: &iscsi.CHAP{User: "-v", Secret: secret}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "iqn.ab"), nil, 0o600) // a glob's target
			a := attachLines(tt.portal, LUN{Name: "vm01", Target: tt.target}, tt.group)
			node := []string{"-m", "node", "-T", tt.target, "-p", tt.portal}
			update := func(key, value string) []string {
				return append(append([]string{}, node...), "-o", "update", "-n", key, "-v", value)
			}
			want := [][]string{{"-m", "discovery", "-t", "sendtargets", "-p", tt.portal}}
			env := []string{"HOME=/nonexistent"}
			if c := tt.group.CHAP; c != nil {
				want = append(want, update("node.session.auth.authmethod", "CHAP"),
					update("node.session.auth.username", c.User), update("node.session.auth.password", c.Secret))
				env = append(env, CHAPSecretVar+"="+c.Secret)
				if m := tt.group.MutualCHAP; m != nil {
					want = append(want, update("node.session.auth.username_in", m.User), update("node.session.auth.password_in", m.Secret))
					env = append(env, MutualCHAPSecretVar+"="+m.Secret)
				}
				if !strings.Contains(a.Note, "read -rs "+CHAPSecretVar) {
					t.Errorf("the note does not say how to set the secret: %q", a.Note)
				}
			}
			want = append(want, append(append([]string{}, node...), "--login"))
			var got [][]string
			for _, line := range a.Iscsiadm {
				if !strings.HasPrefix(line, "iscsiadm ") {
					t.Errorf("line %q does not start with the command", line)
				}
				got = append(got, runShellLine(t, dir, line, env))
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("arguments as sh reads the lines (-want +got):\n%s\nlines:\n%s", diff, strings.Join(a.Iscsiadm, "\n"))
			}
			if pwned, _ := filepath.Glob(filepath.Join(dir, "pwned*")); len(pwned) > 0 {
				t.Errorf("the lines ran commands: %v", pwned)
			}
			all := strings.Join(append(a.Iscsiadm, a.XenDisk, a.Note), "\n")
			for _, s := range []string{secret, mutual} {
				if strings.Contains(all, s) {
					t.Errorf("the attach lines carry a CHAP secret:\n%s", all)
				}
			}
			if strings.Contains(a.XenDisk, "auth_method") || strings.Contains(a.XenDisk, "password") {
				t.Errorf("the xl line carries CHAP settings: %s", a.XenDisk)
			}
			if strings.ContainsAny(tt.target, `'"\`) != (a.XenDisk == "") {
				t.Errorf("xl line %q for target %q", a.XenDisk, tt.target)
			}
		})
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"iqn.2026-11.org.example:dom0-a": "iqn.2026-11.org.example:dom0-a",
		"10.0.0.50:3260":                 "10.0.0.50:3260",
		"user@example.org":               "user@example.org",
		"":                               "''",
		"a b":                            "'a b'",
		"it's":                           `'it'\''s'`,
		"[fd00::1]:3260":                 "'[fd00::1]:3260'",
		"$(reboot)":                      "'$(reboot)'",
		"~root":                          "'~root'",
		"a\nb":                           "'a\nb'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestCHAPRules: what an admin may set as a CHAP account, each refusal
// saying what is wrong; a registry saved before the rules loads.
func TestCHAPRules(t *testing.T) {
	ok := []iscsi.CHAP{
		{User: "xen", Secret: "0123456789ab"},
		{User: "iqn.2026-11.org.example:dom0-a", Secret: "a-b_c.d:e@f!g#h%"},
		{User: "dom0@example.org", Secret: "~!@#$%^&*()-+=[]"},
		{User: strings.Repeat("u", 255), Secret: "0123456789abcdef"},
	}
	for _, c := range ok {
		if err := (InitiatorGroup{Name: "xen", CHAP: &c}).Validate(); err != nil {
			t.Errorf("%+v refused: %v", c, err)
		}
	}
	bad := []struct {
		name string
		chap iscsi.CHAP
		msg  string
	}{
		{"semicolon", iscsi.CHAP{User: "a;reboot", Secret: "0123456789ab"}, "may hold only letters, digits and . - _ : @"},
		{"dollar", iscsi.CHAP{User: "$(id)", Secret: "0123456789ab"}, "may hold only"},
		{"quote", iscsi.CHAP{User: "o'brien", Secret: "0123456789ab"}, "may hold only"},
		{"slash", iscsi.CHAP{User: "a/b", Secret: "0123456789ab"}, "may hold only"},
		{"non-ASCII", iscsi.CHAP{User: "d\u00f6m0", Secret: "0123456789ab"}, "control characters"},
		{"space", iscsi.CHAP{User: "a b", Secret: "0123456789ab"}, "spaces"},
		{"too long", iscsi.CHAP{User: strings.Repeat("u", 256), Secret: "0123456789ab"}, "at most 255"},
		{"empty user", iscsi.CHAP{User: "", Secret: "0123456789ab"}, "user is empty"},
		{"short secret", iscsi.CHAP{User: "xen", Secret: "short"}, "12 to 16"},
		{"long secret", iscsi.CHAP{User: "xen", Secret: strings.Repeat("s", 17)}, "12 to 16"},
		{"secret with quote", iscsi.CHAP{User: "xen", Secret: `0123456789'ab`}, "quote, backquote or backslash"},
		{"secret with double quote", iscsi.CHAP{User: "xen", Secret: `0123456789"ab`}, "quote, backquote or backslash"},
		{"secret with backquote", iscsi.CHAP{User: "xen", Secret: "0123456789`ab"}, "quote, backquote or backslash"},
		{"secret with backslash", iscsi.CHAP{User: "xen", Secret: `0123456789\ab`}, "quote, backquote or backslash"},
		{"secret with space", iscsi.CHAP{User: "xen", Secret: "0123456789 ab"}, "spaces"},
		{"redacted secret sent back", iscsi.CHAP{User: "xen", Secret: RedactedSecret}, "placeholder sand shows"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			for _, g := range []InitiatorGroup{
				{Name: "xen", CHAP: &tt.chap},
				{Name: "xen", CHAP: &iscsi.CHAP{User: "xen", Secret: "another-secret"}, MutualCHAP: &tt.chap},
			} {
				err := g.Validate()
				if err == nil || !strings.Contains(err.Error(), tt.msg) || !strings.Contains(err.Error(), `initiator group "xen"`) {
					t.Errorf("Validate() = %v, want an error saying %q", err, tt.msg)
				}
				if g.MutualCHAP != nil && (err == nil || !strings.Contains(err.Error(), "mutual CHAP")) {
					t.Errorf("the error does not name the mutual account: %v", err)
				}
				if len(tt.chap.Secret) >= 8 && err != nil && strings.Contains(err.Error(), tt.chap.Secret) && tt.chap.Secret != RedactedSecret {
					t.Errorf("the error quotes the secret: %v", err)
				}
			}
		})
	}
	// An account saved before the rules: the registry loads, a change
	// to the group must replace it.
	legacy := Registry{Groups: []InitiatorGroup{{Name: "xen", CHAP: &iscsi.CHAP{User: "dom0#1", Secret: `0123456789\ab`}}}}
	if err := legacy.Validate(); err != nil {
		t.Errorf("a registry with an older CHAP account does not load: %v", err)
	}
	if err := legacy.Groups[0].Validate(); err == nil {
		t.Error("a change keeping an account that breaks the rules was allowed")
	}
}

func TestRedacted(t *testing.T) {
	g := InitiatorGroup{Name: "xen", Initiators: []string{"iqn.2026-11.org.example:a"},
		CHAP: &iscsi.CHAP{User: "u", Secret: "0123456789ab"}, MutualCHAP: &iscsi.CHAP{User: "m", Secret: "ba9876543210"}}
	r := g.Redacted()
	if r.CHAP.User != "u" || r.CHAP.Secret != RedactedSecret || r.MutualCHAP.User != "m" || r.MutualCHAP.Secret != RedactedSecret {
		t.Errorf("redacted: %+v %+v", r.CHAP, r.MutualCHAP)
	}
	if g.CHAP.Secret != "0123456789ab" || g.MutualCHAP.Secret != "ba9876543210" {
		t.Error("Redacted changed the group it copied")
	}
	r.Initiators[0] = "changed"
	if g.Initiators[0] == "changed" {
		t.Error("Redacted shares the initiator list")
	}
	if (InitiatorGroup{Name: "plain"}).Redacted().CHAP != nil {
		t.Error("a group without CHAP got some")
	}
}
