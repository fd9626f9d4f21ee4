package drbd

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Version is a DRBD kernel module version, as /proc/drbd's first line or
// drbdadm --version reports it.
type Version struct {
	Major, Minor, Patch int
	// Extra is anything after the patch level (-rc.1).
	Extra string
	// API is the genetlink API version (1 for 8.4, 2 for 9), 0 if unknown.
	API int
	// ProtoMin and ProtoMax are the network protocol versions spoken,
	// 0 if unknown.
	ProtoMin, ProtoMax int
}

func (v Version) String() string {
	return fmt.Sprintf("%d.%d.%d%s", v.Major, v.Minor, v.Patch, v.Extra)
}

// Is84 reports whether this is the 8.4 module (drbd-utils then dispatches to
// drbdadm-84/drbdsetup-84 and the config must use 8.4 syntax).
func (v Version) Is84() bool { return v.Major == 8 && v.Minor == 4 }

// Is9 reports whether this is DRBD 9 or later.
func (v Version) Is9() bool { return v.Major >= 9 }

// Proc is /proc/drbd.
type Proc struct {
	Version Version
	// Devices are the configured minors in /proc/drbd's order (ascending).
	// DRBD 9's /proc/drbd lists none: its state comes from drbdsetup.
	Devices []Status
}

var (
	versionLineRE = regexp.MustCompile(`^version: (\d+)\.(\d+)\.(\d+)(\S*)(?: \(api:(\d+)/proto:(\d+)-(\d+)\))?`)
	deviceLineRE  = regexp.MustCompile(`^ *(\d+): cs:(\S+)(.*)$`)
	progressRE    = regexp.MustCompile(`(?:sync'ed|verified):\s*(\d+)\.(\d)%`)
	finishRE      = regexp.MustCompile(`finish: (\d+):(\d\d):(\d\d)`)
)

// ParseVersionLine parses /proc/drbd's first line,
// "version: 8.4.11 (api:1/proto:86-101)".
func ParseVersionLine(line string) (Version, error) {
	m := versionLineRE.FindStringSubmatch(strings.TrimSpace(line))
	if m == nil {
		return Version{}, fmt.Errorf("parse drbd version line %q: want \"version: X.Y.Z (api:N/proto:A-B)\"", line)
	}
	var v Version
	var err error
	ints := []*int{&v.Major, &v.Minor, &v.Patch}
	for i, p := range ints {
		if *p, err = atoiSmall(m[i+1]); err != nil {
			return Version{}, fmt.Errorf("parse drbd version line %q: %w", line, err)
		}
	}
	v.Extra = m[4]
	if m[5] != "" {
		for i, p := range []*int{&v.API, &v.ProtoMin, &v.ProtoMax} {
			if *p, err = atoiSmall(m[i+5]); err != nil {
				return Version{}, fmt.Errorf("parse drbd version line %q: %w", line, err)
			}
		}
	}
	return v, nil
}

// ParseProcDRBD parses /proc/drbd as the DRBD 8.4 module writes it
// (drivers/block/drbd/drbd_proc.c, drbd_seq_show): the version line, a build
// tag line, then per minor
//
//	 0: cs:SyncSource ro:Primary/Secondary ds:UpToDate/Inconsistent C r-----
//	    ns:... nr:... dw:... dr:... al:... bm:... lo:... pe:... ua:... ap:... ep:... wo:f oos:86016
//		[=====>..............] sync'ed: 33.4% (86016/131032)K
//		finish: 0:00:03 speed: 32,768 (32,768) K/sec
//
// or " 1: cs:Unconfigured" for a minor that exists but is not configured.
// The protocol letter is a blank when the device has no network
// configuration (StandAlone). Lines that proc_details adds (sector pos,
// lru cache statistics) are skipped. Resource names are not in /proc/drbd:
// Resource is left empty.
func ParseProcDRBD(data []byte) (Proc, error) {
	var p Proc
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	lineNo := 0
	sawVersion := false
	var cur *Status
	seen := map[int]bool{}
	fail := func(format string, args ...any) (Proc, error) {
		return Proc{}, fmt.Errorf("parse /proc/drbd line %d: %s", lineNo, fmt.Sprintf(format, args...))
	}
	for sc.Scan() {
		lineNo++
		line := strings.TrimRight(sc.Text(), "\r")
		if !sawVersion {
			if strings.TrimSpace(line) == "" {
				continue
			}
			v, err := ParseVersionLine(line)
			if err != nil {
				return fail("%v", err)
			}
			p.Version = v
			sawVersion = true
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue // a gap in the minor numbers prints an empty line
		}
		if m := deviceLineRE.FindStringSubmatch(line); m != nil {
			minor, err := atoiSmall(m[1])
			if err != nil || minor > maxMinor {
				return fail("minor %q out of range", m[1])
			}
			if seen[minor] {
				return fail("minor %d listed twice", minor)
			}
			seen[minor] = true
			st, err := parseDeviceLine(minor, m[2], m[3])
			if err != nil {
				return fail("%v", err)
			}
			p.Devices = append(p.Devices, st)
			cur = &p.Devices[len(p.Devices)-1]
			continue
		}
		indented := line[0] == ' ' || line[0] == '\t'
		if cur == nil {
			if indented {
				return fail("device details %q before any device line", strings.TrimSpace(line))
			}
			continue // build tag, GIT-hash, Transports (DRBD 9) ...
		}
		if !indented {
			return fail("unexpected line %q", line)
		}
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "ns:"):
			if err := parseCounters(cur, trimmed); err != nil {
				return fail("%v", err)
			}
		default:
			// The progress bar and finish estimate; proc_details lines.
			if m := progressRE.FindStringSubmatch(trimmed); m != nil {
				whole, err1 := atoiSmall(m[1])
				tenth, err2 := atoiSmall(m[2])
				if err1 != nil || err2 != nil || whole > 100 || whole == 100 && tenth > 0 {
					return fail("bad sync percentage in %q", trimmed)
				}
				cur.SyncPercent = float64(whole) + float64(tenth)/10
			}
			if m := finishRE.FindStringSubmatch(trimmed); m != nil {
				h, err1 := atoiSmall(m[1])
				mi, err2 := atoiSmall(m[2])
				s, err3 := atoiSmall(m[3])
				if err1 != nil || err2 != nil || err3 != nil || h > 1<<20 {
					return fail("bad finish estimate in %q", trimmed)
				}
				cur.SyncRemaining = time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(s)*time.Second
			}
		}
	}
	if err := sc.Err(); err != nil {
		return Proc{}, fmt.Errorf("read /proc/drbd: %w", err)
	}
	if !sawVersion {
		return Proc{}, fmt.Errorf("parse /proc/drbd: no version line")
	}
	return p, nil
}

// parseDeviceLine parses what follows " 0: cs:", e.g.
// "Connected" + " ro:Primary/Secondary ds:UpToDate/UpToDate C r-----".
func parseDeviceLine(minor int, cs, rest string) (Status, error) {
	st := Status{Minor: minor}
	if cs == "Unconfigured" {
		if strings.TrimSpace(rest) != "" {
			return Status{}, fmt.Errorf("minor %d: unexpected %q after cs:Unconfigured", minor, strings.TrimSpace(rest))
		}
		st.Connection = ConnUnconfigured
		return st, nil
	}
	var err error
	if st.Connection, err = ParseConnState(cs); err != nil {
		return Status{}, fmt.Errorf("minor %d: %w", minor, err)
	}
	fields := strings.Fields(rest)
	if len(fields) < 2 || !strings.HasPrefix(fields[0], "ro:") || !strings.HasPrefix(fields[1], "ds:") {
		return Status{}, fmt.Errorf("minor %d: want \"ro:LOCAL/PEER ds:LOCAL/PEER\" after cs:%s, got %q", minor, cs, strings.TrimSpace(rest))
	}
	local, peer, ok := strings.Cut(strings.TrimPrefix(fields[0], "ro:"), "/")
	if !ok {
		return Status{}, fmt.Errorf("minor %d: roles %q: want LOCAL/PEER", minor, fields[0])
	}
	if st.Role, err = ParseRole(local); err != nil {
		return Status{}, fmt.Errorf("minor %d: %w", minor, err)
	}
	if st.PeerRole, err = ParseRole(peer); err != nil {
		return Status{}, fmt.Errorf("minor %d: %w", minor, err)
	}
	local, peer, ok = strings.Cut(strings.TrimPrefix(fields[1], "ds:"), "/")
	if !ok {
		return Status{}, fmt.Errorf("minor %d: disk states %q: want LOCAL/PEER", minor, fields[1])
	}
	if st.Disk, err = ParseDiskState(local); err != nil {
		return Status{}, fmt.Errorf("minor %d: %w", minor, err)
	}
	if st.PeerDisk, err = ParseDiskState(peer); err != nil {
		return Status{}, fmt.Errorf("minor %d: %w", minor, err)
	}
	rest2 := fields[2:]
	if len(rest2) == 2 {
		switch rest2[0] {
		case "A", "B", "C":
			st.Protocol = rest2[0]
		default:
			return Status{}, fmt.Errorf("minor %d: protocol %q: want A, B or C", minor, rest2[0])
		}
		rest2 = rest2[1:]
	}
	if len(rest2) != 1 || len(rest2[0]) != 6 {
		return Status{}, fmt.Errorf("minor %d: want a protocol letter and six flags (r-----), got %q", minor, strings.Join(fields[2:], " "))
	}
	flags := rest2[0]
	switch flags[0] {
	case 's':
		st.Suspended = true
	case 'r':
	default:
		return Status{}, fmt.Errorf("minor %d: flags %q: want r or s first", minor, flags)
	}
	st.ResyncSuspended = flags[1] == 'a' || flags[2] == 'p' || flags[3] == 'u'
	return st, nil
}

// parseCounters reads the "ns:... oos:N" line; only oos (KiB out of sync)
// goes into Status, but every field must be a number (wo: is a letter).
func parseCounters(st *Status, line string) error {
	for _, f := range strings.Fields(line) {
		k, v, ok := strings.Cut(f, ":")
		if !ok {
			return fmt.Errorf("counter %q: want key:value", f)
		}
		if k == "wo" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("counter %s: %w", k, err)
		}
		if k == "oos" {
			if n < 0 || n > 1<<52 {
				return fmt.Errorf("counter oos %d out of range", n)
			}
			st.OutOfSync = n * 1024
		}
	}
	return nil
}

// atoiSmall parses a short decimal number without sign.
func atoiSmall(s string) (int, error) {
	if s == "" || len(s) > 9 {
		return 0, fmt.Errorf("number %q out of range", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad number %q", s)
	}
	return n, nil
}
