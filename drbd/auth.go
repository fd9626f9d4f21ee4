package drbd

import (
	"fmt"
	"log/slog"
)

// Auth is the peer authentication of the replication link: when the link
// connects, each node answers a challenge with an HMAC keyed with the
// shared secret (cram-hmac-alg, shared-secret), so a host that does not
// know the secret cannot connect as the peer and receive or overwrite the
// data. It does not encrypt the link. The zero value is no authentication.
type Auth struct {
	// HMACAlg is the kernel hash of the HMAC: sha256 or sha512.
	HMACAlg string
	// Secret is the shared secret, the same on both nodes.
	Secret Secret
}

// HMAC algorithms sand accepts for cram-hmac-alg.
const (
	HMACSHA256 = "sha256"
	HMACSHA512 = "sha512"
)

// Secret lengths. The kernel takes at most SHARED_SECRET_MAX (64) bytes
// with the terminating NUL, on 8.4 and 9 alike: 63 characters (a 64-character
// secret makes drbdsetup fail). MinSecretLen is sand's own floor.
const (
	MinSecretLen = 16
	MaxSecretLen = 63
)

// Secret is a shared secret. It prints as [redacted] with every fmt verb,
// in slog and in JSON, so a logged or printed Resource never shows it; only
// the render writes it out, with string(s).
type Secret string

const redacted = "[redacted]"

// String is [redacted].
func (Secret) String() string { return redacted }

// GoString is [redacted].
func (Secret) GoString() string { return redacted }

// Format writes [redacted] whatever the verb.
func (Secret) Format(f fmt.State, _ rune) { f.Write([]byte(redacted)) }

// LogValue is [redacted].
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalText is [redacted], for JSON and every other encoding.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// ValidateSecret says what is wrong with s as a DRBD shared secret: 16 to
// 63 characters of letters, digits and + / = . _ - (base64 and base64url
// both fit, and each of them is written between double quotes and read
// back by drbdadm unchanged). The error never quotes the secret.
func ValidateSecret(s Secret) error {
	n := len(s)
	if n < MinSecretLen || n > MaxSecretLen {
		return fmt.Errorf("%w: shared secret of %d characters: want %d-%d (the kernel takes at most %d)", ErrInvalid, n, MinSecretLen, MaxSecretLen, MaxSecretLen)
	}
	i := 0
	for _, c := range string(s) {
		i++
		if !secretChar(c) {
			return fmt.Errorf("%w: shared secret: character %d is not a letter, digit or one of + / = . _ - (make one with: head -c 30 /dev/urandom | base64)", ErrInvalid, i)
		}
	}
	return nil
}

func secretChar(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '+' || c == '/' || c == '=' || c == '.' || c == '_' || c == '-'
}

func (a Auth) validate() []error {
	var errs []error
	switch {
	case a == Auth{}:
		return nil
	case a.HMACAlg == "":
		errs = append(errs, fmt.Errorf("%w: a shared secret needs cram-hmac-alg (sha256)", ErrInvalid))
	case a.HMACAlg != HMACSHA256 && a.HMACAlg != HMACSHA512:
		errs = append(errs, fmt.Errorf("%w: cram-hmac-alg %q: want sha256 or sha512", ErrInvalid, a.HMACAlg))
	}
	if a.Secret == "" {
		errs = append(errs, fmt.Errorf("%w: cram-hmac-alg %s needs a shared secret", ErrInvalid, a.HMACAlg))
	} else if err := ValidateSecret(a.Secret); err != nil {
		errs = append(errs, err)
	}
	return errs
}
