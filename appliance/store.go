package appliance

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/google/renameio/v2"
)

// Store keeps the registry in one JSON file, replaced atomically: a write
// goes to a temporary file, is fsynced, renamed over the old one and the
// directory fsynced, so a kill -9 or power loss at any moment leaves either
// the old or the new registry, never a torn one.
type Store struct {
	Path string
}

// Load reads and validates the registry; a missing file is an empty registry.
func (s Store) Load() (Registry, error) {
	data, err := os.ReadFile(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return Registry{}, nil
	}
	if err != nil {
		return Registry{}, fmt.Errorf("read registry: %w", err)
	}
	var r Registry
	if err := json.Unmarshal(data, &r); err != nil {
		return Registry{}, fmt.Errorf("parse registry %s: %w", s.Path, err)
	}
	if err := r.Validate(); err != nil {
		return Registry{}, fmt.Errorf("check registry %s: %w", s.Path, err)
	}
	return r, nil
}

// Save writes r atomically and durably.
func (s Store) Save(r Registry) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode registry: %w", err)
	}
	return WriteFileAtomic(s.Path, append(data, '\n'), 0o600)
}

// WriteFileAtomic replaces path with data so that readers and a crash see the
// old or the new content only, and the rename is durable once it returns.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create directory for %s: %w", path, err)
	}
	if err := renameio.WriteFile(path, data, perm); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// renameio fsyncs the file before the rename; the directory entry is
	// durable only once the directory itself is synced.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
