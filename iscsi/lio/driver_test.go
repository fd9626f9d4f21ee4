package lio

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sand-appliance/sand/iscsi"
)

var update = flag.Bool("update", false, "rewrite the golden transcripts in testdata/")

const (
	iqnA   = "iqn.2026-11.org.example.san:vm1"
	iqnB   = "iqn.2026-11.org.example.san:vm2"
	dom0A  = "iqn.2026-11.org.example:dom0-a"
	dom0B  = "iqn.2026-11.org.example:dom0-b"
	dom0C  = "iqn.2026-11.org.example:dom0-c"
	fileA  = "/srv/sand/vm1.img"
	fileA2 = "/srv/sand/vm3.img"
	devB   = "/dev/sand/vm2"
	dbroot = "/srv/sand/meta/target"
)

// baseGroup is two targets with one LUN each, one on a sparse file and one
// on a block device, each with an ACL, CHAP and mutual CHAP.
func baseGroup() iscsi.TargetGroup {
	return iscsi.TargetGroup{
		Portals: []string{"10.99.0.100:3260"},
		Targets: []iscsi.Target{
			{
				IQN:   iqnA,
				Alias: "vm1",
				LUNs: []iscsi.LogicalUnit{{
					Number: 0, Name: "vm1", Path: fileA, Type: iscsi.FileIO,
					Size: 1 << 30, Serial: "5a4e4c4142303031", NAA: iscsi.NAAFromSerial("5a4e4c4142303031"),
				}},
				Initiators: []string{dom0A},
				CHAP:       &iscsi.CHAP{User: "dom0a", Secret: "secret-in-0001"},
				MutualCHAP: &iscsi.CHAP{User: "san", Secret: "secret-out-001"},
			},
			{
				IQN: iqnB,
				LUNs: []iscsi.LogicalUnit{{
					Number: 0, Name: "vm2", Path: devB, Type: iscsi.BlockIO,
					Size: 2 << 30, Serial: "5a4e4c4142303032",
				}},
				Initiators: []string{dom0B},
				CHAP:       &iscsi.CHAP{User: "dom0b", Secret: "secret-in-0002"},
				MutualCHAP: &iscsi.CHAP{User: "san", Secret: "secret-out-002"},
			},
		},
	}
}

// edit returns baseGroup changed by fn.
func edit(fn func(*iscsi.TargetGroup)) iscsi.TargetGroup {
	tg := baseGroup()
	fn(&tg)
	return tg
}

func addLUN(tg *iscsi.TargetGroup) {
	tg.Targets[0].LUNs = append(tg.Targets[0].LUNs, iscsi.LogicalUnit{
		Number: 1, Name: "vm3", Path: fileA2, Type: iscsi.FileIO, Size: 512 << 20, Serial: "5a4e4c4142303033",
	})
}

type rig struct {
	k    *fakeKernel
	host *fakeHost
	d    *Driver
}

func newRig(t *testing.T, opts ...Option) *rig {
	t.Helper()
	k := newFakeKernel(t)
	h := newFakeHost(k)
	h.add(fileA, false)
	h.add(fileA2, false)
	h.add(devB, true)
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := New(k, logger, append([]Option{WithHost(h)}, opts...)...)
	return &rig{k: k, host: h, d: d}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func golden(t *testing.T, name string, got []string) {
	t.Helper()
	file := filepath.Join("testdata", name+".golden")
	text := strings.Join(got, "\n")
	if len(got) > 0 {
		text += "\n"
	}
	if *update {
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read golden transcript (run go test -update to create it): %v", err)
	}
	var wantOps []string
	if s := strings.TrimSuffix(string(want), "\n"); s != "" {
		wantOps = strings.Split(s, "\n")
	}
	if diff := cmp.Diff(wantOps, got); diff != "" {
		t.Errorf("configfs transcript differs from %s (-want +got):\n%s", file, diff)
	}
}

func TestApplyTranscripts(t *testing.T) {
	tests := []struct {
		name    string
		opts    []Option
		before  []iscsi.TargetGroup // applied first; their operations are not compared
		prepare func(*rig)
		apply   *iscsi.TargetGroup // nil: Stop
	}{
		{name: "new-two-targets", opts: []Option{WithDBRoot(dbroot)}, apply: ptr(baseGroup())},
		{name: "add-lun", before: []iscsi.TargetGroup{baseGroup()}, apply: ptr(edit(addLUN))},
		{name: "remove-lun", before: []iscsi.TargetGroup{edit(addLUN)}, apply: ptr(baseGroup())},
		{name: "remove-target", before: []iscsi.TargetGroup{baseGroup()}, apply: ptr(edit(func(tg *iscsi.TargetGroup) { tg.Targets = tg.Targets[:1] }))},
		{name: "change-acl", before: []iscsi.TargetGroup{baseGroup()}, apply: ptr(edit(func(tg *iscsi.TargetGroup) { tg.Targets[0].Initiators = []string{dom0C} }))},
		{name: "add-acl", before: []iscsi.TargetGroup{edit(addLUN)}, apply: ptr(edit(func(tg *iscsi.TargetGroup) {
			addLUN(tg)
			tg.Targets[0].Initiators = []string{dom0A, dom0C}
		}))},
		{name: "grow", before: []iscsi.TargetGroup{baseGroup()}, apply: ptr(edit(func(tg *iscsi.TargetGroup) {
			tg.Targets[0].LUNs[0].Size = 2 << 30 // file: fd_dev_size in place
			tg.Targets[1].LUNs[0].Size = 4 << 30 // block device: the kernel follows the LV
		}))},
		{name: "shrink", before: []iscsi.TargetGroup{baseGroup()}, apply: ptr(edit(func(tg *iscsi.TargetGroup) { tg.Targets[0].LUNs[0].Size = 512 << 20 }))},
		{name: "change-serial", before: []iscsi.TargetGroup{baseGroup()}, apply: ptr(edit(func(tg *iscsi.TargetGroup) {
			tg.Targets[1].LUNs[0].Serial = "5a4e4c4142303039"
		}))},
		{name: "chap-off", before: []iscsi.TargetGroup{baseGroup()}, apply: ptr(edit(func(tg *iscsi.TargetGroup) {
			tg.Targets[0].CHAP, tg.Targets[0].MutualCHAP = nil, nil
		}))},
		{name: "chap-on", before: []iscsi.TargetGroup{edit(func(tg *iscsi.TargetGroup) {
			tg.Targets[0].CHAP, tg.Targets[0].MutualCHAP = nil, nil
		})}, apply: ptr(baseGroup())},
		{name: "change-secret", before: []iscsi.TargetGroup{baseGroup()}, apply: ptr(edit(func(tg *iscsi.TargetGroup) {
			tg.Targets[1].CHAP = &iscsi.CHAP{User: "dom0b", Secret: "secret-in-0003"}
		}))},
		{name: "move-portal", before: []iscsi.TargetGroup{baseGroup()}, apply: ptr(edit(func(tg *iscsi.TargetGroup) {
			tg.Portals = []string{"[fd00:99::100]:3260"}
		}))},
		{name: "idempotent", before: []iscsi.TargetGroup{baseGroup()}, apply: ptr(baseGroup())},
		{name: "enable-disabled-target", before: []iscsi.TargetGroup{baseGroup()}, prepare: func(r *rig) {
			r.k.tamper("iscsi/"+iqnB+"/tpgt_1/enable", "0\n")
		}, apply: ptr(baseGroup())},
		{name: "replace-buffered-backstore", before: []iscsi.TargetGroup{baseGroup()}, prepare: func(r *rig) {
			// Someone (targetcli's default) made it write-back.
			r.k.devs["core/fileio_0/vm2"].buffered = true
			r.k.renderDev("core/fileio_0/vm2")
		}, apply: ptr(baseGroup())},
		{name: "empty", before: []iscsi.TargetGroup{baseGroup()}, apply: &iscsi.TargetGroup{}},
		{name: "new-target-without-lun", apply: ptr(edit(func(tg *iscsi.TargetGroup) {
			tg.Targets = tg.Targets[:1]
			tg.Targets[0].LUNs = nil
		}))},
		{name: "last-lun-removed", before: []iscsi.TargetGroup{baseGroup()}, apply: ptr(edit(func(tg *iscsi.TargetGroup) {
			tg.Targets[1].LUNs = nil
		}))},
		{name: "first-lun-added", before: []iscsi.TargetGroup{edit(func(tg *iscsi.TargetGroup) {
			tg.Targets[1].LUNs = nil
		})}, apply: ptr(baseGroup())},
		{name: "stop", before: []iscsi.TargetGroup{edit(addLUN)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			r := newRig(t, tc.opts...)
			for _, tg := range tc.before {
				if err := r.d.Apply(ctx, tg); err != nil {
					t.Fatalf("Apply (setup): %v", err)
				}
			}
			if tc.prepare != nil {
				tc.prepare(r)
			}
			r.k.takeOps()
			var err error
			if tc.apply != nil {
				err = r.d.Apply(ctx, *tc.apply)
			} else {
				err = r.d.Stop(ctx)
			}
			if err != nil {
				t.Fatalf("got error %v", err)
			}
			ops := r.k.takeOps()
			golden(t, tc.name, ops)
			checkEnableLast(t, ops)

			// Doing it again changes nothing.
			if tc.apply != nil {
				err = r.d.Apply(ctx, *tc.apply)
			} else {
				err = r.d.Stop(ctx)
			}
			if err != nil {
				t.Fatalf("second run: %v", err)
			}
			if again := r.k.takeOps(); len(again) != 0 {
				t.Errorf("second run changed configfs:\n%s", strings.Join(again, "\n"))
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

var (
	enableRe  = regexp.MustCompile(`^write (iscsi/[^/]+/tpgt_1)/enable 1$`)
	lunLinkRe = regexp.MustCompile(`^symlink (iscsi/[^/]+/tpgt_1)/lun/lun_[0-9]+/[^ ]+ -> (core/[^ ]+)$`)
)

// checkEnableLast asserts LAB.md's rule on a transcript: a TPG is enabled
// only after everything in it is made, and only after the backstores its
// LUNs link to were enabled.
func checkEnableLast(t *testing.T, ops []string) {
	t.Helper()
	for i, op := range ops {
		m := enableRe.FindStringSubmatch(op)
		if m == nil {
			continue
		}
		tpg := m[1]
		for _, later := range ops[i+1:] {
			if strings.Contains(later, " "+tpg+"/") && !strings.HasPrefix(later, "unlink") && !strings.HasPrefix(later, "rmdir") {
				t.Errorf("%q comes after %q", later, op)
			}
		}
		for j, earlier := range ops[:i] {
			lm := lunLinkRe.FindStringSubmatch(earlier)
			if lm == nil || lm[1] != tpg {
				continue
			}
			enabled := false
			for _, e := range ops[:j] {
				if e == "write "+lm[2]+"/enable 1" {
					enabled = true
				}
			}
			// A backstore enabled by an earlier Apply shows no write here;
			// the fake refuses the link then anyway (ENODEV).
			if !enabled && strings.Contains(strings.Join(ops[:j], "\n"), "mkdir "+lm[2]) {
				t.Errorf("%q links %s before it is enabled", earlier, lm[2])
			}
		}
	}
}

// TestEnableLastNewTarget spells the ordering rule out on the full
// sequence for a new target: every mkdir, write and symlink below tpgt_1 of
// a new target, including its portal and its ACL mappings, precedes the
// TPG's enable, and each backstore is enabled and checked before the LUN
// links to it.
func TestEnableLastNewTarget(t *testing.T) {
	r := newRig(t)
	if err := r.d.Apply(context.Background(), baseGroup()); err != nil {
		t.Fatal(err)
	}
	ops := r.k.takeOps()
	index := func(op string) int {
		for i, o := range ops {
			if o == op {
				return i
			}
		}
		t.Fatalf("transcript lacks %q:\n%s", op, strings.Join(ops, "\n"))
		return -1
	}
	for _, tc := range []struct {
		iqn, backstore string
	}{{iqnA, "vm1"}, {iqnB, "vm2"}} {
		tpg := "iscsi/" + tc.iqn + "/tpgt_1"
		enable := index("write " + tpg + "/enable 1")
		last := -1
		for i, op := range ops {
			if strings.Contains(op, " "+tpg+"/") && i != enable {
				last = i
			}
		}
		if last > enable {
			t.Errorf("%s: %q after the enable", tc.iqn, ops[last])
		}
		if np := index("mkdir " + tpg + "/np/10.99.0.100:3260"); np > enable {
			t.Errorf("%s: portal after enable", tc.iqn)
		}
		link := index("symlink " + tpg + "/lun/lun_0/" + tc.backstore + " -> core/fileio_0/" + tc.backstore)
		if be := index("write core/fileio_0/" + tc.backstore + "/enable 1"); be > link {
			t.Errorf("%s: backstore enabled after the LUN links to it", tc.iqn)
		}
		if s := index("write core/fileio_0/" + tc.backstore + "/wwn/vpd_unit_serial " + map[string]string{"vm1": "5a4e4c4142303031", "vm2": "5a4e4c4142303032"}[tc.backstore]); s > index("write core/fileio_0/"+tc.backstore+"/enable 1") {
			t.Errorf("%s: serial written after enable", tc.iqn)
		}
	}
}

// TestFailedBuildStaysDisabled: when building a target fails halfway, it is
// never enabled, and the next Apply finishes it.
func TestFailedBuildStaysDisabled(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	np := "mkdir iscsi/" + iqnA + "/tpgt_1/np/10.99.0.100:3260"
	r.k.fail[np] = syscall.EADDRNOTAVAIL // the VIP is not up yet
	err := r.d.Apply(ctx, baseGroup())
	if !errors.Is(err, syscall.EADDRNOTAVAIL) || !strings.Contains(err.Error(), np) {
		t.Fatalf("got %v, want EADDRNOTAVAIL naming %q", err, np)
	}
	for _, op := range r.k.takeOps() {
		if strings.HasSuffix(op, "/enable 1") && strings.HasPrefix(op, "write iscsi/") {
			t.Errorf("a target was enabled: %s", op)
		}
	}
	delete(r.k.fail, np)
	if err := r.d.Apply(ctx, baseGroup()); err != nil {
		t.Fatal(err)
	}
	golden(t, "resume-after-failure", r.k.takeOps())
}

func TestApplyErrors(t *testing.T) {
	tests := []struct {
		name     string
		opts     []Option
		prepare  func(*rig)
		tg       iscsi.TargetGroup
		want     []string // substrings of the error
		is       error
		noOps    bool     // nothing may be changed
		disabled []string // targets that must not be enabled
	}{
		{
			name:     "enable backstore fails",
			prepare:  func(r *rig) { r.k.fail["write core/fileio_0/vm1/enable"] = syscall.EINVAL },
			tg:       baseGroup(),
			want:     []string{`create backstore "vm1"`, "write core/fileio_0/vm1/enable", "invalid argument"},
			is:       syscall.EINVAL,
			disabled: []string{iqnA, iqnB},
		},
		{
			name:     "mkdir target fails",
			prepare:  func(r *rig) { r.k.fail["mkdir iscsi/"+iqnB] = syscall.ENOMEM },
			tg:       baseGroup(),
			want:     []string{"create target " + iqnB, "mkdir iscsi/" + iqnB},
			is:       syscall.ENOMEM,
			disabled: []string{iqnB},
		},
		{
			name:     "lun link fails",
			prepare:  func(r *rig) { r.k.fail["symlink iscsi/"+iqnA+"/tpgt_1/lun/lun_0/vm1"] = syscall.ENODEV },
			tg:       baseGroup(),
			want:     []string{"symlink iscsi/" + iqnA + "/tpgt_1/lun/lun_0/vm1"},
			is:       syscall.ENODEV,
			disabled: []string{iqnA, iqnB},
		},
		{
			name: "a kernel whose new TPGs are not LIO's usual (write-protected LUNs, demo mode)",
			prepare: func(r *rig) {
				r.k.tpgDefaults = map[string]string{"prod_mode_write_protect": "1", "generate_node_acls": "1"}
			},
			tg:       baseGroup(),
			want:     []string{"check target " + iqnA + " before enabling it", `attrib/generate_node_acls is "1", want 0 (any initiator could log in)`, `attrib/prod_mode_write_protect is "1", want 0 (the LUNs would be read-only)`},
			disabled: []string{iqnA, iqnB},
		},
		{
			name:    "dbroot refused once iscsi_target_mod is loaded",
			opts:    []Option{WithDBRoot(dbroot)},
			prepare: func(r *rig) { r.k.fabricLoaded = true },
			tg:      baseGroup(),
			want:    []string{"write dbroot", "set LIO dbroot"},
			is:      syscall.EINVAL,
		},
		{
			name:    "dbroot directory cannot be made",
			opts:    []Option{WithDBRoot(dbroot)},
			prepare: func(r *rig) { r.host.fail = syscall.EROFS },
			tg:      baseGroup(),
			want:    []string{"prepare LIO dbroot " + dbroot, dbroot + "/pr"},
			is:      syscall.EROFS,
			noOps:   true,
		},
		{
			name:     "serial does not read back",
			prepare:  func(r *rig) { r.k.mangleSerial = func(s string) string { return s[:8] } },
			tg:       baseGroup(),
			want:     []string{"check core/fileio_0/vm1", `vpd_unit_serial reads "5a4e4c41", want "5a4e4c4142303031"`},
			disabled: []string{iqnA, iqnB},
		},
		{
			name:    "configfs not mounted",
			prepare: func(r *rig) { os.RemoveAll(r.k.abs("core")) },
			tg:      baseGroup(),
			is:      ErrNotLoaded,
			noOps:   true,
		},
		{
			name:  "missing backing file",
			tg:    edit(func(tg *iscsi.TargetGroup) { tg.Targets[0].LUNs[0].Path = "/srv/sand/gone.img" }),
			want:  []string{iqnA + " LUN 0", "/srv/sand/gone.img"},
			is:    syscall.ENOENT,
			noOps: true,
		},
		{
			name:  "bad target IQN",
			tg:    edit(func(tg *iscsi.TargetGroup) { tg.Targets[0].IQN = "IQN.bad" }),
			want:  []string{"IQN.bad"},
			noOps: true,
		},
		{
			name:  "duplicate LUN number",
			tg:    edit(func(tg *iscsi.TargetGroup) { addLUN(tg); tg.Targets[0].LUNs[1].Number = 0 }),
			want:  []string{iqnA + " LUN 0: LUN number used twice"},
			noOps: true,
		},
		{
			name:  "missing serial",
			tg:    edit(func(tg *iscsi.TargetGroup) { tg.Targets[1].LUNs[0].Serial = "" }),
			want:  []string{iqnB + " LUN 0", "serial"},
			noOps: true,
		},
		{
			name:  "NAA does not match serial",
			tg:    edit(func(tg *iscsi.TargetGroup) { tg.Targets[0].LUNs[0].NAA = iscsi.NAAFromSerial("ffff") }),
			want:  []string{"does not match serial"},
			noOps: true,
		},
		{
			name:  "mutual CHAP without CHAP",
			tg:    edit(func(tg *iscsi.TargetGroup) { tg.Targets[0].CHAP = nil }),
			want:  []string{"mutual CHAP needs one-way CHAP"},
			noOps: true,
		},
		{
			name:  "short CHAP secret",
			tg:    edit(func(tg *iscsi.TargetGroup) { tg.Targets[0].CHAP.Secret = "short" }),
			want:  []string{"CHAP secret"},
			noOps: true,
		},
		{
			name:  "no portal",
			tg:    edit(func(tg *iscsi.TargetGroup) { tg.Portals = nil }),
			want:  []string{"no portal"},
			noOps: true,
		},
		{
			name:  "portal is a host name",
			tg:    edit(func(tg *iscsi.TargetGroup) { tg.Portals = []string{"san.example.org:3260"} }),
			want:  []string{`"san.example.org" is not an IP address`},
			noOps: true,
		},
		{
			name:  "file without size",
			tg:    edit(func(tg *iscsi.TargetGroup) { tg.Targets[0].LUNs[0].Size = 0 }),
			want:  []string{"regular file", "fd_dev_size"},
			noOps: true,
		},
		{
			name: "one device exported twice",
			tg: edit(func(tg *iscsi.TargetGroup) {
				addLUN(tg)
				tg.Targets[0].LUNs[1].Path = devB
			}),
			want:  []string{devB, "two writers"},
			noOps: true,
		},
		{
			name:    "comma in path",
			prepare: func(r *rig) { r.host.add("/srv/a,b.img", false) },
			tg:      edit(func(tg *iscsi.TargetGroup) { tg.Targets[0].LUNs[0].Path = "/srv/a,b.img" }),
			want:    []string{"comma"},
			noOps:   true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t, tc.opts...)
			if tc.prepare != nil {
				tc.prepare(r)
			}
			err := r.d.Apply(context.Background(), tc.tg)
			if err == nil {
				t.Fatal("Apply succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
			ops := r.k.takeOps()
			if tc.noOps && len(ops) > 0 {
				t.Errorf("configfs was changed:\n%s", strings.Join(ops, "\n"))
			}
			for _, op := range ops {
				for _, iqn := range tc.disabled {
					if op == "write iscsi/"+iqn+"/tpgt_1/enable 1" {
						t.Errorf("target %s was enabled despite the error", iqn)
					}
				}
			}
		})
	}
}

func TestStopErrors(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	if err := r.d.Apply(ctx, baseGroup()); err != nil {
		t.Fatal(err)
	}
	r.k.fail["rmdir core/fileio_0/vm2"] = syscall.EBUSY
	err := r.d.Stop(ctx)
	if !errors.Is(err, syscall.EBUSY) || !strings.Contains(err.Error(), "rmdir core/fileio_0/vm2") || !strings.Contains(err.Error(), "release backstore fileio_0/vm2") {
		t.Errorf("got %v, want EBUSY naming rmdir core/fileio_0/vm2", err)
	}
	if err := r.d.Released(ctx); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), devB) {
		t.Errorf("Released: got %v, want ErrBusy naming %s", err, devB)
	}
	if err := r.d.Released(ctx, fileA); err != nil {
		t.Errorf("Released(%s): %v (its backstore is gone)", fileA, err)
	}
	delete(r.k.fail, "rmdir core/fileio_0/vm2")
	if err := r.d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Released(ctx); err != nil {
		t.Errorf("Released after Stop: %v", err)
	}
}

func TestContextCanceled(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.d.Apply(ctx, baseGroup()); !errors.Is(err, context.Canceled) {
		t.Errorf("Apply: got %v, want context.Canceled", err)
	}
	if err := r.d.Released(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Released: got %v, want context.Canceled", err)
	}
	if ops := r.k.takeOps(); len(ops) > 0 {
		t.Errorf("configfs was changed:\n%s", strings.Join(ops, "\n"))
	}
}

// TestStopRemovesForeignObjects: Stop releases everything, also a
// backstore and target set up by hand (the lab script's iblock_0/r0 with a
// demo-mode target), so that DRBD can be demoted. Apply leaves the foreign
// backstore alone.
func TestStopRemovesForeignObjects(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	k := r.k
	k.blocks["/dev/drbd0"] = true
	for _, op := range []func() error{
		func() error { return k.Mkdir("core/iblock_0") },
		func() error { return k.Mkdir("core/iblock_0/r0") },
		func() error { return k.WriteFile("core/iblock_0/r0/control", []byte("udev_path=/dev/drbd0")) },
		func() error { return k.WriteFile("core/iblock_0/r0/udev_path", []byte("/dev/drbd0")) },
		func() error {
			k.devs["core/iblock_0/r0"].path, k.devs["core/iblock_0/r0"].hasPath = "/dev/drbd0", true
			return k.WriteFile("core/iblock_0/r0/enable", []byte("1"))
		},
		func() error { return k.Mkdir("iscsi") },
		func() error { return k.Mkdir("iscsi/iqn.2025-01.lab.sanlab:r0") },
		func() error { return k.Mkdir("iscsi/iqn.2025-01.lab.sanlab:r0/tpgt_1") },
		func() error { return k.Mkdir("iscsi/iqn.2025-01.lab.sanlab:r0/tpgt_1/lun/lun_0") },
		func() error {
			return k.Symlink("core/iblock_0/r0", "iscsi/iqn.2025-01.lab.sanlab:r0/tpgt_1/lun/lun_0/r0")
		},
		func() error {
			return k.WriteFile("iscsi/iqn.2025-01.lab.sanlab:r0/tpgt_1/attrib/generate_node_acls", []byte("1"))
		},
		func() error { return k.Mkdir("iscsi/iqn.2025-01.lab.sanlab:r0/tpgt_1/np/10.99.0.100:3260") },
		func() error { return k.WriteFile("iscsi/iqn.2025-01.lab.sanlab:r0/tpgt_1/enable", []byte("1")) },
	} {
		if err := op(); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.d.Apply(ctx, baseGroup()); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Released(ctx, "/dev/drbd0"); !errors.Is(err, ErrBusy) {
		t.Errorf("Released(/dev/drbd0) after Apply: got %v, want ErrBusy (Apply leaves foreign backstores)", err)
	}
	k.takeOps()
	if err := r.d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	golden(t, "stop-foreign", k.takeOps())
	if err := r.d.Released(ctx, "/dev/drbd0"); err != nil {
		t.Errorf("Released(/dev/drbd0) after Stop: %v", err)
	}
}

func TestStopWithoutLIO(t *testing.T) {
	r := newRig(t)
	os.RemoveAll(r.k.abs("core"))
	if err := r.d.Stop(context.Background()); err != nil {
		t.Errorf("Stop with target_core_mod unloaded: %v", err)
	}
}

func TestFirstLUN(t *testing.T) {
	if got := New(nil, nil).FirstLUN(); got != 0 {
		t.Errorf("FirstLUN() = %d, want 0", got)
	}
}

func TestSecretsNotLogged(t *testing.T) {
	var buf strings.Builder
	k := newFakeKernel(t)
	h := newFakeHost(k)
	h.add(fileA, false)
	h.add(devB, true)
	d := New(k, slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), WithHost(h))
	if err := d.Apply(context.Background(), baseGroup()); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"secret-in-0001", "secret-out-001"} {
		if strings.Contains(buf.String(), s) {
			t.Errorf("log shows CHAP secret %q", s)
		}
	}
	if !strings.Contains(buf.String(), "auth/password") {
		t.Error("log does not show the CHAP writes at debug level")
	}
}

// An APTPL file as LIO writes it (core_scsi3_update_aptpl_buf): two
// registrations, the first holding the reservation.
const aptplFile = `PR_REG_START: 0
initiator_fabric=iSCSI
initiator_node=iqn.2026-11.org.example:dom0-a
sa_res_key=3735928559
res_holder=1
res_type=05
res_scope=00
res_all_tg_pt=0
mapped_lun=0
target_fabric=iSCSI
target_node=iqn.2026-11.org.sand-appliance:vm1
tpgt=1
port_rtpi=1
target_lun=0
PR_REG_END: 0
PR_REG_START: 1
initiator_fabric=iSCSI
initiator_node=iqn.2026-11.org.example:dom0-b
sa_res_key=3735928560
res_holder=0
mapped_lun=0
target_fabric=iSCSI
target_node=iqn.2026-11.org.sand-appliance:vm1
tpgt=1
port_rtpi=1
target_lun=0
PR_REG_END: 1
`

// TestAPTPLFollowsTheDBRoot: a backstore made on a box whose dbroot (the
// replicated metadata volume in a pair) holds reservations for its serial
// gets them back before its LUN is exported; a damaged file is skipped.
func TestAPTPLFollowsTheDBRoot(t *testing.T) {
	r := newRig(t)
	r.host.content["/var/target/pr/aptpl_5a4e4c4142303031"] = aptplFile
	r.host.content["/var/target/pr/aptpl_5a4e4c4142303032"] = "PR_REG_START: 0\ninitiator_node=x\n" // cut short
	if err := r.d.Apply(context.Background(), baseGroup()); err != nil {
		t.Fatal(err)
	}
	ops := r.k.takeOps()
	var restored []int
	link := -1
	for i, op := range ops {
		if strings.HasPrefix(op, "write core/fileio_0/vm1/pr/res_aptpl_metadata ") {
			restored = append(restored, i)
		}
		if strings.HasPrefix(op, "symlink iscsi/"+iqnA+"/tpgt_1/lun/lun_0/") {
			link = i
		}
		if strings.Contains(op, "vm2/pr/res_aptpl_metadata") {
			t.Errorf("restored a damaged APTPL file: %s", op)
		}
	}
	if len(restored) != 2 || link < 0 || restored[1] > link {
		t.Fatalf("want 2 registrations restored before the LUN links the device (link at %d), got %v:\n%s", link, restored, strings.Join(ops, "\n"))
	}
	got := r.k.devs["core/fileio_0/vm1"].aptpl
	want := []string{
		"initiator_fabric=iSCSI,initiator_node=iqn.2026-11.org.example:dom0-a,sa_res_key=3735928559,res_holder=1,res_type=05,res_scope=00,res_all_tg_pt=0,mapped_lun=0,target_fabric=iSCSI,target_node=iqn.2026-11.org.sand-appliance:vm1,tpgt=1,port_rtpi=1,target_lun=0",
		"initiator_fabric=iSCSI,initiator_node=iqn.2026-11.org.example:dom0-b,sa_res_key=3735928560,res_holder=0,mapped_lun=0,target_fabric=iSCSI,target_node=iqn.2026-11.org.sand-appliance:vm1,tpgt=1,port_rtpi=1,target_lun=0",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("registrations given to the kernel (-want +got):\n%s", diff)
	}
	// A second Apply keeps the device and writes no registration again.
	if err := r.d.Apply(context.Background(), baseGroup()); err != nil {
		t.Fatal(err)
	}
	for _, op := range r.k.takeOps() {
		if strings.Contains(op, "res_aptpl_metadata") {
			t.Errorf("second Apply restored again: %s", op)
		}
	}
}

func TestParseAPTPLRejectsDamage(t *testing.T) {
	for _, bad := range []string{
		"initiator_node=x\n",
		"PR_REG_START: 0\nPR_REG_START: 1\n",
		"PR_REG_END: 0\n",
		"PR_REG_START: 0\nnot a pair\nPR_REG_END: 0\n",
		"PR_REG_START: 0\ninitiator_node=a,b\nPR_REG_END: 0\n",
	} {
		if regs, err := ParseAPTPL([]byte(bad)); err == nil {
			t.Errorf("ParseAPTPL(%q) = %q, want an error", bad, regs)
		}
	}
	if regs, err := ParseAPTPL(nil); err != nil || len(regs) != 0 {
		t.Errorf("empty file: %q, %v", regs, err)
	}
}

// Warm leaves configfs as it found it: an HBA made and removed when there
// was none, nothing touched when sand's HBA exists (a primary's).
func TestWarm(t *testing.T) {
	ctx := context.Background()
	const scratch = "/tmp/sand-lio-warm-1"
	r := newRig(t)
	r.host.add(scratch, false)
	r.k.takeOps()
	if err := r.d.Warm(ctx, scratch, 1<<20); err != nil {
		t.Fatal(err)
	}
	golden(t, "warm", r.k.takeOps())
	if l, err := readLive(r.k); err != nil || len(l.hbas)+len(l.targets)+len(l.backstores) != 0 {
		t.Errorf("after Warm: %d HBAs, %d targets, %d backstores (err %v), want none", len(l.hbas), len(l.targets), len(l.backstores), err)
	}

	// A build that fails half way is torn down all the same.
	r.k.fail["mkdir iscsi/iqn.2026-11.org.sand-appliance:warm/tpgt_1/np/127.0.0.1:3260"] = syscall.EADDRINUSE
	if err := r.d.Warm(ctx, scratch, 1<<20); !errors.Is(err, syscall.EADDRINUSE) {
		t.Errorf("Warm with the portal taken: %v, want EADDRINUSE", err)
	}
	if l, err := readLive(r.k); err != nil || len(l.hbas)+len(l.targets)+len(l.backstores) != 0 {
		t.Errorf("after a failed Warm: %d HBAs, %d targets, %d backstores (err %v), want none", len(l.hbas), len(l.targets), len(l.backstores), err)
	}
	delete(r.k.fail, "mkdir iscsi/iqn.2026-11.org.sand-appliance:warm/tpgt_1/np/127.0.0.1:3260")

	// Beside a serving configuration (sand restarted on a primary) it
	// changes nothing.
	if err := r.d.Apply(ctx, baseGroup()); err != nil {
		t.Fatal(err)
	}
	r.k.takeOps()
	if err := r.d.Warm(ctx, scratch, 1<<20); err != nil {
		t.Fatal(err)
	}
	if ops := r.k.takeOps(); len(ops) != 0 {
		t.Errorf("warm beside a serving configuration changed it: %v", ops)
	}
	os.RemoveAll(r.k.abs("core"))
	if err := r.d.Warm(ctx, scratch, 1<<20); !errors.Is(err, ErrNotLoaded) {
		t.Errorf("warm without target_core_mod: %v, want ErrNotLoaded", err)
	}
}
