package appliance

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Size units are binary, as admins mean them for disks ("20G" = 20 GiB).
var sizeUnits = map[string]int64{
	"": 1, "B": 1,
	"K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10,
	"M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20,
	"G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30,
	"T": 1 << 40, "TB": 1 << 40, "TIB": 1 << 40,
}

// BlockSize is the logical block size LUNs are exported with; sizes are
// whole multiples of it.
const BlockSize = 512

// ParseSize reads a size such as "20G", "512M", "1.5T" or "1073741824"
// (bytes). Units are binary (G = GiB).
func ParseSize(s string) (int64, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	if t == "" {
		return 0, fmt.Errorf("%w: size is empty: give a number with a unit, e.g. 20G", ErrInvalid)
	}
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	mult, ok := sizeUnits[unit]
	if !ok || num == "" {
		return 0, fmt.Errorf("%w: size %q is not a size: give a positive number with an optional unit K, M, G or T (binary), e.g. 20G", ErrInvalid, s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%w: size %q is not a size: give a positive number with an optional unit, e.g. 20G", ErrInvalid, s)
	}
	bytes := f * float64(mult)
	if bytes > math.MaxInt64/2 {
		return 0, fmt.Errorf("%w: size %q is too large", ErrInvalid, s)
	}
	return int64(bytes), nil
}

// CheckSize reports whether n bytes can be a LUN size.
func CheckSize(n int64) error {
	switch {
	case n <= 0:
		return fmt.Errorf("%w: size must be larger than 0", ErrInvalid)
	case n%BlockSize != 0:
		return fmt.Errorf("%w: size %d is not a multiple of the %d-byte block size", ErrInvalid, n, BlockSize)
	}
	return nil
}

// FormatSize prints n bytes in the largest binary unit that keeps it exact,
// so it reads back with ParseSize to the same value.
func FormatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
