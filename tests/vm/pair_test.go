//go:build vm

// Package vm is the VM lab tier: the appliance image from mkimage.sh booted
// twice under QEMU (TCG) in a network namespace of its own, driven over the
// lab's front network the way an admin and a dom0 would.
package vm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/tests/lab"
	"github.com/sand-appliance/sand/tests/netlab"
	"github.com/sand-appliance/sand/ui"
)

const (
	mib       = 1 << 20
	diskSize  = 1 << 30
	clientIQN = "iqn.2026-11.org.sand-appliance.test:vm-client"
)

// tools the tier needs on the host besides what mkimage.sh installs.
var tools = []string{"qemu-system-x86_64", "ip", "qemu-io", "stdbuf", "iscsi-ls", "iscsi-inq", "iscsi-readcapacity16", "go"}

// TestPairSmoke boots san1 and san2 from the image and checks each box
// runs sand with its node settings, sees its data disk, has DRBD 8.4 and
// LIO in its kernel, serves a LUN to an initiator in the client namespace,
// and that the lab's fault helpers (cut and restore a link, pause, kill
// and reboot a box) do what they say. Then it takes the lab down and checks
// nothing is left.
func TestPairSmoke(t *testing.T) {
	netlab.Require(t, tools...)
	if err := lab.CheckHost(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Minute)
	defer cancel()

	l := up(t, ctx, lab.Options{})
	names := l.Names()

	t.Run("sand answers with the token on the front network", func(t *testing.T) {
		for _, name := range names {
			b := l.Box(name)
			body, code := get(t, ctx, b.HTTPClient(30*time.Second), b.APIURL()+"/healthz", "")
			if code != http.StatusOK || strings.TrimSpace(body) != "ok" {
				t.Errorf("%s GET /healthz: %d %q", name, code, body)
			}
			if _, code := get(t, ctx, b.HTTPClient(30*time.Second), b.APIURL()+"/api/v1/status", ""); code != http.StatusUnauthorized {
				t.Errorf("%s GET /api/v1/status without the token: %d, want 401", name, code)
			}
			// Plain HTTP only redirects to HTTPS.
			plain := l.Host().HTTPClient(30 * time.Second)
			plain.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			if resp, err := plain.Get("http://" + net.JoinHostPort(b.FrontIP(), "7480") + "/ui/"); err != nil {
				t.Errorf("%s plain HTTP: %v", name, err)
			} else {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != b.UIURL() || len(body) != 0 {
					t.Errorf("%s plain HTTP: %s Location %q body %q, want 308 to %s", name, resp.Status, resp.Header.Get("Location"), body, b.UIURL())
				}
			}
			st, err := b.API().Status(ctx)
			if err != nil {
				t.Fatalf("%s status: %v", name, err)
			}
			t.Logf("%s status: %+v", name, st)
			want := appliance.Status{Name: name, Portal: b.FrontIP() + ":3260", Driver: "lio", Pool: "lvm"}
			if st.Name != want.Name || st.Portal != want.Portal || st.Driver != want.Driver || st.Pool != want.Pool {
				t.Errorf("%s status = name %q portal %q driver %q pool %q; want %q %q %q %q (from the kernel command line via sand-node-setup)",
					name, st.Name, st.Portal, st.Driver, st.Pool, want.Name, want.Portal, want.Driver, want.Pool)
			}
			// The thin pool sand-storage made on the 1 GiB data disk.
			if st.Capacity.Size < 512*mib || st.Capacity.Size > diskSize {
				t.Errorf("%s pool size %d bytes: want the thin pool on its %d-byte data disk", name, st.Capacity.Size, diskSize)
			}
			if len(st.Problems) > 0 {
				t.Errorf("%s reports problems: %q", name, st.Problems)
			}
		}
	})

	t.Run("each box sees its data disk and has DRBD and LIO", func(t *testing.T) {
		for _, name := range names {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			r, err := l.Box(name).Report(rctx)
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s report: %+v", name, r)
			if r.Name != name {
				t.Errorf("%s reports hostname %q", name, r.Name)
			}
			if missing := r.MissingArgs(l.KernelArgs); len(missing) > 0 {
				t.Errorf("%s booted with kernel arguments %q, without the image's %q", name, r.KernelArgs, missing)
			}
			for _, m := range []string{"drbd", "target_core_mod", "iscsi_target_mod", "target_core_iblock", "target_core_file", "configfs", "dm_thin_pool"} {
				if r.Modules[m] != "loaded" {
					t.Errorf("%s: module %s is %q, want loaded", name, m, r.Modules[m])
				}
			}
			if !strings.HasPrefix(r.DRBDVersion, "8.4.") {
				t.Errorf("%s: DRBD version %q, want the kernel's in-tree 8.4", name, r.DRBDVersion)
			}
			if r.Disk.Size != diskSize || r.Disk.Device == "" {
				t.Errorf("%s: data disk %+v, want %d bytes", name, r.Disk, diskSize)
			}
			if r.PoolDevice != r.Disk.Setting || r.PoolSize <= 0 || !r.StateDirMounted {
				t.Errorf("%s: pool device %q size %d, state dir mounted %v: want the pool and the meta volume on the data disk %q",
					name, r.PoolDevice, r.PoolSize, r.StateDirMounted, r.Disk.Setting)
			}
			// LVM sees the pool device only (on a DRBD pair, /dev/drbd0 and
			// never the backing disk).
			if want := `"a|^` + r.Disk.Device + `$|"`; !strings.Contains(r.LVMFilter, want) || !strings.Contains(r.LVMFilter, `"r|.*|"`) {
				t.Errorf("%s: LVM filter %q, want only %s accepted", name, r.LVMFilter, r.Disk.Device)
			}
			if r.Sand != "active" {
				t.Errorf("%s: sand.service is %q", name, r.Sand)
			}
			wantAddrs := []string{"eth0=" + l.Box(name).FrontIP() + "/24", "eth1=" + l.Box(name).ReplIP() + "/24"}
			for _, a := range wantAddrs {
				if !contains(r.Addresses, a) {
					t.Errorf("%s: addresses %q lack %s", name, r.Addresses, a)
				}
			}
		}
	})

	// A LUN on every box, seen and written by an initiator in the client
	// namespace: LVM thin on the data disk, LIO through configfs,
	// iscsi_target_mod listening on the front address.
	luns := map[string]ui.LUNView{}
	t.Run("each box serves a LUN to the client namespace", func(t *testing.T) {
		for i, name := range names {
			b := l.Box(name)
			api := b.API()
			if _, err := api.CreateGroup(ctx, appliance.InitiatorGroup{Name: "vmtest", Initiators: []string{clientIQN}}); err != nil {
				t.Fatalf("%s create group: %v", name, err)
			}
			v, err := api.CreateLUN(ctx, ui.CreateLUNRequest{Name: "smoke", Size: 64 * mib, Group: "vmtest"})
			if err != nil {
				t.Fatalf("%s create LUN: %v", name, err)
			}
			luns[name] = v
			portal := b.FrontIP()
			size, err := capacity(ctx, l, portal, v.Target, v.Number)
			if err != nil || size != 64*mib {
				t.Fatalf("%s LUN %s/%d: %d bytes, %v; want %d", name, v.Target, v.Number, size, err, 64*mib)
			}
			serial, err := serial(ctx, l, portal, v.Target, v.Number)
			if err != nil || serial != v.Serial {
				t.Errorf("%s LUN serial %q, %v; want %q", name, serial, err, v.Serial)
			}
			pattern := byte(0xa1 + i)
			if out, err := qemuIO(ctx, l, portal, v.Target, v.Number, false, fmt.Sprintf("write -P 0x%02x 0 1M", pattern)); err != nil {
				t.Fatalf("%s write: %v\n%s", name, err, out)
			}
			if err := checkPattern(ctx, l, portal, v.Target, v.Number, pattern); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if err := checkPattern(ctx, l, portal, v.Target, v.Number, pattern^0xff); err == nil {
				t.Fatalf("%s: reading the wrong pattern passed: the data check cannot fail", name)
			}
		}
	})

	last := l.Box(names[len(names)-1])
	t.Run("cut and restore the front link", func(t *testing.T) {
		if err := last.Cut(ctx, lab.Front); err != nil {
			t.Fatal(err)
		}
		if err := healthz(ctx, l, last, 3*time.Second); err == nil {
			t.Errorf("%s answers with its front link cut", last.Name)
		}
		if err := last.Restore(ctx, lab.Front); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, time.Minute, last.Name+" answering again after the restore", func() error {
			return healthz(ctx, l, last, 3*time.Second)
		})
	})

	t.Run("pause and resume a box", func(t *testing.T) {
		if err := last.Pause(ctx); err != nil {
			t.Fatal(err)
		}
		if err := healthz(ctx, l, last, 3*time.Second); err == nil {
			t.Errorf("%s answers while paused", last.Name)
		}
		if err := last.Resume(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ctx, time.Minute, last.Name+" answering after resume", func() error {
			return healthz(ctx, l, last, 3*time.Second)
		})
	})

	t.Run("kill and reboot a box: the LUN and its data survive", func(t *testing.T) {
		v, ok := luns[last.Name]
		if !ok {
			t.Skip("no LUN was made")
		}
		pid := last.PID()
		if err := last.Kill(); err != nil {
			t.Fatal(err)
		}
		if last.PID() != 0 {
			t.Fatalf("%s QEMU (pid %d) still recorded after kill", last.Name, pid)
		}
		if err := healthz(ctx, l, last, 2*time.Second); err == nil {
			t.Fatalf("%s answers after its QEMU was killed", last.Name)
		}
		if err := last.Start(ctx); err != nil {
			t.Fatal(err)
		}
		took, err := last.WaitReady(ctx, 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("BOOT %s rebooted with its pool on disk in %.1f s", last.Name, took.Seconds())
		got, err := last.API().LUN(ctx, v.Name)
		if err != nil {
			t.Fatalf("%s lost LUN %s in the reboot: %v", last.Name, v.Name, err)
		}
		if got.Serial != v.Serial || got.Size != v.Size {
			t.Errorf("%s LUN after reboot: serial %s size %d; before: %s %d", last.Name, got.Serial, got.Size, v.Serial, v.Size)
		}
		pattern := byte(0xa1 + len(names) - 1)
		waitFor(t, ctx, 2*time.Minute, "the LUN's data through the target after the reboot", func() error {
			return checkPattern(ctx, l, last.FrontIP(), v.Target, v.Number, pattern)
		})
	})
}

// up boots a lab for a test (o says what differs from the defaults) and
// registers its teardown, which must leave nothing behind.
func up(t testing.TB, ctx context.Context, o lab.Options) *lab.Lab {
	t.Helper()
	repo, err := lab.FindRepo("")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	rand.Read(b)
	o.Name = "vm" + hex.EncodeToString(b)
	o.Repo = repo
	o.Dir = filepath.Join(t.TempDir(), "lab")
	o.DiskSize = diskSize
	o.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	o.BootTimeout = 10 * time.Minute
	start := time.Now()
	l, err := lab.Up(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, n := range l.Names() {
		parts = append(parts, fmt.Sprintf("%s %.1f s", n, l.Box(n).BootTime().Seconds()))
	}
	t.Logf("BOOT (%s) boxes booted in parallel, API answering: %s (lab up in %.1f s including the image check)",
		l.Boot, strings.Join(parts, ", "), time.Since(start).Seconds())
	t.Cleanup(func() {
		// SAND_KEEP_CONSOLES=1 keeps them after a passing run too, for
		// reading where a failover spends its time.
		if t.Failed() || os.Getenv("SAND_KEEP_CONSOLES") != "" {
			saveConsoles(t, l)
		}
		if err := l.Down(context.Background()); err != nil {
			t.Errorf("lab down: %v", err)
		}
	})
	return l
}

// saveConsoles keeps the boxes' console logs of a failed run in
// tests/artifacts/ (git-ignored) and shows their ends.
func saveConsoles(t testing.TB, l *lab.Lab) {
	repo, _ := lab.FindRepo("")
	dir := filepath.Join(repo, "tests", "artifacts", "vm-"+l.Name)
	os.MkdirAll(dir, 0o755)
	for _, n := range l.Names() {
		b := l.Box(n)
		if data, err := os.ReadFile(b.ConsolePath()); err == nil {
			os.WriteFile(filepath.Join(dir, n+"-console.log"), data, 0o644)
		}
		t.Logf("%s console ends:\n%s", n, b.ConsoleTail(60))
	}
	t.Logf("console logs kept in %s", dir)
}

func get(t *testing.T, ctx context.Context, hc *http.Client, url, token string) (string, int) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body), resp.StatusCode
}

func healthz(ctx context.Context, l *lab.Lab, b *lab.Box, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.APIURL()+"/healthz", nil)
	resp, err := b.HTTPClient(timeout).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /healthz: %s", resp.Status)
	}
	return nil
}

func waitFor(t testing.TB, ctx context.Context, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("waited %v for %s: %v", timeout, what, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func iscsiURL(portal, iqn string, lun int) string {
	return fmt.Sprintf("iscsi://%s/%s/%d", portal, iqn, lun)
}

func client(ctx context.Context, l *lab.Lab, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return l.Client().Run(ctx, args[0], args[1:]...)
}

func capacity(ctx context.Context, l *lab.Lab, portal, iqn string, lun int) (int64, error) {
	out, err := client(ctx, l, "iscsi-readcapacity16", "-i", clientIQN, iscsiURL(portal, iqn, lun))
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`Total size:(\d+)`).FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no total size in iscsi-readcapacity16 output: %s", out)
	}
	return strconv.ParseInt(m[1], 10, 64)
}

func serial(ctx context.Context, l *lab.Lab, portal, iqn string, lun int) (string, error) {
	out, err := client(ctx, l, "iscsi-inq", "-i", clientIQN, "-e", "1", "-c", "128", iscsiURL(portal, iqn, lun))
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`Unit Serial Number:\[\s*(\S+)\]`).FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("no unit serial in VPD 0x80: %s", out)
	}
	return m[1], nil
}

func qemuIO(ctx context.Context, l *lab.Lab, portal, iqn string, lun int, readOnly bool, command string) (string, error) {
	opts := fmt.Sprintf("driver=iscsi,transport=tcp,portal=%s,target=%s,lun=%d,initiator-name=%s", portal, iqn, lun, clientIQN)
	args := []string{"qemu-io", "--image-opts"}
	if readOnly {
		args = append(args, "-r")
	}
	return client(ctx, l, append(args, "-c", command, opts)...)
}

// checkPattern reads 1 MiB back; qemu-io says "Pattern verification failed"
// on a mismatch.
func checkPattern(ctx context.Context, l *lab.Lab, portal, iqn string, lun int, pattern byte) error {
	out, err := qemuIO(ctx, l, portal, iqn, lun, true, fmt.Sprintf("read -P 0x%02x 0 1M", pattern))
	if err != nil {
		return fmt.Errorf("read pattern 0x%02x: %w\n%s", pattern, err, out)
	}
	if strings.Contains(out, "Pattern verification failed") || !strings.Contains(out, "read ") {
		return fmt.Errorf("read pattern 0x%02x: %s", pattern, out)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// testWriter sends the lab's log lines to the test log.
type testWriter struct{ t testing.TB }

var logMu sync.Mutex

func (w testWriter) Write(p []byte) (int, error) {
	logMu.Lock()
	defer logMu.Unlock()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
