//go:build netns

package security

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sand-appliance/sand/tests/netlab"
)

// TestSecretFilesOpenToOthersRefused: a real sand serve whose API token file
// every user can read refuses to start, with an error that names the file
// and says the fix; after chmod 600 it starts. The CLI refuses a token file
// and a CHAP secret file open to others the same way, and the group keeps
// no CHAP.
func TestSecretFilesOpenToOthersRefused(t *testing.T) {
	netlab.Require(t, "ip", "go", "tgtd", "tgtadm")
	lab := netlab.New(t, "10.231.0")
	srv := lab.AddHost("san1", 11)
	admin := lab.AddHost("admin", 100)
	bin := netlab.BuildSand(t)
	box := netlab.NewSandBox(t, srv, bin)

	if err := os.Chmod(box.TokenFile, 0o644); err != nil {
		t.Fatal(err)
	}
	p := srv.Start(bin, "serve", "--config", box.Config)
	select {
	case <-waitExit(p):
	case <-time.After(30 * time.Second):
		p.Signal(syscall.SIGKILL)
		t.Fatalf("sand serve with a world-readable token file is still running after 30 s:\n%s", p.Output())
	}
	if p.Err() == nil {
		t.Fatalf("sand serve with a world-readable token file exited 0:\n%s", p.Output())
	}
	out := p.Output()
	for _, want := range []string{box.TokenFile, "mode 0644", "chmod 600 " + box.TokenFile} {
		if !strings.Contains(out, want) {
			t.Errorf("sand serve's error does not say %q:\n%s", want, out)
		}
	}
	t.Logf("sand serve refused to start: %s", lastLine(out))
	if token, _ := os.ReadFile(box.TokenFile); strings.Contains(out, strings.TrimSpace(string(token))) {
		t.Errorf("sand serve printed the token:\n%s", out)
	}
	for _, port := range []string{"7443", "7480"} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		if c, err := srv.DialContext(ctx, "tcp", net.JoinHostPort(srv.IP, port)); err == nil {
			c.Close()
			t.Errorf("something listens on port %s although sand refused to start", port)
		}
		cancel()
	}

	if err := os.Chmod(box.TokenFile, 0o600); err != nil {
		t.Fatal(err)
	}
	box.Start(admin)

	// The CLI: a token file and a CHAP secret file open to others.
	box.MustCLI(admin, "group", "create", "xen", "iqn.2026-11.org.example:dom0")
	if err := os.Chmod(box.TokenFile, 0o604); err != nil {
		t.Fatal(err)
	}
	if out, err := box.CLI(admin, "group", "show", "xen"); err == nil || !strings.Contains(out, "chmod 600 "+box.TokenFile) {
		t.Errorf("the CLI with an other-readable token file: %v\n%s", err, out)
	}
	if err := os.Chmod(box.TokenFile, 0o600); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "chap")
	if err := os.WriteFile(secret, []byte("0123456789abcd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(secret, 0o640); err != nil {
		t.Fatal(err)
	}
	out, err := box.CLI(admin, "group", "chap", "xen", "--user", "dom0", "--secret-file", secret)
	if err == nil || !strings.Contains(out, "mode 0640") || !strings.Contains(out, "chmod 600 "+secret) {
		t.Errorf("sand group chap with a group-readable secret file: %v\n%s", err, out)
	}
	if strings.Contains(out, "0123456789abcd") {
		t.Errorf("the CLI printed the secret:\n%s", out)
	}
	if show := box.MustCLI(admin, "group", "show", "xen", "-o", "json"); strings.Contains(show, `"chap"`) {
		t.Errorf("the refused CHAP account was set:\n%s", show)
	}
}

// TestFirstPasswordGoneAfterStart: a real sand serve hashes the clear-text
// first admin password, removes the file, and the admin logs in with the
// password; after a restart (the hash alone) too.
func TestFirstPasswordGoneAfterStart(t *testing.T) {
	netlab.Require(t, "ip", "go", "tgtd", "tgtadm", "curl")
	lab := netlab.New(t, "10.232.0")
	srv := lab.AddHost("san1", 11)
	admin := lab.AddHost("admin", 100)
	bin := netlab.BuildSand(t)
	box := netlab.NewSandBox(t, srv, bin)
	const password = "first admin password 1"
	dir := t.TempDir()
	first := filepath.Join(dir, "admin-password")
	hash := filepath.Join(dir, "admin-password.hash")
	if err := os.WriteFile(first, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	appendConfig(t, box.Config, "admin_password_file: "+first+"\nadmin_password_hash_file: "+hash+"\n")
	box.Start(admin)

	if _, err := os.Stat(first); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the clear-text first password is still there after sand started: %v", err)
	}
	fi, err := os.Stat(hash)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the kept hash: %v, %v; want a file of mode 0600", fi, err)
	}
	if data, _ := os.ReadFile(hash); strings.Contains(string(data), password) || !strings.HasPrefix(string(data), "$2") {
		t.Errorf("the kept hash is not a bcrypt hash: %q", data)
	}
	jar := filepath.Join(t.TempDir(), "jar")
	if code := login(t, admin, box, jar, password); code != "303" {
		t.Errorf("login with the first password: HTTP %s, want 303", code)
	}
	if code := login(t, admin, box, filepath.Join(t.TempDir(), "jar"), "a wrong password"); code == "303" {
		t.Error("login with a wrong password succeeded")
	}

	// A restart: the hash alone opens the account.
	if err := box.Proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	box.Start(admin)
	if code := login(t, admin, box, filepath.Join(t.TempDir(), "jar"), password); code != "303" {
		t.Errorf("login after a restart: HTTP %s, want 303", code)
	}
	if _, err := os.Stat(first); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a first password file came back: %v", err)
	}
}

// lastLine is the last line of out that is not empty.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

func waitExit(p *netlab.Proc) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		p.Err()
		close(ch)
	}()
	return ch
}

// appendConfig adds YAML lines to a box's sand.yaml.
func appendConfig(t *testing.T, path, yaml string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(yaml); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// login posts the UI's login form with curl from a host, keeping cookies in
// jar, trusting the box's own certificate, and returns the HTTP status (303
// on success).
func login(t *testing.T, in *netlab.Host, box *netlab.SandBox, jar, password string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	curl := func(args ...string) (string, error) {
		return in.Run(ctx, "curl", append(append([]string{"-sS", "--max-time", "20", "-c", jar, "-b", jar}, box.Curl()...), args...)...)
	}
	page, err := curl(box.APIURL() + "/ui/login")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if err != nil || m == nil {
		t.Fatalf("login page: %v %s", err, page)
	}
	out, err := curl("-o", "/dev/null", "-w", "%{http_code}",
		"-d", "csrf="+m[1]+"&user=admin&password="+strings.ReplaceAll(password, " ", "+"), box.APIURL()+"/ui/login")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	return strings.TrimSpace(out)
}
