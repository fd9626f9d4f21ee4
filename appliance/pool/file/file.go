// Package file is a storage pool of sparse files in one directory. It works
// anywhere (no LVM, no root) and backs the netns test tier.
package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/sand-appliance/sand/appliance/durable"
	"github.com/sand-appliance/sand/appliance/pool"
	"github.com/sand-appliance/sand/iscsi"
)

const suffix = ".img"

// Pool keeps each volume as dir/lun-NAME.img.
type Pool struct {
	Dir string
	// Size limits what the pool may provision; 0 means the size of the
	// file system holding Dir.
	Size int64
}

// New returns a pool in dir, creating dir if needed.
func New(dir string, size int64) (*Pool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create pool directory %s: %w", dir, err)
	}
	return &Pool{Dir: dir, Size: size}, nil
}

func (p *Pool) Kind() string            { return "file" }
func (p *Pool) IOType() iscsi.IOType    { return iscsi.FileIO }
func (p *Pool) Path(name string) string { return filepath.Join(p.Dir, pool.VolumePrefix+name+suffix) }

func (p *Pool) Create(ctx context.Context, name string, size int64) (pool.Volume, error) {
	path := p.Path(name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return pool.Volume{}, fmt.Errorf("create volume file %s: %w", path, err)
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = durable.SyncDir(p.Dir)
	}
	if err != nil {
		os.Remove(path)
		return pool.Volume{}, fmt.Errorf("size volume file %s to %d bytes: %w", path, size, err)
	}
	return pool.Volume{Name: name, Path: path, Size: size}, nil
}

func (p *Pool) Grow(ctx context.Context, name string, size int64) error {
	v, err := p.Stat(ctx, name)
	if err != nil {
		return fmt.Errorf("grow: %w", err)
	}
	if size < v.Size {
		return fmt.Errorf("grow volume %s from %d to %d bytes: volumes never shrink", name, v.Size, size)
	}
	if size == v.Size {
		return nil
	}
	path := v.Path
	if err := os.Truncate(path, size); err != nil {
		return fmt.Errorf("grow volume file %s to %d bytes: %w", path, size, err)
	}
	return nil
}

func (p *Pool) Delete(ctx context.Context, name string) error {
	path := p.Path(name)
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete volume %s: %w", name, pool.ErrNotFound)
		}
		return fmt.Errorf("delete volume file %s: %w", path, err)
	}
	return durable.SyncDir(p.Dir)
}

func (p *Pool) List(ctx context.Context) ([]pool.Volume, error) {
	entries, err := os.ReadDir(p.Dir)
	if err != nil {
		return nil, fmt.Errorf("list pool directory %s: %w", p.Dir, err)
	}
	var vols []pool.Volume
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, pool.VolumePrefix) || !strings.HasSuffix(n, suffix) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("stat volume %s: %w", n, err)
		}
		vols = append(vols, volume(strings.TrimSuffix(strings.TrimPrefix(n, pool.VolumePrefix), suffix), filepath.Join(p.Dir, n), info))
	}
	return vols, nil
}

func (p *Pool) Stat(ctx context.Context, name string) (pool.Volume, error) {
	path := p.Path(name)
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return pool.Volume{}, fmt.Errorf("volume %s: %w", name, pool.ErrNotFound)
	}
	if err != nil {
		return pool.Volume{}, fmt.Errorf("stat volume file %s: %w", path, err)
	}
	return volume(name, path, info), nil
}

// volume describes a volume file; Used is what the sparse file holds.
func volume(name, path string, info fs.FileInfo) pool.Volume {
	used := info.Size()
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		used = st.Blocks * 512
	}
	return pool.Volume{Name: name, Path: path, Size: info.Size(), Used: used}
}

func (p *Pool) Capacity(ctx context.Context) (pool.Capacity, error) {
	var c pool.Capacity
	vols, err := p.List(ctx)
	if err != nil {
		return c, err
	}
	for _, v := range vols {
		c.Provisioned += v.Size
		c.Used += v.Used
	}
	c.Size = p.Size
	if c.Size == 0 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(p.Dir, &st); err != nil {
			return c, fmt.Errorf("statfs pool directory %s: %w", p.Dir, err)
		}
		c.Size = int64(st.Blocks) * st.Bsize
	}
	return c, nil
}
