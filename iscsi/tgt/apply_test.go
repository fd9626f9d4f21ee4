package tgt

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sand-appliance/sand/appliance/command"
	"github.com/sand-appliance/sand/iscsi"
)

const testPort = 4791

// adm is a tgtadm command line on the test control port.
func adm(args string) string { return "tgtadm -C 4791 " + args }

// reads are the commands every Apply starts with.
var reads = []string{
	adm("--lld iscsi --op show --mode target"),
	adm("--lld iscsi --op show --mode portal"),
	adm("--lld iscsi --op show --mode account"),
}

const (
	iqnA  = "iqn.2026-11.org.sand-appliance:box1.lun-a"
	iqnB  = "iqn.2026-11.org.sand-appliance:box1.lun-b"
	iqnC  = "iqn.2026-11.org.sand-appliance:box1.lun-c"
	dom0A = "iqn.2026-11.org.example:dom0-a"
	dom0B = "iqn.2026-11.org.example:dom0-b"
	dom0C = "iqn.2026-11.org.example:dom0-c"
	dom0D = "iqn.2026-11.org.example:dom0-d"
	MiB   = 1 << 20
)

// three is the starting group: three targets with one LUN each (the third
// a block device), each for its own dom0s.
func three() iscsi.TargetGroup {
	return iscsi.TargetGroup{
		Portals: []string{"10.0.0.1:3260"},
		Targets: []iscsi.Target{
			{IQN: iqnA, Initiators: []string{dom0A, dom0B}, LUNs: []iscsi.LogicalUnit{
				{Number: 1, Name: "lun-a", Path: "/srv/sand/lun-a.img", Type: iscsi.FileIO, Size: 64 * MiB, Serial: "a1b2c3d4e5f6a7b8"},
			}},
			{IQN: iqnB, Initiators: []string{dom0A}, LUNs: []iscsi.LogicalUnit{
				{Number: 1, Name: "lun-b", Path: "/srv/sand/lun-b.img", Type: iscsi.FileIO, Size: 100 * MiB, Serial: "b1b2c3d4e5f6a7b8", NAA: "6001405b1b2c3d4e5f6a7b8000000000"},
			}},
			{IQN: iqnC, Initiators: []string{dom0C}, LUNs: []iscsi.LogicalUnit{
				{Number: 1, Name: "lun-c", Path: "/dev/sand/lun-c", Type: iscsi.BlockIO, Size: 1024 * MiB, Serial: "c1b2c3d4e5f6a7b8"},
			}},
		},
	}
}

func newFake() *fakeTgtd {
	f := newFakeTgtd("10.0.0.1:3260")
	f.sizes["/srv/sand/lun-a.img"] = 64 * MiB
	f.sizes["/srv/sand/lun-b.img"] = 100 * MiB
	f.sizes["/srv/sand/lun-b2.img"] = 10 * MiB
	f.sizes["/dev/sand/lun-c"] = 1024 * MiB
	return f
}

func with(tg iscsi.TargetGroup, edit func(tg *iscsi.TargetGroup)) iscsi.TargetGroup {
	edit(&tg)
	return tg
}

func TestApply(t *testing.T) {
	alice := &iscsi.CHAP{User: "alice", Secret: "alice-secret-1"}
	targetOut := &iscsi.CHAP{User: "target-out", Secret: "target-secret-1"}
	chapped := func() iscsi.TargetGroup {
		return with(three(), func(tg *iscsi.TargetGroup) { tg.Targets[0].CHAP, tg.Targets[0].MutualCHAP = alice, targetOut })
	}
	tests := []struct {
		name   string
		before *iscsi.TargetGroup // applied first, by the same Driver
		setup  func(f *fakeTgtd)  // changes behind the Driver's back
		fresh  bool               // Apply with a new Driver (sand restarted, tgtd kept)
		tg     iscsi.TargetGroup
		want   []string // after reads
	}{
		{
			name: "empty to three targets",
			tg:   three(),
			want: []string{
				adm("--lld iscsi --op new --mode target --tid 1 --targetname " + iqnA),
				adm("--lld iscsi --op new --mode logicalunit --tid 1 --lun 1 --backing-store /srv/sand/lun-a.img --bsoflags sync"),
				adm("--lld iscsi --op update --mode logicalunit --tid 1 --lun 1 --params vendor_id=SAND,product_id=sand,scsi_id=6001405a1b2c3d4e5f6a7b8000000000,scsi_sn=a1b2c3d4e5f6a7b8"),
				adm("--lld iscsi --op bind --mode target --tid 1 --initiator-name " + dom0A),
				adm("--lld iscsi --op bind --mode target --tid 1 --initiator-name " + dom0B),
				adm("--lld iscsi --op new --mode target --tid 2 --targetname " + iqnB),
				adm("--lld iscsi --op new --mode logicalunit --tid 2 --lun 1 --backing-store /srv/sand/lun-b.img --bsoflags sync"),
				adm("--lld iscsi --op update --mode logicalunit --tid 2 --lun 1 --params vendor_id=SAND,product_id=sand,scsi_id=6001405b1b2c3d4e5f6a7b8000000000,scsi_sn=b1b2c3d4e5f6a7b8"),
				adm("--lld iscsi --op bind --mode target --tid 2 --initiator-name " + dom0A),
				adm("--lld iscsi --op new --mode target --tid 3 --targetname " + iqnC),
				adm("--lld iscsi --op new --mode logicalunit --tid 3 --lun 1 --backing-store /dev/sand/lun-c --bsoflags sync:direct"),
				adm("--lld iscsi --op update --mode logicalunit --tid 3 --lun 1 --params vendor_id=SAND,product_id=sand,scsi_id=6001405c1b2c3d4e5f6a7b8000000000,scsi_sn=c1b2c3d4e5f6a7b8"),
				adm("--lld iscsi --op bind --mode target --tid 3 --initiator-name " + dom0C),
			},
		},
		{
			name:   "idempotent second apply",
			before: new(three()),
			tg:     three(),
			want:   nil,
		},
		{
			name:   "add one LUN",
			before: new(three()),
			tg: with(three(), func(tg *iscsi.TargetGroup) {
				tg.Targets[1].LUNs = append(tg.Targets[1].LUNs, iscsi.LogicalUnit{Number: 2, Path: "/srv/sand/lun-b2.img", Size: 10 * MiB, Serial: "b2"})
			}),
			want: []string{
				adm("--lld iscsi --op new --mode logicalunit --tid 2 --lun 2 --backing-store /srv/sand/lun-b2.img --bsoflags sync"),
				adm("--lld iscsi --op update --mode logicalunit --tid 2 --lun 2 --params vendor_id=SAND,product_id=sand,scsi_id=6001405b200000000000000000000000,scsi_sn=b2"),
			},
		},
		{
			name:   "remove one target",
			before: new(three()),
			setup:  func(f *fakeTgtd) { f.login(2, dom0A, "10.0.0.9") },
			tg:     with(three(), func(tg *iscsi.TargetGroup) { tg.Targets = append(tg.Targets[:1], tg.Targets[2]) }),
			want: []string{
				adm("--lld iscsi --op delete --mode target --tid 2 --force"),
			},
		},
		{
			name:   "grow one LUN",
			before: new(three()),
			setup:  func(f *fakeTgtd) { f.sizes["/srv/sand/lun-b.img"] = 164 * MiB },
			tg:     with(three(), func(tg *iscsi.TargetGroup) { tg.Targets[1].LUNs[0].Size = 164 * MiB }),
			want: []string{
				adm("--lld iscsi --op delete --mode logicalunit --tid 2 --lun 1"),
				adm("--lld iscsi --op new --mode logicalunit --tid 2 --lun 1 --backing-store /srv/sand/lun-b.img --bsoflags sync"),
				adm("--lld iscsi --op update --mode logicalunit --tid 2 --lun 1 --params vendor_id=SAND,product_id=sand,scsi_id=6001405b1b2c3d4e5f6a7b8000000000,scsi_sn=b1b2c3d4e5f6a7b8"),
			},
		},
		{
			name:   "change serial",
			before: new(three()),
			tg:     with(three(), func(tg *iscsi.TargetGroup) { tg.Targets[0].LUNs[0].Serial = "a1b2c3d4e5f6a7b9" }),
			want: []string{
				adm("--lld iscsi --op delete --mode logicalunit --tid 1 --lun 1"),
				adm("--lld iscsi --op new --mode logicalunit --tid 1 --lun 1 --backing-store /srv/sand/lun-a.img --bsoflags sync"),
				adm("--lld iscsi --op update --mode logicalunit --tid 1 --lun 1 --params vendor_id=SAND,product_id=sand,scsi_id=6001405a1b2c3d4e5f6a7b9000000000,scsi_sn=a1b2c3d4e5f6a7b9"),
			},
		},
		{
			name: "remove one LUN",
			before: new(with(three(), func(tg *iscsi.TargetGroup) {
				tg.Targets[1].LUNs = append(tg.Targets[1].LUNs, iscsi.LogicalUnit{Number: 2, Path: "/srv/sand/lun-b2.img", Serial: "b2"})
			})),
			tg: three(),
			want: []string{
				adm("--lld iscsi --op delete --mode logicalunit --tid 2 --lun 2"),
			},
		},
		{
			name:   "change ACL",
			before: new(three()),
			tg:     with(three(), func(tg *iscsi.TargetGroup) { tg.Targets[0].Initiators = []string{dom0B, dom0D} }),
			want: []string{
				adm("--lld iscsi --op unbind --mode target --tid 1 --initiator-name " + dom0A),
				adm("--lld iscsi --op bind --mode target --tid 1 --initiator-name " + dom0D),
			},
		},
		{
			name:   "add CHAP and mutual CHAP",
			before: new(three()),
			tg:     chapped(),
			want: []string{
				adm("--lld iscsi --op new --mode account --user alice --password alice-secret-1"),
				adm("--lld iscsi --op new --mode account --user target-out --password target-secret-1"),
				adm("--lld iscsi --op bind --mode account --tid 1 --user alice"),
				adm("--lld iscsi --op bind --mode account --tid 1 --user target-out --outgoing"),
			},
		},
		{
			name:   "change CHAP secret: ACL closed while the account is replaced",
			before: new(chapped()),
			tg: with(chapped(), func(tg *iscsi.TargetGroup) {
				tg.Targets[0].CHAP = &iscsi.CHAP{User: "alice", Secret: "alice-secret-2"}
			}),
			want: []string{
				adm("--lld iscsi --op unbind --mode target --tid 1 --initiator-name " + dom0A),
				adm("--lld iscsi --op unbind --mode target --tid 1 --initiator-name " + dom0B),
				adm("--lld iscsi --op delete --mode account --user alice"),
				adm("--lld iscsi --op new --mode account --user alice --password alice-secret-2"),
				adm("--lld iscsi --op bind --mode account --tid 1 --user alice"),
				adm("--lld iscsi --op bind --mode target --tid 1 --initiator-name " + dom0A),
				adm("--lld iscsi --op bind --mode target --tid 1 --initiator-name " + dom0B),
			},
		},
		{
			name:   "sand restarted: CHAP passwords it cannot see are set again once",
			before: new(with(chapped(), func(tg *iscsi.TargetGroup) { tg.Targets[0].MutualCHAP = nil })),
			fresh:  true,
			tg:     with(chapped(), func(tg *iscsi.TargetGroup) { tg.Targets[0].MutualCHAP = nil }),
			want: []string{
				adm("--lld iscsi --op unbind --mode target --tid 1 --initiator-name " + dom0A),
				adm("--lld iscsi --op unbind --mode target --tid 1 --initiator-name " + dom0B),
				adm("--lld iscsi --op delete --mode account --user alice"),
				adm("--lld iscsi --op new --mode account --user alice --password alice-secret-1"),
				adm("--lld iscsi --op bind --mode account --tid 1 --user alice"),
				adm("--lld iscsi --op bind --mode target --tid 1 --initiator-name " + dom0A),
				adm("--lld iscsi --op bind --mode target --tid 1 --initiator-name " + dom0B),
			},
		},
		{
			name:   "change CHAP user: new one bound before the old one goes",
			before: new(chapped()),
			tg: with(chapped(), func(tg *iscsi.TargetGroup) {
				tg.Targets[0].CHAP = &iscsi.CHAP{User: "bob", Secret: "bob-secret-123"}
			}),
			want: []string{
				adm("--lld iscsi --op new --mode account --user bob --password bob-secret-123"),
				adm("--lld iscsi --op bind --mode account --tid 1 --user bob"),
				adm("--lld iscsi --op unbind --mode account --tid 1 --user alice"),
				adm("--lld iscsi --op delete --mode account --user alice"),
			},
		},
		{
			name:   "remove CHAP",
			before: new(chapped()),
			tg:     three(),
			want: []string{
				adm("--lld iscsi --op unbind --mode account --tid 1 --user alice"),
				adm("--lld iscsi --op unbind --mode account --tid 1 --user target-out --outgoing"),
				adm("--lld iscsi --op delete --mode account --user target-out"),
				adm("--lld iscsi --op delete --mode account --user alice"),
			},
		},
		{
			name:   "portal change",
			before: new(three()),
			tg:     with(three(), func(tg *iscsi.TargetGroup) { tg.Portals = []string{"10.0.0.2:3260", "127.0.0.1"} }),
			want: []string{
				adm("--lld iscsi --op delete --mode portal --param portal=10.0.0.1:3260"),
				adm("--lld iscsi --op new --mode portal --param portal=10.0.0.2:3260"),
				adm("--lld iscsi --op new --mode portal --param portal=127.0.0.1:3260"),
			},
		},
		{
			name:   "no portals in the group: portals left alone",
			before: new(three()),
			tg:     with(three(), func(tg *iscsi.TargetGroup) { tg.Portals = nil }),
			want:   nil,
		},
		{
			name: "tgtd fell back to every address: wildcards replaced",
			setup: func(f *fakeTgtd) {
				f.portals = []netip.AddrPort{netip.MustParseAddrPort("[::]:3260"), netip.MustParseAddrPort("0.0.0.0:3260")}
			},
			tg: iscsi.TargetGroup{Portals: []string{"10.0.0.1:3260"}},
			want: []string{
				adm("--lld iscsi --op delete --mode portal --param portal=[::]:3260"),
				adm("--lld iscsi --op delete --mode portal --param portal=0.0.0.0:3260"),
				adm("--lld iscsi --op new --mode portal --param portal=10.0.0.1:3260"),
			},
		},
		{
			name:   "rules sand never makes are removed: ALL, addresses, a name bound as address",
			before: new(three()),
			setup: func(f *fakeTgtd) {
				f.run([]string{"tgtadm", "-C", "4791", "--op", "bind", "--mode", "target", "--tid", "1", "--initiator-address", "ALL"})
				f.run([]string{"tgtadm", "-C", "4791", "--op", "bind", "--mode", "target", "--tid", "1", "--initiator-address", "10.0.0.0/24"})
				f.run([]string{"tgtadm", "-C", "4791", "--op", "bind", "--mode", "target", "--tid", "1", "--initiator-address", dom0A})
			},
			tg: three(),
			want: []string{
				adm("--lld iscsi --op unbind --mode target --tid 1 --initiator-address ALL"),
				adm("--lld iscsi --op unbind --mode target --tid 1 --initiator-address 10.0.0.0/24"),
				adm("--lld iscsi --op unbind --mode target --tid 1 --initiator-address " + dom0A),
			},
		},
		{
			name:   "LUN made without sync is re-added",
			before: new(three()),
			setup:  func(f *fakeTgtd) { f.targets[0].LUNs[1].Flags = "" },
			tg:     three(),
			want: []string{
				adm("--lld iscsi --op delete --mode logicalunit --tid 1 --lun 1"),
				adm("--lld iscsi --op new --mode logicalunit --tid 1 --lun 1 --backing-store /srv/sand/lun-a.img --bsoflags sync"),
				adm("--lld iscsi --op update --mode logicalunit --tid 1 --lun 1 --params vendor_id=SAND,product_id=sand,scsi_id=6001405a1b2c3d4e5f6a7b8000000000,scsi_sn=a1b2c3d4e5f6a7b8"),
			},
		},
		{
			name:   "new target after a removed one gets the next tid",
			before: new(three()),
			tg: with(three(), func(tg *iscsi.TargetGroup) {
				tg.Targets[2] = iscsi.Target{IQN: "iqn.2026-11.org.sand-appliance:box1.lun-d", Initiators: []string{dom0D},
					LUNs: []iscsi.LogicalUnit{{Number: 1, Path: "/srv/sand/lun-b2.img", Serial: "d1"}}}
			}),
			want: []string{
				adm("--lld iscsi --op delete --mode target --tid 3 --force"),
				adm("--lld iscsi --op new --mode target --tid 4 --targetname iqn.2026-11.org.sand-appliance:box1.lun-d"),
				adm("--lld iscsi --op new --mode logicalunit --tid 4 --lun 1 --backing-store /srv/sand/lun-b2.img --bsoflags sync"),
				adm("--lld iscsi --op update --mode logicalunit --tid 4 --lun 1 --params vendor_id=SAND,product_id=sand,scsi_id=6001405d100000000000000000000000,scsi_sn=d1"),
				adm("--lld iscsi --op bind --mode target --tid 4 --initiator-name " + dom0D),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFake()
			run := &command.Fake{Respond: f.Run}
			d := New(run, testPort, nil)
			if tt.before != nil {
				if err := d.Apply(ctx, *tt.before); err != nil {
					t.Fatalf("Apply(before): %v", err)
				}
			}
			if tt.setup != nil {
				tt.setup(f)
			}
			if tt.fresh {
				d = New(run, testPort, nil)
			}
			run.Transcript()
			if err := d.Apply(ctx, tt.tg); err != nil {
				t.Fatalf("Apply: %v", err)
			}
			want := append(append([]string(nil), reads...), tt.want...)
			if diff := cmp.Diff(want, run.Transcript()); diff != "" {
				t.Errorf("tgtadm transcript mismatch (-want +got):\n%s", diff)
			}
			// Applying again changes nothing.
			if err := d.Apply(ctx, tt.tg); err != nil {
				t.Fatalf("second Apply: %v", err)
			}
			if diff := cmp.Diff(reads, run.Transcript()); diff != "" {
				t.Errorf("second Apply was not read-only (-want +got):\n%s", diff)
			}
			// The fake tgtd now holds what was asked for.
			checkLive(t, f, tt.tg)
		})
	}
}

// checkLive compares the fake tgtd's targets with tg.
func checkLive(t *testing.T, f *fakeTgtd, tg iscsi.TargetGroup) {
	t.Helper()
	type lun struct {
		N         int
		Path, ID  string
		SN, Flags string
		MB        int64
	}
	type target struct {
		IQN     string
		LUNs    []lun
		ACL     []string
		In, Out string
	}
	var want, got []target
	for _, tt := range tg.Targets {
		w := target{IQN: tt.IQN, ACL: tt.Initiators}
		if tt.CHAP != nil {
			w.In = tt.CHAP.User
		}
		if tt.MutualCHAP != nil {
			w.Out = tt.MutualCHAP.User
		}
		for _, lu := range tt.LUNs {
			w.LUNs = append(w.LUNs, lun{N: lu.Number, Path: lu.Path, ID: naa(lu), SN: lu.Serial, Flags: flagsFor(lu.Type), MB: sizeMB(f.sizes[lu.Path], 512)})
		}
		want = append(want, w)
	}
	for _, lt := range f.show() {
		g := target{IQN: lt.IQN, ACL: lt.ACL, In: strings.Join(lt.Accounts, ","), Out: lt.OutgoingAccount}
		for _, l := range lt.LUNs[1:] {
			g.LUNs = append(g.LUNs, lun{N: l.Number, Path: l.Path, ID: l.SCSIID, SN: l.SCSISN, Flags: l.Flags, MB: l.SizeMB})
		}
		got = append(got, g)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("live targets differ from the group (-want +live):\n%s", diff)
	}
	for _, tt := range tg.Targets {
		for _, c := range []*iscsi.CHAP{tt.CHAP, tt.MutualCHAP} {
			if c != nil && f.secrets[c.User] != c.Secret {
				t.Errorf("account %s has password %q, want %q", c.User, f.secrets[c.User], c.Secret)
			}
		}
	}
}
