// Package cert is the TLS certificate of sand's API and web UI: making a
// self-signed one, checking one an admin brings (key matches, in date,
// names the box), fingerprints as the CLI and browsers show them, and the
// Store that serves the box's certificate on its own addresses and the
// pair's certificate on the VIP, swapped without a restart.
package cert

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Validity of a certificate sand makes itself: an appliance's self-signed
// certificate is trusted by its fingerprint, so a short life would only
// make every client trust a new one again. An admin who wants rotation
// uploads a certificate of their own.
const Validity = 10 * 365 * 24 * time.Hour

// ErrInvalid is wrapped by every refusal of a certificate an admin gave.
var ErrInvalid = errors.New("invalid certificate")

// Identity is what a certificate must name: host names and addresses.
type Identity struct {
	Names []string
	Addrs []netip.Addr
}

// String lists the identity as an admin reads it.
func (id Identity) String() string {
	var s []string
	for _, n := range id.Names {
		s = append(s, n+" (or "+n+".DOMAIN)")
	}
	for _, a := range id.Addrs {
		s = append(s, a.String())
	}
	return strings.Join(s, ", ")
}

// Generate makes a self-signed ECDSA P-256 certificate for id, valid from
// an hour before now (clocks differ) for Validity, and returns it and its
// key as PEM. It is a server certificate, not a CA.
func Generate(id Identity, now time.Time) (certPEM, keyPEM []byte, err error) {
	if len(id.Names) == 0 && len(id.Addrs) == 0 {
		return nil, nil, errors.New("make a TLS certificate: no name or address to put in it")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("make a TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("make a certificate serial: %w", err)
	}
	cn := ""
	if len(id.Names) > 0 {
		cn = id.Names[0]
	} else {
		cn = id.Addrs[0].String()
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"sand appliance"}},
		NotBefore:             now.Add(-time.Hour).UTC(),
		NotAfter:              now.Add(Validity).UTC(),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              slices.Clone(id.Names),
	}
	for _, a := range id.Addrs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign the TLS certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode the TLS key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// Parse reads a PEM certificate (with any intermediates after it) and its
// PEM private key into a tls.Certificate with its Leaf set. It checks that
// both parse and that the key is the certificate's, nothing else.
func Parse(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	var chain [][]byte
	var sawKey bool
	rest := certPEM
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch {
		case b.Type == "CERTIFICATE":
			chain = append(chain, b.Bytes)
		case strings.HasSuffix(b.Type, "PRIVATE KEY"):
			sawKey = true
		}
	}
	if len(chain) == 0 {
		if sawKey {
			return nil, fmt.Errorf("%w: the certificate holds a private key and no certificate: are certificate and key swapped?", ErrInvalid)
		}
		return nil, fmt.Errorf("%w: no PEM certificate found (a block starting -----BEGIN CERTIFICATE-----)", ErrInvalid)
	}
	if len(chain) > 10 {
		return nil, fmt.Errorf("%w: %d certificates in the chain: give the server's certificate and its intermediates only", ErrInvalid, len(chain))
	}
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		return nil, fmt.Errorf("%w: the certificate is not valid X.509: %v", ErrInvalid, err)
	}
	for i, der := range chain[1:] {
		if _, err := x509.ParseCertificate(der); err != nil {
			return nil, fmt.Errorf("%w: certificate %d of the chain is not valid X.509: %v", ErrInvalid, i+2, err)
		}
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(leaf.PublicKey) {
		return nil, fmt.Errorf("%w: the private key does not belong to the certificate (their public keys differ)", ErrInvalid)
	}
	return &tls.Certificate{Certificate: chain, PrivateKey: key, Leaf: leaf}, nil
}

// parseKey reads the first private key block of keyPEM.
func parseKey(keyPEM []byte) (crypto.Signer, error) {
	rest := keyPEM
	var sawCert bool
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		switch b.Type {
		case "CERTIFICATE":
			sawCert = true
			continue
		case "ENCRYPTED PRIVATE KEY":
			return nil, fmt.Errorf("%w: the private key is encrypted: give it without a passphrase (openssl pkey -in key.pem -out plain-key.pem)", ErrInvalid)
		case "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY":
		default:
			continue
		}
		if _, enc := b.Headers["Proc-Type"]; enc {
			return nil, fmt.Errorf("%w: the private key is encrypted: give it without a passphrase (openssl pkey -in key.pem -out plain-key.pem)", ErrInvalid)
		}
		var k any
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: the private key does not parse: %v", ErrInvalid, err)
		}
		switch k := k.(type) {
		case *ecdsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		case *rsa.PrivateKey:
			if k.N.BitLen() < 2048 {
				return nil, fmt.Errorf("%w: the RSA key has %d bits: use 2048 or more (or ECDSA P-256)", ErrInvalid, k.N.BitLen())
			}
			return k, nil
		}
		return nil, fmt.Errorf("%w: a private key of type %T cannot serve TLS: use ECDSA, RSA or Ed25519", ErrInvalid, k)
	}
	if sawCert {
		return nil, fmt.Errorf("%w: the key holds a certificate and no private key: are certificate and key swapped?", ErrInvalid)
	}
	return nil, fmt.Errorf("%w: no PEM private key found (a block starting -----BEGIN PRIVATE KEY-----)", ErrInvalid)
}

// Check parses a certificate an admin gives and refuses it unless it can
// serve id now: the key is the certificate's, it is in date, it may serve
// TLS, and it names id (one of its names, exactly or as the first label of
// a longer name, or one of its addresses).
func Check(certPEM, keyPEM []byte, id Identity, now time.Time) (*tls.Certificate, error) {
	c, err := Parse(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	leaf := c.Leaf
	switch {
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("%w: the certificate expired on %s", ErrInvalid, leaf.NotAfter.UTC().Format(time.DateTime+" UTC"))
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("%w: the certificate is not valid before %s (is this box's clock right? it says %s)", ErrInvalid,
			leaf.NotBefore.UTC().Format(time.DateTime+" UTC"), now.UTC().Format(time.DateTime+" UTC"))
	}
	if len(leaf.ExtKeyUsage) > 0 && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		return nil, fmt.Errorf("%w: the certificate is not for TLS servers (its extended key usage lacks serverAuth)", ErrInvalid)
	}
	if !Names(leaf, id) {
		named := strings.Join(SANs(leaf), ", ")
		if named == "" {
			named = "no name at all (no subject alternative names; clients ignore the common name)"
		}
		return nil, fmt.Errorf("%w: the certificate names %s, and none of it is %s", ErrInvalid, named, id)
	}
	return c, nil
}

// Names reports whether leaf names one of id's addresses or names (a name
// also matches as the first label of a longer name: san1 in
// san1.example.com).
func Names(leaf *x509.Certificate, id Identity) bool {
	for _, a := range id.Addrs {
		for _, ip := range leaf.IPAddresses {
			if got, ok := netip.AddrFromSlice(ip); ok && got.Unmap() == a.Unmap() {
				return true
			}
		}
	}
	for _, n := range id.Names {
		for _, d := range leaf.DNSNames {
			if strings.EqualFold(d, n) || len(d) > len(n) && strings.EqualFold(d[:len(n)+1], n+".") {
				return true
			}
		}
	}
	return false
}

// SANs lists a certificate's names and addresses.
func SANs(leaf *x509.Certificate) []string {
	s := slices.Clone(leaf.DNSNames)
	for _, ip := range leaf.IPAddresses {
		s = append(s, ip.String())
	}
	return s
}

// Fingerprint is the SHA-256 fingerprint of a certificate (DER) as sand
// prints it: SHA256: and the unpadded base64 of the hash, as ssh prints
// host keys.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// HexFingerprint is the same fingerprint as browsers show it: 32 hex bytes
// separated by colons.
func HexFingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return colonHex(sum[:])
}

func colonHex(b []byte) string {
	h := strings.ToUpper(hex.EncodeToString(b))
	var out strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			out.WriteByte(':')
		}
		out.WriteString(h[i : i+2])
	}
	return out.String()
}

// ParseFingerprint reads a SHA-256 fingerprint as sand prints it
// (SHA256:base64) or as browsers and openssl print it (hex, with or without
// colons, SHA256: or sha256 Fingerprint= before it) and returns it in
// sand's form.
func ParseFingerprint(s string) (string, error) {
	orig := s
	s = strings.TrimSpace(s)
	for _, p := range []string{"sha256 fingerprint=", "sha256:", "sha-256:"} {
		if len(s) >= len(p) && strings.EqualFold(s[:len(p)], p) {
			s = s[len(p):]
			break
		}
	}
	var sum []byte
	if h := strings.ReplaceAll(s, ":", ""); len(h) == 64 {
		if b, err := hex.DecodeString(h); err == nil {
			sum = b
		}
	}
	if sum == nil {
		b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
		if err == nil && len(b) == sha256.Size {
			sum = b
		}
	}
	if sum == nil {
		return "", fmt.Errorf("%q is not a SHA-256 fingerprint: give it as sand prints it (SHA256: and 43 base64 characters) or as a browser shows it (32 hex bytes, AB:CD:...)", orig)
	}
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum), nil
}

// FingerprintHex turns a fingerprint in sand's form into the browsers'
// hex form; it returns s as it is if s does not parse.
func FingerprintHex(s string) string {
	fp, err := ParseFingerprint(s)
	if err != nil {
		return s
	}
	b, _ := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(fp, "SHA256:"))
	return colonHex(b)
}

// Info describes a certificate for people and the API.
type Info struct {
	// Fingerprint is SHA256:base64 (as the CLI and known_hosts hold it),
	// FingerprintHex the same as browsers show it.
	Fingerprint    string    `json:"fingerprint"`
	FingerprintHex string    `json:"fingerprint_hex"`
	Subject        string    `json:"subject"`
	Issuer         string    `json:"issuer"`
	SelfSigned     bool      `json:"self_signed"`
	Names          []string  `json:"names"`
	NotBefore      time.Time `json:"not_before"`
	NotAfter       time.Time `json:"not_after"`
	// File is where the certificate is kept.
	File string `json:"file,omitempty"`
}

// Describe returns the Info of a certificate.
func Describe(leaf *x509.Certificate) Info {
	return Info{
		Fingerprint: Fingerprint(leaf.Raw), FingerprintHex: HexFingerprint(leaf.Raw),
		Subject: leaf.Subject.String(), Issuer: leaf.Issuer.String(),
		SelfSigned: bytes.Equal(leaf.RawIssuer, leaf.RawSubject) && leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil,
		Names:      SANs(leaf), NotBefore: leaf.NotBefore.UTC(), NotAfter: leaf.NotAfter.UTC(),
	}
}

// ParseLeaf reads the first certificate of a PEM file.
func ParseLeaf(certPEM []byte) (*x509.Certificate, error) {
	rest := certPEM
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, fmt.Errorf("%w: no PEM certificate found (a block starting -----BEGIN CERTIFICATE-----)", ErrInvalid)
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}
