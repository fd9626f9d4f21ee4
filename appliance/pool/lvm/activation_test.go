package lvm

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sand-appliance/sand/dm"
)

// record is volume group sand as LVM activates it on /dev/drbd0 (147:0):
// the metadata volume, the thin pool's layers, the pool, LVM's read-only
// pool device, one thin volume.
func record(t *testing.T) Activation {
	t.Helper()
	devs, err := dm.Portable([]dm.Device{
		{Name: "sand-meta", UUID: "LVM-vgmeta", Dev: dm.Dev{Major: 253, Minor: 0}, Targets: []dm.Target{{Start: 0, Length: 8192, Type: "linear", Params: "147:0 2048"}}},
		{Name: "sand-pool_tmeta", UUID: "LVM-vgtmeta", Dev: dm.Dev{Major: 253, Minor: 1}, Targets: []dm.Target{{Start: 0, Length: 8192, Type: "linear", Params: "147:0 10240"}}},
		{Name: "sand-pool_tdata", UUID: "LVM-vgtdata", Dev: dm.Dev{Major: 253, Minor: 2}, Targets: []dm.Target{{Start: 0, Length: 80000, Type: "linear", Params: "147:0 18432"}}},
		{Name: "sand-pool-tpool", UUID: "LVM-vgpool-tpool", Dev: dm.Dev{Major: 253, Minor: 3}, Targets: []dm.Target{{Start: 0, Length: 80000, Type: "thin-pool", Params: "253:1 253:2 128 0 1 skip_block_zeroing "}}},
		{Name: "sand-pool", UUID: "LVM-vgpool-pool", Dev: dm.Dev{Major: 253, Minor: 4}, ReadOnly: true, Targets: []dm.Target{{Start: 0, Length: 80000, Type: "linear", Params: "253:3 0"}}},
		{Name: "sand-lun--guest", UUID: "LVM-vgguest", Dev: dm.Dev{Major: 253, Minor: 5}, Targets: []dm.Target{{Start: 0, Length: 65536, Type: "thin", Params: "253:3 1"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return Activation{VG: "sand", Devices: devs, Links: map[string]string{"meta": "sand-meta", "pool": "sand-pool", "lun-guest": "sand-lun--guest"}}
}

func TestActivationRoundTrip(t *testing.T) {
	a := record(t)
	b, err := a.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := UnmarshalActivation(b, "sand")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if got.Devices[5].Targets[0].Params != "@sand-pool-tpool 1" {
		t.Errorf("the thin volume must name its pool: %q", got.Devices[5].Targets[0].Params)
	}
}

// A peer's record is input: anything that does not describe this volume
// group's own devices and links is refused before anything is made.
func TestActivationRefusesBadRecords(t *testing.T) {
	for _, tc := range []struct {
		name string
		vg   string
		edit func(*Activation)
		want string
	}{
		{"other group", "data", func(*Activation) {}, `of volume group "sand", not "data"`},
		{"foreign device", "sand", func(a *Activation) { a.Devices[0].Name = "other-meta" }, "not an LVM volume of sand"},
		{"not LVM's", "sand", func(a *Activation) { a.Devices[0].UUID = "CRYPT-x" }, "not an LVM volume of sand"},
		{"link outside", "sand", func(a *Activation) { a.Links["meta"] = "../../etc/shadow" }, "not to a device of the group"},
		{"link to unknown device", "sand", func(a *Activation) { a.Links["meta"] = "sand-other" }, "not to a device of the group"},
		{"link with a slash", "sand", func(a *Activation) { a.Links["../../etc/x"] = "sand-meta" }, "not a plain name"},
		{"crypt table", "sand", func(a *Activation) {
			a.Devices[1].Targets[0].Type, a.Devices[1].Targets[0].Params = "crypt", "aes-xts-plain64 0 0 147:0 0"
		}, "not a target LVM makes"},
		{"zero table", "sand", func(a *Activation) { a.Devices[5].Targets[0].Type, a.Devices[5].Targets[0].Params = "zero", "" }, "not a target LVM makes"},
		{"a /dev path", "sand", func(a *Activation) { a.Devices[0].Targets[0].Params = "/dev/vda 0" }, "no LVM table has"},
		{"a device name outside the group", "sand", func(a *Activation) {
			a.Devices = append(a.Devices, dm.Device{Name: "root", UUID: "LVM-x", Targets: []dm.Target{{Start: 0, Length: 8, Type: "linear", Params: "147:0 0"}}})
		}, "not an LVM volume of sand"},
		{"a device of another group", "sand", func(a *Activation) { a.Devices[2].Name = "data-pool_tdata" }, "not an LVM volume of sand"},
		{"a thin volume of another pool", "sand", func(a *Activation) { a.Devices[5].Targets[0].Params = "@data-pool-tpool 1" }, "not made before it"},
		{"empty", "sand", func(a *Activation) { a.Devices, a.Links = nil, nil }, "holds no device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := record(t)
			tc.edit(&a)
			b, err := a.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := UnmarshalActivation(b, tc.vg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("UnmarshalActivation = %v, want an error with %q", err, tc.want)
			}
		})
	}
	for name, b := range map[string][]byte{
		"not gzip":      []byte("{}"),
		"unknown field": gz(t, `{"vg":"sand","devices":[],"links":{},"extra":1}`),
		"not json":      gz(t, `{"vg":`),
	} {
		if _, err := UnmarshalActivation(b, "sand"); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

// Replaying is allowed over the PV's number only: any other device
// number, however valid the record, is refused before anything is made.
func TestActivationReplayOnlyOverThePV(t *testing.T) {
	pv := func(d dm.Dev) bool { return d == dm.Dev{Major: 147, Minor: 0} }
	if err := record(t).CheckReplay(pv); err != nil {
		t.Fatalf("LVM's own record: %v", err)
	}
	for name, edit := range map[string]func(*Activation){
		"the box's system disk":  func(a *Activation) { a.Devices[0].Targets[0].Params = "8:0 2048" },
		"another DRBD device":    func(a *Activation) { a.Devices[1].Targets[0].Params = "147:1 10240" },
		"a device-mapper device": func(a *Activation) { a.Devices[2].Targets[0].Params = "253:0 0" },
	} {
		a := record(t)
		edit(&a)
		b, err := a.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalActivation(b, "sand")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := got.CheckReplay(pv); err == nil || !strings.Contains(err.Error(), "neither in the record nor allowed") {
			t.Errorf("%s: CheckReplay = %v, want it refused", name, err)
		}
	}
}

func gz(t *testing.T, s string) []byte {
	var b bytes.Buffer
	z := gzip.NewWriter(&b)
	if _, err := z.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
