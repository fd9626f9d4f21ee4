package iscsi

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
)

// iqnPattern follows RFC 3720 section 3.2.6.3.1: "iqn." year-month "."
// reversed domain, optionally ":" and a unique string. sand accepts the
// lower-case form only, since IQNs compare case-insensitively and tgt and
// LIO keep whatever case they were given.
var iqnPattern = regexp.MustCompile(`^iqn\.[0-9]{4}-(0[1-9]|1[0-2])\.[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[a-z0-9.:-]+)?$`)

// maxIQNLen is the iSCSI name limit (RFC 3720: 223 bytes).
const maxIQNLen = 223

// ValidateIQN reports whether s is an iSCSI qualified name sand can use.
func ValidateIQN(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("IQN is empty: use the form iqn.YYYY-MM.reversed.domain:name, e.g. iqn.2026-11.org.example:dom0-a")
	case len(s) > maxIQNLen:
		return fmt.Errorf("IQN %q is %d bytes long: iSCSI names are at most %d", s, len(s), maxIQNLen)
	case strings.ToLower(s) != s:
		return fmt.Errorf("IQN %q has upper-case letters: write it in lower case (%s)", s, strings.ToLower(s))
	case !iqnPattern.MatchString(s):
		return fmt.Errorf("IQN %q is malformed: use the form iqn.YYYY-MM.reversed.domain[:name] with a-z, 0-9, '.', '-' and ':' only, e.g. iqn.2026-11.org.example:dom0-a", s)
	}
	return nil
}

// CHAP secret limits: IET and LIO accept 12 to 16 characters (Microsoft's
// initiator demands at least 12; IET rejects more than 16).
const (
	MinCHAPSecret = 12
	MaxCHAPSecret = 16
	maxCHAPUser   = 255
)

// Validate reports whether the account can be set on IET, tgt and LIO alike.
func (c CHAP) Validate() error {
	if c.User == "" {
		return fmt.Errorf("CHAP user is empty")
	}
	if len(c.User) > maxCHAPUser {
		return fmt.Errorf("CHAP user is %d bytes long: at most %d", len(c.User), maxCHAPUser)
	}
	if !printableNoSpace(c.User) {
		return fmt.Errorf("CHAP user %q has spaces or control characters", c.User)
	}
	if n := len(c.Secret); n < MinCHAPSecret || n > MaxCHAPSecret {
		return fmt.Errorf("CHAP secret for %q is %d characters long: it must be %d to %d", c.User, n, MinCHAPSecret, MaxCHAPSecret)
	}
	if !printableNoSpace(c.Secret) {
		return fmt.Errorf("CHAP secret for %q has spaces or control characters", c.User)
	}
	return nil
}

func printableNoSpace(s string) bool {
	for _, r := range s {
		if r <= ' ' || r > '~' {
			return false
		}
	}
	return true
}

// SerialLen is the length of serials sand makes: IET's ScsiSN holds 16.
const SerialLen = 16

// maxSerialLen bounds imported serials (IET's ScsiSN limit).
const maxSerialLen = 16

// NewSerial returns a fresh random unit serial of SerialLen hex digits.
func NewSerial() (string, error) {
	b := make([]byte, SerialLen/2)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random bytes for a LUN serial: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// ValidateSerial reports whether s can be a unit serial on every driver.
func ValidateSerial(s string) error {
	if s == "" || len(s) > maxSerialLen {
		return fmt.Errorf("serial %q must be 1 to %d characters", s, maxSerialLen)
	}
	if !printableNoSpace(s) || strings.ContainsAny(s, ",=#") {
		return fmt.Errorf("serial %q may hold printable characters only, without spaces, ',', '=' or '#'", s)
	}
	return nil
}

// linuxISCSIOUI is the IEEE company id LIO puts in its NAA identifiers.
const linuxISCSIOUI = "001405"

// NAAFromSerial derives the NAA IEEE Registered Extended identifier (32 hex
// digits) from a unit serial exactly as LIO does (spc_gen_naa_6h_vendor_specific):
// "6", the OUI, then the serial's hex digits, skipping other characters and
// padding with zeros to 25 digits. tgt is given the same digits as scsi_id,
// so both drivers answer VPD page 0x83 with the same NAA.
func NAAFromSerial(serial string) string {
	var b strings.Builder
	b.WriteString("6" + linuxISCSIOUI)
	n := 0
	for _, r := range strings.ToLower(serial) {
		if n == 25 {
			break
		}
		if (r >= '0' && r <= '9') || (r >= 'a' && r <= 'f') {
			b.WriteRune(r)
			n++
		}
	}
	for ; n < 25; n++ {
		b.WriteByte('0')
	}
	return b.String()
}
