package lab

import (
	"os"
	"path/filepath"
	"testing"
)

// The image is built again when anything it is made of changes, not only
// the sand binary: a unit file, a udev rule, a script's mode, mkimage.sh.
func TestImageInputsNoticeEveryChange(t *testing.T) {
	repo := t.TempDir()
	write := func(rel, data string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(repo, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("mkimage.sh", "#!/bin/sh\n", 0o755)
	write("image/rootfs/usr/lib/systemd/system/sand.service", "[Service]\n", 0o644)
	write("image/rootfs/usr/lib/sand/report", "#!/bin/sh\n", 0o755)
	sum := func(sand string) string {
		t.Helper()
		s, err := imageInputs(repo, sand)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := sum("aa")
	if again := sum("aa"); again != base {
		t.Fatalf("the same inputs sum differently: %s, %s", base, again)
	}
	changes := []struct {
		what   string
		change func()
	}{
		{"the sand binary", func() {}},
		{"a unit file", func() {
			write("image/rootfs/usr/lib/systemd/system/sand.service", "[Service]\nCPUWeight=1000\n", 0o644)
		}},
		{"a new udev rule", func() { write("image/rootfs/etc/udev/rules.d/57-x.rules", "# x\n", 0o644) }},
		{"a script's mode", func() { write("image/rootfs/usr/lib/sand/report", "#!/bin/sh\n", 0o644) }},
		{"mkimage.sh", func() { write("mkimage.sh", "#!/bin/sh\nexit 0\n", 0o755) }},
	}
	seen := map[string]string{base: "the first inputs"}
	for i, c := range changes {
		c.change()
		sand := "aa"
		if i == 0 {
			sand = "bb"
		}
		got := sum(sand)
		if prev, dup := seen[got]; dup {
			t.Errorf("changing %s left the sum of %s", c.what, prev)
		}
		seen[got] = c.what
	}
}
