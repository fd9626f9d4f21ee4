package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sand-appliance/sand/ui/cert"
)

// testServer is an HTTPS server whose certificate a test can swap; its
// certificates name san1 and 10.0.0.11 only, never the 127.0.0.1 it is
// reached on (as on a box reached through a forwarded port).
type testServer struct {
	srv  *httptest.Server
	cur  atomic.Pointer[tls.Certificate]
	addr string
}

func newCert(t *testing.T) (*tls.Certificate, []byte) {
	t.Helper()
	c, k, err := cert.Generate(cert.Identity{Names: []string{"san1"}, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.11")}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tc, err := cert.Parse(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return tc, c
}

func newTestServer(t *testing.T) *testServer {
	t.Helper()
	s := &testServer{}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"name":"san1"}`))
	}))
	// As sand serves: GetCertificate only (httptest's StartTLS would add
	// a certificate of its own, served to clients that send no name).
	s.srv.Listener = tls.NewListener(s.srv.Listener, &tls.Config{
		NextProtos:     []string{"h2", "http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cur.Load(), nil },
	})
	c, _ := newCert(t)
	s.cur.Store(c)
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	s.addr = s.srv.Listener.Addr().String()
	return s
}

func (s *testServer) fingerprint() string { return cert.Fingerprint(s.cur.Load().Leaf.Raw) }

// TestPinnedTrust: a pinned client reaches a self-signed server that does
// not name the address it is reached on, without skipping verification;
// another certificate is refused before any request (so before the token)
// is sent; so is plain HTTP.
func TestPinnedTrust(t *testing.T) {
	s := newTestServer(t)
	ctx := context.Background()
	c, err := NewTrusted("https://"+s.addr, "tok", Trust{Fingerprints: []string{s.fingerprint()}})
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx)
	if err != nil || st.Name != "san1" {
		t.Fatalf("pinned status: %+v %v", st, err)
	}
	if c.PeerFingerprint() != s.fingerprint() {
		t.Errorf("PeerFingerprint %q", c.PeerFingerprint())
	}
	// The browsers' hex form pins as well.
	hexPinned, _ := NewTrusted("https://"+s.addr, "tok", Trust{Fingerprints: []string{cert.FingerprintHex(s.fingerprint())}})
	if _, err := hexPinned.Status(ctx); err != nil {
		t.Errorf("hex pin: %v", err)
	}
	// The server's certificate changes: new connections are refused.
	old := s.fingerprint()
	next, _ := newCert(t)
	s.cur.Store(next)
	c.HTTP.Transport.(*http.Transport).CloseIdleConnections()
	_, err = c.Status(ctx)
	var mm *MismatchError
	if !errors.As(err, &mm) || mm.Presented != s.fingerprint() || mm.Trusted[0] != old || !strings.Contains(err.Error(), "HAS CHANGED") {
		t.Errorf("changed certificate: %v", err)
	}
	// A client that trusts the system's CAs refuses the self-signed one.
	if _, err := New("https://"+s.addr, "tok").Status(ctx); err == nil {
		t.Error("the system's CAs trusted a self-signed certificate")
	}
	// A CA file: the certificate itself as the root, names checked.
	roots := x509.NewCertPool()
	roots.AddCert(s.cur.Load().Leaf)
	caClient, _ := NewTrusted("https://"+s.addr, "tok", Trust{Roots: roots})
	if _, err := caClient.Status(ctx); err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Errorf("CA trust with a name the certificate lacks: %v", err)
	}
	// A TLS configuration of the caller's own, with the certificate as a
	// root and the name it holds.
	own, _ := NewTrusted("https://"+s.addr, "tok", Trust{Config: &tls.Config{RootCAs: roots, ServerName: "san1"}})
	if _, err := own.Status(ctx); err != nil {
		t.Errorf("own TLS configuration: %v", err)
	}
	if _, err := New("http://"+s.addr, "tok").Status(ctx); err == nil || !strings.Contains(err.Error(), "HTTPS only") {
		t.Errorf("plain HTTP: %v", err)
	}
	if _, err := NewTrusted("https://"+s.addr, "tok", Trust{Fingerprints: []string{"SHA256:nope"}}); err == nil {
		t.Error("a bad fingerprint was accepted")
	}
}

func TestProbeSendsNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	tc, _ := newCert(t)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		var rec bytes.Buffer
		srv := tls.Server(readRecorder{conn, &rec}, &tls.Config{Certificates: []tls.Certificate{*tc}})
		srv.Handshake()
		buf := make([]byte, 100)
		n, _ := srv.Read(buf)
		got <- buf[:n]
	}()
	leaf, err := Probe(context.Background(), nil, "tcp", ln.Addr().String())
	if err != nil || cert.Fingerprint(leaf.Raw) != cert.Fingerprint(tc.Leaf.Raw) {
		t.Fatalf("probe: %v", err)
	}
	if data := <-got; len(data) != 0 {
		t.Errorf("the probe sent %q after the handshake", data)
	}
}

type readRecorder struct {
	net.Conn
	rec *bytes.Buffer
}

func (r readRecorder) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.rec.Write(p[:n])
	return n, err
}

func TestKnownHostsFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sand", "known_hosts")
	k, err := LoadKnownHosts(path)
	if err != nil || len(k.entries) != 0 {
		t.Fatalf("missing file: %v %+v", err, k)
	}
	fpA := cert.Fingerprint([]byte("a"))
	fpB := cert.Fingerprint([]byte("b"))
	os.MkdirAll(filepath.Dir(path), 0o700)
	os.WriteFile(path, []byte("# sand's trusted certificates\n\n10.0.0.50:7443 "+fpA+"  # the VIP\nSAN1:7443\t"+cert.HexFingerprint([]byte("b"))+"\n[fd00::11]:7443 "+fpB+"\n"), 0o600)
	k, err = LoadKnownHosts(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		addr string
		want string
		line int
	}{{"10.0.0.50:7443", fpA, 3}, {"san1:7443", fpB, 4}, {"[FD00::11]:7443", fpB, 5}, {"10.0.0.50:7480", "", 0}} {
		fps, line := k.Lookup(tt.addr)
		if tt.want == "" && len(fps) != 0 || tt.want != "" && (len(fps) != 1 || fps[0] != tt.want || line != tt.line) {
			t.Errorf("Lookup(%s) = %v line %d, want %s line %d", tt.addr, fps, line, tt.want, tt.line)
		}
	}
	if err := k.Set("10.0.0.50:7443", fpB); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if strings.Contains(string(data), fpA) || !strings.Contains(string(data), "# sand's trusted") || strings.Count(string(data), fpB) != 2 {
		t.Errorf("after Set:\n%s", data)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("known_hosts mode %v", fi.Mode().Perm())
	}
	fresh := filepath.Join(dir, "new", "sand", "known_hosts")
	nk, _ := LoadKnownHosts(fresh)
	if err := nk.Set("10.0.0.50:7443", fpA); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Dir(fresh)); fi.Mode().Perm() != 0o700 {
		t.Errorf("new known_hosts directory mode %v", fi.Mode().Perm())
	}
	for _, bad := range []string{"10.0.0.50:7443\n", "10.0.0.50 " + fpA + "\n", "10.0.0.50:7443 SHA256:short\n", "a:1 " + fpA + " extra\n"} {
		os.WriteFile(path, []byte("# ok\n"+bad), 0o600)
		if _, err := LoadKnownHosts(path); err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("bad line %q: %v", bad, err)
		}
	}
}

// TestFirstUse: a first connection asks (or, with nobody to ask, refuses
// with the fingerprint to check); the answer is recorded and not asked
// again; a changed certificate is refused loudly, naming the file's line
// and the fix; --trust-fingerprint replaces the record.
func TestFirstUse(t *testing.T) {
	s := newTestServer(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "known_hosts")
	resolve := func(fp string, ask func(string, *x509.Certificate) (bool, error)) (Trust, error) {
		return ResolveTrust(ctx, TrustOptions{Addr: s.addr, Fingerprint: fp, KnownHosts: path, Ask: ask})
	}
	_, err := resolve("", nil)
	var unknown *UnknownError
	if !errors.As(err, &unknown) || unknown.Fingerprint != s.fingerprint() || !strings.Contains(err.Error(), "--trust-fingerprint "+s.fingerprint()) {
		t.Fatalf("unknown, nobody to ask: %v", err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("a refused certificate was recorded")
	}
	asked := 0
	no := func(string, *x509.Certificate) (bool, error) { asked++; return false, nil }
	if _, err := resolve("", no); err == nil || asked != 1 {
		t.Fatalf("answered no: %v (asked %d)", err, asked)
	}
	yes := func(addr string, leaf *x509.Certificate) (bool, error) {
		asked++
		if addr != s.addr || cert.Fingerprint(leaf.Raw) != s.fingerprint() {
			t.Errorf("asked about %s %s", addr, cert.Fingerprint(leaf.Raw))
		}
		return true, nil
	}
	tr, err := resolve("", yes)
	if err != nil || asked != 2 {
		t.Fatalf("answered yes: %v", err)
	}
	c, _ := NewTrusted("https://"+s.addr, "tok", tr)
	if _, err := c.Status(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := resolve("", yes); err != nil || asked != 2 {
		t.Errorf("known certificate: %v, asked %d times", err, asked)
	}
	// The certificate changes.
	next, _ := newCert(t)
	s.cur.Store(next)
	_, err = resolve("", yes)
	var mm *MismatchError
	if !errors.As(err, &mm) || mm.File != path || mm.Line != 1 || asked != 2 ||
		!strings.Contains(err.Error(), "--trust-fingerprint "+s.fingerprint()) || !strings.Contains(err.Error(), "line 1 of "+path) {
		t.Fatalf("changed certificate: %v", err)
	}
	// A wrong fingerprint given is refused too, and recorded nowhere.
	other, _ := newCert(t)
	if _, err := resolve(cert.Fingerprint(other.Leaf.Raw), nil); !errors.As(err, &mm) {
		t.Errorf("wrong --trust-fingerprint: %v", err)
	}
	// The admin checked the new one and says so.
	if _, err := resolve(s.fingerprint(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := resolve("", nil); err != nil {
		t.Errorf("after --trust-fingerprint: %v", err)
	}
	k, _ := LoadKnownHosts(path)
	if fps, _ := k.Lookup(s.addr); len(fps) != 1 || fps[0] != s.fingerprint() {
		t.Errorf("recorded %v", fps)
	}
	// The box's own certificate file, when the CLI talks to its own box.
	local := filepath.Join(t.TempDir(), "cert.pem")
	os.WriteFile(local, pemOf(s.cur.Load()), 0o644)
	tr, err = ResolveTrust(ctx, TrustOptions{Addr: s.addr, LocalCert: local, KnownHosts: filepath.Join(t.TempDir(), "none")})
	if err != nil || len(tr.Fingerprints) != 1 || tr.Fingerprints[0] != s.fingerprint() {
		t.Errorf("local certificate: %+v %v", tr, err)
	}
}

func pemOf(c *tls.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Leaf.Raw})
}

func TestPrompt(t *testing.T) {
	tc, _ := newCert(t)
	for _, tt := range []struct {
		in   string
		want bool
	}{{"yes\n", true}, {"y\n", true}, {" YES \n", true}, {"no\n", false}, {"\n", false}, {"yess\n", false}} {
		var out bytes.Buffer
		ok, err := Prompt(strings.NewReader(tt.in), &out, "/root/.config/sand/known_hosts")("10.0.0.50:7443", tc.Leaf)
		if err != nil || ok != tt.want {
			t.Errorf("answer %q: %v %v", tt.in, ok, err)
		}
		for _, want := range []string{cert.Fingerprint(tc.Leaf.Raw), cert.HexFingerprint(tc.Leaf.Raw), "self-signed", "/root/.config/sand/known_hosts"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("prompt lacks %q:\n%s", want, out.String())
			}
		}
	}
	if ok, err := Prompt(strings.NewReader(""), &bytes.Buffer{}, "k")("a:1", tc.Leaf); ok || err == nil {
		t.Errorf("no answer at all: %v %v", ok, err)
	}
}

func TestAPIURL(t *testing.T) {
	for _, tt := range []struct{ in, base, addr, err string }{
		{"https://10.0.0.50:7443", "https://10.0.0.50:7443", "10.0.0.50:7443", ""},
		{"https://10.0.0.50:7443/", "https://10.0.0.50:7443", "10.0.0.50:7443", ""},
		{"10.0.0.50:7443", "https://10.0.0.50:7443", "10.0.0.50:7443", ""},
		{"san1", "https://san1:7443", "san1:7443", ""},
		{"https://[fd00::11]:7443", "https://[fd00::11]:7443", "[fd00::11]:7443", ""},
		{"http://10.0.0.50:7480", "", "", "HTTPS only"},
		{"HTTP://10.0.0.50:7480", "", "", "HTTPS only"},
		{"ftp://x", "", "", "https://HOST:PORT"},
		{"https://x:1/api", "", "", "without a path"},
		{"https://:7443", "", "", "no host"},
	} {
		base, addr, err := APIURL(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("APIURL(%q): %v, want error %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || base != tt.base || addr != tt.addr {
			t.Errorf("APIURL(%q) = %q %q %v", tt.in, base, addr, err)
		}
	}
}
