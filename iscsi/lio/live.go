package lio

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// hbaPattern matches HBA directories under core/ ("fileio_0", "iblock_3",
// "rd_mcp_1"); core/alua is a default group, not an HBA.
var hbaPattern = regexp.MustCompile(`^[a-z_]+_[0-9]+$`)

// live is what configfs holds now.
type live struct {
	loaded     bool   // core/ exists: target_core_mod is loaded
	dbroot     string // "" on kernels without the dbroot attribute
	hbas       []string
	backstores map[string]*liveBackstore // "hba/name"
	fabric     bool                      // iscsi/ exists: iscsi_target_mod is loaded
	targets    map[string]*liveTarget
}

type liveBackstore struct {
	hba, name  string
	path       string
	size       int64
	serial     string
	enabled    bool
	exported   bool // info says ACTIVATED: some fabric LUN links to it
	buffered   bool // opened without O_DSYNC (fd_buffered_io=1)
	async      bool // fd_async_io=1
	writeCache string
}

func (b *liveBackstore) key() string { return b.hba + "/" + b.name }

type liveTarget struct {
	iqn  string
	tpgs map[string]*liveTPG
}

type liveTPG struct {
	enabled string
	attrib  map[string]string
	alias   string
	luns    map[string]*liveLUN // dir name ("lun_0")
	portals map[string]bool
	acls    map[string]*liveACL
}

type liveLUN struct {
	links []liveLink
}

type liveLink struct {
	name   string
	target string // root-relative
}

type liveACL struct {
	auth   map[string]string
	mapped map[string]*liveMapped // dir name ("lun_0")
}

type liveMapped struct {
	links        []liveLink
	writeProtect string
}

// tpgAttribs are the TPG attributes sand sets (on a new TPG they are
// LIO's defaults: checked, not written), in the order it writes them, with
// what a wrong value would mean. generate_node_acls=0 keeps LIO out of "demo mode" (any initiator,
// dynamic ACLs); demo_mode_write_protect=1 makes any dynamic ACL that still
// appears read-only; prod_mode_write_protect=0 makes explicit ACLs
// read-write. authentication is handled on its own (see planner.updateTPG).
var tpgAttribs = []struct{ name, value, why string }{
	{"generate_node_acls", "0", "any initiator could log in"},
	{"cache_dynamic_acls", "0", "no ACLs made on the fly"},
	{"demo_mode_write_protect", "1", "read-only in demo mode"},
	{"prod_mode_write_protect", "0", "the LUNs would be read-only"},
}

// authAttribs are an ACL's CHAP attributes.
var authAttribs = []string{"userid", "password", "userid_mutual", "password_mutual"}

// reader reads configfs, wrapping errors with the path.
type reader struct{ fs FS }

func (r reader) read(name string) (string, error) {
	b, err := r.fs.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", name, bareErr(err))
	}
	return strings.TrimSpace(string(b)), nil
}

// readOpt reads an attribute that older kernels or other backends lack.
func (r reader) readOpt(name string) (string, error) {
	s, err := r.read(name)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return s, err
}

func (r reader) dirs(name string) ([]string, error) {
	ents, err := r.fs.ReadDir(name)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", name, bareErr(err))
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out, nil
}

func (r reader) links(dir string) ([]liveLink, error) {
	ents, err := r.fs.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read directory %s: %w", dir, bareErr(err))
	}
	var out []liveLink
	for _, e := range ents {
		if e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		t, err := r.fs.Readlink(join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("readlink %s: %w", join(dir, e.Name()), bareErr(err))
		}
		out = append(out, liveLink{name: e.Name(), target: t})
	}
	return out, nil
}

func (r reader) exists(name string) (bool, error) {
	ok, err := r.fs.Exists(name)
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", name, bareErr(err))
	}
	return ok, nil
}

// readLive reads the whole tree sand cares about.
func readLive(f FS) (*live, error) {
	r := reader{f}
	l := &live{backstores: map[string]*liveBackstore{}, targets: map[string]*liveTarget{}}
	ok, err := r.exists("core")
	if err != nil || !ok {
		return l, err
	}
	l.loaded = true
	if l.dbroot, err = r.readOpt("dbroot"); err != nil {
		return nil, err
	}
	hbas, err := r.dirs("core")
	if err != nil {
		return nil, err
	}
	for _, hba := range hbas {
		if !hbaPattern.MatchString(hba) {
			continue
		}
		l.hbas = append(l.hbas, hba)
		names, err := r.dirs(join("core", hba))
		if err != nil {
			return nil, err
		}
		for _, name := range names {
			b, err := readBackstore(r, hba, name)
			if err != nil {
				return nil, err
			}
			l.backstores[b.key()] = b
		}
	}
	if l.fabric, err = r.exists("iscsi"); err != nil || !l.fabric {
		return l, err
	}
	wwns, err := r.dirs("iscsi")
	if err != nil {
		return nil, err
	}
	for _, wwn := range wwns {
		if wwn == "discovery_auth" {
			continue
		}
		t := &liveTarget{iqn: wwn, tpgs: map[string]*liveTPG{}}
		tpgs, err := r.dirs(join("iscsi", wwn))
		if err != nil {
			return nil, err
		}
		for _, tpg := range tpgs {
			if !strings.HasPrefix(tpg, "tpgt_") {
				continue // fabric_statistics, param
			}
			lt, err := readTPG(r, join("iscsi", wwn, tpg))
			if err != nil {
				return nil, err
			}
			t.tpgs[tpg] = lt
		}
		l.targets[wwn] = t
	}
	return l, nil
}

func readBackstore(r reader, hba, name string) (*liveBackstore, error) {
	p := join("core", hba, name)
	b := &liveBackstore{hba: hba, name: name}
	en, err := r.read(join(p, "enable"))
	if err != nil {
		return nil, err
	}
	b.enabled = en == "1"
	if b.path, err = r.readOpt(join(p, "udev_path")); err != nil {
		return nil, err
	}
	info, err := r.read(join(p, "info"))
	if err != nil {
		return nil, err
	}
	fi := parseDeviceInfo(info)
	b.exported, b.buffered, b.async, b.size = fi.exported, fi.buffered, fi.async, fi.size
	if b.path == "" {
		b.path = fi.file
	}
	serial, err := r.readOpt(join(p, "wwn", "vpd_unit_serial"))
	if err != nil {
		return nil, err
	}
	b.serial = parseSerial(serial)
	if b.writeCache, err = r.readOpt(join(p, "attrib", "emulate_write_cache")); err != nil {
		return nil, err
	}
	return b, nil
}

func readTPG(r reader, p string) (*liveTPG, error) {
	t := &liveTPG{attrib: map[string]string{}, luns: map[string]*liveLUN{}, portals: map[string]bool{}, acls: map[string]*liveACL{}}
	var err error
	if t.enabled, err = r.read(join(p, "enable")); err != nil {
		return nil, err
	}
	for _, a := range tpgAttribs {
		if t.attrib[a.name], err = r.read(join(p, "attrib", a.name)); err != nil {
			return nil, err
		}
	}
	if t.attrib["authentication"], err = r.read(join(p, "attrib", "authentication")); err != nil {
		return nil, err
	}
	if t.alias, err = r.readOpt(join(p, "param", "TargetAlias")); err != nil {
		return nil, err
	}
	luns, err := r.dirs(join(p, "lun"))
	if err != nil {
		return nil, err
	}
	for _, d := range luns {
		links, err := r.links(join(p, "lun", d))
		if err != nil {
			return nil, err
		}
		t.luns[d] = &liveLUN{links: links}
	}
	nps, err := r.dirs(join(p, "np"))
	if err != nil {
		return nil, err
	}
	for _, np := range nps {
		t.portals[np] = true
	}
	acls, err := r.dirs(join(p, "acls"))
	if err != nil {
		return nil, err
	}
	for _, acl := range acls {
		a, err := readACL(r, join(p, "acls", acl))
		if err != nil {
			return nil, err
		}
		t.acls[acl] = a
	}
	return t, nil
}

func readACL(r reader, p string) (*liveACL, error) {
	a := &liveACL{auth: map[string]string{}, mapped: map[string]*liveMapped{}}
	for _, name := range authAttribs {
		v, err := r.read(join(p, "auth", name))
		if err != nil {
			return nil, err
		}
		if v == "NULL" {
			v = ""
		}
		a.auth[name] = v
	}
	dirs, err := r.dirs(p)
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		if !strings.HasPrefix(d, "lun_") {
			continue // attrib, auth, param, fabric_statistics
		}
		links, err := r.links(join(p, d))
		if err != nil {
			return nil, err
		}
		wp, err := r.read(join(p, d, "write_protect"))
		if err != nil {
			return nil, err
		}
		a.mapped[d] = &liveMapped{links: links, writeProtect: wp}
	}
	return a, nil
}

// deviceInfo is what a backstore's info attribute says. For fileio
// (transport_dump_dev_state + fd_show_configfs_dev_params):
//
//	Status: ACTIVATED  Max Queue Depth: 128  SectorSize: 512  HwMaxSectors: 16384
//	        TCM FILEIO ID: 0        File: /dev/drbd0  Size: 0  Mode: O_DSYNC Async: 0
type deviceInfo struct {
	exported bool
	file     string
	size     int64
	buffered bool
	async    bool
}

func parseDeviceInfo(info string) deviceInfo {
	var d deviceInfo
	f := strings.Fields(info)
	for i := 0; i+1 < len(f); i++ {
		switch f[i] {
		case "Status:":
			d.exported = f[i+1] == "ACTIVATED"
		case "File:":
			d.file = f[i+1]
		case "Size:":
			d.size, _ = strconv.ParseInt(f[i+1], 10, 64)
		case "Mode:":
			d.buffered = f[i+1] != "O_DSYNC"
		case "Async:":
			d.async = f[i+1] != "0"
		}
	}
	return d
}

// parseSerial strips the label target_wwn_vpd_unit_serial_show puts in
// front of the serial.
func parseSerial(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "Number:"); i >= 0 {
		return strings.TrimSpace(s[i+len("Number:"):])
	}
	return s
}

// lunNumber parses the name of a TPG or mapped LUN directory, accepting only
// the form sand writes ("lun_7").
func lunNumber(dir string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(dir, "lun_"))
	if err != nil || n < 0 || dir != lunDir(n) {
		return 0, false
	}
	return n, true
}

func lunDir(n int) string { return "lun_" + strconv.Itoa(n) }

// sortedLUNDirs orders LUN directories by number, unparsable ones last.
func sortedLUNDirs[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		a, aok := lunNumber(out[i])
		b, bok := lunNumber(out[j])
		switch {
		case aok && bok:
			return a < b
		case aok != bok:
			return aok
		default:
			return out[i] < out[j]
		}
	})
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// bareErr drops the *fs.PathError wrapper (its absolute path repeats what
// the caller's message says) and keeps the errno, which errors.Is still
// sees.
func bareErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
