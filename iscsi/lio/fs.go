package lio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// DefaultRoot is where target_core_mod puts its configfs tree.
const DefaultRoot = "/sys/kernel/config/target"

// FS is the driver's only way into LIO: configfs below the target
// directory. Names are slash-separated and relative to that directory
// ("core/fileio_0/vm1/enable"). configfs is not a normal filesystem: Mkdir
// creates a kernel object and the kernel fills the new directory with
// attribute files and default groups; attributes are written, never created
// or removed; a symlink maps one object into another; Remove is rmdir of an
// object (with its kernel-made contents) or unlink of a symlink.
type FS interface {
	// Mkdir creates the kernel object name.
	Mkdir(name string) error
	// WriteFile stores data in the existing attribute name, in one write.
	WriteFile(name string, data []byte) error
	// ReadFile returns the attribute's text as the kernel shows it.
	ReadFile(name string) ([]byte, error)
	// Symlink makes name a link to the object target (both relative to
	// the root).
	Symlink(target, name string) error
	// Readlink returns the object the link name points at, relative to
	// the root, whatever form the kernel returns it in.
	Readlink(name string) (string, error)
	// Remove removes the object directory or the symlink name.
	Remove(name string) error
	// ReadDir lists the directory name.
	ReadDir(name string) ([]fs.DirEntry, error)
	// Exists reports whether name exists (a dangling symlink exists).
	Exists(name string) (bool, error)
}

// OSFS is FS on the real configfs through the os package.
type OSFS struct {
	root string
}

// NewOSFS returns the FS rooted at root, DefaultRoot when root is empty.
func NewOSFS(root string) *OSFS {
	if root == "" {
		root = DefaultRoot
	}
	return &OSFS{root: filepath.Clean(root)}
}

// Root is the absolute directory the names are relative to.
func (o *OSFS) Root() string { return o.root }

func (o *OSFS) abs(name string) string {
	return filepath.Join(o.root, filepath.FromSlash(name))
}

// Mkdir implements FS.
func (o *OSFS) Mkdir(name string) error {
	return os.Mkdir(o.abs(name), 0o755)
}

// WriteFile implements FS. configfs hands each write(2) to the attribute's
// store function on its own, so the value goes out in a single Write; the
// file is never created or truncated (attributes exist or the write is
// wrong).
func (o *OSFS) WriteFile(name string, data []byte) error {
	p := o.abs(name)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	n, err := f.Write(data)
	if err == nil && n != len(data) {
		err = &fs.PathError{Op: "write", Path: p, Err: fmt.Errorf("short write: %d of %d bytes", n, len(data))}
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// ReadFile implements FS.
func (o *OSFS) ReadFile(name string) ([]byte, error) {
	return os.ReadFile(o.abs(name))
}

// Symlink implements FS with an absolute target, which configfs accepts
// (it resolves the target to a config_item).
func (o *OSFS) Symlink(target, name string) error {
	return os.Symlink(o.abs(target), o.abs(name))
}

// Readlink implements FS. configfs answers readlink(2) with a relative path
// through the configfs mount ("../../../../../../target/core/fileio_0/vm1"),
// so the answer is resolved against the link's directory and made relative
// to the root again.
func (o *OSFS) Readlink(name string) (string, error) {
	p := o.abs(name)
	dst, err := os.Readlink(p)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(dst) {
		dst = filepath.Join(filepath.Dir(p), dst)
	}
	rel, err := filepath.Rel(o.root, filepath.Clean(dst))
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", &fs.PathError{Op: "readlink", Path: p, Err: fmt.Errorf("link points outside %s: %s", o.root, dst)}
	}
	return filepath.ToSlash(rel), nil
}

// Remove implements FS (unlink for a symlink, rmdir for an object).
func (o *OSFS) Remove(name string) error {
	return os.Remove(o.abs(name))
}

// ReadDir implements FS.
func (o *OSFS) ReadDir(name string) ([]fs.DirEntry, error) {
	return os.ReadDir(o.abs(name))
}

// Exists implements FS.
func (o *OSFS) Exists(name string) (bool, error) {
	_, err := os.Lstat(o.abs(name))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// Host is what the driver needs from the box's own filesystem, outside
// configfs.
type Host interface {
	// IsBlockDevice reports whether path is a block device (true) or a
	// regular file (false); it fails when path does not exist, because
	// LIO's fileio backstore would silently create an empty file there
	// (it opens fd_dev_name with O_CREAT).
	IsBlockDevice(path string) (bool, error)
	// MkdirAll creates the directory path and its parents.
	MkdirAll(path string) error
	// ReadFile reads a file of the dbroot (persistent reservations).
	ReadFile(path string) ([]byte, error)
}

// OSHost is Host on the local filesystem.
type OSHost struct{}

// IsBlockDevice implements Host.
func (OSHost) IsBlockDevice(p string) (bool, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return false, err
	}
	switch {
	case fi.Mode()&fs.ModeDevice != 0 && fi.Mode()&fs.ModeCharDevice == 0:
		return true, nil
	case fi.Mode().IsRegular():
		return false, nil
	default:
		return false, &fs.PathError{Op: "stat", Path: p, Err: fmt.Errorf("not a regular file or block device (mode %v)", fi.Mode())}
	}
}

// ReadFile implements Host.
func (OSHost) ReadFile(p string) ([]byte, error) { return os.ReadFile(p) }

// MkdirAll implements Host. The directories hold persistent reservation
// state, so only root may read them.
func (OSHost) MkdirAll(p string) error {
	return os.MkdirAll(p, 0o700)
}

// join builds a configfs name from parts.
func join(parts ...string) string { return path.Join(parts...) }
