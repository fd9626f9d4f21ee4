package pair

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/drbd"
)

// The secret of pair.drbd.secret_file authenticates the link: both boxes,
// each reading its own copy of the file, render the same resource with
// cram-hmac-alg sha256; a file open to other users, a bad secret or a
// missing file is refused with an error that names the key and never
// shows the secret.
func TestResourceAuthenticatesTheLink(t *testing.T) {
	const secret = "c2FuZC1wYWlyLXRlc3QtZHJiZC1zZWNyZXQtMDEyMzQ1"
	dir := t.TempDir()
	file := func(name, content string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	withSecret := func(name, peer, path string) appliance.Config {
		c := testConfig(name, peer)
		c.Pair.DRBD.SecretFile = path
		return c
	}

	a, err := Resource(withSecret("san1", "san2", file("san1.secret", secret+"\n", 0o600)), "/usr/sbin/sand")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Resource(withSecret("san2", "san1", file("san2.secret", secret, 0o400)), "/usr/sbin/sand")
	if err != nil {
		t.Fatal(err)
	}
	if a.Net.Auth != (drbd.Auth{HMACAlg: drbd.HMACSHA256, Secret: secret}) {
		t.Errorf("auth %v, want sha256 with the file's secret", a.Net.Auth)
	}
	for _, render := range []func(drbd.Resource) []byte{drbd.Render84, drbd.Render9} {
		ra, rb := string(render(a)), string(render(b))
		if ra != rb {
			t.Errorf("the two boxes render different resources:\n%s\n---\n%s", ra, rb)
		}
		if !strings.Contains(ra, "cram-hmac-alg sha256;\n    shared-secret \""+secret+"\";\n") {
			t.Errorf("render without the link's authentication:\n%s", ra)
		}
	}

	for _, tt := range []struct {
		name    string
		path    string
		wantErr string
		is      error
	}{
		{name: "world readable", path: file("open", secret, 0o644), wantErr: "chmod 600", is: appliance.ErrSecretFileOpen},
		{name: "too short", path: file("short", "abc\n", 0o600), wantErr: "3 characters: want 16-63", is: drbd.ErrInvalid},
		{name: "64 characters", path: file("long", strings.Repeat("x", 64), 0o600), wantErr: "want 16-63", is: drbd.ErrInvalid},
		{name: "a quote", path: file("quote", `0123456789abcdef"; }`, 0o600), wantErr: "character 17", is: drbd.ErrInvalid},
		{name: "missing", path: filepath.Join(dir, "none"), wantErr: "no such file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Resource(withSecret("san1", "san2", tt.path), "/usr/sbin/sand")
			if err == nil || !strings.Contains(err.Error(), "pair.drbd.secret_file") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Resource = %v, want an error naming pair.drbd.secret_file and saying %q", err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v does not wrap %v", err, tt.is)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}
