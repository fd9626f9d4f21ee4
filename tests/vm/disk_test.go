//go:build vm

package vm

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sand-appliance/sand/tests/lab"
	"github.com/sand-appliance/sand/tests/netlab"
)

// TestDiskImageBoots boots the disk image for real hardware the way a
// server boots the stick: UEFI firmware (OVMF), systemd-boot from the EFI
// system partition, the kernel and the RAM system from there, and the node
// settings from node.conf on the SANDCFG partition (the lab writes them
// there, as an admin would). The box must come up with those settings and
// /etc/sand on the config partition.
func TestDiskImageBoots(t *testing.T) {
	netlab.Require(t, append(tools, "sfdisk", "mke2fs")...)
	if err := lab.CheckHost(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	l := up(t, ctx, lab.Options{Boot: lab.BootDisk, Boxes: []string{"san1"}})
	b := l.Box("san1")

	st, err := b.API().Status(ctx)
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if st.Name != "san1" || st.Portal != b.FrontIP()+":3260" || st.Capacity.Size <= 0 {
		t.Errorf("status %+v: want name san1, portal %s:3260 and a pool, from node.conf on SANDCFG", st, b.FrontIP())
	}
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer rcancel()
	r, err := b.Report(rctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("report: %+v", r)
	if r.ConfigDevice == "" {
		t.Errorf("/etc/sand is not on the config partition")
	}
	if r.Disk.Size != diskSize || r.Modules["drbd"] != "loaded" || r.Modules["iscsi_target_mod"] != "loaded" {
		t.Errorf("report %+v: want the %d-byte data disk, drbd and iscsi_target_mod", r, diskSize)
	}
	// The boot went through systemd-boot's menu entry, which has the
	// image's kernel arguments.
	if !strings.Contains(" "+r.KernelArgs+" ", " sand.cfg=LABEL=SANDCFG ") {
		t.Errorf("kernel arguments %q: not the boot entry's (no sand.cfg=LABEL=SANDCFG)", r.KernelArgs)
	}
	if missing := r.MissingArgs(l.KernelArgs); len(missing) > 0 {
		t.Errorf("kernel arguments %q lack the image's %q", r.KernelArgs, missing)
	}
}
