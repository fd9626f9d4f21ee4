package lvm

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sand-appliance/sand/dm"
)

func record(t *testing.T) Activation {
	t.Helper()
	devs, err := dm.Portable([]dm.Device{
		{Name: "sand-meta", UUID: "LVM-vgmeta", Dev: dm.Dev{Major: 253, Minor: 0}, Targets: []dm.Target{{Start: 0, Length: 8192, Type: "linear", Params: "147:0 2048"}}},
		{Name: "sand-pool-tpool", UUID: "LVM-vgpool-tpool", Dev: dm.Dev{Major: 253, Minor: 1}, Targets: []dm.Target{{Start: 0, Length: 80000, Type: "thin-pool", Params: "147:0 147:0 128 0 0"}}},
		{Name: "sand-lun--guest", UUID: "LVM-vgguest", Dev: dm.Dev{Major: 253, Minor: 2}, Targets: []dm.Target{{Start: 0, Length: 65536, Type: "thin", Params: "253:1 1"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return Activation{VG: "sand", Devices: devs, Links: map[string]string{"meta": "sand-meta", "lun-guest": "sand-lun--guest"}}
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
	if got.Devices[2].Targets[0].Params != "@sand-pool-tpool 1" {
		t.Errorf("the thin volume must name its pool: %q", got.Devices[2].Targets[0].Params)
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
		{"bad table", "sand", func(a *Activation) { a.Devices[1].Targets[0].Type = "crypt" }, "not one LVM makes"},
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
