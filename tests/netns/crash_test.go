//go:build netns

package netns

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sand-appliance/sand/tests/netlab"
	"github.com/sand-appliance/sand/ui"
)

// TestKillNineAtAnyMoment kills sand with SIGKILL at random moments while
// LUNs are being created, grown and deleted, restarts it, and checks that
// the registry, the pool and what the initiator can see agree: no
// half-created LUN, no lost LUN, no volume without an entry.
func TestKillNineAtAnyMoment(t *testing.T) {
	netlab.Require(t, netlab.Tools...)
	lab := netlab.New(t, "10.212.0")
	srv := lab.AddHost("box", 11)
	cli := lab.AddHost("client", 100)
	box := netlab.NewSandBox(t, srv, netlab.BuildSand(t))
	box.Start(cli)
	portal := srv.IP + ":3260"
	dom := netlab.Initiator{T: t, Host: cli, IQN: dom0}
	box.MustCLI(cli, "group", "create", "xen", dom0)
	for i := range 3 {
		box.MustCLI(cli, "lun", "create", fmt.Sprintf("keep%d", i), "--size", "8M", "--group", "xen")
	}

	const rounds = 24
	for round := range rounds {
		// One operation in flight, another process, killed mid-way.
		var args []string
		switch round % 3 {
		case 0:
			args = []string{"lun", "create", fmt.Sprintf("r%02d", round), "--size", "8M", "--group", "xen"}
		case 1:
			args = []string{"lun", "resize", "keep1", "--size", fmt.Sprintf("%dM", 8+8*(round+1))}
		case 2:
			args = []string{"lun", "delete", fmt.Sprintf("r%02d", round-2)}
		}
		args = append(args, "--api", box.APIURL(), "--token-file", box.TokenFile, "--config", box.Config,
			"--known-hosts", box.KnownHosts, "--trust-fingerprint", box.Fingerprint(box.APIURL()))
		op := cli.Start(box.Bin, args...)
		delay := time.Duration(rand.IntN(40)) * time.Millisecond
		time.Sleep(delay)
		if err := box.Proc.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		netlab.WaitFor(t, 30*time.Second, "the interrupted CLI call to end", func() error {
			if !op.Exited() {
				return fmt.Errorf("still running")
			}
			return nil
		})
		outcome := "completed"
		if err := op.Err(); err != nil {
			outcome = "interrupted: " + strings.TrimSpace(op.Output())
		}
		t.Logf("round %d: %s, sand killed after %v: %s", round, strings.Join(args[:3], " "), delay, outcome)
		box.Start(cli)
		checkConsistent(t, box, cli, dom, portal, fmt.Sprintf("round %d (%s)", round, args[1]))
	}
}

// checkConsistent compares the registry (the API), the pool directory and
// what the initiator discovers and reads.
func checkConsistent(t *testing.T, box *netlab.SandBox, cli *netlab.Host, dom netlab.Initiator, portal, when string) {
	t.Helper()
	var luns []ui.LUNView
	if err := json.Unmarshal([]byte(box.MustCLI(cli, "lun", "list", "-o", "json")), &luns); err != nil {
		t.Fatal(err)
	}
	var registry, pool, targets []string
	for _, l := range luns {
		registry = append(registry, l.Name)
	}
	files, _ := filepath.Glob(filepath.Join(box.Dir, "pool", "lun-*.img"))
	sizes := map[string]int64{}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "lun-"), ".img")
		pool = append(pool, name)
		if st, err := os.Stat(f); err == nil {
			sizes[name] = st.Size()
		}
	}
	found, err := dom.Discover(portal)
	if err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	for _, f := range found {
		targets = append(targets, f[strings.LastIndexByte(f, ':')+1:])
	}
	slices.Sort(registry)
	slices.Sort(pool)
	slices.Sort(targets)
	if !slices.Equal(registry, pool) || !slices.Equal(registry, targets) {
		t.Fatalf("%s: registry %v, pool %v, targets %v disagree", when, registry, pool, targets)
	}
	for _, l := range luns {
		if sizes[l.Name] != l.Size {
			t.Errorf("%s: LUN %s is %d bytes in the registry, its volume %d", when, l.Name, l.Size, sizes[l.Name])
		}
		got, err := dom.Capacity(portal, l.Target, l.Number)
		if err != nil || got != l.Size {
			t.Errorf("%s: LUN %s: initiator sees %d bytes (%v), registry says %d", when, l.Name, got, err, l.Size)
		}
	}
}
