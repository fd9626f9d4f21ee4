package lab

import (
	"os"
	"path/filepath"
	"strings"
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

// A box booted by the lab gets the image's own kernel arguments (what
// mkimage.sh wrote from image/cmdline) and the lab's after them; an image
// without them is refused with what to do.
func TestBoxBootsWithTheImagesKernelArgs(t *testing.T) {
	dir := t.TempDir()
	if _, err := kernelArgs(dir); err == nil || !strings.Contains(err.Error(), "mkimage.sh") {
		t.Fatalf("an image without cmdline: error %v, want one that says to build it again with mkimage.sh", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cmdline"), []byte(" \n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := kernelArgs(dir); err == nil {
		t.Fatal("an empty cmdline was accepted")
	}
	if err := os.WriteFile(filepath.Join(dir, "cmdline"), []byte("loglevel=3 net.ifnames=0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args, err := kernelArgs(dir)
	if err != nil {
		t.Fatal(err)
	}
	l := &Lab{State: State{Token: "0123456789abcdef0123", KernelArgs: args,
		Boxes: []BoxState{{Name: "san1", Octet: 11, FrontIP: FrontPrefix + ".11", ReplIP: ReplPrefix + ".11"}}}, boxes: map[string]*Box{}}
	line := l.Box("san1").Cmdline()
	if !strings.HasPrefix(line, "console=ttyS0,115200 panic=-1 loglevel=3 net.ifnames=0 ") || !strings.Contains(line, " sand.name=san1") {
		t.Errorf("command line %q: want the console, then the image's arguments, then the node settings", line)
	}
	r := Report{KernelArgs: "console=ttyS0,115200 loglevel=3 sand.cfg=LABEL=SANDCFG"}
	if got := r.MissingArgs(args); len(got) != 1 || got[0] != "net.ifnames=0" {
		t.Errorf("a box booted with %q misses %q of %q, want [net.ifnames=0]", r.KernelArgs, got, args)
	}
}
