package netlab

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

	"github.com/sand-appliance/sand/ui"
)

// Tools the netns tier needs on the machine; tests/setup.sh installs them.
var Tools = []string{"ip", "go", "tgtd", "tgtadm", "iscsi-ls", "iscsi-inq", "iscsi-readcapacity16", "qemu-io"}

// SandBox is one `sand serve` in a lab host, with the files it owns.
type SandBox struct {
	T           testing.TB
	Host        *Host
	Bin         string
	Dir         string
	Config      string
	TokenFile   string
	ControlPort int
	Proc        *Proc
}

// NewSandBox prepares a standalone box: its own state and file pool, the
// tgt driver, its address as the portal.
func NewSandBox(t testing.TB, host *Host, bin string) *SandBox {
	dir := t.TempDir()
	return newSandBox(t, host, bin, dir, dir, "portal: "+host.IP+"\n")
}

// newSandBox writes the box's sand.yaml: state and pool under shared (one
// box's own directory, or a directory both boxes of a shared-disk pair
// see), plus extra YAML.
func newSandBox(t testing.TB, host *Host, bin, dir, shared, extra string) *SandBox {
	b := &SandBox{
		T: t, Host: host, Bin: bin, Dir: shared,
		Config:      filepath.Join(dir, "sand-"+host.Name+".yaml"),
		TokenFile:   filepath.Join(shared, "token"),
		ControlPort: 10000 + rand.IntN(20000),
	}
	if _, err := os.Stat(b.TokenFile); err != nil {
		os.WriteFile(b.TokenFile, []byte("test-token-"+strconv.Itoa(rand.Int())+"\n"), 0o600)
	}
	conf := fmt.Sprintf(`name: %s
listen: %s:7480
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
`, host.Name, host.IP, filepath.Join(shared, "state"), b.TokenFile, filepath.Join(shared, "pool"), b.ControlPort) + extra
	if err := os.WriteFile(b.Config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.EndTgtd)
	return b
}

// Start runs sand serve and waits until its API answers.
func (b *SandBox) Start(client *Host) {
	b.T.Helper()
	b.Proc = b.Host.Start(b.Bin, "serve", "--config", b.Config, "--log-level", "debug")
	WaitFor(b.T, 30*time.Second, "sand serve to answer on its API", func() error {
		if b.Proc.Exited() {
			b.T.Fatalf("sand serve exited:\n%s", b.Proc.Output())
		}
		_, err := b.CLI(client, "status")
		return err
	})
}

// CLI runs the sand CLI in a host against this box's API.
func (b *SandBox) CLI(in *Host, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append(args, "--api", "http://"+b.Host.IP+":7480", "--token-file", b.TokenFile, "--config", b.Config)
	return in.Run(ctx, b.Bin, args...)
}

func (b *SandBox) MustCLI(in *Host, args ...string) string {
	b.T.Helper()
	out, err := b.CLI(in, args...)
	if err != nil {
		b.T.Fatal(err)
	}
	return out
}

// LUN reads one LUN through the CLI's JSON output.
func (b *SandBox) LUN(in *Host, name string) ui.LUNView {
	b.T.Helper()
	var l ui.LUNView
	if err := json.Unmarshal([]byte(b.MustCLI(in, "lun", "show", name, "-o", "json")), &l); err != nil {
		b.T.Fatal(err)
	}
	return l
}

// TgtdPIDs finds the tgtd processes serving this box's control port:
// sand starts tgtd, and tgtd outlives a kill -9 of sand by design, so the
// test ends it itself, by PID.
func (b *SandBox) TgtdPIDs() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	want := "tgtd\x00-f\x00-C\x00" + strconv.Itoa(b.ControlPort) + "\x00"
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

func (b *SandBox) EndTgtd() {
	for _, pid := range b.TgtdPIDs() {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Initiator is one iSCSI initiator identity in the client host.
type Initiator struct {
	T    testing.TB
	Host *Host
	IQN  string
}

func (i Initiator) Run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return i.Host.Run(ctx, args[0], args[1:]...)
}

// URL is a libiscsi URL for a LUN.
func URL(portal, iqn string, lun int) string {
	return fmt.Sprintf("iscsi://%s/%s/%d", portal, iqn, lun)
}

// Discover lists the targets this initiator sees with iscsi-ls.
func (i Initiator) Discover(portal string) ([]string, error) {
	out, err := i.Run("iscsi-ls", "-i", i.IQN, "iscsi://"+portal+"/")
	if err != nil {
		return nil, err
	}
	found := regexp.MustCompile(`Target:(\S+)`).FindAllString(out, -1)
	if len(found) == 0 {
		i.T.Logf("iscsi-ls as %s found no target: %q", i.IQN, out)
	}
	return found, nil
}

// QemuIO runs one qemu-io command against a LUN as this initiator.
func (i Initiator) QemuIO(portal, iqn string, lun int, readOnly bool, command string) (string, error) {
	opts := fmt.Sprintf("driver=iscsi,transport=tcp,portal=%s,target=%s,lun=%d,initiator-name=%s", portal, iqn, lun, i.IQN)
	args := []string{"qemu-io", "--image-opts"}
	if readOnly {
		args = append(args, "-r")
	}
	return i.Run(append(args, "-c", command, opts)...)
}

func (i Initiator) WritePattern(portal, iqn string, lun int, pattern byte, length string) {
	i.T.Helper()
	if out, err := i.QemuIO(portal, iqn, lun, false, fmt.Sprintf("write -P 0x%02x 0 %s", pattern, length)); err != nil {
		i.T.Fatalf("write pattern 0x%02x to %s: %v\n%s", pattern, iqn, err, out)
	}
}

// CheckPattern reads back and verifies a pattern; qemu-io exits non-zero
// on a mismatch ("Pattern verification failed").
func (i Initiator) CheckPattern(portal, iqn string, lun int, pattern byte, length string) error {
	out, err := i.QemuIO(portal, iqn, lun, true, fmt.Sprintf("read -P 0x%02x 0 %s", pattern, length))
	if err != nil {
		return fmt.Errorf("read pattern 0x%02x from %s: %w\n%s", pattern, iqn, err, out)
	}
	if strings.Contains(out, "Pattern verification failed") || !strings.Contains(out, "read ") {
		return fmt.Errorf("read pattern 0x%02x from %s: %s", pattern, iqn, out)
	}
	return nil
}

// Capacity reads the LUN size in bytes with iscsi-readcapacity16.
func (i Initiator) Capacity(portal, iqn string, lun int) (int64, error) {
	out, err := i.Run("iscsi-readcapacity16", "-i", i.IQN, URL(portal, iqn, lun))
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`Total size:(\d+)`).FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no total size in iscsi-readcapacity16 output: %s", out)
	}
	return strconv.ParseInt(m[1], 10, 64)
}

// Identity reads VPD page 0x80 (unit serial) and 0x83 (device
// identification) with iscsi-inq (page codes in decimal).
func (i Initiator) Identity(portal, iqn string, lun int) (serial, vpd83 string, err error) {
	out, err := i.Run("iscsi-inq", "-i", i.IQN, "-e", "1", "-c", "128", URL(portal, iqn, lun))
	if err != nil {
		return "", "", err
	}
	m := regexp.MustCompile(`Unit Serial Number:\[\s*(\S+)\]`).FindStringSubmatch(out)
	if m == nil {
		return "", "", fmt.Errorf("no unit serial in VPD 0x80: %s", out)
	}
	vpd83, err = i.Run("iscsi-inq", "-i", i.IQN, "-e", "1", "-c", "131", URL(portal, iqn, lun))
	return m[1], vpd83, err
}
