package lvm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/sand-appliance/sand/appliance/command"
	"github.com/sand-appliance/sand/appliance/pool"
)

// report is `lvs --reportformat json --units b --nosuffix` as lvm2 prints it.
const report = `  {
      "report": [
          {
              "lv": [
                  {"lv_name":"lun-vm01", "lv_size":"1073741824", "pool_lv":"pool", "data_percent":"12.50"},
                  {"lv_name":"meta", "lv_size":"67108864", "pool_lv":"", "data_percent":""},
                  {"lv_name":"pool", "lv_size":"858993459", "pool_lv":"", "data_percent":"3.00"},
                  {"lv_name":"admins-own", "lv_size":"4194304", "pool_lv":"pool", "data_percent":"0.00"}
              ]
          }
      ]
  }
`

func fakeLVM() *command.Fake {
	return &command.Fake{Respond: func(argv []string) ([]byte, error) {
		if argv[0] == "lvs" {
			if argv[len(argv)-1] == "sand/lun-gone" {
				return []byte(`{"report":[{"lv":[]}]}`), nil
			}
			return []byte(report), nil
		}
		if argv[0] == "lvremove" && strings.HasSuffix(argv[len(argv)-1], "lun-gone") {
			return nil, errors.New(`Failed to find logical volume "sand/lun-gone"`)
		}
		return nil, nil
	}}
}

func TestTranscripts(t *testing.T) {
	ctx := context.Background()
	f := fakeLVM()
	p := &Pool{VG: "sand", ThinPool: "pool", Run: f}
	if _, err := p.Create(ctx, "vm02", 20<<30); err != nil {
		t.Fatal(err)
	}
	if err := p.Grow(ctx, "vm01", 2<<30); err != nil {
		t.Fatal(err)
	}
	if err := p.Delete(ctx, "vm01"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"lvcreate --yes --type thin --virtualsize 21474836480b --thinpool pool --name lun-vm02 sand",
		"lvs --reportformat json --units b --nosuffix -o lv_name,lv_size,pool_lv,data_percent sand/lun-vm01",
		"lvextend --size 2147483648b sand/lun-vm01",
		"lvremove --yes sand/lun-vm01",
	}
	if diff := cmp.Diff(want, f.Transcript()); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	if err := p.Grow(ctx, "vm01", 1<<20); err == nil || !strings.Contains(err.Error(), "never shrink") {
		t.Errorf("shrink: %v", err)
	}
	if err := p.Grow(ctx, "gone", 1<<30); !errors.Is(err, pool.ErrNotFound) {
		t.Errorf("grow a missing volume: %v", err)
	}
	if err := p.Delete(ctx, "gone"); !errors.Is(err, pool.ErrNotFound) {
		t.Errorf("delete a missing volume: %v", err)
	}
}

func TestDevicesLimitEveryCommand(t *testing.T) {
	ctx := context.Background()
	f := fakeLVM()
	p := &Pool{VG: "sand", ThinPool: "pool", Devices: []string{"/dev/drbd0"}, Run: f}
	if _, err := p.Create(ctx, "vm02", 1<<30); err != nil {
		t.Fatal(err)
	}
	if _, err := p.List(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range f.Transcript() {
		if f := strings.Fields(c); len(f) < 3 || f[1] != "--devices" || f[2] != "/dev/drbd0" {
			t.Errorf("%q is not limited to /dev/drbd0", c)
		}
	}
}

func TestListAndCapacity(t *testing.T) {
	p := &Pool{VG: "sand", ThinPool: "pool", Run: fakeLVM()}
	vols, err := p.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []pool.Volume{{Name: "vm01", Path: "/dev/sand/lun-vm01", Size: 1 << 30, Used: 1 << 27}}
	if diff := cmp.Diff(want, vols); diff != "" {
		t.Errorf("volumes (-want +got):\n%s", diff)
	}
	c, err := p.Capacity(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.Size != 858993459 || c.Provisioned != 1<<30+4<<20 || c.Used != 25769804 {
		t.Errorf("capacity %+v", c)
	}
	if _, err := parseLVS([]byte(`{"report":[{"lv":[{"lv_name":"x","lv_size":"big"}]}]}`)); err == nil {
		t.Error("a malformed size parsed")
	}
}

func TestStat(t *testing.T) {
	p := &Pool{VG: "sand-test-no-such-vg", ThinPool: "pool", Run: &command.Fake{}}
	if _, err := p.Stat(context.Background(), "vm01"); !errors.Is(err, pool.ErrNotFound) {
		t.Errorf("Stat of a volume without a device node: %v, want ErrNotFound", err)
	}

	sys := t.TempDir()
	dir := filepath.Join(sys, "dev", "block", "253:4")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "size"), []byte("8192\n"), 0o644)
	if n, err := deviceSize(sys, unix.Mkdev(253, 4)); err != nil || n != 4*1024*1024 {
		t.Errorf("deviceSize = %d, %v; want 4 MiB", n, err)
	}
	os.WriteFile(filepath.Join(dir, "size"), []byte("lots\n"), 0o644)
	if _, err := deviceSize(sys, unix.Mkdev(253, 4)); err == nil || !strings.Contains(err.Error(), "not a sector count") {
		t.Errorf("deviceSize of garbage: %v", err)
	}
	if _, err := deviceSize(sys, unix.Mkdev(253, 5)); err == nil {
		t.Error("deviceSize of a device sysfs does not know: no error")
	}
}

// fakeDM lays out a sysfs block tree: dm-N -> name, and who holds whom.
func fakeDM(t *testing.T, names map[string]string, holders map[string][]string) string {
	t.Helper()
	sys := t.TempDir()
	for dev, name := range names {
		dir := filepath.Join(sys, "block", dev)
		for _, d := range []string{filepath.Join(dir, "dm"), filepath.Join(dir, "holders")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		os.WriteFile(filepath.Join(dir, "dm", "name"), []byte(name+"\n"), 0o644)
		for _, h := range holders[dev] {
			if err := os.Symlink("../../"+h, filepath.Join(dir, "holders", h)); err != nil {
				t.Fatal(err)
			}
		}
	}
	os.MkdirAll(filepath.Join(sys, "block", "vda", "holders"), 0o755)
	return sys
}

func TestDeviceMapperNames(t *testing.T) {
	// A thin pool with one thin volume and the metadata volume, as
	// vgchange -ay leaves VG sand; another group's device beside it.
	names := map[string]string{
		"dm-0": "sand-meta", "dm-1": "sand-pool_tmeta", "dm-2": "sand-pool_tdata",
		"dm-3": "sand-pool-tpool", "dm-4": "sand-pool", "dm-5": "sand-lun--guest", "dm-6": "sandbox-root",
	}
	holders := map[string][]string{"dm-1": {"dm-3"}, "dm-2": {"dm-3"}, "dm-3": {"dm-4", "dm-5"}}
	got, err := DeviceMapperNames(fakeDM(t, names, holders), "sand")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"sand-meta", "sand-pool", "sand-lun--guest", "sand-pool-tpool", "sand-pool_tmeta", "sand-pool_tdata"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("removal order (-want +got):\n%s", diff)
	}

	// dm doubles the dashes of a group's name.
	got, err = DeviceMapperNames(fakeDM(t, map[string]string{"dm-0": "my--vg-meta", "dm-1": "my-vgmeta"}, nil), "my-vg")
	if err != nil || !cmp.Equal(got, []string{"my--vg-meta"}) {
		t.Errorf("VG my-vg: %q, %v", got, err)
	}

	// A device of the group held by a device of another: never removed
	// behind its user's back.
	_, err = DeviceMapperNames(fakeDM(t, map[string]string{"dm-0": "sand-lun--x", "dm-1": "crypt-x"}, map[string][]string{"dm-0": {"dm-1"}}), "sand")
	if err == nil || !strings.Contains(err.Error(), "not of volume group sand") {
		t.Errorf("foreign holder: %v", err)
	}
	// Nothing active: nothing to remove.
	if got, err := DeviceMapperNames(fakeDM(t, nil, nil), "sand"); err != nil || len(got) != 0 {
		t.Errorf("no devices: %q, %v", got, err)
	}
}
