package lio

import (
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// fakeKernel is an FS over a temporary directory that behaves like LIO's
// configfs on Linux 6.1 in the ways the driver depends on:
//
//   - mkdir of a known object creates the attribute files and default
//     groups the kernel creates (target_core_configfs.c,
//     target_core_fabric_configfs.c, iscsi_target_configfs.c); mkdir
//     anywhere else fails with EPERM;
//   - attributes are only written, never created or removed; write-only
//     ones (control) cannot be read, read-only ones cannot be written;
//   - a backstore enables only with fd_dev_name (and fd_dev_size for a
//     regular file), once (EEXIST after), and its serial cannot change
//     while a LUN exports it (EINVAL);
//   - a TPG LUN links only to an enabled backstore (ENODEV), a mapped LUN
//     only to a LUN of its own TPG (EINVAL);
//   - rmdir removes an object with its kernel-made contents, refuses
//     default groups and attribute files (EPERM), objects holding user
//     objects or links (ENOTEMPTY) and objects something links to (EBUSY);
//   - dbroot is refused once the iSCSI fabric has registered (EINVAL);
//   - readlink answers with a relative path, as configfs does.
//
// Every change is recorded in ops, the golden transcript.
type fakeKernel struct {
	t       *testing.T
	root    string
	osfs    *OSFS
	ops     []string
	objects map[string]string // object path -> kind
	devs    map[string]*fakeDev
	blocks  map[string]bool // backing paths that are block devices
	fail    map[string]error
	// fabricLoaded: iscsi_target_mod has registered (target_core
	// refuses a new dbroot from then on).
	fabricLoaded bool
	// mangleSerial, when set, changes what vpd_unit_serial stores.
	mangleSerial func(string) string
	// tpgDefaults overrides the attributes a new TPG starts with (a
	// kernel whose defaults differ from the ones sand relies on).
	tpgDefaults map[string]string
}

type fakeDev struct {
	path             string
	size             int64
	hasPath, hasSize bool
	buffered, async  bool
	enabled          bool
	serial           string
	exports          int
	aptpl            []string // registrations restored through res_aptpl_metadata
}

// newFakeKernel returns configfs as it looks with target_core_mod loaded
// and nothing configured.
func newFakeKernel(t *testing.T) *fakeKernel {
	t.Helper()
	root := t.TempDir()
	k := &fakeKernel{
		t: t, root: root, osfs: NewOSFS(root),
		objects: map[string]string{}, devs: map[string]*fakeDev{},
		blocks: map[string]bool{}, fail: map[string]error{},
	}
	k.mkGroups("", "core", "core/alua", "core/alua/lu_gps", "core/alua/lu_gps/default_lu_gp")
	k.mkAttrs("", map[string]string{"version": "Target Engine Core ConfigFS Infrastructure v5.0 on Linux/x86_64 on 6.1.0-28-amd64\n", "dbroot": "/var/target\n"})
	k.mkAttrs("core/alua/lu_gps/default_lu_gp", map[string]string{"lu_gp_id": "0\n", "members": ""})
	return k
}

func (k *fakeKernel) abs(name string) string { return filepath.Join(k.root, filepath.FromSlash(name)) }

func (k *fakeKernel) mkGroups(base string, dirs ...string) {
	for _, d := range dirs {
		if err := os.MkdirAll(k.abs(path.Join(base, d)), 0o755); err != nil {
			k.t.Fatal(err)
		}
	}
}

func (k *fakeKernel) mkAttrs(dir string, attrs map[string]string) {
	for name, v := range attrs {
		if err := os.WriteFile(k.abs(path.Join(dir, name)), []byte(v), 0o644); err != nil {
			k.t.Fatal(err)
		}
	}
}

func (k *fakeKernel) set(name, v string) {
	if err := os.WriteFile(k.abs(name), []byte(v), 0o644); err != nil {
		k.t.Fatal(err)
	}
}

// tamper changes an attribute behind the driver's back (a test's "the
// kernel says something else now").
func (k *fakeKernel) tamper(name, v string) { k.set(name, v) }

func (k *fakeKernel) record(format string, args ...any) {
	k.ops = append(k.ops, fmt.Sprintf(format, args...))
}

func (k *fakeKernel) injected(op, name string) error {
	if err, ok := k.fail[op+" "+name]; ok {
		return &fs.PathError{Op: op, Path: name, Err: err}
	}
	return nil
}

func perr(op, name string, err error) error { return &fs.PathError{Op: op, Path: name, Err: err} }

var (
	lunDirRe = regexp.MustCompile(`^lun_[0-9]+$`)
	tpgtRe   = regexp.MustCompile(`^tpgt_[0-9]+$`)
)

// Mkdir implements FS.
func (k *fakeKernel) Mkdir(name string) error {
	if err := k.injected("mkdir", name); err != nil {
		return err
	}
	if _, err := os.Lstat(k.abs(path.Dir(name))); err != nil {
		return perr("mkdir", name, syscall.ENOENT)
	}
	if _, err := os.Lstat(k.abs(name)); err == nil {
		return perr("mkdir", name, syscall.EEXIST)
	}
	s := strings.Split(name, "/")
	parent := k.objects[path.Dir(name)]
	var kind string
	switch {
	case len(s) == 2 && s[0] == "core" && hbaPattern.MatchString(s[1]):
		kind = "hba"
	case len(s) == 3 && s[0] == "core" && parent == "hba":
		kind = "device"
	case len(s) == 1 && s[0] == "iscsi":
		kind = "fabric"
	case len(s) == 2 && parent == "fabric":
		if !strings.HasPrefix(s[1], "iqn.") && !strings.HasPrefix(s[1], "eui.") && !strings.HasPrefix(s[1], "naa.") {
			return perr("mkdir", name, syscall.EINVAL)
		}
		kind = "wwn"
	case len(s) == 3 && parent == "wwn":
		if !tpgtRe.MatchString(s[2]) {
			return perr("mkdir", name, syscall.EINVAL)
		}
		kind = "tpg"
	case len(s) == 5 && k.objects[path.Join(s[:3]...)] == "tpg" && s[3] == "lun":
		if !lunDirRe.MatchString(s[4]) {
			return perr("mkdir", name, syscall.EINVAL)
		}
		kind = "lun"
	case len(s) == 5 && k.objects[path.Join(s[:3]...)] == "tpg" && s[3] == "np":
		if !validNP(s[4]) {
			return perr("mkdir", name, syscall.EINVAL)
		}
		kind = "np"
	case len(s) == 5 && k.objects[path.Join(s[:3]...)] == "tpg" && s[3] == "acls":
		kind = "acl"
	case len(s) == 6 && parent == "acl":
		if !lunDirRe.MatchString(s[5]) {
			return perr("mkdir", name, syscall.EINVAL)
		}
		kind = "mappedlun"
	default:
		return perr("mkdir", name, syscall.EPERM)
	}
	k.mkGroups("", name)
	k.objects[name] = kind
	switch kind {
	case "hba":
		k.mkAttrs(name, map[string]string{"hba_info": "HBA Index: 1 plugin: fileio version: v5.0\n", "hba_mode": "0\n"})
	case "device":
		k.devs[name] = &fakeDev{}
		k.mkGroups(name, "attrib", "pr", "wwn", "alua", "alua/default_tg_pt_gp", "statistics")
		k.mkAttrs(name, map[string]string{"control": "", "alias": "", "udev_path": "", "enable": "0\n", "alua_lu_gp": "LU Group Alias: default_lu_gp\nLU Group ID: 0\n", "lba_map": ""})
		k.mkAttrs(name+"/attrib", map[string]string{"emulate_write_cache": "0\n", "emulate_fua_write": "1\n", "block_size": "512\n", "hw_block_size": "512\n", "queue_depth": "128\n", "emulate_tpu": "0\n"})
		k.mkAttrs(name+"/wwn", map[string]string{"vpd_unit_serial": "T10 VPD Unit Serial Number: \n", "vpd_protocol_identifier": "", "vpd_assoc_logical_unit": ""})
		k.mkAttrs(name+"/pr", map[string]string{"res_type": "SPC3_PERSISTENT_RESERVATIONS\n", "res_holder": "No SPC-3 Reservation holder\n", "res_aptpl_metadata": ""})
		k.renderDev(name)
	case "fabric":
		k.fabricLoaded = true
		k.mkGroups(name, "discovery_auth")
		k.mkAttrs(name, map[string]string{"lio_version": "Datera Inc. iSCSI Target v4.1.0\n"})
		k.mkAttrs(name+"/discovery_auth", map[string]string{"userid": "NULL\n", "password": "NULL\n", "authenticate_target": "0\n", "userid_mutual": "NULL\n", "password_mutual": "NULL\n", "enforce_discovery_auth": "0\n"})
	case "wwn":
		k.mkGroups(name, "fabric_statistics", "fabric_statistics/iscsi_instance", "param")
		k.mkAttrs(name+"/param", map[string]string{"cmd_completion_affinity": "-1\n"})
	case "tpg":
		k.mkGroups(name, "lun", "np", "acls", "attrib", "auth", "param")
		k.mkAttrs(name, map[string]string{"enable": "0\n", "dynamic_sessions": "", "rtpi": "0x1\n"})
		// iscsit_set_default_tpg_attribs: authentication defaults to 1
		// and demo_mode_write_protect to 1.
		attrs := map[string]string{"authentication": "1\n", "login_timeout": "15\n", "netif_timeout": "2\n", "generate_node_acls": "0\n", "default_cmdsn_depth": "64\n", "cache_dynamic_acls": "0\n", "demo_mode_write_protect": "1\n", "prod_mode_write_protect": "0\n", "demo_mode_discovery": "1\n", "default_erl": "0\n"}
		for a, v := range k.tpgDefaults {
			attrs[a] = v + "\n"
		}
		k.mkAttrs(name+"/attrib", attrs)
		k.mkAttrs(name+"/auth", map[string]string{"userid": "\n", "password": "\n", "authenticate_target": "0\n", "userid_mutual": "\n", "password_mutual": "\n"})
		k.mkAttrs(name+"/param", map[string]string{"AuthMethod": "CHAP,None\n", "TargetAlias": "LIO Target\n", "HeaderDigest": "CRC32C,None\n", "MaxConnections": "1\n"})
	case "lun":
		k.mkGroups(name, "statistics")
		k.mkAttrs(name, map[string]string{"alua_tg_pt_gp": "", "alua_tg_pt_offline": "0\n", "alua_tg_pt_status": "None\n", "alua_tg_pt_write_md": "0\n"})
	case "np":
		k.mkAttrs(name, map[string]string{"iser": "0\n", "cxgbit": "0\n"})
	case "acl":
		k.mkGroups(name, "attrib", "auth", "param", "fabric_statistics", "fabric_statistics/iscsi_sess_stats")
		k.mkAttrs(name, map[string]string{"info": "No active iSCSI Session for Initiator Endpoint: " + s[4] + "\n", "cmdsn_depth": "64\n", "tag": ""})
		k.mkAttrs(name+"/auth", map[string]string{"userid": "\n", "password": "\n", "authenticate_target": "0\n", "userid_mutual": "\n", "password_mutual": "\n"})
		k.mkAttrs(name+"/attrib", map[string]string{"dataout_timeout": "3\n", "default_erl": "0\n"})
	case "mappedlun":
		k.mkGroups(name, "statistics")
		k.mkAttrs(name, map[string]string{"write_protect": "0\n"})
	}
	k.record("mkdir %s", name)
	return nil
}

// validNP follows lio_target_call_addnptotpg: "[v6]:port" or "v4:port".
func validNP(s string) bool {
	var host, port string
	if strings.HasPrefix(s, "[") {
		i := strings.Index(s, "]:")
		if i < 0 {
			return false
		}
		host, port = s[1:i], s[i+2:]
	} else {
		i := strings.LastIndex(s, ":")
		if i < 0 {
			return false
		}
		host, port = s[:i], s[i+1:]
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return false
	}
	_, err := strconv.ParseUint(port, 10, 16)
	return err == nil
}

func (k *fakeKernel) renderDev(name string) {
	d := k.devs[name]
	status := "DEACTIVATED"
	if d.exports > 0 {
		status = "ACTIVATED"
	}
	mode := "O_DSYNC"
	if d.buffered {
		mode = "Buffered-WCE"
	}
	async := 0
	if d.async {
		async = 1
	}
	k.set(name+"/info", fmt.Sprintf("Status: %s  Max Queue Depth: 0  SectorSize: 512  HwMaxSectors: 16384\n        TCM FILEIO ID: 0        File: %s  Size: %d  Mode: %s Async: %d\n", status, d.path, d.size, mode, async))
	en := "0\n"
	if d.enabled {
		en = "1\n"
	}
	k.set(name+"/enable", en)
	k.set(name+"/wwn/vpd_unit_serial", "T10 VPD Unit Serial Number: "+d.serial+"\n")
}

var (
	readOnlyAttrs  = map[string]bool{"info": true, "hba_info": true, "lio_version": true, "dynamic_sessions": true, "authenticate_target": true, "version": true, "hw_block_size": true, "res_type": true, "res_holder": true}
	writeOnlyAttrs = map[string]bool{"control": true}
)

// WriteFile implements FS.
func (k *fakeKernel) WriteFile(name string, data []byte) error {
	if err := k.injected("write", name); err != nil {
		return err
	}
	fi, err := os.Lstat(k.abs(name))
	switch {
	case err != nil:
		return perr("write", name, syscall.ENOENT) // attributes are never created
	case fi.IsDir():
		return perr("write", name, syscall.EISDIR)
	case readOnlyAttrs[path.Base(name)]:
		return perr("write", name, syscall.EACCES)
	}
	v := string(data)
	dir, base := path.Dir(name), path.Base(name)
	devName := dir
	if b := path.Base(dir); b == "wwn" || b == "attrib" || b == "pr" {
		devName = path.Dir(dir)
	}
	dev := k.devs[devName]
	switch {
	case name == "dbroot":
		if k.fabricLoaded {
			return perr("write", name, syscall.EINVAL) // "db_root: cannot be changed: target drivers registered"
		}
		k.set(name, strings.TrimSuffix(v, "\n")+"\n")
	case dev != nil && base == "control":
		for _, tok := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == '\n' }) {
			key, val, _ := strings.Cut(tok, "=")
			switch key {
			case "fd_dev_name":
				dev.path, dev.hasPath = val, true
			case "fd_dev_size":
				n, err := strconv.ParseInt(val, 0, 64)
				if err != nil {
					return perr("write", name, syscall.EINVAL)
				}
				dev.size, dev.hasSize = n, true
			case "fd_buffered_io":
				dev.buffered = true
			case "fd_async_io":
				dev.async = true
			}
		}
		k.renderDev(devName)
	case dev != nil && base == "enable":
		if !strings.Contains(v, "1") {
			return perr("write", name, syscall.EINVAL)
		}
		if dev.enabled {
			return perr("write", name, syscall.EEXIST)
		}
		if !dev.hasPath || (!k.blocks[dev.path] && !dev.hasSize) {
			return perr("write", name, syscall.EINVAL)
		}
		dev.enabled = true
		k.renderDev(devName)
	case dev != nil && base == "vpd_unit_serial":
		if dev.exports > 0 {
			return perr("write", name, syscall.EINVAL) // "Unable to set VPD Unit Serial while active exports exist"
		}
		s := strings.TrimSpace(v)
		if k.mangleSerial != nil {
			s = k.mangleSerial(s)
		}
		dev.serial = s
		k.renderDev(devName)
	case dev != nil && base == "res_aptpl_metadata":
		// target_pr_res_aptpl_metadata_store: not while exported, and
		// initiator_node, target_node and sa_res_key are required.
		if dev.exports > 0 || !strings.Contains(v, "initiator_node=") || !strings.Contains(v, "target_node=") || !strings.Contains(v, "sa_res_key=") {
			return perr("write", name, syscall.EINVAL)
		}
		dev.aptpl = append(dev.aptpl, v)
	case k.objects[dir] == "tpg" && base == "enable":
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return perr("write", name, syscall.EINVAL)
		}
		k.set(name, map[bool]string{true: "1\n", false: "0\n"}[b])
	default:
		if !strings.HasSuffix(v, "\n") {
			v += "\n"
		}
		k.set(name, v)
	}
	k.record("write %s %s", name, string(data))
	return nil
}

// ReadFile implements FS.
func (k *fakeKernel) ReadFile(name string) ([]byte, error) {
	if writeOnlyAttrs[path.Base(name)] {
		return nil, perr("read", name, syscall.EACCES)
	}
	fi, err := os.Lstat(k.abs(name))
	if err != nil {
		return nil, perr("read", name, syscall.ENOENT)
	}
	if fi.IsDir() {
		return nil, perr("read", name, syscall.EISDIR)
	}
	return os.ReadFile(k.abs(name))
}

// Symlink implements FS.
func (k *fakeKernel) Symlink(target, name string) error {
	if err := k.injected("symlink", name); err != nil {
		return err
	}
	dir := path.Dir(name)
	switch k.objects[dir] {
	case "lun":
		if k.objects[target] != "device" {
			return perr("symlink", name, syscall.EFAULT)
		}
		if !k.devs[target].enabled {
			return perr("symlink", name, syscall.ENODEV) // "se_device not configured yet, cannot port link"
		}
		if links := k.linksIn(dir); len(links) > 0 {
			return perr("symlink", name, syscall.EEXIST)
		}
	case "mappedlun":
		tpg := path.Join(strings.Split(name, "/")[:3]...)
		if k.objects[target] != "lun" || path.Dir(path.Dir(target)) != tpg || len(k.linksIn(target)) == 0 {
			return perr("symlink", name, syscall.EINVAL)
		}
		if len(k.linksIn(dir)) > 0 {
			return perr("symlink", name, syscall.EEXIST)
		}
	default:
		return perr("symlink", name, syscall.EPERM)
	}
	// configfs answers readlink with a path relative to the link.
	rel, err := filepath.Rel(k.abs(dir), k.abs(target))
	if err != nil {
		k.t.Fatal(err)
	}
	if err := os.Symlink(rel, k.abs(name)); err != nil {
		return err
	}
	if k.objects[dir] == "lun" {
		k.devs[target].exports++
		k.renderDev(target)
	}
	k.record("symlink %s -> %s", name, target)
	return nil
}

func (k *fakeKernel) linksIn(dir string) []string {
	ents, err := os.ReadDir(k.abs(dir))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.Type()&fs.ModeSymlink != 0 {
			out = append(out, path.Join(dir, e.Name()))
		}
	}
	return out
}

// linkTargets lists every symlink in the tree with its target.
func (k *fakeKernel) linkTargets() map[string]string {
	out := map[string]string{}
	_ = filepath.WalkDir(k.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink == 0 {
			return err
		}
		rel, _ := filepath.Rel(k.root, p)
		t, err := k.osfs.Readlink(filepath.ToSlash(rel))
		if err != nil {
			k.t.Fatal(err)
		}
		out[filepath.ToSlash(rel)] = t
		return nil
	})
	return out
}

// Remove implements FS.
func (k *fakeKernel) Remove(name string) error {
	fi, err := os.Lstat(k.abs(name))
	if err != nil {
		return perr("remove", name, syscall.ENOENT)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if err := k.injected("unlink", name); err != nil {
			return err
		}
		target, err := k.osfs.Readlink(name)
		if err != nil {
			k.t.Fatal(err)
		}
		if err := os.Remove(k.abs(name)); err != nil {
			return err
		}
		if d := k.devs[target]; d != nil && k.objects[path.Dir(name)] == "lun" {
			d.exports--
			k.renderDev(target)
		}
		k.record("unlink %s", name)
		return nil
	}
	if err := k.injected("rmdir", name); err != nil {
		return err
	}
	if !fi.IsDir() {
		return perr("remove", name, syscall.EPERM) // attributes go with their object
	}
	kind, ok := k.objects[name]
	if !ok {
		return perr("rmdir", name, syscall.EPERM) // a default group
	}
	for p := range k.objects {
		if strings.HasPrefix(p, name+"/") {
			return perr("rmdir", name, syscall.ENOTEMPTY)
		}
	}
	links := k.linkTargets()
	for l, t := range links {
		if strings.HasPrefix(l, name+"/") {
			return perr("rmdir", name, syscall.ENOTEMPTY)
		}
		if t == name {
			return perr("rmdir", name, syscall.EBUSY)
		}
	}
	if kind == "device" && k.devs[name].exports > 0 {
		return perr("rmdir", name, syscall.EBUSY)
	}
	if err := os.RemoveAll(k.abs(name)); err != nil {
		return err
	}
	delete(k.objects, name)
	delete(k.devs, name)
	k.record("rmdir %s", name)
	return nil
}

// ReadDir implements FS.
func (k *fakeKernel) ReadDir(name string) ([]fs.DirEntry, error) { return k.osfs.ReadDir(name) }

// Readlink implements FS.
func (k *fakeKernel) Readlink(name string) (string, error) { return k.osfs.Readlink(name) }

// Exists implements FS.
func (k *fakeKernel) Exists(name string) (bool, error) { return k.osfs.Exists(name) }

// takeOps returns the transcript so far and starts a new one.
func (k *fakeKernel) takeOps() []string {
	ops := k.ops
	k.ops = nil
	return ops
}

// fakeHost is Host for tests: a set of existing backing paths and the
// directories made, recorded into the kernel's transcript.
type fakeHost struct {
	k       *fakeKernel
	files   map[string]bool // path -> is a block device
	dirs    map[string]bool
	content map[string]string // dbroot files
	fail    error
}

func newFakeHost(k *fakeKernel) *fakeHost {
	return &fakeHost{k: k, files: map[string]bool{}, dirs: map[string]bool{}, content: map[string]string{}}
}

func (h *fakeHost) ReadFile(p string) ([]byte, error) {
	c, ok := h.content[p]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: p, Err: syscall.ENOENT}
	}
	return []byte(c), nil
}

// add makes a backing store exist.
func (h *fakeHost) add(p string, block bool) {
	h.files[p] = block
	h.k.blocks[p] = block
}

func (h *fakeHost) IsBlockDevice(p string) (bool, error) {
	block, ok := h.files[p]
	if !ok {
		return false, &fs.PathError{Op: "stat", Path: p, Err: syscall.ENOENT}
	}
	return block, nil
}

func (h *fakeHost) MkdirAll(p string) error {
	if h.fail != nil {
		return &fs.PathError{Op: "mkdir", Path: p, Err: h.fail}
	}
	if !h.dirs[p] {
		h.dirs[p] = true
		h.k.record("host mkdir -p %s", p)
	}
	return nil
}
