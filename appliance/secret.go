package appliance

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
)

// ErrSecretFileOpen is wrapped when a secret file is open to users other
// than its owner.
var ErrSecretFileOpen = errors.New("secret file open to other users")

// maxSecretFile bounds what ReadSecret reads: a secret file holds one short
// token, key or password.
const maxSecretFile = 64 << 10

// ReadSecret reads a secret file (a token, key or password) as it is. It
// refuses:
//   - a file that its group or other users may read, write or execute (any
//     of the mode bits 077): others could read the secret or replace it.
//     The error says the fix, chmod 600;
//   - anything but a regular file: a FIFO would block the reader, a device
//     or directory holds no secret;
//   - a file over 64 KiB.
//
// A symbolic link is followed, and the file it leads to is checked:
// systemd's credentials and Kubernetes' secrets are links, and on Linux a
// link's own mode means nothing. The checks are of the opened file (fstat),
// so a file swapped after the check is not the one read.
func ReadSecret(path string) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO must not wait for a writer.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("read secret file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read secret file: %w", err)
	}
	if err := checkSecretMode(path, fi); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Errorf("read secret file %s: %w", path, err)
	}
	if len(data) > maxSecretFile {
		return nil, fmt.Errorf("secret file %s is over %d KiB: it must hold one token, key or password", path, maxSecretFile>>10)
	}
	return data, nil
}

// checkSecretMode refuses what ReadSecret refuses by its mode.
func checkSecretMode(path string, fi os.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("secret file %s is not a regular file (%s): put the secret in a plain file", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o, so %s may read or replace it; fix it with: chmod 600 %s",
			ErrSecretFileOpen, path, perm, others(perm), path)
	}
	return nil
}

// others names who besides the owner has access under perm.
func others(perm os.FileMode) string {
	switch {
	case perm&0o070 != 0 && perm&0o007 != 0:
		return "its group and every user"
	case perm&0o070 != 0:
		return "its group"
	}
	return "every user"
}

// ReadSecretFile reads a token, key or password file through ReadSecret,
// trimming the white space an editor leaves.
func ReadSecretFile(path string) (string, error) {
	data, err := ReadSecret(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "", fmt.Errorf("secret file %s is empty", path)
	}
	return s, nil
}

// Token is the configured API token, from the file when one is named.
func (c Config) Token() (string, error) {
	if c.APITokenFile != "" {
		return ReadSecretFile(c.APITokenFile)
	}
	return c.APIToken, nil
}

// Monitor is the configured monitoring token ("" for none), from the file
// when one is named.
func (c Config) Monitor() (string, error) {
	if c.MonitorTokenFile != "" {
		return ReadSecretFile(c.MonitorTokenFile)
	}
	return c.MonitorToken, nil
}
