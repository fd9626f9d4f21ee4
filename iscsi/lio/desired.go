package lio

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/sand-appliance/sand/iscsi"
)

// The LIO names sand uses.
const (
	// fileioHBA is the one HBA that holds sand's backstores. Apply owns
	// it: backstores in it that the group does not ask for are removed.
	fileioHBA = "fileio_0"
	// tpgName is the one target portal group of every target.
	tpgName = "tpgt_1"
	// mappedLink names the symlink inside acls/<iqn>/lun_N that points
	// at the TPG's lun_N (the kernel accepts any name).
	mappedLink = "lun"
)

// maxBackstoreName bounds backstore names: configfs takes 255 bytes, but
// they show up in logs and in `targetcli ls`.
const maxBackstoreName = 64

// wantBackstore is one fileio backstore the group needs.
type wantBackstore struct {
	name   string
	path   string
	block  bool  // path is a block device: the kernel sizes it itself
	size   int64 // fd_dev_size for a regular file
	serial string
	usedBy string // "iqn LUN n", for messages
	// aptpl are the persistent reservations (APTPL) recorded for this
	// device in the dbroot, restored when the backstore is created.
	aptpl []string
}

// wantTarget is one iSCSI target the group needs.
type wantTarget struct {
	iqn     string
	alias   string
	luns    map[int]string // LUN number -> backstore name
	acls    []string       // initiator IQNs, sorted
	chap    *iscsi.CHAP
	mutual  *iscsi.CHAP
	aclSet  map[string]bool
	lunNums []int // sorted
}

// desired is the configfs state a TargetGroup asks for.
type desired struct {
	dbroot     string // "" leaves the kernel's dbroot alone
	portals    []string
	portalSet  map[string]bool
	backstores map[string]*wantBackstore
	targets    map[string]*wantTarget
}

// newDesired validates tg and derives the configfs state from it. isBlock
// says whether a backing path is a block device (and fails for a missing
// one).
func newDesired(tg iscsi.TargetGroup, dbroot string, isBlock func(string) (bool, error)) (*desired, error) {
	w := &desired{
		dbroot:     dbroot,
		portalSet:  map[string]bool{},
		backstores: map[string]*wantBackstore{},
		targets:    map[string]*wantTarget{},
	}
	if dbroot != "" && !path.IsAbs(dbroot) {
		return nil, fmt.Errorf("dbroot %q is not an absolute path", dbroot)
	}
	for _, p := range tg.Portals {
		np, err := portalName(p)
		if err != nil {
			return nil, err
		}
		if !w.portalSet[np] {
			w.portalSet[np] = true
			w.portals = append(w.portals, np)
		}
	}
	sort.Strings(w.portals)
	if len(tg.Targets) > 0 && len(w.portals) == 0 {
		return nil, fmt.Errorf("target group has %d targets but no portal: a target without a portal cannot be reached", len(tg.Targets))
	}
	byPath := map[string]string{} // backing path -> backstore name
	for _, t := range tg.Targets {
		if err := iscsi.ValidateIQN(t.IQN); err != nil {
			return nil, fmt.Errorf("target: %w", err)
		}
		if _, dup := w.targets[t.IQN]; dup {
			return nil, fmt.Errorf("target %s is listed twice", t.IQN)
		}
		wt := &wantTarget{iqn: t.IQN, alias: t.Alias, luns: map[int]string{}, aclSet: map[string]bool{}}
		if strings.ContainsAny(t.Alias, "\n\x00") {
			return nil, fmt.Errorf("target %s: alias %q has a newline or NUL", t.IQN, t.Alias)
		}
		if err := validateCHAP(t.IQN, t.CHAP, t.MutualCHAP); err != nil {
			return nil, err
		}
		wt.chap, wt.mutual = t.CHAP, t.MutualCHAP
		for _, ini := range t.Initiators {
			if err := iscsi.ValidateIQN(ini); err != nil {
				return nil, fmt.Errorf("target %s: initiator: %w", t.IQN, err)
			}
			if !wt.aclSet[ini] {
				wt.aclSet[ini] = true
				wt.acls = append(wt.acls, ini)
			}
		}
		sort.Strings(wt.acls)
		for _, lu := range t.LUNs {
			where := fmt.Sprintf("%s LUN %d", t.IQN, lu.Number)
			if lu.Number < 0 {
				return nil, fmt.Errorf("%s: LUN numbers start at 0", where)
			}
			if _, dup := wt.luns[lu.Number]; dup {
				return nil, fmt.Errorf("%s: LUN number used twice", where)
			}
			wb, err := newWantBackstore(lu, where, isBlock)
			if err != nil {
				return nil, err
			}
			if other, ok := w.backstores[wb.name]; ok {
				if other.path != wb.path || other.serial != wb.serial || other.size != wb.size {
					return nil, fmt.Errorf("%s and %s both need LIO backstore %q but differ in path, serial or size", other.usedBy, where, wb.name)
				}
			} else {
				if name, ok := byPath[wb.path]; ok {
					return nil, fmt.Errorf("%s: %s is already exported as backstore %q: two backstores on one device would be two writers", where, wb.path, name)
				}
				byPath[wb.path] = wb.name
				w.backstores[wb.name] = wb
			}
			wt.luns[lu.Number] = wb.name
			wt.lunNums = append(wt.lunNums, lu.Number)
		}
		sort.Ints(wt.lunNums)
		w.targets[t.IQN] = wt
	}
	return w, nil
}

func newWantBackstore(lu iscsi.LogicalUnit, where string, isBlock func(string) (bool, error)) (*wantBackstore, error) {
	switch {
	case !path.IsAbs(lu.Path):
		return nil, fmt.Errorf("%s: backing path %q is not absolute", where, lu.Path)
	case strings.ContainsAny(lu.Path, ",\n\x00"):
		// fd_set_configfs_dev_params splits the control string at
		// ',' and '\n'.
		return nil, fmt.Errorf("%s: backing path %q has a comma or newline, which LIO's control file cannot carry", where, lu.Path)
	case lu.Type != "" && lu.Type != iscsi.FileIO && lu.Type != iscsi.BlockIO:
		return nil, fmt.Errorf("%s: unknown IO type %q", where, lu.Type)
	}
	if err := iscsi.ValidateSerial(lu.Serial); err != nil {
		return nil, fmt.Errorf("%s: %w (both boxes must present one identity)", where, err)
	}
	if lu.NAA != "" && !strings.EqualFold(lu.NAA, iscsi.NAAFromSerial(lu.Serial)) {
		return nil, fmt.Errorf("%s: NAA %s does not match serial %q: LIO would present %s", where, lu.NAA, lu.Serial, iscsi.NAAFromSerial(lu.Serial))
	}
	block, err := isBlock(lu.Path)
	if err != nil {
		return nil, fmt.Errorf("%s: backing store: %w", where, err)
	}
	wb := &wantBackstore{name: backstoreName(lu), path: lu.Path, block: block, serial: lu.Serial, usedBy: where}
	if !block {
		if lu.Size <= 0 {
			return nil, fmt.Errorf("%s: %s is a regular file and LIO needs its size (fd_dev_size), got %d", where, lu.Path, lu.Size)
		}
		wb.size = lu.Size
	}
	return wb, nil
}

// validateCHAP checks what LIO will be given for one target.
func validateCHAP(iqn string, chap, mutual *iscsi.CHAP) error {
	if mutual != nil && chap == nil {
		return fmt.Errorf("target %s: mutual CHAP needs one-way CHAP too (the initiator authenticates first)", iqn)
	}
	for _, c := range []*iscsi.CHAP{chap, mutual} {
		if c == nil {
			continue
		}
		if err := c.Validate(); err != nil {
			return fmt.Errorf("target %s: %w", iqn, err)
		}
		if c.User == "NULL" || c.Secret == "NULL" {
			// LIO's auth attributes read "NULL" as "unset".
			return fmt.Errorf("target %s: CHAP user or secret may not be the word NULL", iqn)
		}
	}
	return nil
}

// backstoreName is the configfs name of a LUN's backstore: the registry
// Name when it is a safe directory name, else a cleaned name with a hash
// of the original, or a hash of the path when there is no Name. The name
// must be stable: both boxes and every Apply must derive the same one.
func backstoreName(lu iscsi.LogicalUnit) string {
	if lu.Name == "" {
		return "lun-" + shortHash(lu.Path)
	}
	var b strings.Builder
	for _, r := range lu.Name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	clean := b.String()
	if clean == lu.Name && len(clean) <= maxBackstoreName && !strings.HasPrefix(clean, ".") {
		return clean
	}
	clean = strings.TrimLeft(clean, ".")
	if max := maxBackstoreName - 13; len(clean) > max {
		clean = clean[:max]
	}
	return clean + "-" + shortHash(lu.Name)
}

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:6])
}

// portalName turns "ip:port", "[ipv6]:port" or a bare IP into the np
// directory name LIO parses (lio_target_call_addnptotpg: IPv6 in
// brackets, then ":port").
func portalName(p string) (string, error) {
	host, port, err := net.SplitHostPort(p)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(p, "["), "]"), strconv.Itoa(iscsi.DefaultPort)
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return "", fmt.Errorf("portal %q: %q is not an IP address", p, host)
	}
	if addr.Zone() != "" {
		return "", fmt.Errorf("portal %q: zoned IPv6 addresses are not supported", p)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", fmt.Errorf("portal %q: bad port %q", p, port)
	}
	addr = addr.Unmap()
	if addr.Is4() {
		return fmt.Sprintf("%s:%d", addr, n), nil
	}
	return fmt.Sprintf("[%s]:%d", addr, n), nil
}
