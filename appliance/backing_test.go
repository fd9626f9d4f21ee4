package appliance

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/sand-appliance/sand/iscsi"
)

func TestVolumePathIsThePoolVolumeAndNothingElse(t *testing.T) {
	lvm := func(name string) string { return "/dev/sand/lun-" + name }
	file := func(name string) string { return "/var/lib/sand/pool/lun-" + name + ".img" }
	tests := []struct {
		name string
		lun  LUN
		path func(string) string
		want string // "" for refused
	}{
		{"lvm volume", LUN{Name: "vm01"}, lvm, "/dev/sand/lun-vm01"},
		{"file volume", LUN{Name: "vm01"}, file, "/var/lib/sand/pool/lun-vm01.img"},
		{"dotted name", LUN{Name: "vm.01"}, file, "/var/lib/sand/pool/lun-vm.01.img"},
		{"older import at the pool path", LUN{Name: "vm01", Path: "/dev/sand/lun-vm01"}, lvm, "/dev/sand/lun-vm01"},
		{"older import of the raw disk", LUN{Name: "vm01", Path: "/dev/vda"}, lvm, ""},
		{"older import of another volume", LUN{Name: "vm01", Path: "/dev/sand/lun-vm02"}, lvm, ""},
		{"older import of a file", LUN{Name: "vm01", Path: "/srv/iet/vm01.img"}, file, ""},
		{"bad name", LUN{Name: "../vda"}, lvm, ""},
		{"empty name", LUN{}, lvm, ""},
		{"pool path without the prefix", LUN{Name: "vm01"}, func(n string) string { return "/dev/sand/" + n }, ""},
		{"pool path of another name", LUN{Name: "vm"}, func(string) string { return "/dev/sand/lun-vm.01.img" }, ""},
		{"relative pool path", LUN{Name: "vm01"}, func(n string) string { return "sand/lun-" + n }, ""},
		{"unclean pool path", LUN{Name: "vm01"}, func(n string) string { return "/dev/sand/../vda/lun-" + n }, ""},
		{"raw device from the pool", LUN{Name: "vm01"}, func(string) string { return "/dev/vda" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := volumePath(tt.lun, tt.path)
			if tt.want == "" {
				if !errors.Is(err, ErrOutsidePool) {
					t.Fatalf("volumePath = %q, %v; want it refused with ErrOutsidePool", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("volumePath = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestTargetGroupExportsOnlyPoolVolumes(t *testing.T) {
	reg := Registry{LUNs: []LUN{
		{Name: "vm01", Size: mib, Serial: "a1", NAA: iscsi.NAAFromSerial("a1"), Target: "iqn.2026-11.org.example:vm01", Number: 1},
		{Name: "old", Size: mib, Serial: "a2", NAA: iscsi.NAAFromSerial("a2"), Target: "iqn.2026-11.org.example:old", Number: 1, Path: "/dev/vda", Type: iscsi.BlockIO},
	}}
	tg := reg.TargetGroup([]string{"127.0.0.1:3260"}, iscsi.FileIO, func(n string) string { return "/pool/lun-" + n + ".img" })
	if len(tg.Targets) != 1 || tg.Targets[0].IQN != "iqn.2026-11.org.example:vm01" {
		t.Fatalf("targets %+v, want only vm01's: a LUN with a foreign path gets no target at all", tg.Targets)
	}
	lu := tg.Targets[0].LUNs[0]
	if lu.Path != "/pool/lun-vm01.img" || lu.Type != iscsi.FileIO {
		t.Errorf("vm01 exported from %s (%s), want its pool volume with the pool's type", lu.Path, lu.Type)
	}
}

// A registry written by an older sand may hold a LUN that exports a path
// outside the pool: the box starts, serves the rest, does not export that
// one and says why.
func TestOlderImportOutsideThePoolIsNotExported(t *testing.T) {
	tb := newTestBox(t)
	ctx := context.Background()
	if _, err := tb.CreateLUN(ctx, LUNRequest{Name: "vm01", Size: mib}); err != nil {
		t.Fatal(err)
	}
	reg, err := tb.store.Load()
	if err != nil {
		t.Fatal(err)
	}
	reg.LUNs = append(reg.LUNs, LUN{Name: "raw", Size: mib, Serial: "0ld0001", NAA: iscsi.NAAFromSerial("0ld0001"),
		Target: "iqn.2001-04.com.example:raw", Number: 1, Path: "/dev/vda", Type: iscsi.BlockIO})
	if err := tb.store.Save(reg); err != nil {
		t.Fatal(err)
	}
	b2 := NewBox(tb.cfg, tb.pool, tb.driver, tb.log)
	if err := b2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, target := range tb.driver.applied.Targets {
		for _, lu := range target.LUNs {
			if lu.Path != tb.pool.Path(lu.Name) {
				t.Errorf("target %s exports %s", target.IQN, lu.Path)
			}
		}
	}
	if len(tb.driver.applied.Targets) != 1 {
		t.Errorf("applied %d targets, want vm01's only", len(tb.driver.applied.Targets))
	}
	conf, err := os.ReadFile(tb.cfg.IETDPath())
	if err != nil || strings.Contains(string(conf), "/dev/vda") {
		t.Errorf("ietd.conf names /dev/vda (%v):\n%s", err, conf)
	}
	st := b2.Status(ctx)
	if !strings.Contains(strings.Join(st.Problems, "\n"), "LUN raw is set to export /dev/vda") {
		t.Errorf("status problems %q do not say why LUN raw is not exported", st.Problems)
	}
	// The admin's way out: deleting the LUN leaves /dev/vda alone (the
	// file pool would not touch it anyway) and clears the problem.
	if err := b2.DeleteLUN(ctx, "raw"); err != nil {
		t.Fatal(err)
	}
}
