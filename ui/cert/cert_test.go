package cert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	now   = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	boxID = Identity{Names: []string{"san1"}, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.11"), netip.MustParseAddr("fd00::11")}}
)

// TestGenerate: a P-256 server certificate naming exactly the identity,
// valid an hour back and ten years on, not a CA, whose key is the
// certificate's.
func TestGenerate(t *testing.T) {
	certPEM, keyPEM, err := Generate(boxID, now)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Check(certPEM, keyPEM, boxID, now)
	if err != nil {
		t.Fatal(err)
	}
	leaf := c.Leaf
	if diff := cmp.Diff([]string{"san1", "10.0.0.11", "fd00::11"}, SANs(leaf)); diff != "" {
		t.Errorf("SANs (-want +got):\n%s", diff)
	}
	if !leaf.NotBefore.Equal(now.Add(-time.Hour)) || !leaf.NotAfter.Equal(now.Add(Validity)) {
		t.Errorf("validity %v to %v", leaf.NotBefore, leaf.NotAfter)
	}
	if years := leaf.NotAfter.Sub(leaf.NotBefore).Hours() / 24 / 365; years < 9.9 || years > 10.1 {
		t.Errorf("valid for %.1f years, want 10", years)
	}
	if leaf.IsCA || !leaf.BasicConstraintsValid || leaf.KeyUsage != x509.KeyUsageDigitalSignature ||
		len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Errorf("usage: CA %v, key usage %v, ext %v", leaf.IsCA, leaf.KeyUsage, leaf.ExtKeyUsage)
	}
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if leaf.Subject.CommonName != "san1" {
		t.Errorf("common name %q", leaf.Subject.CommonName)
	}
	if !Describe(leaf).SelfSigned {
		t.Error("Describe: not self-signed")
	}
	// Two certificates are two keys.
	other, _, _ := Generate(boxID, now)
	if bytes.Equal(other, certPEM) {
		t.Error("two Generate calls made the same certificate")
	}
	if _, _, err := Generate(Identity{}, now); err == nil {
		t.Error("a certificate naming nothing was made")
	}
}

// certSpec makes test certificates with what Generate never makes.
type certSpec struct {
	names      []string
	addrs      []string
	notBefore  time.Time
	notAfter   time.Time
	extUsage   []x509.ExtKeyUsage
	rsaBits    int
	keyOfOther bool
}

func makeCert(t *testing.T, s certSpec) (certPEM, keyPEM []byte) {
	t.Helper()
	if s.notBefore.IsZero() {
		s.notBefore = now.Add(-24 * time.Hour)
	}
	if s.notAfter.IsZero() {
		s.notAfter = now.Add(365 * 24 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "test"},
		NotBefore: s.notBefore, NotAfter: s.notAfter, DNSNames: s.names, ExtKeyUsage: s.extUsage,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	for _, a := range s.addrs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(a))
	}
	var key, signer any
	var keyDER []byte
	if s.rsaBits != 0 {
		k, err := rsa.GenerateKey(rand.Reader, s.rsaBits)
		if err != nil {
			t.Fatal(err)
		}
		key, signer = k, k
		keyDER = x509.MarshalPKCS1PrivateKey(k)
	} else {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		key, signer = k, k
		keyDER, _ = x509.MarshalECPrivateKey(k)
	}
	var pubKey any
	switch k := key.(type) {
	case *rsa.PrivateKey:
		pubKey = &k.PublicKey
	case *ecdsa.PrivateKey:
		pubKey = &k.PublicKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pubKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	typ := "EC PRIVATE KEY"
	if s.rsaBits != 0 {
		typ = "RSA PRIVATE KEY"
	}
	if s.keyOfOther {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		keyDER, _ = x509.MarshalECPrivateKey(k)
		typ = "EC PRIVATE KEY"
	}
	return certPEM, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: keyDER})
}

// TestCheckRefuses: each bad certificate is refused with ErrInvalid and a
// message that says what is wrong.
func TestCheckRefuses(t *testing.T) {
	good, goodKey := makeCert(t, certSpec{names: []string{"san1.example.com"}})
	ed := func(c, k []byte) [2][]byte { return [2][]byte{c, k} }
	tests := []struct {
		name string
		pair [2][]byte
		want string
	}{
		{"garbage", ed([]byte("hello"), []byte("world")), "no PEM certificate"},
		{"empty", ed(nil, nil), "no PEM certificate"},
		{"swapped", ed(goodKey, good), "swapped"},
		{"no key", ed(good, nil), "no PEM private key"},
		{"key is a certificate", ed(good, good), "swapped"},
		{"mismatched key", ed(makeCert(t, certSpec{names: []string{"san1"}, keyOfOther: true})), "does not belong"},
		{"expired", ed(makeCert(t, certSpec{names: []string{"san1"}, notBefore: now.AddDate(-2, 0, 0), notAfter: now.AddDate(0, 0, -1)})), "expired on"},
		{"not yet valid", ed(makeCert(t, certSpec{names: []string{"san1"}, notBefore: now.AddDate(0, 0, 1)})), "not valid before"},
		{"wrong names", ed(makeCert(t, certSpec{names: []string{"san2", "mail.example.com"}, addrs: []string{"10.0.0.12"}})), "none of it is san1"},
		{"name as a suffix only", ed(makeCert(t, certSpec{names: []string{"xsan1.example.com", "san10"}})), "none of it is"},
		{"no names at all", ed(makeCert(t, certSpec{})), "no name at all"},
		{"client certificate", ed(makeCert(t, certSpec{names: []string{"san1"}, extUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})), "not for TLS servers"},
		{"weak RSA", ed(makeCert(t, certSpec{names: []string{"san1"}, rsaBits: 1024})), "1024 bits"},
		{"encrypted key", ed(good, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}})), "encrypted"},
		{"broken certificate", ed(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("nope")}), goodKey), "not valid X.509"},
		{"broken key", ed(good, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("nope")})), "does not parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Check(tt.pair[0], tt.pair[1], boxID, now)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Check: %v, want ErrInvalid saying %q", err, tt.want)
			}
		})
	}
	// What it accepts: a name's longer form, an address, an RSA key.
	for _, s := range []certSpec{
		{names: []string{"SAN1.example.com"}},
		{addrs: []string{"10.0.0.11"}},
		{addrs: []string{"fd00::11"}},
		{names: []string{"san1"}, rsaBits: 2048},
	} {
		c, k := makeCert(t, s)
		if _, err := Check(c, k, boxID, now); err != nil {
			t.Errorf("Check %+v: %v", s, err)
		}
	}
}

func TestFingerprints(t *testing.T) {
	der := []byte("any certificate")
	fp, hexfp := Fingerprint(der), HexFingerprint(der)
	if !strings.HasPrefix(fp, "SHA256:") || len(fp) != 7+43 || len(hexfp) != 95 {
		t.Fatalf("fingerprints %q %q", fp, hexfp)
	}
	for _, in := range []string{fp, " " + fp + " ", "sha256:" + fp[7:], hexfp, strings.ToLower(hexfp), strings.ReplaceAll(hexfp, ":", ""),
		"SHA256:" + hexfp, "sha256 Fingerprint=" + hexfp, fp[7:] + "="} {
		got, err := ParseFingerprint(in)
		if err != nil || got != fp {
			t.Errorf("ParseFingerprint(%q) = %q, %v; want %q", in, got, err, fp)
		}
	}
	for _, in := range []string{"", "SHA256:", "SHA256:abc", "MD5:" + hexfp, hexfp[:90], "SHA256:" + strings.Repeat("!", 43)} {
		if got, err := ParseFingerprint(in); err == nil {
			t.Errorf("ParseFingerprint(%q) = %q, want an error", in, got)
		}
	}
	if FingerprintHex(fp) != hexfp {
		t.Errorf("FingerprintHex(%q) = %q", fp, FingerprintHex(fp))
	}
}

func files(dir string) Files {
	return Files{Cert: filepath.Join(dir, "tls", "cert.pem"), Key: filepath.Join(dir, "tls", "key.pem")}
}

// TestOpenMakesAndKeeps: the first Open makes the certificate (key 0600,
// certificate 0644), later ones load the same; a key others may read, or
// one file without the other, stops sand with a clear error.
func TestOpenMakesAndKeeps(t *testing.T) {
	dir := t.TempDir()
	f := files(dir)
	s, err := Open(Options{Box: f, BoxID: boxID, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]os.FileMode{f.Key: 0o600, f.Cert: 0o644} {
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v mode %v, want %v", path, err, fi.Mode().Perm(), want)
		}
	}
	fp := Fingerprint(s.Box().Leaf.Raw)
	again, err := Open(Options{Box: f, BoxID: boxID})
	if err != nil || Fingerprint(again.Box().Leaf.Raw) != fp {
		t.Fatalf("reopened: %v", err)
	}
	os.Chmod(f.Key, 0o644)
	if _, err := Open(Options{Box: f, BoxID: boxID}); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable key: %v", err)
	}
	os.Chmod(f.Key, 0o600)
	os.Rename(f.Key, f.Key+".away")
	if _, err := Open(Options{Box: f, BoxID: boxID}); err == nil || !strings.Contains(err.Error(), "has no key") {
		t.Errorf("certificate without key: %v", err)
	}
	if _, err := os.Stat(f.Key); err == nil {
		t.Error("Open made a key beside a lone certificate")
	}
}

// TestWriteRecovers: a replacement cut between its two renames is
// finished; one cut before them is forgotten.
func TestWriteRecovers(t *testing.T) {
	dir := t.TempDir()
	f := files(dir)
	c1, k1, _ := Generate(boxID, now)
	if err := f.Write(c1, k1); err != nil {
		t.Fatal(err)
	}
	c2, k2, _ := Generate(boxID, now)
	// Cut after the key's rename: the new key is in place, the new
	// certificate pending.
	os.WriteFile(pending(f.Cert), c2, 0o644)
	os.WriteFile(f.Key, k2, 0o600)
	if ok, err := f.Exist(); !ok || err != nil {
		t.Fatal(ok, err)
	}
	c, err := f.Load()
	if err != nil || !bytes.Equal(c.Certificate[0], mustLeaf(t, c2).Raw) {
		t.Errorf("after the cut replacement: %v", err)
	}
	// Cut before any rename: both pending, the old pair stays.
	c3, k3, _ := Generate(boxID, now)
	os.WriteFile(pending(f.Cert), c3, 0o644)
	os.WriteFile(pending(f.Key), k3, 0o600)
	f.Exist()
	c, err = f.Load()
	if err != nil || !bytes.Equal(c.Certificate[0], mustLeaf(t, c2).Raw) {
		t.Errorf("after the forgotten replacement: %v", err)
	}
	if _, err := os.Stat(pending(f.Key)); err == nil {
		t.Error("a pending key was left")
	}
}

func mustLeaf(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	l, err := ParseLeaf(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// hello is a ClientHello that arrived at local.
func hello(local string) *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{Conn: fakeConn{local: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(local))}}
}

type fakeConn struct {
	net.Conn
	local net.Addr
}

func (c fakeConn) LocalAddr() net.Addr { return c.local }

// TestStorePairAndReplace: the VIP gets the pair's certificate (made by
// the serving box only, read by the other from the shared state), every
// other address the box's; a replacement is served at the next handshake,
// and a refused one changes nothing, on disk or served.
func TestStorePairAndReplace(t *testing.T) {
	dir := t.TempDir()
	shared := filepath.Join(dir, "state")
	vip := netip.MustParseAddr("10.0.0.50")
	serving := false
	opts := func(name string) Options {
		return Options{
			Box: files(filepath.Join(dir, name)), BoxID: Identity{Names: []string{name}, Addrs: boxID.Addrs},
			VIP: vip, Pair: files(shared), PairID: Identity{Names: []string{"san1", "san2"}, Addrs: []netip.Addr{vip}},
			Serving: func() bool { return serving }, Now: func() time.Time { return now },
		}
	}
	s1, err := Open(opts("san1"))
	if err != nil {
		t.Fatal(err)
	}
	served := func(s *Store, local string) string {
		c, err := s.GetCertificate(hello(local))
		if err != nil {
			t.Fatal(err)
		}
		return Fingerprint(c.Leaf.Raw)
	}
	boxFP := Fingerprint(s1.Box().Leaf.Raw)
	// Not serving: no pair certificate is made; the VIP falls back to the
	// box's.
	if got := served(s1, "10.0.0.50:7443"); got != boxFP {
		t.Errorf("VIP on a box not serving: %s", got)
	}
	if _, err := os.Stat(files(shared).Cert); err == nil {
		t.Error("a box not serving made the pair's certificate")
	}
	if v := s1.View(); v.Pair != nil || v.VIP != "10.0.0.50" {
		t.Errorf("view of a secondary: %+v", v)
	}
	serving = true
	pairFP := served(s1, "10.0.0.50:7443")
	if pairFP == boxFP {
		t.Fatal("the VIP gets the box's certificate on the serving box")
	}
	if got := served(s1, "10.0.0.11:7443"); got != boxFP {
		t.Errorf("the box's address gets %s", got)
	}
	if got := served(s1, "127.0.0.1:7443"); got != boxFP {
		t.Errorf("loopback gets %s", got)
	}
	v := s1.View()
	if v.Pair == nil || v.Pair.Fingerprint != pairFP || !strings.Contains(strings.Join(v.Pair.Names, " "), "10.0.0.50") {
		t.Errorf("view: %+v", v)
	}
	// The other box reads the same pair certificate from the shared state.
	s2, err := Open(opts("san2"))
	if err != nil {
		t.Fatal(err)
	}
	if got := served(s2, "10.0.0.50:7443"); got != pairFP {
		t.Errorf("the peer serves %s on the VIP, want the pair's %s", got, pairFP)
	}

	// Refused replacements change nothing.
	before := snapshot(t, dir)
	bad, badKey := makeCert(t, certSpec{names: []string{"elsewhere"}})
	for _, tt := range []struct {
		scope     string
		cert, key []byte
		want      error
	}{
		{ScopeBox, bad, badKey, ErrInvalid},
		{ScopePair, bad, badKey, ErrInvalid},
		{"all", bad, badKey, ErrInvalid},
		{ScopeBox, []byte("garbage"), []byte("garbage"), ErrInvalid},
	} {
		if _, err := s1.Replace(tt.scope, tt.cert, tt.key); !errors.Is(err, tt.want) {
			t.Errorf("Replace %s: %v, want %v", tt.scope, err, tt.want)
		}
	}
	serving = false
	vipCert, vipKey := makeCert(t, certSpec{addrs: []string{"10.0.0.50"}})
	if _, err := s2.Replace(ScopePair, vipCert, vipKey); !errors.Is(err, ErrNotServing) {
		t.Errorf("pair certificate sent to a box not serving: %v", err)
	}
	if diff := cmp.Diff(before, snapshot(t, dir)); diff != "" {
		t.Errorf("refused replacements changed files (-before +after):\n%s", diff)
	}
	if served(s1, "10.0.0.11:7443") != boxFP || served(s1, "10.0.0.50:7443") != pairFP {
		t.Error("refused replacements changed what is served")
	}

	// Good ones are served from the next handshake, and kept.
	serving = true
	own, ownKey := makeCert(t, certSpec{names: []string{"san1.example.com"}})
	v, err = s1.Replace(ScopeBox, own, ownKey)
	if err != nil {
		t.Fatal(err)
	}
	ownFP := Fingerprint(mustLeaf(t, own).Raw)
	if v.Box.Fingerprint != ownFP || served(s1, "10.0.0.11:7443") != ownFP {
		t.Errorf("after Replace the box serves %s", served(s1, "10.0.0.11:7443"))
	}
	if _, err := s1.Replace(ScopePair, vipCert, vipKey); err != nil {
		t.Fatal(err)
	}
	vipFP := Fingerprint(mustLeaf(t, vipCert).Raw)
	if served(s1, "10.0.0.50:7443") != vipFP || served(s2, "10.0.0.50:7443") != vipFP {
		t.Error("the new pair certificate is not served on the VIP by both boxes")
	}
	reopened, err := Open(opts("san1"))
	if err != nil || Fingerprint(reopened.Box().Leaf.Raw) != ownFP {
		t.Errorf("the replacement was not kept: %v", err)
	}
}

// snapshot maps every file under dir to its content and mode.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := os.ReadFile(path)
			fi, _ := d.Info()
			m[path] = fi.Mode().String() + " " + string(data)
		}
		return nil
	})
	return m
}
