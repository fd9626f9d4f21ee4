package cert

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Scopes of a certificate: the box's own addresses, or the pair's VIP.
const (
	ScopeBox  = "box"
	ScopePair = "pair"
)

// ErrNotServing refuses the pair's certificate on a box that does not
// hold the registry (the secondary of a pair).
var ErrNotServing = errors.New("this box is not serving")

// Options configure a Store.
type Options struct {
	// Box are the box's own certificate files (tls_cert_file,
	// tls_key_file), made at the first start when missing.
	Box Files
	// BoxID is what the box's certificate names when sand makes it, and
	// what an uploaded one must name.
	BoxID Identity
	// VIP is the pair's floating address; zero on a standalone box.
	// Connections to it get the pair's certificate.
	VIP netip.Addr
	// Pair are the pair's certificate files, beside the registry (on the
	// replicated volume: whichever box holds the VIP reads the same).
	Pair Files
	// PairID is what the pair's certificate names when sand makes it
	// (the VIP and both boxes' names); an uploaded one must name the VIP.
	PairID Identity
	// Serving reports whether this box holds the registry now; only then
	// does it make or replace the pair's certificate.
	Serving func() bool
	Now     func() time.Time
	Log     *slog.Logger
}

// Store serves the API's certificates: the box's on every address but the
// VIP, the pair's on the VIP. A replaced certificate is served from the
// next handshake on.
type Store struct {
	o   Options
	box atomic.Pointer[tls.Certificate]
	// mu serialises replacements and guards the pair's certificate, which
	// is read from the shared state when it changes there.
	mu        sync.Mutex
	pair      *tls.Certificate
	pairStamp stamp
	lastErr   string
}

// Open loads the box's certificate, making a self-signed one first if
// there is none.
func Open(o Options) (*Store, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Serving == nil {
		o.Serving = func() bool { return false }
	}
	s := &Store{o: o}
	there, err := o.Box.Exist()
	if err != nil {
		return nil, err
	}
	if !there {
		certPEM, keyPEM, err := Generate(o.BoxID, o.Now())
		if err != nil {
			return nil, err
		}
		if err := o.Box.Write(certPEM, keyPEM); err != nil {
			return nil, fmt.Errorf("keep the new TLS certificate: %w", err)
		}
		c, err := Parse(certPEM, keyPEM)
		if err != nil {
			return nil, err
		}
		o.Log.Info("made a self-signed TLS certificate for the API and web UI", "file", o.Box.Cert, "key", o.Box.Key,
			"names", SANs(c.Leaf), "fingerprint", Fingerprint(c.Leaf.Raw), "until", c.Leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	c, err := o.Box.Load()
	if err != nil {
		return nil, err
	}
	s.box.Store(c)
	now := o.Now()
	if now.After(c.Leaf.NotAfter) {
		o.Log.Warn("the box's TLS certificate has expired: clients refuse it; replace it (POST /api/v1/tls, the UI's certificate page) or remove both files and restart sand for a new self-signed one",
			"file", o.Box.Cert, "expired", c.Leaf.NotAfter)
	} else if !Names(c.Leaf, o.BoxID) {
		o.Log.Warn("the box's TLS certificate names none of its names or addresses: clients that check names refuse it", "file", o.Box.Cert,
			"names", SANs(c.Leaf), "box", o.BoxID.String())
	}
	return s, nil
}

// TLSConfig is the server side of the API's TLS.
func (s *Store) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.GetCertificate}
}

// GetCertificate picks the certificate by the address the client reached:
// the VIP gets the pair's, anything else the box's.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	if s.o.VIP.IsValid() && hello.Conn != nil {
		if a, ok := hello.Conn.LocalAddr().(*net.TCPAddr); ok && a.AddrPort().Addr().Unmap() == s.o.VIP.Unmap() {
			return s.pairCert(), nil
		}
	}
	return s.box.Load(), nil
}

// Box is the box's certificate now.
func (s *Store) Box() *tls.Certificate { return s.box.Load() }

// pairCert is the pair's certificate, or the box's while the pair has
// none this box can read or make.
func (s *Store) pairCert() *tls.Certificate {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.loadPairLocked()
	if err != nil {
		if msg := err.Error(); msg != s.lastErr {
			s.lastErr = msg
			s.o.Log.Warn("the pair's TLS certificate", "err", err)
		}
	}
	if c == nil {
		return s.box.Load()
	}
	return c
}

// stamp tells a file's versions apart.
type stamp struct {
	ino   uint64
	size  int64
	mtime time.Time
}

func stampOf(path string) (stamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return stamp{}, err
	}
	st := stamp{size: fi.Size(), mtime: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st, nil
}

// loadPairLocked returns the pair's certificate: the one loaded before if
// its file did not change, else the file's, else (on the serving box) a
// new self-signed one. It returns nil when there is none.
func (s *Store) loadPairLocked() (*tls.Certificate, error) {
	if !s.o.VIP.IsValid() {
		return nil, nil
	}
	there, err := s.o.Pair.Exist()
	if err != nil {
		return s.pair, err
	}
	if !there {
		if !s.o.Serving() {
			return nil, nil
		}
		return s.makePairLocked()
	}
	st, err := stampOf(s.o.Pair.Cert)
	if err != nil {
		return s.pair, err
	}
	if s.pair != nil && st == s.pairStamp {
		return s.pair, nil
	}
	c, err := s.o.Pair.Load()
	if err != nil {
		return s.pair, err
	}
	s.pair, s.pairStamp = c, st
	return c, nil
}

func (s *Store) makePairLocked() (*tls.Certificate, error) {
	certPEM, keyPEM, err := Generate(s.o.PairID, s.o.Now())
	if err != nil {
		return nil, err
	}
	if err := s.o.Pair.Write(certPEM, keyPEM); err != nil {
		return nil, fmt.Errorf("keep the pair's new TLS certificate: %w", err)
	}
	c, err := Parse(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	st, err := stampOf(s.o.Pair.Cert)
	if err != nil {
		return nil, err
	}
	s.pair, s.pairStamp = c, st
	s.o.Log.Info("made a self-signed TLS certificate for the pair's VIP", "file", s.o.Pair.Cert, "names", SANs(c.Leaf),
		"fingerprint", Fingerprint(c.Leaf.Raw), "until", c.Leaf.NotAfter.UTC().Format(time.DateOnly))
	return c, nil
}

// View is what the API shows of the certificates.
type View struct {
	// Box is this box's certificate, served on its own addresses.
	Box Info `json:"box"`
	// Pair is the pair's certificate, served on the VIP; absent on a
	// standalone box and on a secondary that cannot read it.
	Pair *Info `json:"pair,omitempty"`
	// VIP is the address the pair's certificate is served on.
	VIP string `json:"vip,omitempty"`
}

// View describes the certificates now; on the serving box of a pair it
// makes the pair's certificate if there is none yet.
func (s *Store) View() View {
	v := View{Box: Describe(s.box.Load().Leaf)}
	v.Box.File = s.o.Box.Cert
	if !s.o.VIP.IsValid() {
		return v
	}
	v.VIP = s.o.VIP.String()
	s.mu.Lock()
	c, err := s.loadPairLocked()
	s.mu.Unlock()
	if err != nil {
		s.o.Log.Warn("read the pair's TLS certificate", "err", err)
	}
	if c != nil {
		in := Describe(c.Leaf)
		in.File = s.o.Pair.Cert
		v.Pair = &in
	}
	return v
}

// Replace checks a certificate an admin gives and puts it in place of the
// box's (ScopeBox) or the pair's (ScopePair): on disk first, then served
// from the next handshake. Anything wrong changes nothing.
func (s *Store) Replace(scope string, certPEM, keyPEM []byte) (View, error) {
	if err := s.replace(scope, certPEM, keyPEM); err != nil {
		return View{}, err
	}
	return s.View(), nil
}

func (s *Store) replace(scope string, certPEM, keyPEM []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Now()
	switch scope {
	case ScopeBox, "":
		c, err := Check(certPEM, keyPEM, s.o.BoxID, now)
		if err != nil {
			return err
		}
		if err := s.o.Box.Write(certPEM, keyPEM); err != nil {
			return err
		}
		s.box.Store(c)
		s.o.Log.Info("TLS certificate of the box replaced", "file", s.o.Box.Cert, "names", SANs(c.Leaf),
			"fingerprint", Fingerprint(c.Leaf.Raw), "until", c.Leaf.NotAfter.UTC().Format(time.DateOnly))
	case ScopePair:
		if !s.o.VIP.IsValid() {
			return fmt.Errorf("%w: this box is not in a pair: it has no pair certificate (give scope box)", ErrInvalid)
		}
		if !s.o.Serving() {
			return fmt.Errorf("%w: the pair's certificate lives with the registry on the primary: send it to the box that holds the VIP (%s)", ErrNotServing, s.o.VIP)
		}
		c, err := Check(certPEM, keyPEM, Identity{Addrs: []netip.Addr{s.o.VIP}}, now)
		if err != nil {
			return err
		}
		if err := s.o.Pair.Write(certPEM, keyPEM); err != nil {
			return err
		}
		st, err := stampOf(s.o.Pair.Cert)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		s.pair, s.pairStamp = c, st
		s.o.Log.Info("TLS certificate of the pair's VIP replaced", "file", s.o.Pair.Cert, "names", SANs(c.Leaf),
			"fingerprint", Fingerprint(c.Leaf.Raw), "until", c.Leaf.NotAfter.UTC().Format(time.DateOnly))
	default:
		return fmt.Errorf("%w: scope %q is unknown: use box (this box's own addresses) or pair (the VIP)", ErrInvalid, scope)
	}
	return nil
}
