package tgt

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/sand-appliance/sand/appliance/command"
	"github.com/sand-appliance/sand/iscsi"
)

func TestApplyRefusesInvalidGroups(t *testing.T) {
	tests := []struct {
		name string
		edit func(tg *iscsi.TargetGroup)
		want string
	}{
		{name: "LUN 0", edit: func(tg *iscsi.TargetGroup) { tg.Targets[0].LUNs[0].Number = 0 },
			want: "LUN 0: tgt keeps LUN 0 for its controller, data LUNs start at 1"},
		{name: "LUN twice", edit: func(tg *iscsi.TargetGroup) { tg.Targets[0].LUNs = append(tg.Targets[0].LUNs, tg.Targets[0].LUNs[0]) },
			want: "LUN 1 is listed twice"},
		{name: "target twice", edit: func(tg *iscsi.TargetGroup) { tg.Targets[1].IQN = iqnA }, want: "is listed twice"},
		{name: "bad IQN", edit: func(tg *iscsi.TargetGroup) { tg.Targets[0].IQN = "IQN.Bad" }, want: "upper-case"},
		{name: "everyone", edit: func(tg *iscsi.TargetGroup) { tg.Targets[0].Initiators = []string{"ALL"} }, want: `initiator "ALL" is refused`},
		{name: "address as initiator", edit: func(tg *iscsi.TargetGroup) { tg.Targets[0].Initiators = []string{"10.0.0.0/8"} }, want: "is an address"},
		{name: "relative path", edit: func(tg *iscsi.TargetGroup) { tg.Targets[0].LUNs[0].Path = "lun.img" }, want: "must be absolute"},
		{name: "comma in path", edit: func(tg *iscsi.TargetGroup) { tg.Targets[0].LUNs[0].Path = "/a,b" }, want: "which tgtadm cannot pass"},
		{name: "no serial", edit: func(tg *iscsi.TargetGroup) { tg.Targets[0].LUNs[0].Serial = "" }, want: "pins every LUN's serial"},
		{name: "bad NAA", edit: func(tg *iscsi.TargetGroup) { tg.Targets[0].LUNs[0].NAA = "5001405a1b2c3d4e5f6a7b8000000000" }, want: "starting with 6"},
		{name: "bad portal", edit: func(tg *iscsi.TargetGroup) { tg.Portals = []string{"vip"} }, want: `portal "vip" is not ip:port`},
		{name: "mutual without CHAP", edit: func(tg *iscsi.TargetGroup) {
			tg.Targets[0].MutualCHAP = &iscsi.CHAP{User: "t", Secret: "target-secret-1"}
		},
			want: "mutual CHAP needs CHAP"},
		{name: "one user, two secrets", edit: func(tg *iscsi.TargetGroup) {
			tg.Targets[0].CHAP = &iscsi.CHAP{User: "u", Secret: "first-secret-1"}
			tg.Targets[1].CHAP = &iscsi.CHAP{User: "u", Secret: "other-secret-2"}
		}, want: "one password per user"},
		{name: "short secret", edit: func(tg *iscsi.TargetGroup) { tg.Targets[0].CHAP = &iscsi.CHAP{User: "u", Secret: "short"} }, want: "12 to 16"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := &command.Fake{Respond: newFake().Run}
			err := New(run, testPort, nil).Apply(context.Background(), with(three(), tt.edit))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Apply error = %v, want one containing %q", err, tt.want)
			}
			if got := run.Transcript(); len(got) != 0 {
				t.Errorf("Apply ran commands for an invalid group: %q", got)
			}
		})
	}
}

func TestApplyErrorHidesPassword(t *testing.T) {
	f := newFake()
	run := &command.Fake{Respond: func(argv []string) ([]byte, error) {
		if strings.Contains(strings.Join(argv, " "), "--mode account --user alice") {
			return nil, &command.Error{Argv: argv, Code: 22, Stderr: "tgtadm: out of memory\n", Err: errors.New("exit status 22")}
		}
		return f.Run(argv)
	}}
	tg := with(three(), func(tg *iscsi.TargetGroup) { tg.Targets[0].CHAP = &iscsi.CHAP{User: "alice", Secret: "alice-secret-1"} })
	err := New(run, testPort, nil).Apply(context.Background(), tg)
	if err == nil {
		t.Fatal("Apply succeeded although tgtadm failed")
	}
	if strings.Contains(err.Error(), "alice-secret-1") {
		t.Errorf("error shows the CHAP secret: %v", err)
	}
	if command.ExitCode(err) != 22 || !strings.Contains(err.Error(), "--password ********:") || !strings.Contains(err.Error(), "step 1 of") {
		t.Errorf("error does not say what failed: %v", err)
	}
}

func TestSessions(t *testing.T) {
	run := &command.Fake{Respond: func(argv []string) ([]byte, error) { return readGolden(t, "show-sessions.golden"), nil }}
	got, err := New(run, testPort, nil).Sessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []iscsi.Session{
		{Target: "iqn.2026-11.org.sand-appliance:box1.lun-a", Initiator: "iqn.2026-11.org.example:dom0-b", Address: "127.0.0.1"},
		{Target: "iqn.2026-11.org.sand-appliance:box1.lun-a", Initiator: "iqn.2008-11.org.linux-kvm", Address: "10.231.0.1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Sessions mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{adm("--lld iscsi --op show --mode target")}, run.Transcript()); diff != "" {
		t.Errorf("transcript mismatch (-want +got):\n%s", diff)
	}
}

func TestDriverStop(t *testing.T) {
	ctx := context.Background()
	f := newFake()
	run := &command.Fake{Respond: f.Run}
	d := New(run, testPort, nil)
	tg := with(three(), func(tg *iscsi.TargetGroup) { tg.Targets[1].CHAP = &iscsi.CHAP{User: "alice", Secret: "alice-secret-1"} })
	if err := d.Apply(ctx, tg); err != nil {
		t.Fatal(err)
	}
	f.login(1, dom0A, "10.0.0.9")
	run.Transcript()
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{
		adm("--lld iscsi --op show --mode target"),
		adm("--lld iscsi --op delete --mode target --tid 1 --force"),
		adm("--lld iscsi --op delete --mode target --tid 2 --force"),
		adm("--lld iscsi --op delete --mode target --tid 3 --force"),
		adm("--lld iscsi --op show --mode account"),
		adm("--lld iscsi --op delete --mode account --user alice"),
	}
	if diff := cmp.Diff(want, run.Transcript()); diff != "" {
		t.Errorf("Stop transcript mismatch (-want +got):\n%s", diff)
	}
	if len(f.targets) != 0 || len(f.accounts) != 0 || len(f.portals) != 1 {
		t.Errorf("after Stop: %d targets, %d accounts, %d portals; want 0, 0 and the portal kept", len(f.targets), len(f.accounts), len(f.portals))
	}
	if d.FirstLUN() != 1 {
		t.Errorf("FirstLUN() = %d, want 1", d.FirstLUN())
	}
}

func TestSizeMB(t *testing.T) {
	// Measured on tgt 1.0.85 (file size -> "Size: N MB").
	for bytes, mb := range map[int64]int64{
		0: 0, 499712: 0, 500000: 0, 500224: 1, 1048576: 1, 1499999: 1, 1500000: 1, 1500001: 1, 2000000: 2,
		2499584: 2, 2500096: 3, 3000000: 3, 3499520: 3, 3500032: 4, 67108864: 67, 104857599: 105, 104857600: 105,
		5000000000: 5000, 5368709120: 5369,
	} {
		if got := sizeMB(bytes, 512); got != mb {
			t.Errorf("sizeMB(%d) = %d, tgt shows %d", bytes, got, mb)
		}
	}
}
