package appliance

import (
	"strings"
	"testing"
)

func TestValidateTLS(t *testing.T) {
	base := DefaultConfig()
	base.Portal = "10.0.0.11"
	if err := base.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if base.Listen != ":7443" || base.TLS.HTTPRedirect != ":7480" || base.TLS.CertFile != "/etc/sand/tls/cert.pem" || base.TLS.KeyFile != "/etc/sand/tls/key.pem" {
		t.Errorf("defaults: listen %q, %+v", base.Listen, base.TLS)
	}
	tests := []struct {
		name string
		mod  func(c *Config)
		want string
	}{
		{"listen without port", func(c *Config) { c.Listen = "10.0.0.11" }, "not HOST:PORT"},
		{"relative cert", func(c *Config) { c.TLS.CertFile = "tls/cert.pem" }, "tls_cert_file"},
		{"relative key", func(c *Config) { c.TLS.KeyFile = "key.pem" }, "tls_key_file"},
		{"key in the certificate file", func(c *Config) { c.TLS.KeyFile = c.TLS.CertFile }, "the same file"},
		{"redirect on the HTTPS port", func(c *Config) { c.TLS.HTTPRedirect = "10.0.0.11:7443" }, "HTTPS port"},
		{"redirect without port", func(c *Config) { c.TLS.HTTPRedirect = "80" }, "not HOST:PORT"},
		{"redirect port out of range", func(c *Config) { c.TLS.HTTPRedirect = ":70000" }, "1 to 65535"},
		{"redirect on a name", func(c *Config) { c.TLS.HTTPRedirect = "san1:80" }, "IP address or empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mod(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate: %v, want %q", err, tt.want)
			}
		})
	}
	ok := base
	ok.TLS.HTTPRedirect = ""
	if err := ok.Validate(); err != nil {
		t.Errorf("no redirect: %v", err)
	}
	ok.TLS.HTTPRedirect = "[::]:80"
	if err := ok.Validate(); err != nil {
		t.Errorf("redirect on :80: %v", err)
	}
	cert, key := base.PairTLSFiles()
	if cert != "/var/lib/sand/tls/cert.pem" || key != "/var/lib/sand/tls/key.pem" {
		t.Errorf("pair files %s %s", cert, key)
	}
}
