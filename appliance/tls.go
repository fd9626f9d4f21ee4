package appliance

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
)

// TLSConfig is the HTTPS of the API and web UI (keys at the top level of
// sand.yaml). Listen is the HTTPS address.
type TLSConfig struct {
	// CertFile and KeyFile are this box's certificate (PEM, intermediates
	// after it) and private key (mode 0600). sand makes a self-signed pair
	// there at its first start when both are missing; an admin's own
	// replaces them (by hand, or uploaded through the API or the UI).
	CertFile string `mapstructure:"tls_cert_file"`
	KeyFile  string `mapstructure:"tls_key_file"`
	// HTTPRedirect is a plain-HTTP address that answers every request with
	// a redirect to the HTTPS port and nothing else; empty: none.
	HTTPRedirect string `mapstructure:"http_redirect"`
}

// Defaults of the API's addresses: HTTPS on 7443; the old plain-HTTP port
// 7480 only redirects there, so old bookmarks and habits land on HTTPS.
const (
	DefaultListen       = ":7443"
	DefaultHTTPRedirect = ":7480"
)

func defaultTLS() TLSConfig {
	return TLSConfig{CertFile: "/etc/sand/tls/cert.pem", KeyFile: "/etc/sand/tls/key.pem", HTTPRedirect: DefaultHTTPRedirect}
}

// PairTLSFiles are the pair's certificate and key, served on the VIP:
// beside the registry, so whichever box holds the VIP has the same one.
func (c Config) PairTLSFiles() (cert, key string) {
	dir := filepath.Join(c.StateDir, "tls")
	return filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
}

// ListenPort is the HTTPS port of the API.
func (c Config) ListenPort() (string, error) {
	_, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return "", fmt.Errorf("config listen %q is not HOST:PORT (e.g. :7443 or 10.0.0.11:7443): %w", c.Listen, err)
	}
	return port, nil
}

func (c Config) validateTLS() error {
	if _, err := c.ListenPort(); err != nil {
		return err
	}
	for key, p := range map[string]string{"tls_cert_file": c.TLS.CertFile, "tls_key_file": c.TLS.KeyFile} {
		if !filepath.IsAbs(p) {
			return fmt.Errorf("config %s %q must be an absolute path", key, p)
		}
	}
	if filepath.Clean(c.TLS.CertFile) == filepath.Clean(c.TLS.KeyFile) {
		return fmt.Errorf("config tls_cert_file and tls_key_file are the same file %s: keep the key in a file of its own (mode 0600)", c.TLS.KeyFile)
	}
	if c.TLS.HTTPRedirect == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(c.TLS.HTTPRedirect)
	if err != nil {
		return fmt.Errorf("config http_redirect %q is not HOST:PORT (e.g. :7480 or :80; empty for none): %w", c.TLS.HTTPRedirect, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("config http_redirect %q: the port must be 1 to 65535", c.TLS.HTTPRedirect)
	}
	if host != "" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("config http_redirect %q: the host must be an IP address or empty (every address)", c.TLS.HTTPRedirect)
		}
	}
	if lp, _ := c.ListenPort(); lp == port {
		return fmt.Errorf("config http_redirect %q uses the HTTPS port of listen %q: give it a port of its own (e.g. :7480), or empty for none", c.TLS.HTTPRedirect, c.Listen)
	}
	return nil
}
