package appliance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A DRBD pair must name its link's secret file, and the file must exist.
func TestValidateDRBDSecretFile(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "drbd.secret")
	if err := os.WriteFile(secret, []byte("c2FuZC10ZXN0LWRyYmQtc2VjcmV0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	drbdPair := func() Config {
		c := pairConfig(t)
		c.Pool.Kind = "lvm"
		c.Pair.Storage = "drbd"
		c.Pair.DRBD = DefaultConfig().Pair.DRBD
		c.Pair.DRBD.Address, c.Pair.DRBD.PeerAddress = "10.1.0.11", "10.1.0.12"
		c.Pair.DRBD.SecretFile = secret
		return c
	}
	if err := drbdPair().Validate(); err != nil {
		t.Fatalf("valid DRBD pair: %v", err)
	}
	for _, tc := range []struct {
		name, file, wants string
	}{
		{"no secret file", "", "pair.drbd.secret_file is empty"},
		{"a missing secret file", filepath.Join(t.TempDir(), "none"), "pair.drbd.secret_file: stat"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := drbdPair()
			c.Pair.DRBD.SecretFile = tc.file
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.wants) {
				t.Errorf("Validate = %v, want %q", err, tc.wants)
			}
		})
	}
	// A shared-storage pair has no DRBD link and needs no secret.
	if err := pairConfig(t).Validate(); err != nil {
		t.Errorf("shared pair without a DRBD secret: %v", err)
	}
}

// The admin password's hash lives at admin_password_hash_file when set.
func TestAdminPasswordPath(t *testing.T) {
	c := DefaultConfig()
	c.Portal = "10.0.0.11"
	if got := c.AdminPasswordPath(); got != "/var/lib/sand/admin-password" {
		t.Errorf("default AdminPasswordPath = %s", got)
	}
	c.AdminPasswordHashFile = "/etc/sand/admin-password.hash"
	if got := c.AdminPasswordPath(); got != c.AdminPasswordHashFile {
		t.Errorf("AdminPasswordPath = %s, want admin_password_hash_file", got)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
	c.AdminPasswordHashFile = "admin-password.hash"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "admin_password_hash_file") {
		t.Errorf("relative admin_password_hash_file: %v", err)
	}
}
