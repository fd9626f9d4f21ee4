package ui

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sand-appliance/sand/ui/cert"
)

// TestRedirectOnly: the plain-HTTP port answers every request, whatever
// it carries, with a 308 to the same path on the HTTPS port and an empty
// body; nothing of the API or the UI, no cookie, no other header.
func TestRedirectOnly(t *testing.T) {
	h := Redirect("7443", slog.New(slog.DiscardHandler))
	tests := []struct {
		method, target, host string
		want                 string
	}{
		{"GET", "/ui/", "san1:7480", "https://san1:7443/ui/"},
		{"GET", "/", "10.0.0.11:7480", "https://10.0.0.11:7443/"},
		{"POST", "/api/v1/luns", "10.0.0.11", "https://10.0.0.11:7443/api/v1/luns"},
		{"DELETE", "/api/v1/luns/vm01?force=1", "SAN1.example.com:80", "https://san1.example.com:7443/api/v1/luns/vm01?force=1"},
		{"HEAD", "/healthz", "[fd00::11]:7480", "https://[fd00::11]:7443/healthz"},
		{"PUT", "/ui/login", "bad host\"<>:7480", "https://192.0.2.7:7443/ui/login"},
		{"GET", "//evil.example/x", "10.0.0.11:7480", "https://10.0.0.11:7443//evil.example/x"},
		{"OPTIONS", "*", "10.0.0.11:7480", "https://10.0.0.11:7443/"},
		{"GET", "/metrics", "", "https://192.0.2.7:7443/metrics"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "http://x"+strings.TrimPrefix(tt.target, "*"), strings.NewReader(`{"name":"vm01","size":"1G"}`))
			if tt.target == "*" {
				req.URL = &url.URL{Path: "*"}
			}
			req.Host = tt.host
			req.Header.Set("Authorization", "Bearer "+webToken)
			req.AddCookie(&http.Cookie{Name: sessionCookie, Value: "anything"})
			req = req.WithContext(context.WithValue(req.Context(), http.LocalAddrContextKey, net.TCPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.7:7480"))))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusPermanentRedirect {
				t.Errorf("status %d, want 308", rec.Code)
			}
			if got := rec.Header().Get("Location"); got != tt.want {
				t.Errorf("Location %q, want %q", got, tt.want)
			}
			if rec.Body.Len() != 0 {
				t.Errorf("body %q", rec.Body)
			}
			for k := range rec.Header() {
				if k != "Location" && k != "Content-Length" && k != "Connection" {
					t.Errorf("header %s: %v", k, rec.Header()[k])
				}
			}
		})
	}
}

// TestRedirectServerOnTheWire: through a real server, the whole answer to
// a request with a token and a body is the status line and a few headers.
func TestRedirectServerOnTheWire(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewRedirectServer("7443", nil)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"name":"vm01","size":"1G"}`
	io.WriteString(conn, "POST /api/v1/luns HTTP/1.1\r\nHost: san1:7480\r\nAuthorization: Bearer "+webToken+
		"\r\nContent-Type: application/json\r\nContent-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != "https://san1:7443/api/v1/luns" || len(data) != 0 {
		t.Errorf("answer: %s %v %q", resp.Status, resp.Header, data)
	}
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 || srv.MaxHeaderBytes <= 0 {
		t.Errorf("redirect server limits: %+v", srv)
	}
}

// tls12Hello is a ClientHello from nowhere in particular: the box's
// certificate answers it.
var tls12Hello tls.ClientHelloInfo

// tlsPair makes a PEM certificate and key naming id, issued at issued.
func tlsPair(t *testing.T, id cert.Identity, issued time.Time) (string, string) {
	t.Helper()
	c, k, err := cert.Generate(id, issued)
	if err != nil {
		t.Fatal(err)
	}
	return string(c), string(k)
}

func (f *webFixture) servedFingerprint() string {
	c, err := f.certs.GetCertificate(&tls12Hello)
	if err != nil {
		f.t.Fatal(err)
	}
	return cert.Fingerprint(c.Leaf.Raw)
}

// TestTLSAPI: GET /api/v1/tls shows the certificate (never its key);
// POST refuses every bad certificate with 400 and a reason, changing
// nothing on disk or on the wire, and serves a good one at once.
func TestTLSAPI(t *testing.T) {
	f := newWebFixture(t)
	auth := map[string]string{"Authorization": "Bearer " + webToken}
	rec := f.do(request{method: "GET", path: "/api/v1/tls", header: auth})
	var v cert.View
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &v) != nil || v.Box.Fingerprint != f.servedFingerprint() ||
		v.Pair != nil || strings.Contains(rec.Body.String(), "PRIVATE") {
		t.Fatalf("GET /api/v1/tls: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/tls"}); rec.Code != http.StatusUnauthorized {
		t.Errorf("GET without token: %d", rec.Code)
	}
	dir := filepath.Dir(filepath.Dir(f.cfg.StateDir))
	before, served := tree(t, dir), f.servedFingerprint()
	good, goodKey := tlsPair(t, webBoxID, time.Now())
	_, otherKey := tlsPair(t, webBoxID, time.Now())
	expired, expiredKey := tlsPair(t, webBoxID, time.Now().Add(-cert.Validity-24*time.Hour))
	wrong, wrongKey := tlsPair(t, cert.Identity{Names: []string{"san2"}, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.12")}}, time.Now())
	post := func(body any) *httptest.ResponseRecorder {
		data, _ := json.Marshal(body)
		return f.do(request{method: "POST", path: "/api/v1/tls", header: auth, body: string(data)})
	}
	for _, tt := range []struct {
		name string
		body any
		want string
	}{
		{"garbage", TLSRequest{Cert: "garbage", Key: "garbage"}, "no PEM certificate"},
		{"mismatched key", TLSRequest{Cert: good, Key: otherKey}, "does not belong"},
		{"expired", TLSRequest{Cert: expired, Key: expiredKey}, "expired on"},
		{"wrong names", TLSRequest{Cert: wrong, Key: wrongKey}, "none of it is san1"},
		{"swapped", TLSRequest{Cert: goodKey, Key: good}, "swapped"},
		{"no key", TLSRequest{Cert: good}, "both the certificate and its private key"},
		{"unknown scope", TLSRequest{Scope: "everything", Cert: good, Key: goodKey}, "is unknown: use box"},
		{"pair on a standalone box", TLSRequest{Scope: "pair", Cert: good, Key: goodKey}, "not in a pair"},
		{"not JSON", "-----BEGIN CERTIFICATE-----", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := post(tt.body)
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), tt.want) {
				t.Errorf("%d %s, want 400 saying %q", rec.Code, rec.Body, tt.want)
			}
		})
	}
	if diff := tree(t, dir); diff != before {
		t.Error("refused certificates changed files")
	}
	if f.servedFingerprint() != served {
		t.Error("refused certificates changed what is served")
	}
	rec = post(TLSRequest{Cert: good, Key: goodKey})
	if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &v) != nil {
		t.Fatalf("good certificate: %d %s", rec.Code, rec.Body)
	}
	leaf, _ := cert.ParseLeaf([]byte(good))
	if want := cert.Fingerprint(leaf.Raw); v.Box.Fingerprint != want || f.servedFingerprint() != want {
		t.Errorf("after the upload: answer %s, served %s, want %s", v.Box.Fingerprint, f.servedFingerprint(), want)
	}
}

// tree is every file under dir with its mode and content.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := os.ReadFile(path)
			fi, _ := d.Info()
			b.WriteString(path + " " + fi.Mode().String() + "\n" + string(data) + "\n")
		}
		return nil
	})
	return b.String()
}

// TestTLSPage: the certificate page shows the fingerprints; its form
// refuses a bad certificate next to nothing changed, and installs a good
// one pasted or uploaded as files.
func TestTLSPage(t *testing.T) {
	f := newWebFixture(t)
	page := f.session("GET", "/ui/tls", nil)
	fp := f.servedFingerprint()
	text := html.UnescapeString(page.Body.String())
	if page.Code != http.StatusOK || !strings.Contains(text, fp) || !strings.Contains(text, cert.FingerprintHex(fp)) ||
		strings.Contains(text, "PRIVATE KEY-----\n") {
		t.Fatalf("certificate page: %d %s", page.Code, page.Body)
	}
	wrong, wrongKey := tlsPair(t, cert.Identity{Names: []string{"elsewhere"}}, time.Now())
	rec := f.session("POST", "/ui/tls", url.Values{"scope": {"box"}, "cert": {wrong}, "key": {wrongKey}})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "none of it is san1") || f.servedFingerprint() != fp {
		t.Errorf("wrong certificate through the form: %d %s", rec.Code, rec.Body)
	}
	good, goodKey := tlsPair(t, webBoxID, time.Now())
	rec = f.session("POST", "/ui/tls", url.Values{"cert": {good}, "key": {goodKey}})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/tls" {
		t.Fatalf("good certificate through the form: %d %s", rec.Code, rec.Body)
	}
	if f.servedFingerprint() == fp {
		t.Error("the pasted certificate is not served")
	}
	if flash := f.session("GET", "/ui/tls", nil).Body.String(); !strings.Contains(flash, "Certificate replaced") {
		t.Error("no flash after the replacement")
	}
	// As files, the way a browser uploads them.
	fileCert, fileKey := tlsPair(t, webBoxID, time.Now())
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	mw.WriteField("csrf", f.csrf)
	mw.WriteField("scope", "box")
	for name, content := range map[string]string{"cert_file": fileCert, "key_file": fileKey} {
		w, _ := mw.CreateFormFile(name, name+".pem")
		io.WriteString(w, content)
	}
	mw.WriteField("cert", "")
	mw.WriteField("key", "")
	mw.Close()
	req := httptest.NewRequest("POST", "/ui/tls", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.AddCookie(f.cookie)
	rec = httptest.NewRecorder()
	f.engine.ServeHTTP(rec, req)
	leaf, _ := cert.ParseLeaf([]byte(fileCert))
	if rec.Code != http.StatusSeeOther || f.servedFingerprint() != cert.Fingerprint(leaf.Raw) {
		t.Errorf("uploaded files: %d %s", rec.Code, rec.Body)
	}
	// Without a session, the page and the form are refused.
	if rec := f.do(request{method: "POST", path: "/ui/tls", form: url.Values{"cert": {good}, "key": {goodKey}}}); !refused(rec) {
		t.Errorf("upload without a session: %d", rec.Code)
	}
}

// TestHTTPErrorLog: failed TLS handshakes (pinned clients fetching the
// certificate, scanners) are debug; other server errors warnings.
func TestHTTPErrorLog(t *testing.T) {
	var buf bytes.Buffer
	l := httpErrorLog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	l.Printf("http: TLS handshake error from 10.0.0.1:4242: remote error: tls: bad certificate")
	l.Printf("http: Accept error: too many open files; retrying in 5ms")
	out := buf.String()
	if !strings.Contains(out, `level=DEBUG msg="http: TLS handshake error`) || !strings.Contains(out, `level=WARN msg="http: Accept error`) {
		t.Errorf("levels:\n%s", out)
	}
}
