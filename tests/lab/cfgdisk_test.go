package lab

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// pairLab is a lab of two boxes paired with DRBD, as Up records it.
func pairLab() *Lab {
	l := &Lab{State: State{Token: "0123456789abcdef0123", Pair: "drbd", SerfKey: "c2FuZC1sYWItc2VyZi1rZXktb2YtMzItYnl0ZXMhISE=",
		PairKey: "c2FuZC1sYWItcGFpci1rZXktb2YtMzItYnl0ZXMhISE="}, boxes: map[string]*Box{}}
	for i, n := range []string{"san1", "san2"} {
		octet := 11 + i
		l.Boxes = append(l.Boxes, BoxState{Name: n, Octet: octet,
			FrontIP: FrontPrefix + "." + strconv.Itoa(octet), ReplIP: ReplPrefix + "." + strconv.Itoa(octet),
			FrontMAC: "52:54:00:99:00:0b", ReplMAC: "52:54:00:98:00:0b"})
	}
	return l
}

// A box's kernel command line carries no secret: it names the config disk,
// and node.conf there has every setting, the secrets included.
func TestNoSecretOnTheCommandLine(t *testing.T) {
	l := pairLab()
	b := l.Box("san1")
	line := b.Cmdline()
	secrets := []string{l.Token, l.SerfKey, l.PairKey, drbdSecret(l.SerfKey)}
	for _, s := range secrets {
		if strings.Contains(line, s) {
			t.Errorf("the command line holds a secret (%.6s...): %s", s, line)
		}
	}
	for _, k := range []string{"token", "admin_password", "serf_key", "pair_key", "drbd_secret"} {
		if strings.Contains(line, "sand."+k+"=") {
			t.Errorf("the command line has sand.%s: %s", k, line)
		}
	}
	if !strings.Contains(line, " sand.cfg=LABEL=SANDCFG ") || !strings.Contains(line, " sand.name=san1") || !strings.Contains(line, " sand.pair=drbd") {
		t.Errorf("command line %q: want sand.cfg=LABEL=SANDCFG and the settings that are no secret", line)
	}
	conf := b.nodeConf()
	for _, kv := range b.Settings() {
		if !strings.Contains(conf, "\n"+kv+"\n") {
			t.Errorf("node.conf lacks %q", kv)
		}
	}
	if s := drbdSecret(l.SerfKey); len(s) < 16 || len(s) > 63 || s == drbdSecret("another key") {
		t.Errorf("DRBD secret %d characters, or the same for another gossip key", len(s))
	}
}

// nodeSetup runs the image's node setup in render-only mode under root,
// with the given command line; it returns what it logged.
func nodeSetup(t *testing.T, root, cmdline string) string {
	t.Helper()
	repo, err := FindRepo("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("needs bash")
	}
	file := filepath.Join(root, "cmdline")
	if err := os.WriteFile(file, []byte(cmdline+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(repo, "image/rootfs/usr/lib/sand/node-setup"))
	cmd.Env = append(os.Environ(), "SAND_SETUP_ROOT="+root, "SAND_SETUP_CMDLINE="+file,
		"SAND_SETUP_RENDER_ONLY=1", "SAND_SETUP_TEMPLATE="+filepath.Join(repo, "image/sand.yaml"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node-setup: %v\n%s", err, out)
	}
	return string(out)
}

// Secrets on the kernel command line are refused by name, with where to
// put them instead, and not used.
func TestNodeSetupRefusesSecretsOnTheCommandLine(t *testing.T) {
	root := t.TempDir()
	const token, key, secret, password = "cmdline-token-0123456789", "Y21kbGluZS1zZXJmLWtleS1vZi0zMi1ieXRlcyEhISE=", "cmdline-drbd-secret-0123", "cmdline-password"
	out := nodeSetup(t, root, "console=ttyS0 sand.name=san9 sand.token="+token+" sand.admin_password="+password+
		" sand.serf_key="+key+" sand.drbd_secret="+secret+" sand.root_password_hash=$6$x$y")
	for _, k := range []string{"token", "admin_password", "serf_key", "drbd_secret", "root_password_hash"} {
		if !strings.Contains(out, "sand."+k+" on the kernel command line is refused") {
			t.Errorf("no error naming sand.%s:\n%s", k, out)
		}
	}
	if !strings.Contains(out, "node.conf on the config partition") {
		t.Errorf("the error does not say where secrets go:\n%s", out)
	}
	cfg := filepath.Join(root, "etc/sand")
	tok, err := os.ReadFile(filepath.Join(cfg, "api-token"))
	if err != nil || strings.Contains(string(tok), token) {
		t.Errorf("api-token %q, %v: want a random token, not the command line's", tok, err)
	}
	if pw, _ := os.ReadFile(filepath.Join(cfg, "admin-password")); strings.Contains(string(pw), password) {
		t.Error("the command line's admin password was used")
	}
	for _, f := range []string{"serf.key", "drbd.secret"} {
		if _, err := os.Stat(filepath.Join(cfg, f)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s written from the command line: %v", f, err)
		}
	}
	if yaml, _ := os.ReadFile(filepath.Join(cfg, "sand.yaml")); !strings.Contains(string(yaml), `name: "san9"`) {
		t.Errorf("the settings that are no secret were not used:\n%s", yaml)
	}
}

// The first admin password: node.conf's setting moves into a file of its
// own (0600) that sand removes once hashed; once the hash is kept, a
// reboot makes no first password again and the clear text is nowhere.
func TestNodeSetupFirstPassword(t *testing.T) {
	l := pairLab()
	b := l.Box("san1")
	root := t.TempDir()
	cfg := filepath.Join(root, "etc/sand")
	if err := os.MkdirAll(cfg, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(cfg, "node.conf")
	if err := os.WriteFile(conf, []byte(b.nodeConf()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(conf, 0o644); err != nil {
		t.Fatal(err)
	}
	nodeSetup(t, root, b.Cmdline())

	mode := func(name string) os.FileMode {
		fi, err := os.Stat(filepath.Join(cfg, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return 0
		}
		return fi.Mode().Perm()
	}
	for _, f := range []string{"node.conf", "api-token", "admin-password", "serf.key", "pair.key", "drbd.secret"} {
		if m := mode(f); m != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", f, m)
		}
	}
	pw, _ := os.ReadFile(filepath.Join(cfg, "admin-password"))
	if strings.TrimSpace(string(pw)) != l.Token {
		t.Errorf("admin-password %q: want node.conf's admin_password", pw)
	}
	after, _ := os.ReadFile(conf)
	if strings.Contains(string(after), "admin_password="+l.Token) || !strings.Contains(string(after), "token="+l.Token) {
		t.Errorf("node.conf after first boot: want admin_password taken out and the rest kept:\n%s", after)
	}

	// sand hashed it and removed the clear text; the next boot.
	if err := os.Remove(filepath.Join(cfg, "admin-password")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cfg, "admin-password.hash"), []byte("$2a$10$hash\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nodeSetup(t, root, b.Cmdline())
	if _, err := os.Stat(filepath.Join(cfg, "admin-password")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a first password was made again beside the kept hash: %v", err)
	}
	yaml, _ := os.ReadFile(filepath.Join(cfg, "sand.yaml"))
	for _, want := range []string{"admin_password_file: " + cfg + "/admin-password\n", "admin_password_hash_file: " + cfg + "/admin-password.hash\n", "secret_file: " + cfg + "/drbd.secret\n"} {
		if !strings.Contains(string(yaml), want) {
			t.Errorf("sand.yaml lacks %q", want)
		}
	}
}

// A pair's secret may live in its file alone: an admin rotating it takes
// the setting out of node.conf and keeps the file the boot before wrote.
// With neither, first boot stops and names the setting.
func TestNodeSetupPairSecretFromItsFile(t *testing.T) {
	l := pairLab()
	b := l.Box("san1")
	root := t.TempDir()
	cfg := filepath.Join(root, "etc/sand")
	if err := os.MkdirAll(cfg, 0o755); err != nil {
		t.Fatal(err)
	}
	var conf []string
	for _, kv := range b.Settings() {
		if k, _, _ := strings.Cut(kv, "="); k != "serf_key" && k != "pair_key" && k != "drbd_secret" {
			conf = append(conf, kv)
		}
	}
	if err := os.WriteFile(filepath.Join(cfg, "node.conf"), []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	repo, err := FindRepo("")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(root, "cmdline")
	if err := os.WriteFile(file, []byte(b.Cmdline()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	setup := func() (string, error) {
		cmd := exec.Command("bash", filepath.Join(repo, "image/rootfs/usr/lib/sand/node-setup"))
		cmd.Env = append(os.Environ(), "SAND_SETUP_ROOT="+root, "SAND_SETUP_CMDLINE="+file,
			"SAND_SETUP_RENDER_ONLY=1", "SAND_SETUP_TEMPLATE="+filepath.Join(repo, "image/sand.yaml"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := setup(); err == nil || !strings.Contains(out, "pair=drbd needs the setting serf_key") {
		t.Fatalf("a pair without its keys: %v\n%s", err, out)
	}
	for name, v := range map[string]string{"serf.key": l.SerfKey, "pair.key": l.PairKey, "drbd.secret": "a-rotated-drbd-secret-0123"} {
		if err := os.WriteFile(filepath.Join(cfg, name), []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := setup(); err != nil {
		t.Fatalf("a pair whose secrets are in their files: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(filepath.Join(cfg, "drbd.secret")); string(got) != "a-rotated-drbd-secret-0123\n" {
		t.Errorf("drbd.secret %q: the file was rewritten", got)
	}
}
