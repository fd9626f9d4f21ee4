package dm

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A thin pool as LVM activates it on /dev/drbd0 (147:0), in creation
// order, with the numbers this box gave them.
func lvmPool() []Device {
	return []Device{
		{Name: "sand-pool_tmeta", UUID: "LVM-aaaa", Dev: Dev{253, 0}, Targets: []Target{{0, 8192, "linear", "147:0 18432"}}},
		{Name: "sand-pool_tdata", UUID: "LVM-bbbb", Dev: Dev{253, 1}, Targets: []Target{{0, 400000, "linear", "147:0 26624"}}},
		{Name: "sand-pool-tpool", UUID: "LVM-cccc-tpool", Dev: Dev{253, 2}, Targets: []Target{{0, 400000, "thin-pool", "253:0 253:1 128 0 1 skip_block_zeroing"}}},
		{Name: "sand-pool", UUID: "LVM-cccc-pool", Dev: Dev{253, 3}, ReadOnly: true, Targets: []Target{{0, 400000, "linear", "253:2 0"}}},
		{Name: "sand-lun--guest", UUID: "LVM-dddd", Dev: Dev{253, 4}, Targets: []Target{{0, 65536, "thin", "253:2 1"}}},
	}
}

func TestPortableAndResolve(t *testing.T) {
	p, err := Portable(lvmPool())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p[2].Targets[0].Params, "@sand-pool_tmeta @sand-pool_tdata 128 0 1 skip_block_zeroing"; got != want {
		t.Errorf("thin-pool params = %q, want %q", got, want)
	}
	if got, want := p[4].Targets[0].Params, "@sand-pool-tpool 1"; got != want {
		t.Errorf("thin params = %q, want %q", got, want)
	}
	if got := p[0].Targets[0].Params; got != "147:0 18432" {
		t.Errorf("the physical volume's number must stay: %q", got)
	}
	if p[0].Dev != (Dev{}) {
		t.Errorf("a portable record keeps no device numbers: %v", p[0].Dev)
	}
	if err := Check(p); err != nil {
		t.Fatalf("Check of LVM's own pool: %v", err)
	}

	// Another box numbers them differently.
	made := map[string]Dev{"sand-pool_tmeta": {253, 7}, "sand-pool_tdata": {253, 8}}
	pv := func(d Dev) bool { return d == Dev{147, 0} }
	got, err := resolve(p[2].Targets[0], made, pv)
	if err != nil {
		t.Fatal(err)
	}
	if want := "253:7 253:8 128 0 1 skip_block_zeroing"; got.Params != want {
		t.Errorf("resolved %q, want %q", got.Params, want)
	}
	if _, err := resolve(p[4].Targets[0], made, pv); err == nil || !strings.Contains(err.Error(), "sand-pool-tpool, which is not made yet") {
		t.Errorf("a reference to a device not made yet: %v", err)
	}
	if _, err := resolve(Target{0, 8, "linear", "8:16 0"}, made, pv); err == nil || !strings.Contains(err.Error(), "neither in the record nor allowed") {
		t.Errorf("a device outside the record and not the PV: %v", err)
	}
}

func TestPortableRefusesABadOrder(t *testing.T) {
	devs := lvmPool()
	devs[0], devs[2] = devs[2], devs[0]
	if _, err := Portable(devs); err == nil || !strings.Contains(err.Error(), "comes later in the order") {
		t.Errorf("pool before its layers: %v", err)
	}
}

func TestCheck(t *testing.T) {
	ok, err := Portable(lvmPool())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func([]Device) []Device
		want string
	}{
		{"slash in a name", func(d []Device) []Device { d[0].Name = "../x"; return d }, "not a device-mapper name"},
		{"long name", func(d []Device) []Device { d[0].Name = strings.Repeat("a", 128); return d }, "not a device-mapper name"},
		{"twice", func(d []Device) []Device { return append(d, d[0]) }, "appears twice"},
		{"no table", func(d []Device) []Device { d[1].Targets = nil; return d }, "has no table"},
		{"foreign target", func(d []Device) []Device { d[1].Targets[0].Type = "crypt"; return d }, "not a target LVM makes"},
		{"gap", func(d []Device) []Device { d[1].Targets[0].Start = 8; return d }, "gap or overlaps"},
		{"NUL", func(d []Device) []Device { d[1].Targets[0].Params += "\x00"; return d }, "NUL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			devs := make([]Device, len(ok))
			for i, d := range ok {
				devs[i] = d
				devs[i].Targets = append([]Target(nil), d.Targets...)
			}
			if err := Check(tc.edit(devs)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Check = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestDevEncoding(t *testing.T) {
	for _, d := range []Dev{{253, 0}, {253, 255}, {253, 256}, {147, 3}, {259, 70000}} {
		if got := decodeDev(encodeDev(d)); got != d {
			t.Errorf("decode(encode(%v)) = %v", d, got)
		}
	}
	// The kernel's new_encode_dev(MKDEV(253, 300)).
	if got := encodeDev(Dev{253, 300}); got != 0x10fd2c {
		t.Errorf("encode 253:300 = %#x, want 0x10fd2c", got)
	}
}

func TestMarshalLoad(t *testing.T) {
	ts := []Target{{0, 8192, "linear", "147:0 18432"}, {8192, 100, "zero", ""}}
	b, err := marshalLoad("sand-meta", ts)
	if err != nil {
		t.Fatal(err)
	}
	h, err := unmarshalHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.name != "sand-meta" || h.targetCount != 2 || h.dataStart != headerSize || int(h.dataSize) != len(b) {
		t.Errorf("header %+v", h)
	}
	// First spec: 40 + len("147:0 18432")+1 = 52, padded to 56.
	first := b[headerSize:]
	if next := order.Uint32(first[20:]); next != 56 {
		t.Errorf("first spec's next = %d, want 56 (from its own start)", next)
	}
	if got := cString(first[24:40]); got != "linear" {
		t.Errorf("type %q", got)
	}
	second := first[56:]
	if order.Uint64(second[0:]) != 8192 || cString(second[24:40]) != "zero" {
		t.Errorf("second spec at the wrong place")
	}
	if len(b) != headerSize+56+48 {
		t.Errorf("buffer %d bytes, want %d", len(b), headerSize+56+48)
	}
	if _, err := marshalLoad(strings.Repeat("n", 128), ts); err == nil {
		t.Error("a name longer than the kernel's field must fail")
	}
}

// statusAnswer builds a DM_TABLE_STATUS answer the way the kernel does:
// next counts from the first spec.
func statusAnswer(t *testing.T, name, uuid string, dev Dev, flags uint32, ts []Target) []byte {
	t.Helper()
	var data []byte
	for _, tg := range ts {
		n := (specSize + len(tg.Params) + 1 + 7) &^ 7
		spec := make([]byte, n)
		order.PutUint64(spec[0:], tg.Start)
		order.PutUint64(spec[8:], tg.Length)
		copy(spec[24:], tg.Type)
		copy(spec[specSize:], tg.Params)
		order.PutUint32(spec[20:], uint32(len(data)+n))
		data = append(data, spec...)
	}
	b, err := header{name: name, uuid: uuid, dev: dev, flags: flags, targetCount: uint32(len(ts))}.marshal(headerSize + len(data) + 64)
	if err != nil {
		t.Fatal(err)
	}
	order.PutUint32(b[offDataSize:], uint32(headerSize+len(data)))
	copy(b[headerSize:], data)
	return b
}

func TestUnmarshalTable(t *testing.T) {
	ts := []Target{{0, 100, "linear", "147:0 2048"}, {100, 50, "linear", "147:0 9000"}}
	b := statusAnswer(t, "sand-meta", "LVM-x", Dev{253, 9}, flagActive|flagReadOnly, ts)
	h, got, err := unmarshalTable(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ts, got); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
	if h.name != "sand-meta" || h.uuid != "LVM-x" || h.dev != (Dev{253, 9}) || h.flags&flagReadOnly == 0 {
		t.Errorf("header %+v", h)
	}

	full := statusAnswer(t, "x", "", Dev{}, flagBufferFull, nil)
	if _, _, err := unmarshalTable(full); err != errBufferFull {
		t.Errorf("buffer full: %v", err)
	}
	// A target count larger than the data: an error, never a panic.
	bad := statusAnswer(t, "x", "", Dev{}, flagActive, ts)
	order.PutUint32(bad[offTargetCount:], 5)
	if _, _, err := unmarshalTable(bad); err == nil {
		t.Error("five targets claimed, two present: want an error")
	}
	if _, _, err := unmarshalTable(bad[:100]); err == nil {
		t.Error("short answer: want an error")
	}
}

func FuzzUnmarshalTable(f *testing.F) {
	f.Add(make([]byte, headerSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = unmarshalTable(b)
	})
}

// A record is the peer's message: whatever it says, a table may only be a
// thin pool's, stacked on devices made before it in the same replay or on
// the PV. Each forged record is refused before anything is made.
func TestCheckReplayRefusesForgedTables(t *testing.T) {
	pv := func(d Dev) bool { return d == Dev{147, 0} }
	ok, err := Portable(lvmPool())
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckReplay(ok, pv); err != nil {
		t.Fatalf("LVM's own pool: %v", err)
	}
	table := func(dev int, typ, params string) func([]Device) []Device {
		return func(d []Device) []Device { d[dev].Targets[0].Type, d[dev].Targets[0].Params = typ, params; return d }
	}
	for _, tc := range []struct {
		name string
		edit func([]Device) []Device
		want string
	}{
		{"another device's number", table(0, "linear", "8:0 18432"), "neither in the record nor allowed"},
		{"a device-mapper device of this box", table(0, "linear", "253:9 0"), "neither in the record nor allowed"},
		{"a number in another spelling", table(0, "linear", "0x8:0 0"), "neither major:minor nor a device"},
		{"a /dev path", table(0, "linear", "/dev/vda 0"), "holds a character no LVM table has"},
		{"a /dev/mapper path", table(4, "thin", "/dev/mapper/sand-pool-tpool 1"), "holds a character no LVM table has"},
		{"a relative path", table(0, "linear", "vda 0"), "neither major:minor nor a device"},
		{"crypt", table(1, "crypt", "aes-xts-plain64 0 0 147:0 0"), "not a target LVM makes"},
		{"zero", table(1, "zero", ""), "not a target LVM makes"},
		{"error", table(1, "error", ""), "not a target LVM makes"},
		{"striped", table(1, "striped", "2 128 147:0 0 8:0 0"), "not a target LVM makes"},
		{"linear with an extra field", table(0, "linear", "147:0 18432 8:0"), "want <device> <offset>"},
		{"linear offset not a number", table(0, "linear", "147:0 -1"), "not a number"},
		{"thin with an external origin", table(4, "thin", "@sand-pool-tpool 1 8:0"), "no external origin"},
		{"thin in a device that is not a pool", table(4, "thin", "@sand-pool_tdata 1"), "not a thin pool"},
		{"thin naming a number", table(4, "thin", "253:2 1"), "names device 253:2 directly"},
		{"thin in a pool made later", func(d []Device) []Device { d[2], d[4] = d[4], d[2]; return d }, "not made before it"},
		{"thin pool on the PV itself", table(2, "thin-pool", "147:0 147:0 128 0 0"), "names device 147:0 directly"},
		{"thin pool on a stacked device", table(2, "thin-pool", "@sand-pool_tmeta @sand-pool-tpool 128 0 0"), "not made before it"},
		{"thin pool with an unknown feature", table(2, "thin-pool", "@sand-pool_tmeta @sand-pool_tdata 128 0 1 zero_me"), "unknown or repeated"},
		{"thin pool announcing fewer features", table(2, "thin-pool", "@sand-pool_tmeta @sand-pool_tdata 128 0 0 skip_block_zeroing"), "0 features announced, 1 given"},
		{"thin pool block size", table(2, "thin-pool", "@sand-pool_tmeta @sand-pool_tdata 100 0 0"), "multiple of 128"},
		{"linear over a thin volume", func(d []Device) []Device {
			return append(d, Device{Name: "sand-copy", UUID: "LVM-eeee", Targets: []Target{{0, 65536, "linear", "@sand-lun--guest 0"}}})
		}, "not a thin pool"},
		{"linear over a layer of the pool", table(3, "linear", "@sand-pool_tdata 0"), "not a thin pool"},
		{"a reference to nothing", table(3, "linear", "@sand-root 0"), "not made before it"},
		{"a tab between fields", table(0, "linear", "147:0\t18432"), "single spaces"},
		{"a newline in a field", table(0, "linear", "147:0 18432\n"), "single spaces"},
		{"a name outside LVM's characters", func(d []Device) []Device { d[0].Name = "sand-meta x"; return d }, "not a device-mapper name"},
		{"a UUID outside LVM's characters", func(d []Device) []Device { d[0].UUID = "LVM-a/b"; return d }, "UUID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			devs := make([]Device, len(ok))
			for i, d := range ok {
				devs[i] = d
				devs[i].Targets = append([]Target(nil), d.Targets...)
			}
			if err := CheckReplay(tc.edit(devs), pv); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckReplay = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// The recording side writes only what the replay side takes: the
// kernel's trailing space goes, and a table sand would not replay is not
// recorded at all.
func TestPortableRefusesWhatReplayRefuses(t *testing.T) {
	devs := lvmPool()
	devs[2].Targets[0].Params += " "
	p, err := Portable(devs)
	if err != nil {
		t.Fatal(err)
	}
	if got := p[2].Targets[0].Params; strings.HasSuffix(got, " ") {
		t.Errorf("kept the kernel's trailing space: %q", got)
	}
	devs = lvmPool()
	devs[1].Targets[0].Type, devs[1].Targets[0].Params = "crypt", "aes 0 0 147:0 0"
	if _, err := Portable(devs); err == nil {
		t.Error("recorded a crypt table")
	}
}

func FuzzCheckReplay(f *testing.F) {
	for _, d := range lvmPool() {
		f.Add(d.Targets[0].Type, d.Targets[0].Params)
	}
	f.Add("linear", "/dev/sda 0")
	pv := func(d Dev) bool { return d == Dev{147, 0} }
	f.Fuzz(func(t *testing.T, typ, params string) {
		devs, err := Portable(lvmPool())
		if err != nil {
			t.Fatal(err)
		}
		devs[3].Targets[0].Type, devs[3].Targets[0].Params = typ, params
		if CheckReplay(devs, pv) != nil {
			return
		}
		// Whatever passes names only the record's devices and the PV.
		made := map[string]Dev{}
		for i, d := range devs {
			made[d.Name] = Dev{253, uint32(i)}
		}
		r, err := resolve(devs[3].Targets[0], made, pv)
		if err != nil {
			t.Fatalf("CheckReplay passed what resolve refuses: %v", err)
		}
		l, err := parseParams(r)
		if err != nil {
			t.Fatalf("resolved table does not parse: %v", err)
		}
		for _, k := range l.devs {
			d, ok := ParseDev(l.fields[k])
			if !ok || (d != Dev{147, 0} && d.Major != 253) {
				t.Fatalf("resolved table names %q", l.fields[k])
			}
		}
	})
}
