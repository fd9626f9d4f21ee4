package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
