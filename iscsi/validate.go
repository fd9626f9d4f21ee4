package iscsi

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLUN is the highest LUN number IET, tgt and LIO all accept (SAM's
// 14-bit flat LUN space).
const MaxLUN = 16383

// maxAliasLen is RFC 3720's limit for TargetAlias text.
const maxAliasLen = 255

// Validate reports the first reason a driver could not apply tg exactly as
// written. Every driver may assume a group that passed Validate:
//   - portals are "ip:port" in canonical form (netip.AddrPort's String),
//     without zones, and listed once;
//   - target IQNs pass ValidateIQN and are unique;
//   - a target's LUN numbers are unique and in 0..MaxLUN;
//   - paths are absolute and clean, without blanks, control characters or
//     commas (IET separates Lun options with commas);
//   - Type is fileio or blockio;
//   - a LUN's serial is empty or passes ValidateSerial, and its NAA is
//     NAAFromSerial(Serial) (empty when the serial is), so tgt and LIO
//     present the same identity;
//   - no two LUNs share a path, a serial, an NAA or a registry name, since
//     two LUNs on one store, or two stores with one identity, corrupt data
//     (initiators' multipath merges LUNs by serial and NAA). Serials can
//     differ and still give one NAA: NAAFromSerial skips non-hex
//     characters, so "disk1" and "disk-1" collide;
//   - CHAP accounts pass CHAP.Validate, and mutual CHAP comes with CHAP;
//   - initiator IQNs pass ValidateIQN and are listed once per target.
func (tg TargetGroup) Validate() error {
	portals := make(map[string]bool)
	for _, p := range tg.Portals {
		if err := validatePortal(p); err != nil {
			return err
		}
		if portals[p] {
			return fmt.Errorf("portal %s is listed twice: list each portal once", p)
		}
		portals[p] = true
	}
	iqns := make(map[string]bool)
	paths := make(map[string]string)
	serials := make(map[string]string)
	naas := make(map[string]string)
	names := make(map[string]string)
	for _, t := range tg.Targets {
		if err := t.validate(); err != nil {
			return err
		}
		if iqns[t.IQN] {
			return fmt.Errorf("target %s is defined twice: give each target its own IQN", t.IQN)
		}
		iqns[t.IQN] = true
		for _, lu := range t.LUNs {
			where := fmt.Sprintf("target %s LUN %d", t.IQN, lu.Number)
			if other, ok := paths[lu.Path]; ok {
				return fmt.Errorf("%s: path %s is already exported by %s: export each backing store once", where, lu.Path, other)
			}
			paths[lu.Path] = where
			if lu.Serial != "" {
				if other, ok := serials[lu.Serial]; ok {
					return fmt.Errorf("%s: serial %s is already used by %s: give each LUN its own serial (initiators would take both for one disk)", where, lu.Serial, other)
				}
				serials[lu.Serial] = where
			}
			if lu.NAA != "" {
				if other, ok := naas[lu.NAA]; ok {
					return fmt.Errorf("%s: serial %s gives NAA %s, as %s does: give this LUN a serial with other hex digits (initiators would take both for one disk)", where, lu.Serial, lu.NAA, other)
				}
				naas[lu.NAA] = where
			}
			if lu.Name != "" {
				if other, ok := names[lu.Name]; ok {
					return fmt.Errorf("%s: name %s is already used by %s: give each LUN its own name", where, lu.Name, other)
				}
				names[lu.Name] = where
			}
		}
	}
	return nil
}

// validate checks one target on its own; TargetGroup.Validate adds the
// checks across targets.
func (t Target) validate() error {
	if err := ValidateIQN(t.IQN); err != nil {
		return fmt.Errorf("target: %w", err)
	}
	if err := validateAlias(t.Alias); err != nil {
		return fmt.Errorf("target %s: %w", t.IQN, err)
	}
	numbers := make(map[int]bool)
	for _, lu := range t.LUNs {
		if err := lu.validate(); err != nil {
			return fmt.Errorf("target %s: %w", t.IQN, err)
		}
		if numbers[lu.Number] {
			return fmt.Errorf("target %s: LUN %d is defined twice: give each LUN its own number", t.IQN, lu.Number)
		}
		numbers[lu.Number] = true
	}
	initiators := make(map[string]bool)
	for _, ini := range t.Initiators {
		if err := ValidateIQN(ini); err != nil {
			return fmt.Errorf("target %s: initiator: %w", t.IQN, err)
		}
		if initiators[ini] {
			return fmt.Errorf("target %s: initiator %s is listed twice: list it once", t.IQN, ini)
		}
		initiators[ini] = true
	}
	if t.CHAP != nil {
		if err := t.CHAP.Validate(); err != nil {
			return fmt.Errorf("target %s: CHAP (IncomingUser): %w", t.IQN, err)
		}
	}
	if t.MutualCHAP != nil {
		if err := t.MutualCHAP.Validate(); err != nil {
			return fmt.Errorf("target %s: mutual CHAP (OutgoingUser): %w", t.IQN, err)
		}
		// The target only answers a challenge from an initiator that
		// authenticated first; LIO refuses mutual CHAP alone.
		if t.CHAP == nil {
			return fmt.Errorf("target %s has mutual CHAP (OutgoingUser) but no CHAP (IncomingUser): add IncomingUser, mutual CHAP needs it", t.IQN)
		}
	}
	return nil
}

// validate checks one logical unit on its own.
func (lu LogicalUnit) validate() error {
	if err := validateLUNNumber(lu.Number); err != nil {
		return err
	}
	if lu.Name != "" {
		if err := ValidateLUNName(lu.Name); err != nil {
			return fmt.Errorf("LUN %d: %w", lu.Number, err)
		}
	}
	if err := validatePath(lu.Path); err != nil {
		return fmt.Errorf("LUN %d: %w", lu.Number, err)
	}
	if err := validateIOType(lu.Type); err != nil {
		return fmt.Errorf("LUN %d: %w", lu.Number, err)
	}
	if lu.Size < 0 {
		return fmt.Errorf("LUN %d: size %d is negative: give the size in bytes, or 0 if unknown", lu.Number, lu.Size)
	}
	if lu.Serial != "" {
		if err := ValidateSerial(lu.Serial); err != nil {
			return fmt.Errorf("LUN %d: %w", lu.Number, err)
		}
	}
	if err := validateNAA(lu.NAA, lu.Serial); err != nil {
		return fmt.Errorf("LUN %d: %w", lu.Number, err)
	}
	return nil
}

func validateLUNNumber(n int) error {
	switch {
	case n < 0:
		return fmt.Errorf("LUN number %d is negative: use 0 to %d", n, MaxLUN)
	case n > MaxLUN:
		return fmt.Errorf("LUN number %d is too large: use 0 to %d", n, MaxLUN)
	}
	return nil
}

// lunNamePattern keeps registry names safe as LV names (after the pool's
// prefix), configfs directory names and argv words.
var lunNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ValidateLUNName reports whether s can be a LUN's registry name: 1 to 64
// characters of A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or
// digit.
func ValidateLUNName(s string) error {
	if s == "" {
		return fmt.Errorf("LUN name is empty: use 1 to 64 letters, digits, '.', '_' or '-', e.g. vm01-disk")
	}
	if !lunNamePattern.MatchString(s) {
		return fmt.Errorf("LUN name %q is malformed: use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit, e.g. vm01-disk", s)
	}
	return nil
}

func validatePath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("path is empty: give the backing store's absolute path, e.g. /dev/vg/lv")
	case strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || unicode.IsControl(r) }):
		return fmt.Errorf("path %q has a blank or control character: IET and tgt cannot take it; rename the backing store", p)
	case strings.Contains(p, ","):
		return fmt.Errorf("path %q has a comma: IET separates Lun options with commas; rename the backing store", p)
	case !filepath.IsAbs(p):
		return fmt.Errorf("path %q is relative: write the absolute path, e.g. /dev/vg/lv", p)
	case filepath.Clean(p) != p:
		return fmt.Errorf("path %q is not clean: write it as %s", p, filepath.Clean(p))
	}
	return nil
}

func validateIOType(t IOType) error {
	switch t {
	case FileIO, BlockIO:
		return nil
	case "":
		return fmt.Errorf("type is empty: use %s or %s", FileIO, BlockIO)
	}
	return fmt.Errorf("type %q is unknown: use %s or %s", string(t), FileIO, BlockIO)
}

// validateNAA insists the NAA is the one derived from the serial: LIO
// derives it itself and cannot be told another, so any other value would
// make the two drivers present different identities.
func validateNAA(naa, serial string) error {
	if naa == "" {
		if serial != "" {
			return fmt.Errorf("NAA is empty but serial is %s: set NAA to NAAFromSerial(serial), %s", serial, NAAFromSerial(serial))
		}
		return nil
	}
	if err := validateNAAFormat(naa); err != nil {
		return err
	}
	if serial == "" {
		return fmt.Errorf("NAA %s is set but the serial is empty: the NAA derives from the serial; set the serial or clear the NAA", naa)
	}
	if want := NAAFromSerial(serial); naa != want {
		return fmt.Errorf("NAA %s does not match serial %s: the NAA derives from the serial, set it to %s", naa, serial, want)
	}
	return nil
}

func validateNAAFormat(naa string) error {
	if len(naa) != 32 || naa[0] != '6' || strings.ContainsFunc(naa, func(r rune) bool {
		return (r < '0' || r > '9') && (r < 'a' || r > 'f')
	}) {
		return fmt.Errorf("NAA %q is malformed: it is 32 lower-case hex digits starting with 6, e.g. %s", naa, NAAFromSerial("0123456789abcdef"))
	}
	return nil
}

// validatePortal insists on netip's canonical text, so drivers and the
// registry can compare portals as strings.
func validatePortal(p string) error {
	ap, err := netip.ParseAddrPort(p)
	if err != nil {
		return fmt.Errorf("portal %q is not ip:port: write it like 10.0.0.50:3260 or [2001:db8::50]:3260", p)
	}
	switch {
	case ap.Addr().Zone() != "":
		return fmt.Errorf("portal %q has an IPv6 zone: use an address without %%zone", p)
	case ap.Port() == 0:
		return fmt.Errorf("portal %q has port 0: use the iSCSI port, %d", p, DefaultPort)
	case ap.String() != p:
		return fmt.Errorf("portal %q is not in canonical form: write it as %s", p, ap)
	}
	return nil
}

// validateAlias allows printable UTF-8 text: ietd.conf holds it as the rest
// of the Alias line, so blanks inside are kept but not at either end.
func validateAlias(a string) error {
	switch {
	case a == "":
		return nil
	case len(a) > maxAliasLen:
		return fmt.Errorf("alias is %d bytes long: at most %d", len(a), maxAliasLen)
	case !utf8.ValidString(a):
		return fmt.Errorf("alias %q is not valid UTF-8: write it in UTF-8", a)
	case strings.TrimSpace(a) != a:
		return fmt.Errorf("alias %q starts or ends with a blank: trim it", a)
	case strings.ContainsFunc(a, func(r rune) bool { return r != ' ' && !unicode.IsPrint(r) }):
		return fmt.Errorf("alias %q has a tab, control or other unprintable character: use printable text", a)
	}
	return nil
}
