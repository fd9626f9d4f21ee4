package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/sand-appliance/sand/ui/cert"
)

// Trust says which server certificates a client accepts: certificates
// pinned by their SHA-256 fingerprints (sand's own self-signed ones), or
// a CA's (Roots) with the usual checks of chain and host name, or, with
// neither, the system's CAs.
type Trust struct {
	// Fingerprints pins the server's certificate to any of these
	// (cert.Fingerprint's form, or any form cert.ParseFingerprint reads).
	Fingerprints []string
	// Roots are the CAs to trust instead of the system's.
	Roots *x509.CertPool
	// Config is a TLS configuration of the caller's own (client
	// certificates, its own checks), used as given when no fingerprint is
	// pinned; Roots, when set, replaces its RootCAs.
	Config *tls.Config

	// seen is a pinned certificate already fetched from seenAddr
	// (FirstUse's probe), so the first connection needs no probe of its
	// own.
	seen     *x509.Certificate
	seenAddr string
}

// Dialer makes the TCP connection under TLS (a namespace's, in tests).
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// Transport returns an HTTP transport that speaks TLS to the server and
// accepts only what t trusts. dial nil dials as net.Dialer does.
func (t Trust) Transport(dial Dialer) (*http.Transport, error) {
	if dial == nil {
		d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	tr := &http.Transport{
		Proxy:               nil,
		ForceAttemptHTTP2:   true,
		TLSHandshakeTimeout: 15 * time.Second,
		IdleConnTimeout:     90 * time.Second,
		MaxIdleConnsPerHost: 4,
	}
	if len(t.Fingerprints) == 0 {
		tr.DialContext = dial
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if t.Config != nil {
			tr.TLSClientConfig = t.Config.Clone()
		}
		if t.Roots != nil {
			tr.TLSClientConfig.RootCAs = t.Roots
		}
		return tr, nil
	}
	p, err := newPinner(t.Fingerprints, dial)
	if err != nil {
		return nil, err
	}
	if t.seen != nil && p.pins[cert.Fingerprint(t.seen.Raw)] {
		p.known[t.seenAddr] = t.seen
	}
	tr.DialTLSContext = p.dialTLS
	return tr, nil
}

// NewTrusted returns a client of baseURL (https://HOST:PORT) that trusts
// what t trusts.
func NewTrusted(baseURL, token string, t Trust) (*Client, error) {
	tr, err := t.Transport(nil)
	if err != nil {
		return nil, err
	}
	c := New(baseURL, token)
	c.HTTP.Transport = tr
	return c, nil
}

// pinner dials TLS connections that end at a pinned certificate. Go checks
// a server's certificate against roots and a host name, so the pinned
// certificate itself becomes the only root and the host name one it
// names: the first connection to an address fetches the certificate
// (Probe) and, when its fingerprint is pinned, keeps it for the real
// handshake and every later one.
type pinner struct {
	pins map[string]bool
	dial Dialer
	mu   sync.Mutex
	// known are certificates seen with a pinned fingerprint, by address.
	known map[string]*x509.Certificate
}

func newPinner(fps []string, dial Dialer) (*pinner, error) {
	p := &pinner{pins: map[string]bool{}, dial: dial, known: map[string]*x509.Certificate{}}
	for _, f := range fps {
		fp, err := cert.ParseFingerprint(f)
		if err != nil {
			return nil, err
		}
		p.pins[fp] = true
	}
	return p, nil
}

func (p *pinner) pinned() []string {
	var s []string
	for fp := range p.pins {
		s = append(s, fp)
	}
	slices.Sort(s)
	return s
}

func (p *pinner) dialTLS(ctx context.Context, network, addr string) (net.Conn, error) {
	p.mu.Lock()
	leaf := p.known[addr]
	p.mu.Unlock()
	if leaf != nil {
		conn, err := p.handshake(ctx, network, addr, leaf)
		var unknown x509.UnknownAuthorityError
		var verr *tls.CertificateVerificationError
		if err == nil || !errors.As(err, &verr) && !errors.As(err, &unknown) {
			return conn, err
		}
		// The server shows another certificate now: look at it afresh.
	}
	leaf, err := Probe(ctx, p.dial, network, addr)
	if err != nil {
		return nil, err
	}
	fp := cert.Fingerprint(leaf.Raw)
	if !p.pins[fp] {
		return nil, &MismatchError{Addr: addr, Presented: fp, PresentedHex: cert.HexFingerprint(leaf.Raw), Trusted: p.pinned()}
	}
	p.mu.Lock()
	p.known[addr] = leaf
	p.mu.Unlock()
	return p.handshake(ctx, network, addr, leaf)
}

// handshake connects to addr trusting leaf alone, checked under a host
// name leaf names, and its fingerprint once more.
func (p *pinner) handshake(ctx context.Context, network, addr string, leaf *x509.Certificate) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	name, err := nameIn(leaf, host)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	want := cert.Fingerprint(leaf.Raw)
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12, RootCAs: roots, ServerName: name, NextProtos: []string{"h2", "http/1.1"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || cert.Fingerprint(cs.PeerCertificates[0].Raw) != want {
				return fmt.Errorf("the server's certificate is not the pinned one %s", want)
			}
			return nil
		},
	}
	raw, err := p.dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	conn := tls.Client(raw, cfg)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return conn, nil
}

// nameIn is the name to check leaf under: host when leaf names it, else
// a name leaf holds (a pinned certificate is trusted for what it is, not
// for the name used to reach it: 127.0.0.1 on the box, a forwarded port).
func nameIn(leaf *x509.Certificate, host string) (string, error) {
	if leaf.VerifyHostname(host) == nil {
		return host, nil
	}
	for _, d := range leaf.DNSNames {
		if leaf.VerifyHostname(d) == nil {
			return d, nil
		}
	}
	for _, ip := range leaf.IPAddresses {
		return ip.String(), nil
	}
	return "", fmt.Errorf("the certificate %s names no host (no subject alternative name): it cannot be pinned; replace it with one that names the box", cert.Fingerprint(leaf.Raw))
}

// Probe fetches the certificate a TLS server at addr presents, trusting
// nothing: the handshake is stopped at the check, before a request could
// be sent. The caller decides whether to trust it.
func Probe(ctx context.Context, dial Dialer, network, addr string) (*x509.Certificate, error) {
	if dial == nil {
		d := &net.Dialer{Timeout: 30 * time.Second}
		dial = d.DialContext
	}
	raw, err := dial(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	defer raw.Close()
	host, _, _ := net.SplitHostPort(addr)
	var seen *x509.Certificate
	conn := tls.Client(raw, &tls.Config{
		MinVersion: tls.VersionTLS12, ServerName: host, RootCAs: x509.NewCertPool(),
		VerifyConnection: func(cs tls.ConnectionState) error { return errors.New("probe only") },
	})
	err = conn.HandshakeContext(ctx)
	var verr *tls.CertificateVerificationError
	switch {
	case errors.As(err, &verr) && len(verr.UnverifiedCertificates) > 0:
		seen = verr.UnverifiedCertificates[0]
	case err == nil:
		return nil, fmt.Errorf("probe %s: the handshake went through without a certificate check", addr)
	default:
		return nil, fmt.Errorf("TLS handshake with %s: %w (is it sand's HTTPS port?)", addr, err)
	}
	return seen, nil
}

// MismatchError refuses a server whose certificate is not the one
// trusted for its address.
type MismatchError struct {
	Addr         string
	Presented    string
	PresentedHex string
	Trusted      []string
	// File and Line name where the trusted fingerprint was recorded, if
	// it came from a known_hosts file.
	File string
	Line int
}

func (e *MismatchError) Error() string {
	where := ""
	if e.File != "" {
		where = fmt.Sprintf(" (%s line %d)", e.File, e.Line)
	}
	msg := fmt.Sprintf("THE CERTIFICATE OF %s HAS CHANGED: it presents %s, trusted%s is %s.\n"+
		"Either its certificate was replaced (an upload, a reinstalled box) or someone is in the middle.\n"+
		"Check the fingerprint on the box itself (its console at boot, `sand status` run there, or the UI's certificate page)",
		e.Addr, e.Presented, where, joinOr(e.Trusted))
	if e.File != "" {
		return msg + fmt.Sprintf(", then remove line %d of %s or run again with --trust-fingerprint %s", e.Line, e.File, e.Presented)
	}
	return msg + ", then trust the new one"
}

func joinOr(s []string) string {
	switch len(s) {
	case 0:
		return "nothing"
	case 1:
		return s[0]
	}
	out := s[0]
	for _, x := range s[1:] {
		out += " or " + x
	}
	return out
}
