package lio

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestOSFS runs the real implementation on a plain directory: the parts
// that do not depend on configfs (paths, no create on write, readlink
// resolution of the relative answers configfs gives).
func TestOSFS(t *testing.T) {
	root := t.TempDir()
	o := NewOSFS(root)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(o.Mkdir("core"))
	must(o.Mkdir("core/fileio_0"))
	must(o.Mkdir("core/fileio_0/vm1"))
	must(os.WriteFile(filepath.Join(root, "core/fileio_0/vm1/enable"), []byte("0\n"), 0o644))

	if err := o.WriteFile("core/fileio_0/vm1/nope", []byte("1")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteFile of a missing attribute: got %v, want ErrNotExist (attributes are never created)", err)
	}
	must(o.WriteFile("core/fileio_0/vm1/enable", []byte("1")))
	if b, err := o.ReadFile("core/fileio_0/vm1/enable"); err != nil || string(b) != "1\n" {
		// A plain file keeps the old newline: configfs replaces the value.
		t.Errorf("ReadFile = %q, %v", b, err)
	}

	must(o.Mkdir("iscsi"))
	must(o.Mkdir("iscsi/t"))
	must(o.Symlink("core/fileio_0/vm1", "iscsi/t/abs"))
	// configfs's own answer to readlink is relative.
	must(os.Symlink("../../core/fileio_0/vm1", filepath.Join(root, "iscsi/t/rel")))
	for _, name := range []string{"iscsi/t/abs", "iscsi/t/rel"} {
		got, err := o.Readlink(name)
		if err != nil || got != "core/fileio_0/vm1" {
			t.Errorf("Readlink(%s) = %q, %v; want core/fileio_0/vm1", name, got, err)
		}
	}
	must(os.Symlink("../../../../etc", filepath.Join(root, "iscsi/t/out")))
	if _, err := o.Readlink("iscsi/t/out"); err == nil {
		t.Error("Readlink of a link leaving the root succeeded")
	}

	ents, err := o.ReadDir("iscsi/t")
	must(err)
	var names []string
	for _, e := range ents {
		if e.Type()&fs.ModeSymlink != 0 {
			names = append(names, e.Name())
		}
	}
	if diff := cmp.Diff([]string{"abs", "out", "rel"}, names); diff != "" {
		t.Errorf("ReadDir symlinks (-want +got):\n%s", diff)
	}

	for name, want := range map[string]bool{"core/fileio_0": true, "nope": false, "iscsi/t/out": true} {
		if got, err := o.Exists(name); err != nil || got != want {
			t.Errorf("Exists(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
	must(o.Remove("iscsi/t/abs"))
	if err := o.Remove("core/fileio_0"); err == nil {
		t.Error("Remove of a non-empty directory succeeded")
	}
	if NewOSFS("").Root() != DefaultRoot {
		t.Errorf("default root is %s", NewOSFS("").Root())
	}
}

func TestOSHost(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "vm.img")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var h OSHost
	if block, err := h.IsBlockDevice(f); err != nil || block {
		t.Errorf("IsBlockDevice(file) = %v, %v", block, err)
	}
	if _, err := h.IsBlockDevice(filepath.Join(dir, "gone")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("IsBlockDevice(missing) error = %v, want ErrNotExist", err)
	}
	if _, err := h.IsBlockDevice(dir); err == nil {
		t.Error("IsBlockDevice(directory) succeeded")
	}
	if err := h.MkdirAll(filepath.Join(dir, "target/pr")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "target/pr")); err != nil || !fi.IsDir() {
		t.Errorf("MkdirAll did not make the directory: %v", err)
	}
}

// TestFakeKernel pins down the kernel behaviours the fake emulates, so a
// test passing against the fake means the driver respected them.
func TestFakeKernel(t *testing.T) {
	const (
		dev = "core/fileio_0/d"
		tpg = "iscsi/iqn.2026-11.org.example:t/tpgt_1"
	)
	setup := func(t *testing.T) *fakeKernel {
		k := newFakeKernel(t)
		for _, d := range []string{"core/fileio_0", dev, "iscsi", "iscsi/iqn.2026-11.org.example:t", tpg, tpg + "/lun/lun_0", tpg + "/acls/iqn.2026-11.org.example:i", tpg + "/acls/iqn.2026-11.org.example:i/lun_0"} {
			if err := k.Mkdir(d); err != nil {
				t.Fatal(err)
			}
		}
		return k
	}
	enable := func(k *fakeKernel) error {
		if err := k.WriteFile(dev+"/control", []byte("fd_dev_name=/f,fd_dev_size=4096")); err != nil {
			return err
		}
		return k.WriteFile(dev+"/enable", []byte("1"))
	}
	tests := []struct {
		name string
		do   func(k *fakeKernel) error
		want error
	}{
		{name: "mkdir in a default group", do: func(k *fakeKernel) error { return k.Mkdir(tpg + "/attrib/x") }, want: syscall.EPERM},
		{name: "mkdir bad lun name", do: func(k *fakeKernel) error { return k.Mkdir(tpg + "/lun/foo") }, want: syscall.EINVAL},
		{name: "mkdir bad portal", do: func(k *fakeKernel) error { return k.Mkdir(tpg + "/np/10.0.0.1") }, want: syscall.EINVAL},
		{name: "write missing attribute", do: func(k *fakeKernel) error { return k.WriteFile(dev+"/nope", []byte("1")) }, want: syscall.ENOENT},
		{name: "write read-only attribute", do: func(k *fakeKernel) error { return k.WriteFile(dev+"/info", []byte("1")) }, want: syscall.EACCES},
		{name: "read write-only attribute", do: func(k *fakeKernel) error { _, err := k.ReadFile(dev + "/control"); return err }, want: syscall.EACCES},
		{name: "enable without a path", do: func(k *fakeKernel) error { return k.WriteFile(dev+"/enable", []byte("1")) }, want: syscall.EINVAL},
		{name: "enable twice", do: func(k *fakeKernel) error {
			if err := enable(k); err != nil {
				return err
			}
			return k.WriteFile(dev+"/enable", []byte("1"))
		}, want: syscall.EEXIST},
		{name: "link a disabled backstore", do: func(k *fakeKernel) error { return k.Symlink(dev, tpg+"/lun/lun_0/d") }, want: syscall.ENODEV},
		{name: "serial while exported", do: func(k *fakeKernel) error {
			if err := enable(k); err != nil {
				return err
			}
			if err := k.Symlink(dev, tpg+"/lun/lun_0/d"); err != nil {
				return err
			}
			return k.WriteFile(dev+"/wwn/vpd_unit_serial", []byte("x"))
		}, want: syscall.EINVAL},
		{name: "map an empty LUN", do: func(k *fakeKernel) error {
			return k.Symlink(tpg+"/lun/lun_0", tpg+"/acls/iqn.2026-11.org.example:i/lun_0/lun")
		}, want: syscall.EINVAL},
		{name: "rmdir exported backstore", do: func(k *fakeKernel) error {
			if err := enable(k); err != nil {
				return err
			}
			if err := k.Symlink(dev, tpg+"/lun/lun_0/d"); err != nil {
				return err
			}
			return k.Remove(dev)
		}, want: syscall.EBUSY},
		{name: "rmdir tpg with objects", do: func(k *fakeKernel) error { return k.Remove(tpg) }, want: syscall.ENOTEMPTY},
		{name: "rmdir default group", do: func(k *fakeKernel) error { return k.Remove(tpg + "/attrib") }, want: syscall.EPERM},
		{name: "remove attribute", do: func(k *fakeKernel) error { return k.Remove(dev + "/enable") }, want: syscall.EPERM},
		{name: "dbroot after fabric", do: func(k *fakeKernel) error { return k.WriteFile("dbroot", []byte("/x")) }, want: syscall.EINVAL},
		{name: "rmdir backstore with its attributes", do: func(k *fakeKernel) error {
			if err := enable(k); err != nil {
				return err
			}
			return k.Remove(dev)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.do(setup(t))
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}
