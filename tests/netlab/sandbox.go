package netlab

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sand-appliance/sand/ui"
	"github.com/sand-appliance/sand/ui/cert"
	"github.com/sand-appliance/sand/ui/client"
)

// Tools the netns tier needs on the machine; tests/setup.sh installs them.
var Tools = []string{"ip", "go", "tgtd", "tgtadm", "iscsi-ls", "iscsi-inq", "iscsi-readcapacity16", "qemu-io"}

// SandBox is one `sand serve` in a lab host, with the files it owns.
type SandBox struct {
	T         testing.TB
	Host      *Host
	Bin       string
	Dir       string
	Config    string
	TokenFile string
	// CertFile and KeyFile are the box's TLS certificate and key, which
	// sand makes at its first start; KnownHosts is the known_hosts file
	// of the CLI runs (never the user's own).
	CertFile, KeyFile string
	KnownHosts        string
	// VIP is the pair's VIP (empty when standalone): the API there shows
	// the pair's certificate, PairCertFile.
	VIP          string
	PairCertFile string
	ControlPort  int
	Proc         *Proc
}

// API ports of a lab box: HTTPS, and the plain port that only redirects.
const (
	APIPort      = 7443
	RedirectPort = 7480
)

// NewSandBox prepares a standalone box: its own state and file pool, the
// tgt driver, its address as the portal.
func NewSandBox(t testing.TB, host *Host, bin string) *SandBox {
	dir := t.TempDir()
	return newSandBox(t, host, bin, dir, dir, host.IP, "portal: "+host.IP+"\n")
}

// newSandBox writes the box's sand.yaml: state and pool under shared (one
// box's own directory, or a directory both boxes of a shared-disk pair
// see), the API on listenIP (empty: every address, as a pair's box needs
// for the VIP), plus extra YAML.
func newSandBox(t testing.TB, host *Host, bin, dir, shared, listenIP, extra string) *SandBox {
	b := &SandBox{
		T: t, Host: host, Bin: bin, Dir: shared,
		Config:       filepath.Join(dir, "sand-"+host.Name+".yaml"),
		TokenFile:    filepath.Join(shared, "token"),
		CertFile:     filepath.Join(dir, "tls-"+host.Name, "cert.pem"),
		KeyFile:      filepath.Join(dir, "tls-"+host.Name, "key.pem"),
		KnownHosts:   filepath.Join(dir, "known_hosts-"+host.Name),
		PairCertFile: filepath.Join(shared, "state", "tls", "cert.pem"),
		ControlPort:  10000 + rand.IntN(20000),
	}
	if _, err := os.Stat(b.TokenFile); err != nil {
		os.WriteFile(b.TokenFile, []byte("test-token-"+strconv.Itoa(rand.Int())+"\n"), 0o600)
	}
	conf := fmt.Sprintf(`name: %s
listen: %s:%d
http_redirect: %s:%d
tls_cert_file: %s
tls_key_file: %s
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
`, host.Name, listenIP, APIPort, listenIP, RedirectPort, b.CertFile, b.KeyFile, filepath.Join(shared, "state"), b.TokenFile,
		filepath.Join(shared, "pool"), b.ControlPort) + extra
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

// APIURL is the box's API (and UI) over HTTPS.
func (b *SandBox) APIURL() string {
	return "https://" + net.JoinHostPort(b.Host.IP, strconv.Itoa(APIPort))
}

// VIPURL is the pair's API through the VIP.
func (b *SandBox) VIPURL() string { return "https://" + net.JoinHostPort(b.VIP, strconv.Itoa(APIPort)) }

// Fingerprint is the SHA-256 fingerprint of the certificate the API shows
// at url: the pair's on the VIP, the box's elsewhere; "" while sand has
// not made it yet.
func (b *SandBox) Fingerprint(url string) string {
	file := b.CertFile
	if b.VIP != "" && strings.Contains(url, "://"+b.VIP+":") {
		file = b.PairCertFile
		if _, err := os.Stat(file); err != nil {
			// The serving box makes the pair's certificate at the first
			// handshake on the VIP: knock once (trusting nothing).
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			client.Probe(ctx, b.Host.DialContext, "tcp", net.JoinHostPort(b.VIP, strconv.Itoa(APIPort)))
			cancel()
		}
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	leaf, err := cert.ParseLeaf(data)
	if err != nil {
		return ""
	}
	return cert.Fingerprint(leaf.Raw)
}

// Curl are curl's arguments that trust the box's certificate (and the
// pair's, when paired) and nothing else: no -k.
func (b *SandBox) Curl() []string { return []string{"--cacert", b.CABundle()} }

// CABundle writes the box's certificate (and the pair's, when paired) into
// one PEM file for curl (--cacert, CURL_CA_BUNDLE) and returns its path.
func (b *SandBox) CABundle() string {
	bundle := filepath.Join(filepath.Dir(b.Config), "ca-"+b.Host.Name+".pem")
	var pems []byte
	for _, f := range []string{b.CertFile, b.PairCertFile} {
		if data, err := os.ReadFile(f); err == nil {
			pems = append(pems, data...)
		}
	}
	if err := os.WriteFile(bundle, pems, 0o644); err != nil {
		b.T.Fatal(err)
	}
	return bundle
}

// SPKIHashes are the base64 SHA-256 hashes of the public keys of the
// box's certificate (and the pair's), as Chromium's
// --ignore-certificate-errors-spki-list takes them: a browser that trusts
// these and no other self-signed certificate.
func (b *SandBox) SPKIHashes() []string {
	var out []string
	for _, f := range []string{b.CertFile, b.PairCertFile} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		leaf, err := cert.ParseLeaf(data)
		if err != nil {
			b.T.Fatal(err)
		}
		sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
		out = append(out, base64.StdEncoding.EncodeToString(sum[:]))
	}
	return out
}

// Trust is a client trust that pins the box's certificate (and the pair's,
// when paired).
func (b *SandBox) Trust() client.Trust {
	var fps []string
	for _, u := range []string{b.APIURL(), b.VIPURL()} {
		if fp := b.Fingerprint(u); fp != "" {
			fps = append(fps, fp)
		}
	}
	return client.Trust{Fingerprints: fps}
}

// HTTPClient is an HTTP client of the box's API from a host, trusting the
// box's certificates only; it follows no redirect.
func (b *SandBox) HTTPClient(from *Host) *http.Client {
	tr, err := b.Trust().Transport(from.DialContext)
	if err != nil {
		b.T.Fatal(err)
	}
	return &http.Client{Transport: tr, Timeout: time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// CLI runs the sand CLI in a host against this box's API (or the --api in
// args), trusting the certificate the API shows there by its fingerprint,
// read from the file sand keeps it in; --trust-fingerprint or --ca-file in
// args choose otherwise.
func (b *SandBox) CLI(in *Host, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	api := b.APIURL()
	if i := slices.Index(args, "--api"); i >= 0 && i+1 < len(args) {
		api = args[i+1]
	} else {
		args = append(args, "--api", api)
	}
	args = append(args, "--token-file", b.TokenFile, "--config", b.Config, "--known-hosts", b.KnownHosts)
	if !slices.Contains(args, "--trust-fingerprint") && !slices.Contains(args, "--ca-file") {
		if fp := b.Fingerprint(api); fp != "" {
			args = append(args, "--trust-fingerprint", fp)
		}
	}
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
