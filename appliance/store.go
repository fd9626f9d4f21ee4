package appliance

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/sand-appliance/sand/appliance/durable"
)

// Store keeps the registry in one JSON file, replaced with durable.WriteFile,
// so a kill -9 or power loss at any moment leaves either the old or the new
// registry, never a torn one.
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
	return durable.WriteFile(s.Path, append(data, '\n'), 0o600)
}
