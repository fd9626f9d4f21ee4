package ui

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sand-appliance/sand/appliance"
)

// The clear-text first password is gone once its hash is kept, and the
// hash alone opens the account at the next start.
func TestFirstPasswordRemovedOnceHashed(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state", "admin-password")
	if err := os.MkdirAll(filepath.Dir(state), 0o700); err != nil {
		t.Fatal(err)
	}
	first := filepath.Join(dir, "first")
	write := func(path, content string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	gone := func(path string) bool {
		_, err := os.Stat(path)
		return errors.Is(err, fs.ErrNotExist)
	}

	write(first, "the first password\n", 0o600)
	a, err := OpenAccount(state, "", first)
	if err != nil || a == nil || !a.Check(AdminUser, "the first password") {
		t.Fatalf("OpenAccount with a first password: %v, %v", a, err)
	}
	if !gone(first) {
		t.Error("the clear-text first password is still there after its hash was stored")
	}
	if fi, err := os.Stat(state); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("stored hash: %v, %v; want mode 0600", fi, err)
	}

	// The next start (a reboot): the hash alone, the password unchanged.
	b, err := OpenAccount(state, "", first)
	if err != nil || b == nil || !b.Check(AdminUser, "the first password") {
		t.Fatalf("reopened account: %v, %v", b, err)
	}

	// A first password written again while the hash is kept (first boot
	// ran again) is not read, and is removed.
	write(first, "another first password\n", 0o600)
	c, err := OpenAccount(state, "", first)
	if err != nil || !c.Check(AdminUser, "the first password") || c.Check(AdminUser, "another first password") {
		t.Fatalf("account with a leftover first password: %v", err)
	}
	if !gone(first) {
		t.Error("a leftover first password stayed beside the hash")
	}

	// One that cannot be removed is an error saying what to do.
	if _, err := OpenAccount(state, "", "/proc/self/status"); err == nil ||
		!strings.Contains(err.Error(), "could not be removed") || !strings.Contains(err.Error(), "admin_password_file") {
		t.Errorf("a first password that cannot be removed: %v, want an error saying to remove it", err)
	}

	// A password file that others may read is refused and left as it is,
	// with nothing hashed.
	other := filepath.Join(dir, "other-state")
	write(first, "the first password\n", 0o644)
	if _, err := OpenAccount(other, "", first); !errors.Is(err, appliance.ErrSecretFileOpen) || !strings.Contains(err.Error(), "chmod 600 "+first) {
		t.Errorf("world-readable first password: %v, want the chmod 600 error", err)
	}
	if gone(first) || !gone(other) {
		t.Error("a refused first password was removed or hashed")
	}

	// So is a kept hash that others may read.
	if err := os.Chmod(state, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenAccount(state, "", ""); !errors.Is(err, appliance.ErrSecretFileOpen) {
		t.Errorf("world-readable hash: %v, want the chmod 600 error", err)
	}
}
