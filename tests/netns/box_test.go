//go:build netns

package netns

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sand-appliance/sand/tests/netlab"
	"github.com/sand-appliance/sand/ui"
)

// tools the tier needs on the machine; tests/setup.sh installs them.
var tools = []string{"ip", "go", "tgtd", "tgtadm", "iscsi-ls", "iscsi-inq", "iscsi-readcapacity16", "qemu-io"}

// sandBox is one `sand serve` in a lab host, with the files it owns.
type sandBox struct {
	t           *testing.T
	host        *netlab.Host
	bin         string
	dir         string
	config      string
	tokenFile   string
	controlPort int
	proc        *netlab.Proc
}

func newSandBox(t *testing.T, host *netlab.Host, bin string) *sandBox {
	dir := t.TempDir()
	b := &sandBox{
		t: t, host: host, bin: bin, dir: dir,
		config:      filepath.Join(dir, "sand.yaml"),
		tokenFile:   filepath.Join(dir, "token"),
		controlPort: 10000 + rand.IntN(20000),
	}
	os.WriteFile(b.tokenFile, []byte("test-token-"+strconv.Itoa(rand.Int())+"\n"), 0o600)
	conf := fmt.Sprintf(`name: %s
listen: %s:7480
portal: %s
base_iqn: iqn.2026-11.org.sand-appliance.test
state_dir: %s
api_token_file: %s
pool:
  kind: file
  dir: %s
  size: 2G
target:
  driver: tgt
  tgt_control_port: %d
`, host.Name, host.IP, host.IP, filepath.Join(dir, "state"), b.tokenFile, filepath.Join(dir, "pool"), b.controlPort)
	if err := os.WriteFile(b.config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.endTgtd)
	return b
}

// start runs sand serve and waits until its API answers.
func (b *sandBox) start(client *netlab.Host) {
	b.t.Helper()
	b.proc = b.host.Start(b.bin, "serve", "--config", b.config, "--log-level", "debug")
	netlab.WaitFor(b.t, 30*time.Second, "sand serve to answer on its API", func() error {
		if b.proc.Exited() {
			b.t.Fatalf("sand serve exited:\n%s", b.proc.Output())
		}
		_, err := b.cli(client, "status")
		return err
	})
}

// cli runs the sand CLI in a host against this box's API.
func (b *sandBox) cli(in *netlab.Host, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append(args, "--api", "http://"+b.host.IP+":7480", "--token-file", b.tokenFile, "--config", b.config)
	return in.Run(ctx, b.bin, args...)
}

func (b *sandBox) mustCLI(in *netlab.Host, args ...string) string {
	b.t.Helper()
	out, err := b.cli(in, args...)
	if err != nil {
		b.t.Fatal(err)
	}
	return out
}

// lun reads one LUN through the CLI's JSON output.
func (b *sandBox) lun(in *netlab.Host, name string) ui.LUNView {
	b.t.Helper()
	var l ui.LUNView
	if err := json.Unmarshal([]byte(b.mustCLI(in, "lun", "show", name, "-o", "json")), &l); err != nil {
		b.t.Fatal(err)
	}
	return l
}

// tgtdPIDs finds the tgtd processes serving this box's control port:
// sand starts tgtd, and tgtd outlives a kill -9 of sand by design, so the
// test ends it itself, by PID.
func (b *sandBox) tgtdPIDs() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	want := "tgtd\x00-f\x00-C\x00" + strconv.Itoa(b.controlPort) + "\x00"
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), want) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (b *sandBox) endTgtd() {
	for _, pid := range b.tgtdPIDs() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// initiator is one iSCSI initiator identity in the client host.
type initiator struct {
	t    *testing.T
	host *netlab.Host
	iqn  string
}

func (i initiator) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return i.host.Run(ctx, args[0], args[1:]...)
}

// url is a libiscsi URL for a LUN.
func url(portal, iqn string, lun int) string {
	return fmt.Sprintf("iscsi://%s/%s/%d", portal, iqn, lun)
}

// discover lists the targets this initiator sees with iscsi-ls.
func (i initiator) discover(portal string) ([]string, error) {
	out, err := i.run("iscsi-ls", "-i", i.iqn, "iscsi://"+portal+"/")
	if err != nil {
		return nil, err
	}
	found := regexp.MustCompile(`Target:(\S+)`).FindAllString(out, -1)
	if len(found) == 0 {
		i.t.Logf("iscsi-ls as %s found no target: %q", i.iqn, out)
	}
	return found, nil
}

// qemuIO runs one qemu-io command against a LUN as this initiator.
func (i initiator) qemuIO(portal, iqn string, lun int, readOnly bool, command string) (string, error) {
	opts := fmt.Sprintf("driver=iscsi,transport=tcp,portal=%s,target=%s,lun=%d,initiator-name=%s", portal, iqn, lun, i.iqn)
	args := []string{"qemu-io", "--image-opts"}
	if readOnly {
		args = append(args, "-r")
	}
	return i.run(append(args, "-c", command, opts)...)
}

func (i initiator) writePattern(portal, iqn string, lun int, pattern byte, length string) {
	i.t.Helper()
	if out, err := i.qemuIO(portal, iqn, lun, false, fmt.Sprintf("write -P 0x%02x 0 %s", pattern, length)); err != nil {
		i.t.Fatalf("write pattern 0x%02x to %s: %v\n%s", pattern, iqn, err, out)
	}
}

// checkPattern reads back and verifies a pattern; qemu-io exits non-zero
// on a mismatch ("Pattern verification failed").
func (i initiator) checkPattern(portal, iqn string, lun int, pattern byte, length string) error {
	out, err := i.qemuIO(portal, iqn, lun, true, fmt.Sprintf("read -P 0x%02x 0 %s", pattern, length))
	if err != nil {
		return fmt.Errorf("read pattern 0x%02x from %s: %w\n%s", pattern, iqn, err, out)
	}
	if strings.Contains(out, "Pattern verification failed") || !strings.Contains(out, "read ") {
		return fmt.Errorf("read pattern 0x%02x from %s: %s", pattern, iqn, out)
	}
	return nil
}

// capacity reads the LUN size in bytes with iscsi-readcapacity16.
func (i initiator) capacity(portal, iqn string, lun int) (int64, error) {
	out, err := i.run("iscsi-readcapacity16", "-i", i.iqn, url(portal, iqn, lun))
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`Total size:(\d+)`).FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no total size in iscsi-readcapacity16 output: %s", out)
	}
	return strconv.ParseInt(m[1], 10, 64)
}

// identity reads VPD page 0x80 (unit serial) and 0x83 (device
// identification) with iscsi-inq (page codes in decimal).
func (i initiator) identity(portal, iqn string, lun int) (serial, vpd83 string, err error) {
	out, err := i.run("iscsi-inq", "-i", i.iqn, "-e", "1", "-c", "128", url(portal, iqn, lun))
	if err != nil {
		return "", "", err
	}
	m := regexp.MustCompile(`Unit Serial Number:\[\s*(\S+)\]`).FindStringSubmatch(out)
	if m == nil {
		return "", "", fmt.Errorf("no unit serial in VPD 0x80: %s", out)
	}
	vpd83, err = i.run("iscsi-inq", "-i", i.iqn, "-e", "1", "-c", "131", url(portal, iqn, lun))
	return m[1], vpd83, err
}
