package cert

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Files are a certificate (PEM, with any intermediates) and its private
// key on disk.
type Files struct {
	Cert, Key string
}

// pending is where write puts a file before renaming it into place.
func pending(path string) string { return path + ".new" }

// Exist reports whether the certificate and the key are there: both
// (true), neither (false), or one without the other (an error).
func (f Files) Exist() (bool, error) {
	if err := f.recover(); err != nil {
		return false, err
	}
	c, err := exists(f.Cert)
	if err != nil {
		return false, err
	}
	k, err := exists(f.Key)
	if err != nil {
		return false, err
	}
	switch {
	case c && !k:
		return false, fmt.Errorf("TLS certificate %s has no key %s beside it: restore the key, or remove the certificate to have sand make a new pair", f.Cert, f.Key)
	case k && !c:
		return false, fmt.Errorf("TLS key %s has no certificate %s beside it: restore the certificate, or remove the key to have sand make a new pair", f.Key, f.Cert)
	}
	return c, nil
}

func exists(path string) (bool, error) {
	_, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look for %s: %w", path, err)
	}
	return true, nil
}

// Read reads both files. The key must be readable by its owner only: it
// is refused when its group or others may read or write it.
func (f Files) Read() (certPEM, keyPEM []byte, err error) {
	fi, err := os.Stat(f.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("read TLS key: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, nil, fmt.Errorf("TLS key %s has mode %04o: others may read it; chmod 600 %s (and make a new key if strangers had it)", f.Key, fi.Mode().Perm(), f.Key)
	}
	if keyPEM, err = os.ReadFile(f.Key); err != nil {
		return nil, nil, fmt.Errorf("read TLS key: %w", err)
	}
	if certPEM, err = os.ReadFile(f.Cert); err != nil {
		return nil, nil, fmt.Errorf("read TLS certificate: %w", err)
	}
	return certPEM, keyPEM, nil
}

// Load reads and parses both files.
func (f Files) Load() (*tls.Certificate, error) {
	certPEM, keyPEM, err := f.Read()
	if err != nil {
		return nil, err
	}
	c, err := Parse(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("TLS certificate %s and key %s: %w", f.Cert, f.Key, err)
	}
	return c, nil
}

// Write replaces both files: the key with mode 0600, the certificate 0644,
// their directory made 0755 if missing. Both are written beside their
// final names first and renamed in place key first; a crash between the
// two renames is finished by the next Exist (recover).
func (f Files) Write(certPEM, keyPEM []byte) error {
	for _, dir := range []string{filepath.Dir(f.Cert), filepath.Dir(f.Key)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("make TLS directory: %w", err)
		}
	}
	if err := writeSynced(pending(f.Key), keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeSynced(pending(f.Cert), certPEM, 0o644); err != nil {
		os.Remove(pending(f.Key))
		return err
	}
	if err := os.Rename(pending(f.Key), f.Key); err != nil {
		os.Remove(pending(f.Key))
		os.Remove(pending(f.Cert))
		return fmt.Errorf("put TLS key in place: %w", err)
	}
	// From here the new certificate is committed: recover finishes it.
	if err := os.Rename(pending(f.Cert), f.Cert); err != nil {
		return fmt.Errorf("put TLS certificate in place: %w", err)
	}
	syncDir(filepath.Dir(f.Key))
	if filepath.Dir(f.Cert) != filepath.Dir(f.Key) {
		syncDir(filepath.Dir(f.Cert))
	}
	return nil
}

// recover finishes or forgets a Write a crash cut short: a pending key
// means neither file was renamed yet (forget both); a pending certificate
// alone means the key is new already (rename the certificate too).
func (f Files) recover() error {
	key, err := exists(pending(f.Key))
	if err != nil {
		return err
	}
	cert, err := exists(pending(f.Cert))
	if err != nil {
		return err
	}
	switch {
	case key:
		os.Remove(pending(f.Key))
		os.Remove(pending(f.Cert))
	case cert:
		if err := os.Rename(pending(f.Cert), f.Cert); err != nil {
			return fmt.Errorf("finish replacing TLS certificate %s: %w", f.Cert, err)
		}
	}
	return nil
}

func writeSynced(path string, data []byte, mode os.FileMode) error {
	os.Remove(path)
	fh, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = fh.Write(data)
	if err == nil {
		err = fh.Chmod(mode) // the umask may have taken bits off
	}
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
