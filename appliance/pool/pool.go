// Package pool defines the storage pool that backs LUNs: a volume per LUN,
// created, grown and deleted by name. Implementations: file (sparse files
// in a directory) and lvm (thin LVs in a volume group).
package pool

import (
	"context"
	"errors"

	"github.com/sand-appliance/sand/iscsi"
)

// VolumePrefix marks volumes that sand owns, so a crash between creating a
// volume and committing the registry leaves an orphan that sand can
// recognise and remove, and no one else's volume is ever touched.
const VolumePrefix = "lun-"

// ErrNotFound is returned for a volume that does not exist.
var ErrNotFound = errors.New("volume not found")

// Volume is one LUN's backing store.
type Volume struct {
	Name string // the LUN name, without VolumePrefix
	Path string
	Size int64 // provisioned bytes
	Used int64 // bytes actually allocated (thin/sparse)
}

// Capacity of a pool in bytes.
type Capacity struct {
	Size        int64 // what the pool can hold
	Provisioned int64 // sum of volume sizes
	Used        int64 // bytes actually allocated
}

// Pool creates and manages LUN volumes.
type Pool interface {
	// Kind names the implementation ("file", "lvm").
	Kind() string
	// IOType is how a target should open this pool's volumes.
	IOType() iscsi.IOType
	// Path is where the named volume lives (whether or not it exists).
	Path(name string) string
	Create(ctx context.Context, name string, size int64) (Volume, error)
	// Grow enlarges a volume; it never shrinks one.
	Grow(ctx context.Context, name string, size int64) error
	Delete(ctx context.Context, name string) error
	// Stat reports one volume (Used may be zero), ErrNotFound if it does
	// not exist. It is cheap: no listing of the pool.
	Stat(ctx context.Context, name string) (Volume, error)
	List(ctx context.Context) ([]Volume, error)
	Capacity(ctx context.Context) (Capacity, error)
}
