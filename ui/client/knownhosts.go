package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/renameio/v2"

	"github.com/sand-appliance/sand/ui/cert"
)

// KnownHosts are the certificates the CLI trusts, by address, as ssh keeps
// host keys: one line per address, "HOST:PORT SHA256:fingerprint";
// # starts a comment.
type KnownHosts struct {
	Path    string
	entries []knownHost
}

type knownHost struct {
	addr, fp string
	line     int
}

// DefaultKnownHostsPath is ~/.config/sand/known_hosts (or under
// $XDG_CONFIG_HOME).
func DefaultKnownHostsPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the known_hosts file: %w (give --known-hosts)", err)
	}
	return filepath.Join(dir, "sand", "known_hosts"), nil
}

// LoadKnownHosts reads path; a missing file is an empty list. A line that
// does not parse is an error naming it: the file decides whom sand
// trusts, so it is never half read.
func LoadKnownHosts(path string) (*KnownHosts, error) {
	k := &KnownHosts{Path: path}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return k, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read known hosts: %w", err)
	}
	if err := k.parse(data); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *KnownHosts) parse(data []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return fmt.Errorf("%s line %d: want HOST:PORT SHA256:FINGERPRINT, got %q", k.Path, n, sc.Text())
		}
		addr, err := normalAddr(f[0])
		if err != nil {
			return fmt.Errorf("%s line %d: %w", k.Path, n, err)
		}
		fp, err := cert.ParseFingerprint(f[1])
		if err != nil {
			return fmt.Errorf("%s line %d: %w", k.Path, n, err)
		}
		k.entries = append(k.entries, knownHost{addr: addr, fp: fp, line: n})
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s: %w", k.Path, err)
	}
	return nil
}

// normalAddr checks HOST:PORT and lower-cases the host.
func normalAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || port == "" {
		return "", fmt.Errorf("%q is not HOST:PORT", addr)
	}
	return net.JoinHostPort(strings.ToLower(host), port), nil
}

// Lookup returns the fingerprints trusted for addr and the line of the
// first.
func (k *KnownHosts) Lookup(addr string) (fps []string, line int) {
	addr, err := normalAddr(addr)
	if err != nil {
		return nil, 0
	}
	for _, e := range k.entries {
		if e.addr == addr {
			if line == 0 {
				line = e.line
			}
			fps = append(fps, e.fp)
		}
	}
	return fps, line
}

// Set trusts fp alone for addr from now on and writes the file (0600, its
// directory 0700 if new).
func (k *KnownHosts) Set(addr, fp string) error {
	addr, err := normalAddr(addr)
	if err != nil {
		return err
	}
	if fp, err = cert.ParseFingerprint(fp); err != nil {
		return err
	}
	var old []byte
	if data, err := os.ReadFile(k.Path); err == nil {
		old = data
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read known hosts: %w", err)
	}
	// Keep every line (comments too) but the address's own.
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(old))
	for sc.Scan() {
		line := sc.Text()
		body := line
		if i := strings.IndexByte(body, '#'); i >= 0 {
			body = body[:i]
		}
		if f := strings.Fields(body); len(f) == 2 {
			if a, err := normalAddr(f[0]); err == nil && a == addr {
				continue
			}
		}
		out.WriteString(line + "\n")
	}
	fmt.Fprintf(&out, "%s %s\n", addr, fp)
	if err := os.MkdirAll(filepath.Dir(k.Path), 0o700); err != nil {
		return fmt.Errorf("make the known hosts directory: %w", err)
	}
	if err := renameio.WriteFile(k.Path, out.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write known hosts: %w", err)
	}
	k.entries = nil
	return k.parse(out.Bytes())
}

// FirstUse decides whom a CLI call trusts, as ssh does: the fingerprint
// recorded for the address, or one the admin gives (recorded then), or,
// the first time, the admin's answer to the fingerprint the server shows.
type FirstUse struct {
	Known *KnownHosts
	// Fingerprint is what the admin said to trust (--trust-fingerprint);
	// it replaces what known_hosts holds for the address.
	Fingerprint string
	// Ask shows an unknown certificate and says whether to trust it; nil
	// when nobody can be asked (not a terminal).
	Ask  func(addr string, leaf *x509.Certificate) (bool, error)
	Dial Dialer
}

// Trust returns what to trust for addr (HOST:PORT), recording a newly
// trusted fingerprint. A certificate that differs from the recorded one
// is refused with a MismatchError.
func (f FirstUse) Trust(ctx context.Context, addr string) (Trust, error) {
	if f.Fingerprint != "" {
		fp, err := cert.ParseFingerprint(f.Fingerprint)
		if err != nil {
			return Trust{}, fmt.Errorf("--trust-fingerprint: %w", err)
		}
		leaf, err := Probe(ctx, f.Dial, "tcp", addr)
		if err != nil {
			return Trust{}, err
		}
		if got := cert.Fingerprint(leaf.Raw); got != fp {
			return Trust{}, &MismatchError{Addr: addr, Presented: got, PresentedHex: cert.HexFingerprint(leaf.Raw), Trusted: []string{fp}}
		}
		if known, _ := f.Known.Lookup(addr); len(known) != 1 || known[0] != fp {
			if err := f.Known.Set(addr, fp); err != nil {
				return Trust{}, err
			}
		}
		return Trust{Fingerprints: []string{fp}, seen: leaf, seenAddr: addr}, nil
	}
	if known, line := f.Known.Lookup(addr); len(known) > 0 {
		leaf, err := Probe(ctx, f.Dial, "tcp", addr)
		if err != nil {
			return Trust{}, err
		}
		got := cert.Fingerprint(leaf.Raw)
		for _, fp := range known {
			if fp == got {
				return Trust{Fingerprints: known, seen: leaf, seenAddr: addr}, nil
			}
		}
		return Trust{}, &MismatchError{Addr: addr, Presented: got, PresentedHex: cert.HexFingerprint(leaf.Raw), Trusted: known, File: f.Known.Path, Line: line}
	}
	leaf, err := Probe(ctx, f.Dial, "tcp", addr)
	if err != nil {
		return Trust{}, err
	}
	fp := cert.Fingerprint(leaf.Raw)
	if f.Ask == nil {
		return Trust{}, &UnknownError{Addr: addr, Fingerprint: fp, Hex: cert.HexFingerprint(leaf.Raw)}
	}
	ok, err := f.Ask(addr, leaf)
	if err != nil {
		return Trust{}, err
	}
	if !ok {
		return Trust{}, fmt.Errorf("not trusting %s (%s): nothing was sent to it", addr, fp)
	}
	if err := f.Known.Set(addr, fp); err != nil {
		return Trust{}, err
	}
	return Trust{Fingerprints: []string{fp}, seen: leaf, seenAddr: addr}, nil
}

// UnknownError refuses a server seen for the first time when nobody can
// be asked.
type UnknownError struct {
	Addr, Fingerprint, Hex string
}

func (e *UnknownError) Error() string {
	return fmt.Sprintf("the certificate of %s is not known yet: its fingerprint is %s (%s).\n"+
		"Check it on the box (its console at first boot, `sand status` run there, or the UI's certificate page),\n"+
		"then run again with --trust-fingerprint %s (or SAND_TRUST_FINGERPRINT), or run interactively to be asked, or trust its CA with --ca-file",
		e.Addr, e.Fingerprint, e.Hex, e.Fingerprint)
}

// TrustOptions are the CLI's ways to trust a server, strongest first.
type TrustOptions struct {
	// Addr is the server's HOST:PORT.
	Addr string
	// CAFile trusts the CAs in this PEM file (--ca-file): chain and host
	// name are checked as usual.
	CAFile string
	// Fingerprint trusts this certificate (--trust-fingerprint) and
	// records it for Addr.
	Fingerprint string
	// LocalCert is the box's own certificate file, given when the CLI
	// talks to the box it runs on (no --api): the file on the box is the
	// truth, nothing is asked or recorded. Unreadable (not root), it is
	// passed over.
	LocalCert string
	// KnownHosts is the known_hosts file.
	KnownHosts string
	// Ask asks about a certificate seen for the first time; nil when
	// nobody can be asked.
	Ask  func(addr string, leaf *x509.Certificate) (bool, error)
	Dial Dialer
}

// ResolveTrust decides what the CLI trusts for o.Addr.
func ResolveTrust(ctx context.Context, o TrustOptions) (Trust, error) {
	if o.CAFile != "" {
		if o.Fingerprint != "" {
			return Trust{}, errors.New("give --ca-file or --trust-fingerprint, not both")
		}
		data, err := os.ReadFile(o.CAFile)
		if err != nil {
			return Trust{}, fmt.Errorf("read --ca-file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(data) {
			return Trust{}, fmt.Errorf("--ca-file %s holds no PEM certificate", o.CAFile)
		}
		return Trust{Roots: roots}, nil
	}
	if o.Fingerprint == "" && o.LocalCert != "" {
		if data, err := os.ReadFile(o.LocalCert); err == nil {
			if c, err := cert.ParseLeaf(data); err == nil {
				return Trust{Fingerprints: []string{cert.Fingerprint(c.Raw)}}, nil
			}
		}
	}
	known, err := LoadKnownHosts(o.KnownHosts)
	if err != nil {
		return Trust{}, err
	}
	return FirstUse{Known: known, Fingerprint: o.Fingerprint, Ask: o.Ask, Dial: o.Dial}.Trust(ctx, o.Addr)
}

// Prompt asks on a terminal whether to trust a certificate seen for the
// first time, as ssh does; only "yes" (or "y") trusts it.
func Prompt(in io.Reader, out io.Writer, knownHosts string) func(addr string, leaf *x509.Certificate) (bool, error) {
	r := bufio.NewReader(in)
	return func(addr string, leaf *x509.Certificate) (bool, error) {
		fmt.Fprintf(out, "The certificate of %s is not known yet.\n", addr)
		fmt.Fprintf(out, "  fingerprint  %s\n", cert.Fingerprint(leaf.Raw))
		fmt.Fprintf(out, "  as browsers show it  %s\n", cert.HexFingerprint(leaf.Raw))
		issuer := leaf.Issuer.String()
		if in := cert.Describe(leaf); in.SelfSigned {
			issuer = "itself (self-signed)"
		}
		fmt.Fprintf(out, "  names %s; issued by %s; valid until %s\n", strings.Join(cert.SANs(leaf), ", "), issuer, leaf.NotAfter.UTC().Format("2006-01-02"))
		fmt.Fprintf(out, "Compare it with the box's own (its console at first boot, `sand status` run on the box, or the UI's certificate page).\n")
		fmt.Fprintf(out, "Trust it and remember it in %s? [yes/no]: ", knownHosts)
		line, err := r.ReadString('\n')
		if err != nil && line == "" {
			return false, fmt.Errorf("read the answer: %w", err)
		}
		switch strings.ToLower(strings.TrimSpace(line)) {
		case "yes", "y":
			return true, nil
		}
		return false, nil
	}
}

// APIURL reads the API address an admin gives (https://HOST:PORT, or
// HOST:PORT) into the client's base URL and the HOST:PORT its certificate
// is known by. Plain http:// is refused: the token would cross the
// network in clear, and the plain port only redirects.
func APIURL(raw string) (base, addr string, err error) {
	s := strings.TrimRight(strings.TrimSpace(raw), "/")
	switch {
	case strings.HasPrefix(strings.ToLower(s), "http://"):
		return "", "", fmt.Errorf("API address %q: sand answers over HTTPS only: use https://%s (the HTTPS port, 7443 by default; the plain port only redirects)", raw, strings.TrimPrefix(s[len("http://"):], "/"))
	case strings.HasPrefix(strings.ToLower(s), "https://"):
		s = s[len("https://"):]
	case strings.Contains(s, "://"):
		return "", "", fmt.Errorf("API address %q: use https://HOST:PORT", raw)
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return "", "", fmt.Errorf("API address %q: give https://HOST:PORT without a path", raw)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = s, "7443"
	}
	if host == "" {
		return "", "", fmt.Errorf("API address %q has no host", raw)
	}
	addr = net.JoinHostPort(host, port)
	return "https://" + addr, addr, nil
}
