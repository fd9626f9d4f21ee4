package ui

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/appliance/durable"
)

// AdminUser is the name of the web UI's one local account.
const AdminUser = "admin"

// bcryptCost is the work factor of new hashes (tests lower it).
var bcryptCost = bcrypt.DefaultCost

// Password rules: bcrypt reads at most 72 bytes.
const (
	minPasswordLen = 10
	maxPasswordLen = 72
)

// Account is the web UI's local admin account: a bcrypt hash, either fixed
// by sand.yaml (admin_password_hash) or kept in a file of the state
// directory that the UI can change.
type Account struct {
	mu   sync.RWMutex
	hash []byte
	// path is the file the hash is kept in; empty when sand.yaml fixes it.
	path string
	// compare checks a password against a hash: bcrypt's, or a test's
	// stand-in that watches how many checks run at once.
	compare func(hash, password []byte) error
}

// NewAccount returns an account with a fixed bcrypt hash.
func NewAccount(hash string) (*Account, error) {
	h := []byte(strings.TrimSpace(hash))
	if _, err := bcrypt.Cost(h); err != nil {
		return nil, fmt.Errorf("admin password hash is not a bcrypt hash (it starts with $2a$, $2b$ or $2y$): %w", err)
	}
	return &Account{hash: h}, nil
}

// OpenAccount finds the admin password, in this order:
//   - configHash (admin_password_hash in sand.yaml): fixed, the UI cannot
//     change it;
//   - the hash kept at statePath by an earlier start or a password change;
//   - firstPasswordFile (admin_password_file): a clear-text first password,
//     e.g. written by first boot; its bcrypt hash is stored at statePath,
//     and then the clear-text file is removed.
//
// The clear text must not outlive its hash: a first password file that is
// still there while statePath holds a hash is removed too, and one that
// cannot be removed (a read-only place) is an error that says to remove it
// or to take admin_password_file out of sand.yaml. Both files are read
// through appliance.ReadSecret: one open to other users is refused.
//
// With none of them it returns nil and no error: the UI then refuses every
// login and says how to set a password.
func OpenAccount(statePath, configHash, firstPasswordFile string) (*Account, error) {
	if configHash != "" {
		return NewAccount(configHash)
	}
	data, err := appliance.ReadSecret(statePath)
	switch {
	case err == nil:
		a, err := NewAccount(string(data))
		if err != nil {
			return nil, fmt.Errorf("read admin password %s: %w", statePath, err)
		}
		a.path = statePath
		if err := removeFirstPassword(firstPasswordFile, statePath); err != nil {
			return nil, err
		}
		return a, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read admin password: %w", err)
	case firstPasswordFile == "":
		return nil, nil
	}
	first, err := appliance.ReadSecret(firstPasswordFile)
	if err != nil {
		return nil, fmt.Errorf("read admin_password_file: %w", err)
	}
	password := strings.TrimRight(string(first), "\r\n")
	if err := checkPassword(password); err != nil {
		return nil, fmt.Errorf("admin_password_file %s: %w", firstPasswordFile, err)
	}
	a := &Account{path: statePath}
	if err := a.set(password); err != nil {
		return nil, err
	}
	if err := removeFirstPassword(firstPasswordFile, statePath); err != nil {
		return nil, err
	}
	return a, nil
}

// removeFirstPassword removes the clear-text first password once its hash
// is kept at statePath ("" or a file already gone: nothing to do). The
// directory is synced so the removal survives a power loss.
func removeFirstPassword(path, statePath string) error {
	if path == "" {
		return nil
	}
	err := os.Remove(path)
	switch {
	case err == nil:
		if d, err := os.Open(filepath.Dir(path)); err == nil {
			d.Sync()
			d.Close()
		}
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return nil
	}
	return fmt.Errorf("the admin password's hash is kept in %s, but the clear-text first password %s could not be removed (%w): remove it, or take admin_password_file out of sand.yaml", statePath, path, err)
}

// checkPassword says what is wrong with a new password.
func checkPassword(p string) error {
	switch n := utf8.RuneCountInString(p); {
	case n < minPasswordLen:
		return fmt.Errorf("the password has %d characters: use at least %d", n, minPasswordLen)
	case len(p) > maxPasswordLen:
		return fmt.Errorf("the password is %d bytes long: use at most %d (bcrypt reads no more)", len(p), maxPasswordLen)
	}
	return nil
}

// dummyHash is compared against when the user name is wrong, so a wrong
// name takes as long as a wrong password.
var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("sand-dummy-password"), bcryptCost)
	return h
})

// Check reports whether user and password are the admin's.
func (a *Account) Check(user, password string) bool {
	a.mu.RLock()
	hash := a.hash
	a.mu.RUnlock()
	userOK := subtle.ConstantTimeCompare([]byte(user), []byte(AdminUser)) == 1
	if !userOK {
		hash = dummyHash()
	}
	compare := a.compare
	if compare == nil {
		compare = bcrypt.CompareHashAndPassword
	}
	return compare(hash, []byte(password)) == nil && userOK
}

// Changeable reports whether the UI may change the password (it may not
// when sand.yaml fixes the hash).
func (a *Account) Changeable() bool { return a.path != "" }

// Change replaces the password after checking the current one.
func (a *Account) Change(current, next string) error {
	if !a.Changeable() {
		return fmt.Errorf("%w: the admin password is set by admin_password_hash in sand.yaml: change it there", appliance.ErrInvalid)
	}
	if !a.Check(AdminUser, current) {
		return &fieldError{Field: "current", Err: fmt.Errorf("%w: the current password is wrong", appliance.ErrInvalid)}
	}
	if err := checkPassword(next); err != nil {
		return &fieldError{Field: "new", Err: fmt.Errorf("%w: %v", appliance.ErrInvalid, err)}
	}
	return a.set(next)
}

func (a *Account) set(password string) error {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcryptCost)
	if err != nil {
		return fmt.Errorf("hash admin password: %w", err)
	}
	if err := durable.WriteFile(a.path, append(hash, '\n'), 0o600); err != nil {
		return fmt.Errorf("store admin password: %w", err)
	}
	a.mu.Lock()
	a.hash = hash
	a.mu.Unlock()
	return nil
}
