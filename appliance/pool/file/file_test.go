package file

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sand-appliance/sand/appliance/pool"
)

func TestFilePool(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p, err := New(filepath.Join(dir, "pool"), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.Create(ctx, "vm01", 64<<20)
	if err != nil {
		t.Fatal(err)
	}
	if v.Path != filepath.Join(dir, "pool", "lun-vm01.img") {
		t.Errorf("path %s", v.Path)
	}
	if _, err := p.Create(ctx, "vm01", 1<<20); err == nil {
		t.Error("created vm01 twice")
	}
	if err := p.Grow(ctx, "vm01", 128<<20); err != nil {
		t.Fatal(err)
	}
	if err := p.Grow(ctx, "vm01", 1<<20); err == nil {
		t.Error("shrank a volume")
	}
	if err := p.Grow(ctx, "nope", 1<<20); !errors.Is(err, pool.ErrNotFound) {
		t.Errorf("grow missing: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "pool", "notes.txt"), []byte("x"), 0o600)
	vols, err := p.List(ctx)
	if err != nil || len(vols) != 1 || vols[0].Name != "vm01" || vols[0].Size != 128<<20 {
		t.Fatalf("list: %+v %v", vols, err)
	}
	if vols[0].Used >= vols[0].Size {
		t.Errorf("a new volume is not sparse: %d of %d bytes allocated", vols[0].Used, vols[0].Size)
	}
	c, err := p.Capacity(ctx)
	if err != nil || c.Size != 1<<30 || c.Provisioned != 128<<20 {
		t.Errorf("capacity %+v %v", c, err)
	}
	if err := p.Delete(ctx, "vm01"); err != nil {
		t.Fatal(err)
	}
	if err := p.Delete(ctx, "vm01"); !errors.Is(err, pool.ErrNotFound) {
		t.Errorf("delete twice: %v", err)
	}
}
