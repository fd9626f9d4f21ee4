//go:build netns

package netns

import (
	"encoding/hex"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/sand-appliance/sand/tests/netlab"
	"github.com/sand-appliance/sand/ui"
)

const (
	dom0     = "iqn.2026-11.org.example:dom0-a"
	intruder = "iqn.2026-11.org.example:intruder"
	mib      = 1 << 20
)

// TestSingleBox drives one standalone box (tgt driver, file pool) from a
// client namespace the way a Xen admin would: CLI to provision, real
// initiators to find, write, read, resize and check identity, then
// restarts of sand (clean and kill -9) that must change nothing an
// initiator can see.
func TestSingleBox(t *testing.T) {
	netlab.Require(t, netlab.Tools...)
	lab := netlab.New(t, "10.210.0")
	srv := lab.AddHost("box", 11)
	cli := lab.AddHost("client", 100)
	box := netlab.NewSandBox(t, srv, netlab.BuildSand(t))
	box.Start(cli)
	portal := srv.IP + ":3260"
	dom := netlab.Initiator{T: t, Host: cli, IQN: dom0}
	other := netlab.Initiator{T: t, Host: cli, IQN: intruder}

	box.MustCLI(cli, "group", "create", "xen-cluster", dom0)
	names := []string{"vm01", "vm02", "vm03"}
	luns := map[string]ui.LUNView{}
	for _, n := range names {
		box.MustCLI(cli, "lun", "create", n, "--size", "64M", "--group", "xen-cluster")
		luns[n] = box.LUN(cli, n)
	}

	// Discovery as the dom0 finds the three targets.
	found, err := dom.Discover(portal)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if !slices.Contains(found, "Target:"+luns[n].Target) {
			t.Errorf("iscsi-ls does not list %s: %q", luns[n].Target, found)
		}
	}

	// A distinct pattern on each LUN, read back verified.
	patterns := map[string]byte{"vm01": 0xa1, "vm02": 0xa2, "vm03": 0xa3}
	for _, n := range names {
		l := luns[n]
		dom.WritePattern(portal, l.Target, l.Number, patterns[n], "4M")
		if err := dom.CheckPattern(portal, l.Target, l.Number, patterns[n], "4M"); err != nil {
			t.Fatal(err)
		}
	}
	// The check can fail: a wrong pattern is caught.
	if err := dom.CheckPattern(portal, luns["vm01"].Target, luns["vm01"].Number, 0x5a, "4M"); err == nil {
		t.Fatal("reading the wrong pattern passed: the data check cannot fail")
	}

	// Grow vm02 and see the new size from the initiator.
	box.MustCLI(cli, "lun", "resize", "vm02", "--size", "128M")
	if size, err := dom.Capacity(portal, luns["vm02"].Target, luns["vm02"].Number); err != nil || size != 128*mib {
		t.Errorf("vm02 after resize: %d bytes, %v; want %d", size, err, 128*mib)
	}
	if err := dom.CheckPattern(portal, luns["vm02"].Target, luns["vm02"].Number, patterns["vm02"], "4M"); err != nil {
		t.Errorf("vm02 lost its data in the resize: %v", err)
	}

	checkIdentity := func(when string) {
		t.Helper()
		for _, n := range []string{"vm01", "vm02"} {
			l := luns[n]
			serial, vpd83, err := dom.Identity(portal, l.Target, l.Number)
			if err != nil {
				t.Fatalf("%s: %v", when, err)
			}
			if serial != l.Serial {
				t.Errorf("%s: %s VPD 0x80 serial %q, registry says %q", when, n, serial, l.Serial)
			}
			checkNAA(t, when+": "+n, vpd83, l.NAA)
		}
	}
	checkIdentity("after create")

	// Delete vm03: gone from discovery, the others untouched.
	box.MustCLI(cli, "lun", "delete", "vm03")
	found, err = dom.Discover(portal)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(found, "Target:"+luns["vm03"].Target) || len(found) != 2 {
		t.Errorf("after deleting vm03 discovery shows %q", found)
	}

	// An initiator outside the group sees nothing and cannot open a LUN.
	if seen, _ := other.Discover(portal); len(seen) != 0 {
		t.Errorf("initiator outside the group discovers %q", seen)
	}
	if out, err := other.QemuIO(portal, luns["vm01"].Target, luns["vm01"].Number, true, "read 0 4k"); err == nil {
		t.Errorf("initiator outside the group read vm01: %s", out)
	}

	checkSurvivors := func(when string) {
		t.Helper()
		for _, n := range []string{"vm01", "vm02"} {
			l := luns[n]
			if err := dom.CheckPattern(portal, l.Target, l.Number, patterns[n], "4M"); err != nil {
				t.Errorf("%s: %v", when, err)
			}
			if got := box.LUN(cli, n); got.Serial != l.Serial || got.NAA != l.NAA || got.Target != l.Target {
				t.Errorf("%s: %s registry identity changed: %+v", when, n, got)
			}
		}
		if _, err := box.CLI(cli, "lun", "show", "vm03"); err == nil {
			t.Errorf("%s: deleted vm03 came back", when)
		}
		checkIdentity(when)
	}

	// A clean restart of sand, then a kill -9: same LUNs, identity, data.
	if err := box.Proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	box.Start(cli)
	checkSurvivors("after restart")
	if err := box.Proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	box.Start(cli)
	checkSurvivors("after kill -9")
	// Even with tgtd gone too (a reboot), sand brings every LUN back.
	box.Proc.Signal(syscall.SIGKILL)
	box.EndTgtd()
	box.Start(cli)
	checkSurvivors("after kill -9 of sand and tgtd")
}

// checkNAA compares VPD page 0x83 with the registry's NAA. tgt answers with
// a binary NAA designator built from scsi_id and a T10 vendor designator
// holding scsi_id itself; iscsi-inq prints the binary one as raw bytes up
// to the first zero byte, so that one is compared as a prefix.
func checkNAA(t *testing.T, what, vpd83, naa string) {
	t.Helper()
	if !strings.Contains(vpd83, "Designator:["+naa+"]") {
		t.Errorf("%s: VPD 0x83 has no designator %s:\n%s", what, naa, vpd83)
	}
	m := regexp.MustCompile(`(?s)Designator Type:\(3\) NAA\s*\nDesignator:\[(.*?)\]\n`).FindStringSubmatch(vpd83)
	if m == nil || len(m[1]) < 3 {
		t.Errorf("%s: VPD 0x83 has no NAA designator:\n%s", what, vpd83)
		return
	}
	if got := hex.EncodeToString([]byte(m[1])); !strings.HasPrefix(naa, got) {
		t.Errorf("%s: NAA designator %s does not match registry NAA %s", what, got, naa)
	}
}
