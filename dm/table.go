package dm

import (
	"fmt"
	"strconv"
	"strings"
)

// A record comes from the peer: it is input. A table may make only what
// LVM makes for a thin pool on one physical volume, and its device fields
// may name only devices of the same record (made earlier in the same
// replay) or the one external device Replay allows (the PV). Targets:
//
//	linear     <dev> <offset>                  dev: the PV, or the thin pool
//	                                           (LVM's read-only POOL device)
//	thin-pool  <meta dev> <data dev> <block size> <low water mark> <#features> <feature>...
//	                                           meta, data: devices of the record
//	                                           that map the PV linearly (_tmeta, _tdata)
//	thin       <pool dev> <device id>          pool: a thin-pool of the record; no
//	                                           external origin
//
// Nothing else: no crypt, zero, error, striped or any other target, no
// device path (the kernel would open /dev/sda as readily as 8:0), no
// field that is not a number, a device or a known thin-pool feature.

// layout is a table's parameters by position.
type layout struct {
	fields []string
	// devs are the indexes of the fields that name a device.
	devs []int
}

// thinPoolFeatures are the features LVM may give a thin pool.
var thinPoolFeatures = map[string]bool{
	"skip_block_zeroing": true, "ignore_discard": true, "no_discard_passdown": true,
	"read_only": true, "error_if_no_space": true,
}

// parseParams reads t's parameters by its type's grammar.
func parseParams(t Target) (layout, error) {
	f := strings.Fields(t.Params)
	l := layout{fields: f}
	bad := func(format string, args ...any) (layout, error) {
		return layout{}, fmt.Errorf("%s target %q: %s", t.Type, t.Params, fmt.Sprintf(format, args...))
	}
	if strings.Join(f, " ") != t.Params {
		return bad("parameters must be separated by single spaces")
	}
	for i, s := range f {
		if !validField(s) {
			return bad("field %d %q holds a character no LVM table has", i+1, s)
		}
	}
	number := func(i int, max uint64) error {
		n, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil || n > max {
			return fmt.Errorf("field %d %q is not a number up to %d", i+1, f[i], max)
		}
		return nil
	}
	switch t.Type {
	case "linear":
		if len(f) != 2 {
			return bad("want <device> <offset>")
		}
		if err := number(1, 1<<63-1); err != nil {
			return bad("%v", err)
		}
		l.devs = []int{0}
	case "thin":
		if len(f) != 2 {
			return bad("want <pool device> <device id> (no external origin)")
		}
		if err := number(1, 1<<24-1); err != nil {
			return bad("%v", err)
		}
		l.devs = []int{0}
	case "thin-pool":
		if len(f) < 5 {
			return bad("want <metadata device> <data device> <block size> <low water mark> <#features> <feature>...")
		}
		for _, n := range []struct {
			i   int
			max uint64
		}{{2, 2097152}, {3, 1<<63 - 1}, {4, uint64(len(thinPoolFeatures))}} {
			if err := number(n.i, n.max); err != nil {
				return bad("%v", err)
			}
		}
		if bs, _ := strconv.ParseUint(f[2], 10, 64); bs < 128 || bs%128 != 0 {
			return bad("block size %d is not a multiple of 128 sectors", bs)
		}
		n, _ := strconv.Atoi(f[4])
		if len(f) != 5+n {
			return bad("%d features announced, %d given", n, len(f)-5)
		}
		seen := map[string]bool{}
		for _, feat := range f[5:] {
			if !thinPoolFeatures[feat] || seen[feat] {
				return bad("feature %q is unknown or repeated", feat)
			}
			seen[feat] = true
		}
		l.devs = []int{0, 1}
	default:
		return bad("not a target LVM makes for a thin pool on one physical volume (linear, thin-pool, thin)")
	}
	for _, i := range l.devs {
		if _, ref := strings.CutPrefix(f[i], refPrefix); ref {
			continue
		}
		if _, ok := ParseDev(f[i]); !ok {
			return bad("field %d %q is neither major:minor nor a device of the record", i+1, f[i])
		}
	}
	return l, nil
}

// validField: what a field of an LVM table holds: numbers, major:minor,
// feature words, and "@" with a device-mapper name LVM made.
func validField(s string) bool {
	if name, ref := strings.CutPrefix(s, refPrefix); ref {
		return lvmName(name)
	}
	return s != "" && strings.Trim(s, lvmChars+":") == ""
}

// lvmChars are the characters of LVM's names, and so of the device-mapper
// names and UUIDs it makes.
const lvmChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+_.-"

func lvmName(s string) bool { return s != "" && strings.Trim(s, lvmChars) == "" }

// role is what a device of the record is, by its table, for the checks of
// the devices stacked on it.
type role int

const (
	roleOther    role = iota
	rolePVLinear      // every target linear on the PV (a _tmeta, _tdata or plain volume)
	roleThinPool      // a thin-pool (POOL-tpool)
)

func roleOf(d Device, layouts []layout) role {
	if len(d.Targets) == 1 && d.Targets[0].Type == "thin-pool" {
		return roleThinPool
	}
	for i, t := range d.Targets {
		if t.Type != "linear" || strings.HasPrefix(layouts[i].fields[0], refPrefix) {
			return roleOther
		}
	}
	return rolePVLinear
}

// checkTables checks every table of devs by its grammar and each
// reference by what it names: a device earlier in devs, of the role the
// field needs.
func checkTables(devs []Device) error {
	roles := map[string]role{}
	for _, d := range devs {
		layouts := make([]layout, len(d.Targets))
		for i, t := range d.Targets {
			l, err := parseParams(t)
			if err != nil {
				return fmt.Errorf("device %s: %w", d.Name, err)
			}
			layouts[i] = l
			for _, k := range l.devs {
				name, ref := strings.CutPrefix(l.fields[k], refPrefix)
				if !ref {
					if t.Type != "linear" {
						return fmt.Errorf("device %s: %s target names device %s directly; LVM stacks it on devices of the record", d.Name, t.Type, l.fields[k])
					}
					continue
				}
				r, known := roles[name]
				switch {
				case !known:
					return fmt.Errorf("device %s: %s target uses %s, which is not made before it in the record", d.Name, t.Type, name)
				case t.Type == "linear" && r != roleThinPool:
					return fmt.Errorf("device %s: linear target over %s, which is not a thin pool", d.Name, name)
				case t.Type == "thin" && r != roleThinPool:
					return fmt.Errorf("device %s: thin target in %s, which is not a thin pool", d.Name, name)
				case t.Type == "thin-pool" && r != rolePVLinear:
					return fmt.Errorf("device %s: thin pool on %s, which does not map the physical volume linearly", d.Name, name)
				}
			}
		}
		roles[d.Name] = roleOf(d, layouts)
	}
	return nil
}
