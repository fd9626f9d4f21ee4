//go:build netns

package security

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sand-appliance/sand/tests/netlab"
	"github.com/sand-appliance/sand/ui/cert"
	"github.com/sand-appliance/sand/ui/client"
)

// The HTTPS tests' networks, apart from every other test's.
const (
	httpsSubnet     = "10.246.0"
	httpsPairSubnet = "10.247.0"
	httpsVIP        = "10.247.0.10"
)

// TestHTTPSOnly: a real sand answers its API and UI over TLS only. On the
// plain-HTTP port every request (with a token, a cookie, a body) gets a
// redirect to the HTTPS port and nothing else, and changes nothing; a plain
// request to the HTTPS port gets no API; answers over TLS carry HSTS and
// Secure cookies; old TLS versions are refused; and the box listens on
// nothing but its HTTPS port, the redirect and the iSCSI portal.
func TestHTTPSOnly(t *testing.T) {
	netlab.Require(t, append(slices.Clone(netlab.Tools), "curl", "ss")...)
	lab := netlab.New(t, httpsSubnet)
	srv := lab.AddHost("san1", 11)
	admin := lab.AddHost("admin", 100)
	box := netlab.NewSandBox(t, srv, netlab.BuildSand(t))
	box.Start(admin)
	token := readToken(t, box)
	fp := box.Fingerprint(box.APIURL())
	t.Logf("sand serves %s with certificate %s", box.APIURL(), fp)

	// Go's client, following no redirect, dialing from the admin host.
	plain := &http.Client{
		Transport:     &http.Transport{DialContext: admin.DialContext},
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	redirect := "http://" + net.JoinHostPort(srv.IP, strconv.Itoa(netlab.RedirectPort))
	for _, tt := range []struct{ method, path, body string }{
		{"GET", "/api/v1/luns", ""},
		{"POST", "/api/v1/luns", `{"name":"sneaky","size":"16M"}`},
		{"POST", "/api/v1/initiator-groups", `{"name":"sneaky","initiators":[]}`},
		{"DELETE", "/api/v1/luns/sneaky", ""},
		{"GET", "/ui/login", ""},
		{"POST", "/ui/login", "user=admin&password=x"},
		{"GET", "/healthz", ""},
		{"GET", "/metrics?x=1", ""},
		{"GET", "/", ""},
	} {
		req, _ := http.NewRequest(tt.method, redirect+tt.path, strings.NewReader(tt.body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.AddCookie(&http.Cookie{Name: "sand_session", Value: "x"})
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatalf("%s %s over HTTP: %v", tt.method, tt.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := box.APIURL() + tt.path
		if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want || len(body) != 0 ||
			resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("Content-Type") != "" {
			t.Errorf("%s %s over HTTP: %s, Location %q, headers %v, body %q; want 308 to %s and nothing else",
				tt.method, tt.path, resp.Status, resp.Header.Get("Location"), resp.Header, body, want)
		}
	}
	// curl, as an admin would type it: the status line, the headers, no
	// body.
	out, err := admin.Run(context.Background(), "curl", "-sS", "-i", "--max-time", "10", "-H", "Authorization: Bearer "+token, redirect+"/api/v1/status")
	if err != nil || !strings.HasPrefix(out, "HTTP/1.1 308 ") || !strings.Contains(out, "Location: "+box.APIURL()+"/api/v1/status") ||
		!strings.HasSuffix(strings.ReplaceAll(out, "\r", ""), "\n\n") {
		t.Errorf("curl http://: %v\n%s", err, out)
	}
	t.Logf("curl -i %s/api/v1/status:\n%s", redirect, strings.TrimSpace(out))
	if got := box.MustCLI(admin, "lun", "list", "-o", "json"); strings.Contains(got, "sneaky") {
		t.Errorf("a plain-HTTP request changed the box: %s", got)
	}
	if got := box.MustCLI(admin, "group", "list", "-o", "json"); strings.Contains(got, "sneaky") {
		t.Errorf("a plain-HTTP request changed the box: %s", got)
	}

	// Plain HTTP to the HTTPS port reaches no API.
	raw := rawHTTP(t, admin, net.JoinHostPort(srv.IP, strconv.Itoa(netlab.APIPort)), "GET /api/v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+token+"\r\n\r\n")
	if strings.Contains(raw, "200 OK") || strings.Contains(raw, `"name"`) {
		t.Errorf("plain HTTP on the HTTPS port answered:\n%s", raw)
	}

	// Over TLS: HSTS, Secure cookies.
	hc := box.HTTPClient(admin)
	resp, err := hc.Get(box.APIURL() + "/ui/login")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if h := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(h, "max-age=") {
		t.Errorf("HSTS header: %q", h)
	}
	if len(resp.Cookies()) == 0 {
		t.Error("the login page set no cookie")
	}
	for _, c := range resp.Cookies() {
		if !c.Secure || !c.HttpOnly {
			t.Errorf("cookie %s: Secure %v HttpOnly %v", c.Name, c.Secure, c.HttpOnly)
		}
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 || cert.Fingerprint(resp.TLS.PeerCertificates[0].Raw) != fp {
		t.Errorf("TLS state: %+v", resp.TLS)
	}
	// TLS 1.1 and older are refused (the client pins the certificate, so
	// only the version can fail).
	conn, err := admin.DialContext(context.Background(), "tcp", net.JoinHostPort(srv.IP, strconv.Itoa(netlab.APIPort)))
	if err != nil {
		t.Fatal(err)
	}
	old := tls.Client(conn, &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11, ServerName: srv.IP})
	if err := old.Handshake(); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("a TLS 1.1 handshake: %v", err)
	}
	conn.Close()

	// Every listening socket of the box: the API over TLS, the redirect,
	// the iSCSI portal. Nothing else.
	ss := srv.MustRun(context.Background(), "ss", "-Hltn")
	var ports []string
	for _, l := range strings.Split(strings.TrimSpace(ss), "\n") {
		f := strings.Fields(l)
		if len(f) >= 4 {
			ports = append(ports, f[3])
		}
	}
	slices.Sort(ports)
	want := []string{srv.IP + ":3260", srv.IP + ":" + strconv.Itoa(netlab.APIPort), srv.IP + ":" + strconv.Itoa(netlab.RedirectPort)}
	slices.Sort(want)
	if !slices.Equal(ports, want) {
		t.Errorf("listening TCP sockets of the box: %v, want %v\n%s", ports, want, ss)
	}
}

// rawHTTP sends req on a plain TCP connection and returns what came back.
func rawHTTP(t *testing.T, from *netlab.Host, addr, req string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := from.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, req)
	data, _ := io.ReadAll(bufio.NewReader(conn))
	return string(data)
}

func readToken(t *testing.T, box *netlab.SandBox) string {
	t.Helper()
	data, err := os.ReadFile(box.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

// cliAs runs the sand CLI in a host against the box with a known_hosts
// file of its own and no trust given: what an admin on another machine
// types. extra are more arguments.
func cliAs(box *netlab.SandBox, in *netlab.Host, knownHosts string, extra ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args := append([]string{"status", "--api", box.APIURL(), "--token-file", box.TokenFile, "--config", box.Config, "--known-hosts", knownHosts}, extra...)
	return in.Run(ctx, box.Bin, args...)
}

// requests counts the API requests sand logged for path.
func requests(box *netlab.SandBox, path string) int {
	return strings.Count(box.Proc.Output(), "path="+path+" ")
}

// TestCLITrustOnFirstUse: the CLI shows the fingerprint of a box it does
// not know and, with nobody to ask, sends nothing; asked on a terminal, it
// records the answer; --trust-fingerprint records a matching one and
// refuses another. A certificate replaced through the API is served at the
// next handshake without a restart (same PID), and the CLI then refuses
// the box loudly, sending no token, until the admin trusts the new one. Bad
// uploads change nothing.
func TestCLITrustOnFirstUse(t *testing.T) {
	netlab.Require(t, append(slices.Clone(netlab.Tools), "script")...)
	lab := netlab.New(t, httpsSubnet)
	srv := lab.AddHost("san1", 11)
	admin := lab.AddHost("admin", 100)
	box := netlab.NewSandBox(t, srv, netlab.BuildSand(t))
	box.Start(admin)
	fp := box.Fingerprint(box.APIURL())
	addr := net.JoinHostPort(srv.IP, strconv.Itoa(netlab.APIPort))
	known := filepath.Join(t.TempDir(), "sand", "known_hosts")

	// First use, nobody to ask: refused, with the fingerprint to check,
	// and no request reached the API.
	before := requests(box, "/api/v1/status")
	out, err := cliAs(box, admin, known)
	if err == nil || !strings.Contains(out, "not known yet") || !strings.Contains(out, fp) || !strings.Contains(out, "--trust-fingerprint "+fp) {
		t.Fatalf("first use without a terminal: %v\n%s", err, out)
	}
	if _, err := os.Stat(known); err == nil {
		t.Error("an unanswered certificate was recorded")
	}
	if requests(box, "/api/v1/status") != before {
		t.Error("the CLI sent a request to a certificate nobody trusted")
	}
	// On a terminal (script gives it one): "no" records nothing, "yes"
	// records the fingerprint and the call goes through.
	for _, answer := range []string{"no", "yes"} {
		cmd := strings.Join([]string{box.Bin, "status", "--api", box.APIURL(), "--token-file", box.TokenFile, "--config", box.Config, "--known-hosts", known}, " ")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err = admin.Run(ctx, "sh", "-c", "printf '"+answer+"\\n' | script -qec '"+cmd+"' /dev/null")
		cancel()
		if !strings.Contains(out, "Trust it and remember it in "+known) || !strings.Contains(out, fp) {
			t.Errorf("the question on a terminal: %v\n%s", err, out)
		}
		recorded := fileHas(known, addr+" "+fp)
		if answer == "no" && (err == nil || recorded) || answer == "yes" && (err != nil || !recorded || !strings.Contains(out, "box:")) {
			t.Errorf("answered %s: %v, recorded %v\n%s", answer, err, recorded, out)
		}
	}
	// Known now: no question, and status shows the fingerprint.
	out, err = cliAs(box, admin, known)
	if err != nil || !strings.Contains(out, fp+" (this connection)") {
		t.Errorf("status once known: %v\n%s", err, out)
	}

	// --trust-fingerprint: a wrong one is refused, the right one recorded.
	other := filepath.Join(t.TempDir(), "known_hosts")
	wrong := cert.Fingerprint([]byte("not the box"))
	if out, err := cliAs(box, admin, other, "--trust-fingerprint", wrong); err == nil || !strings.Contains(out, "HAS CHANGED") {
		t.Errorf("a wrong --trust-fingerprint: %v\n%s", err, out)
	}
	if out, err := cliAs(box, admin, other, "--trust-fingerprint", cert.FingerprintHex(fp)); err != nil || !fileHas(other, addr+" "+fp) {
		t.Errorf("--trust-fingerprint in the browsers' form: %v\n%s", err, out)
	}

	// An admin's own certificate, uploaded with the CLI: served from the
	// next handshake by the same process.
	pid := box.Proc.PID()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ownCert, ownKey, _ := cert.Generate(cert.Identity{Names: []string{"san1.example.com"}, Addrs: []netip.Addr{netip.MustParseAddr(srv.IP)}}, time.Now())
	_, strayKey, _ := cert.Generate(cert.Identity{Names: []string{"san1"}}, time.Now())
	oldCert, oldKey, _ := cert.Generate(cert.Identity{Names: []string{"san1"}}, time.Now().Add(-cert.Validity-time.Hour))
	elsewhere, elsewhereKey, _ := cert.Generate(cert.Identity{Names: []string{"mail.example.com"}}, time.Now())
	files := snapshotFiles(t, box.CertFile, box.KeyFile)
	for _, bad := range []struct{ name, cert, key, want string }{
		{"mismatched key", write("own.pem", ownCert), write("stray.key", strayKey), "does not belong"},
		{"expired", write("old.pem", oldCert), write("old.key", oldKey), "expired"},
		{"wrong names", write("elsewhere.pem", elsewhere), write("elsewhere.key", elsewhereKey), "none of it is san1"},
		{"garbage", write("garbage.pem", []byte("hello")), write("garbage.key", []byte("world")), "no PEM certificate"},
	} {
		out, err := box.CLI(admin, "tls", "install", "--cert", bad.cert, "--key", bad.key)
		if err == nil || !strings.Contains(out, bad.want) {
			t.Errorf("install %s: %v\n%s", bad.name, err, out)
		}
	}
	if got := servedFingerprint(t, admin, addr); got != fp {
		t.Errorf("refused uploads changed the served certificate to %s", got)
	}
	if after := snapshotFiles(t, box.CertFile, box.KeyFile); after != files {
		t.Error("refused uploads changed the certificate files")
	}
	out = box.MustCLI(admin, "tls", "install", "--cert", write("own.pem", ownCert), "--key", write("own.key", ownKey))
	leaf, _ := cert.ParseLeaf(ownCert)
	newFP := cert.Fingerprint(leaf.Raw)
	if !strings.Contains(out, newFP) {
		t.Errorf("install says:\n%s", out)
	}
	if got := servedFingerprint(t, admin, addr); got != newFP {
		t.Errorf("after the upload the box serves %s, want %s", got, newFP)
	}
	if box.Proc.Exited() || box.Proc.PID() != pid {
		t.Error("sand restarted for the new certificate")
	}
	if fi, err := os.Stat(box.KeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file after the upload: %v %v", err, fi.Mode())
	}
	// The CLI that knew the old certificate refuses loudly, sends nothing,
	// and says how to fix it.
	before = requests(box, "/api/v1/status")
	out, err = cliAs(box, admin, known)
	if err == nil || !strings.Contains(out, "HAS CHANGED") || !strings.Contains(out, "line 1 of "+known) || !strings.Contains(out, "--trust-fingerprint "+newFP) {
		t.Errorf("the CLI after the certificate changed: %v\n%s", err, out)
	}
	if requests(box, "/api/v1/status") != before {
		t.Error("the CLI sent a request to a changed certificate")
	}
	if out, err := cliAs(box, admin, known, "--trust-fingerprint", newFP); err != nil || !fileHas(known, addr+" "+newFP) || fileHas(known, fp) {
		t.Errorf("trusting the new certificate: %v\n%s", err, out)
	}
	// It is kept: a restarted sand serves it.
	if err := box.Proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	box.Start(admin)
	if got := servedFingerprint(t, admin, addr); got != newFP {
		t.Errorf("after a restart the box serves %s, want the uploaded %s", got, newFP)
	}
}

func fileHas(path, s string) bool {
	data, err := os.ReadFile(path)
	return err == nil && strings.Contains(string(data), s)
}

func snapshotFiles(t *testing.T, paths ...string) string {
	t.Helper()
	var b strings.Builder
	for _, p := range paths {
		data, err := os.ReadFile(p)
		fi, serr := os.Stat(p)
		if err != nil || serr != nil {
			t.Fatal(err, serr)
		}
		fmt.Fprintf(&b, "%s %v\n%s\n", p, fi.Mode(), data)
	}
	return b.String()
}

// servedFingerprint is the fingerprint of the certificate a fresh
// handshake with addr gets.
func servedFingerprint(t *testing.T, from *netlab.Host, addr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	leaf, err := client.Probe(ctx, from.DialContext, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return cert.Fingerprint(leaf.Raw)
}

// TestVIPCertificateFollowsFailover: in a pair the VIP shows the pair's
// certificate, whichever box holds it: a CLI that trusted the VIP once
// keeps working after the primary dies and the peer takes the VIP, while
// each box's own address shows its own certificate.
func TestVIPCertificateFollowsFailover(t *testing.T) {
	netlab.Require(t, append(slices.Clone(netlab.Tools), "nft")...)
	lab := netlab.New(t, httpsPairSubnet)
	san1 := lab.AddHost("san1", 11)
	san2 := lab.AddHost("san2", 12)
	witness := lab.AddHost("witness", 13)
	admin := lab.AddHost("admin", 100)
	p := netlab.NewPair(t, netlab.BuildSand(t), san1, san2, netlab.Pair{Witness: witness}, httpsVIP)
	p.StartWitness()
	for _, b := range p.Boxes {
		b.Start(admin)
	}
	var primary *netlab.SandBox
	netlab.WaitFor(t, 20*time.Second, "the pair to elect a primary", func() (err error) {
		primary, err = p.VIPHolder()
		return err
	})
	// A LUN, so a serving box shows a target.
	for _, args := range [][]string{{"group", "create", "xen", "iqn.2026-11.org.example:dom0"}, {"lun", "create", "vm01", "--size", "16M", "--group", "xen"}} {
		if _, err := primary.CLI(admin, append(args, "--api", primary.VIPURL())...); err != nil {
			t.Fatal(err)
		}
	}
	vipAddr := net.JoinHostPort(httpsVIP, strconv.Itoa(netlab.APIPort))
	vipFP := primary.Fingerprint(primary.VIPURL())
	if vipFP == "" {
		t.Fatal("the primary made no certificate for the VIP")
	}
	fps := map[string]bool{vipFP: true}
	for _, b := range p.Boxes {
		fps[b.Fingerprint(b.APIURL())] = true
		if got := servedFingerprint(t, admin, net.JoinHostPort(b.Host.IP, strconv.Itoa(netlab.APIPort))); got != b.Fingerprint(b.APIURL()) {
			t.Errorf("%s's own address serves %s", b.Host.Name, got)
		}
	}
	if len(fps) != 3 {
		t.Errorf("the VIP and the two boxes share certificates: %v", fps)
	}
	known := filepath.Join(t.TempDir(), "known_hosts")
	status := func(b *netlab.SandBox, extra ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return admin.Run(ctx, b.Bin, append([]string{"status", "--api", b.VIPURL(), "--token-file", b.TokenFile, "--config", b.Config, "--known-hosts", known}, extra...)...)
	}
	if out, err := status(primary, "--trust-fingerprint", vipFP); err != nil || !strings.Contains(out, vipFP+" (this connection)") {
		t.Fatalf("trusting the VIP: %v\n%s", err, out)
	}
	if err := primary.Proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	next := p.Boxes[0]
	if next == primary {
		next = p.Boxes[1]
	}
	netlab.WaitFor(t, 20*time.Second, "the peer to take the VIP", func() error {
		if !p.HoldsVIP(next) || !next.Serving() {
			return fmt.Errorf("%s: VIP %v, serving %v", next.Host.Name, p.HoldsVIP(next), next.Serving())
		}
		return nil
	})
	// systemd restarts sand on a real box: it drops the stale VIP the dead
	// sand left and stays secondary.
	primary.Start(admin)
	netlab.WaitFor(t, 20*time.Second, "the VIP on "+next.Host.Name+" alone", func() error {
		if h, err := p.VIPHolder(); err != nil || h != next {
			return fmt.Errorf("VIP holder %v: %v", h, err)
		}
		return nil
	})
	netlab.WaitFor(t, 10*time.Second, "the VIP to answer from "+next.Host.Name, func() error {
		out, err := status(next)
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if !strings.Contains(out, "box:") || !strings.Contains(out, next.Host.Name+" (primary)") {
			return fmt.Errorf("status through the VIP:\n%s", out)
		}
		return nil
	})
	if got := servedFingerprint(t, admin, vipAddr); got != vipFP {
		t.Errorf("after the failover the VIP serves %s, want the pair's %s", got, vipFP)
	}
	t.Logf("the VIP kept certificate %s across the failover from %s to %s", vipFP, primary.Host.Name, next.Host.Name)
}
