package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sand-appliance/sand/drbd"
	"github.com/sand-appliance/sand/ui"
	"github.com/sand-appliance/sand/ui/cert"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestTLSFingerprintCommand(t *testing.T) {
	c, _, err := cert.Generate(cert.Identity{Names: []string{"san1"}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "cert.pem")
	os.WriteFile(path, c, 0o644)
	leaf, _ := cert.ParseLeaf(c)
	if code, out, errs := runCLI("tls", "fingerprint", path); code != 0 || out != cert.Fingerprint(leaf.Raw)+"\n" {
		t.Errorf("tls fingerprint: %d %q %q", code, out, errs)
	}
	if code, out, _ := runCLI("tls", "fingerprint", "--hex", path); code != 0 || out != cert.HexFingerprint(leaf.Raw)+"\n" {
		t.Errorf("tls fingerprint --hex: %d %q", code, out)
	}
	os.WriteFile(path, []byte("garbage"), 0o644)
	if code, _, errs := runCLI("tls", "fingerprint", path); code == 0 || !strings.Contains(errs, "no PEM certificate") {
		t.Errorf("garbage: %d %q", code, errs)
	}
}

// TestCLIRefusesPlainHTTP: the token never goes to an http:// address.
func TestCLIRefusesPlainHTTP(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "sand.yaml")
	os.WriteFile(cfg, []byte("name: san1\n"), 0o600)
	code, _, errs := runCLI("status", "--config", cfg, "--api", "http://127.0.0.1:7480", "--token", "secret-token")
	if code == 0 || !strings.Contains(errs, "HTTPS only") || !strings.Contains(errs, "https://127.0.0.1:7480") {
		t.Errorf("status over http: %d %q", code, errs)
	}
}

// TestHandlerTrustsTheLocalCertificate: DRBD's fence-peer handler, run on
// the box with no --api, no home and no terminal, reaches the local
// daemon over HTTPS by trusting the box's own certificate file, and
// refuses a daemon that shows another certificate.
func TestHandlerTrustsTheLocalCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls", "cert.pem"), filepath.Join(dir, "tls", "key.pem")
	store, err := cert.Open(cert.Options{Box: cert.Files{Cert: certFile, Key: keyFile}, BoxID: cert.Identity{Names: []string{"san1"}}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var asked atomic.Int32
	srv := &http.Server{TLSConfig: store.TLSConfig(), ErrorLog: log.New(io.Discard, "", 0), Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/pair/fence-peer" || r.Header.Get("Authorization") != "Bearer handler-token" {
			http.Error(w, "no", http.StatusNotFound)
			return
		}
		asked.Add(1)
		json.NewEncoder(w).Encode(ui.FenceAnswer{Outcome: drbd.FenceOutdated})
	})}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	cfg := filepath.Join(dir, "sand.yaml")
	os.WriteFile(cfg, []byte("name: san1\nlisten: "+ln.Addr().String()+"\napi_token: handler-token\ntls_cert_file: "+certFile+"\ntls_key_file: "+keyFile+"\n"), 0o600)
	t.Setenv("HOME", "")
	t.Setenv("XDG_CONFIG_HOME", "")
	code, out, errs := runCLI("fence-peer", "--config", cfg)
	if code != drbd.FenceOutdated.ExitCode() || asked.Load() != 1 {
		t.Errorf("fence-peer: exit %d, asked %d: %s %s", code, asked.Load(), out, errs)
	}
	// Another certificate on the box's port: refused, nothing asked.
	other, otherKey, _ := cert.Generate(cert.Identity{Names: []string{"san1"}}, time.Now())
	os.WriteFile(certFile, other, 0o644)
	os.WriteFile(keyFile, otherKey, 0o600)
	code, _, errs = runCLI("fence-peer", "--config", cfg)
	if code != drbd.FenceUnreachable.ExitCode() || asked.Load() != 1 || !strings.Contains(errs, "HAS CHANGED") {
		t.Errorf("fence-peer against another certificate: exit %d, asked %d: %s", code, asked.Load(), errs)
	}
}
