package appliance

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/sand-appliance/sand/iscsi"
)

// An import copies data only from paths the admin names (ImportRequest's
// CopyFrom), and only from these places:
//
//   - a block device under /dev (links inside /dev, such as
//     /dev/disk/by-id/... or /dev/VG/LV, are followed);
//   - a regular file under /mnt, /media or /srv (where an admin mounts the
//     old box's disk or keeps image files).
//
// Any other path, and any link that leads out of those places, is refused
// with one message ("not allowed ...") before sand looks at it, so an
// admin learns nothing about files elsewhere: whether they exist, what
// they are. Inside those places sand says what it found (no such file, a
// FIFO, a mounted device): the admin named the path to be read, and /dev
// lists nothing secret.
//
// A path is resolved with openat2 beneath its place (RESOLVE_BENEATH and
// RESOLVE_NO_MAGICLINKS instead of O_NOFOLLOW, which would refuse the
// links /dev is made of) as an O_PATH descriptor, which opens nothing: a
// FIFO, a tape or a watchdog is never opened, and fstat on that
// descriptor says what the path is. Only a regular file or a block device
// that passes the checks is opened, through the descriptor
// (/proc/self/fd), read-only and O_NONBLOCK; a block device also O_EXCL,
// so the kernel refuses one that is mounted, held by DRBD, device-mapper
// or RAID, and nobody mounts it while sand reads it. Block devices are
// refused when they are the box's: DRBD devices and the pair's DRBD
// backing disk, devices with holders (LVM PVs in use, RAID members),
// devices carrying an LVM PV label, mounted devices and swap, any device
// on a disk that holds one of those (the system disk), and the volumes of
// sand's own pool. Regular files are refused inside sand's own state and
// pool directories and when they back a loop device.

// hostView is where the copy-source checks look: the places sand copies
// from and the kernel's view of the box's devices. Tests point it at
// fakes.
type hostView struct {
	dev   string   // block devices are copied from under here: /dev
	files []string // regular files from under these: /mnt, /media, /srv
	sys   string   // sysfs: /sys
	// mountinfo and swaps are /proc/self/mountinfo and /proc/swaps.
	mountinfo, swaps string
	// drbdDisk is the pair's DRBD backing disk ("" for none).
	drbdDisk string
	// owned are sand's own directories: no copy source lies in them.
	owned []string
	// vg is the LVM pool's volume group ("" for the file pool).
	vg string
	// rdev reads a device node's device number without opening it (stat).
	rdev func(path string) (uint64, error)
}

// hostViewOf is the real box's view for the node config.
func hostViewOf(cfg Config) hostView {
	v := hostView{
		dev: "/dev", files: []string{"/mnt", "/media", "/srv"}, sys: "/sys",
		mountinfo: "/proc/self/mountinfo", swaps: "/proc/swaps",
		owned: []string{cfg.StateDir}, rdev: statRdev,
	}
	if cfg.Paired() && cfg.Pair.Storage == "drbd" {
		v.drbdDisk = cfg.Pair.DRBD.Disk
	}
	switch cfg.Pool.Kind {
	case "file":
		v.owned = append(v.owned, cfg.Pool.Dir)
	case "lvm":
		v.vg = cfg.Pool.VG
		v.owned = append(v.owned, "/dev/"+cfg.Pool.VG)
	}
	return v
}

func statRdev(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return 0, fmt.Errorf("%s is not a block device", path)
	}
	return st.Rdev, nil
}

// copySource is one path an import copies from, opened for reading and
// checked.
type copySource struct {
	path  string
	f     *os.File
	size  int64
	block bool
	id    [2]uint64 // device and inode (block devices: 0 and rdev)
}

// sources are an import's copy sources by the path the file names.
type sources map[string]*copySource

func (s sources) close() {
	for k, src := range s {
		src.f.Close()
		delete(s, k)
	}
}

// openSources opens and checks every path of copyFrom, in the file's order;
// on an error it returns the ones opened so far, for the caller to close.
func openSources(v hostView, tg iscsi.TargetGroup, copyFrom []string) (sources, error) {
	srcs := sources{}
	if len(copyFrom) == 0 {
		return srcs, nil
	}
	for _, t := range tg.Targets {
		for _, lu := range t.LUNs {
			if !slices.Contains(copyFrom, lu.Path) {
				continue
			}
			src, err := v.open(lu.Path)
			if err != nil {
				return srcs, fmt.Errorf("%w: target %s Lun %d: %v", ErrInvalid, t.IQN, lu.Number, err)
			}
			for _, other := range srcs {
				if other.id == src.id {
					src.f.Close()
					return srcs, fmt.Errorf("%w: copy_from names %s and %s, which are the same %s: copy it once", ErrInvalid, other.path, src.path, kindOf(src.block))
				}
			}
			srcs[lu.Path] = src
		}
	}
	return srcs, nil
}

func kindOf(block bool) string {
	if block {
		return "device"
	}
	return "file"
}

// errNotAllowed is the one answer for a path outside the places sand
// copies from, whatever is there.
func errNotAllowed(path string) error {
	return fmt.Errorf("copy from %s is not allowed: sand copies only from a block device under /dev or a regular file under /mnt, /media or /srv (mount the old disk there), and follows no link out of those", path)
}

// place returns the directory under which path lies among the places sand
// copies from, and whether it is the block device place.
func (v hostView) place(path string) (root string, block bool, ok bool) {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return "", false, false
	}
	if under(path, v.dev) {
		return v.dev, true, true
	}
	for _, d := range v.files {
		if under(path, d) {
			return d, false, true
		}
	}
	return "", false, false
}

// under reports whether path lies strictly below dir (both clean).
func under(path, dir string) bool {
	return dir != "" && strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// open resolves, checks and opens one copy source (see the comment at the
// top of the file).
func (v hostView) open(path string) (*copySource, error) {
	root, wantBlock, ok := v.place(path)
	if !ok {
		return nil, errNotAllowed(path)
	}
	for _, d := range v.owned {
		if path == d || under(path, d) {
			return nil, fmt.Errorf("copy from %s refused: it is in %s, which is sand's own (its state or its pool's volumes): name the old LUN's device or file", path, d)
		}
	}
	dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, openErr(path, err)
	}
	defer unix.Close(dir)
	rel := strings.TrimPrefix(path, strings.TrimSuffix(root, "/")+"/")
	fd, err := unix.Openat2(dir, rel, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, openErr(path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("copy from %s: %w", path, err)
	}
	src := &copySource{path: path}
	switch mode := st.Mode & unix.S_IFMT; {
	case wantBlock && mode == unix.S_IFBLK:
		src.block, src.id = true, [2]uint64{0, st.Rdev}
		if err := v.checkBlock(path, unix.Major(st.Rdev), unix.Minor(st.Rdev)); err != nil {
			return nil, err
		}
	case !wantBlock && mode == unix.S_IFREG:
		src.id = [2]uint64{st.Dev, st.Ino}
		if err := v.checkFile(path, fd); err != nil {
			return nil, err
		}
	case wantBlock:
		return nil, fmt.Errorf("copy from %s refused: it is %s, and under %s sand copies only block devices", path, describeMode(mode), v.dev)
	default:
		return nil, fmt.Errorf("copy from %s refused: it is %s, and under %s sand copies only regular files", path, describeMode(mode), root)
	}
	flags := unix.O_RDONLY | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC
	if src.block {
		flags |= unix.O_EXCL
	}
	rfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), flags, 0)
	if errors.Is(err, unix.EBUSY) {
		return nil, fmt.Errorf("copy from %s refused: the kernel reports it in use (mounted, under DRBD, LVM or RAID, or opened exclusively by another program): sand copies only devices nothing else uses", path)
	}
	if err != nil {
		return nil, openErr(path, err)
	}
	src.f = os.NewFile(uintptr(rfd), path)
	if err := src.measure(); err != nil {
		src.f.Close()
		return nil, err
	}
	return src, nil
}

// measure reads the source's size and, for a block device, refuses an LVM
// PV label.
func (s *copySource) measure() error {
	size, err := s.f.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("copy from %s: read its size: %w", s.path, err)
	}
	if size <= 0 {
		return fmt.Errorf("copy from %s refused: it is empty", s.path)
	}
	s.size = size
	if !s.block {
		return nil
	}
	head := make([]byte, 4*BlockSize)
	n, err := s.f.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("copy from %s: read its first sectors: %w", s.path, err)
	}
	if hasPVLabel(head[:n]) {
		return fmt.Errorf("copy from %s refused: it carries an LVM physical volume label, so it is a disk of a volume group, not a LUN: activate that volume group (vgchange -ay VG) and name the logical volume that held the old LUN (/dev/VG/LV)", s.path)
	}
	return nil
}

// hasPVLabel reports whether the first sectors of a device hold LVM2's
// label: "LABELONE" at the start of one of the first four sectors, with
// "LVM2 001" 24 bytes in.
func hasPVLabel(head []byte) bool {
	for off := 0; off+32 <= len(head) && off < 4*BlockSize; off += BlockSize {
		if bytes.Equal(head[off:off+8], []byte("LABELONE")) && bytes.Equal(head[off+24:off+32], []byte("LVM2 001")) {
			return true
		}
	}
	return false
}

// openErr says why a path inside the places sand copies from cannot be
// opened; a resolution that leaves its place is errNotAllowed.
func openErr(path string, err error) error {
	switch {
	case errors.Is(err, unix.EXDEV), errors.Is(err, unix.ELOOP):
		return errNotAllowed(path)
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("copy from %s: there is no such file or device", path)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return fmt.Errorf("copy from %s: sand may not read it (%v)", path, err)
	case errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("copy from %s: this kernel lacks openat2 (Linux 5.6 or later), which sand needs to open copy sources safely", path)
	}
	return fmt.Errorf("copy from %s: %w", path, err)
}

func describeMode(mode uint32) string {
	switch mode {
	case unix.S_IFIFO:
		return "a named pipe (FIFO)"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFDIR:
		return "a directory"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFLNK:
		return "a symbolic link"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFREG:
		return "a regular file"
	}
	return "not a file sand copies"
}

// drbdMajor is the block major of DRBD devices.
const drbdMajor = 147

// checkBlock refuses a block device the box uses (see the top of the
// file), from sysfs, the mount table and swaps: nothing is opened.
func (v hostView) checkBlock(path string, major, minor uint32) error {
	refused := func(format string, args ...any) error {
		return fmt.Errorf("copy from %s refused: "+format, append([]any{path}, args...)...)
	}
	self, err := filepath.EvalSymlinks(filepath.Join(v.sys, "dev", "block", fmt.Sprintf("%d:%d", major, minor)))
	if err != nil {
		return refused("the kernel lists no block device %d:%d", major, minor)
	}
	name := filepath.Base(self)
	if major == drbdMajor {
		return refused("it is DRBD device %s, sand's replicated storage: sand never copies it; name the old LUN's device or file", name)
	}
	if dm := readTrim(filepath.Join(self, "dm", "name")); dm != "" && v.vg != "" &&
		strings.HasPrefix(readTrim(filepath.Join(self, "dm", "uuid")), "LVM-") && inVG(dm, v.vg) {
		return refused("it is %s, a volume of sand's own pool (volume group %s): sand copies only the old LUNs' devices", dm, v.vg)
	}
	mounts, err := readMounts(v.mountinfo)
	if err != nil {
		return fmt.Errorf("copy from %s: read the mount table: %w", path, err)
	}
	swaps := v.swapDevices()
	var drbd uint64
	if v.drbdDisk != "" {
		if d, err := v.rdev(v.drbdDisk); err == nil {
			drbd = d
		}
	}
	use := func(dir string) string {
		dev := readTrim(filepath.Join(dir, "dev"))
		switch {
		case dev == "":
			return ""
		case mounts[dev] != "":
			return "mounted on " + mounts[dev]
		case swaps[dev]:
			return "a swap device"
		case drbd != 0 && dev == devString(drbd):
			return "this box's DRBD backing disk (pair.drbd.disk " + v.drbdDisk + ")"
		}
		if holders := holdersOf(dir); len(holders) > 0 {
			return "in use by " + strings.Join(holders, ", ") + " (an LVM physical volume, RAID member or mapped device of the box)"
		}
		return ""
	}
	if why := use(self); why != "" {
		return refused("it is %s: sand copies only devices the box does not use; name the old LUN's device or file", why)
	}
	// The whole disk and its partitions: one in use makes the disk the
	// box's own (its system disk, its DRBD disk).
	whole := self
	if exists(filepath.Join(self, "partition")) {
		whole = filepath.Dir(self)
	}
	disk := []string{whole}
	entries, _ := os.ReadDir(whole)
	for _, e := range entries {
		if p := filepath.Join(whole, e.Name()); exists(filepath.Join(p, "partition")) {
			disk = append(disk, p)
		}
	}
	for _, d := range disk {
		if d == self {
			continue
		}
		if why := use(d); why != "" {
			return refused("it is on disk %s, whose %s is %s: that disk is the box's own (a system or storage disk), and sand copies none of it", filepath.Base(whole), filepath.Base(d), why)
		}
	}
	return nil
}

// inVG reports whether a device-mapper name is an LV of volume group vg:
// LVM names it VG-LV with every '-' inside VG and LV doubled.
func inVG(dm, vg string) bool {
	rest, ok := strings.CutPrefix(dm, strings.ReplaceAll(vg, "-", "--")+"-")
	return ok && rest != "" && !strings.HasPrefix(rest, "-")
}

// checkFile refuses a regular file sand must not read: one inside sand's
// own directories reached through a link, or one backing a loop device.
func (v hostView) checkFile(path string, fd int) error {
	real, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return fmt.Errorf("copy from %s: %w", path, err)
	}
	for _, d := range v.owned {
		if under(real, d) {
			return fmt.Errorf("copy from %s refused: it is %s, in %s, which is sand's own (its state or its pool's volumes): name the old LUN's device or file", path, real, d)
		}
	}
	loops, _ := filepath.Glob(filepath.Join(v.sys, "block", "loop*", "loop", "backing_file"))
	for _, l := range loops {
		if readTrim(l) == real {
			loop := filepath.Base(filepath.Dir(filepath.Dir(l)))
			return fmt.Errorf("copy from %s refused: it backs loop device %s: copy from /dev/%s if nothing uses it, or detach it first (losetup -d /dev/%s)", path, loop, loop, loop)
		}
	}
	return nil
}

// readMounts maps "major:minor" to a mount point, from mountinfo.
func readMounts(mountinfo string) (map[string]string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// 27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		if _, ok := m[f[2]]; !ok {
			m[f[2]] = unescapeMount(f[4])
		}
	}
	return m, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a blank).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// swapDevices are the "major:minor" of the block devices swap uses.
func (v hostView) swapDevices() map[string]bool {
	m := map[string]bool{}
	data, err := os.ReadFile(v.swaps)
	if err != nil {
		return m
	}
	for i, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 2 || f[1] != "partition" {
			continue
		}
		if d, err := v.rdev(unescapeMount(f[0])); err == nil {
			m[devString(d)] = true
		}
	}
	return m
}

func devString(rdev uint64) string {
	return fmt.Sprintf("%d:%d", unix.Major(rdev), unix.Minor(rdev))
}

// holdersOf names the devices stacked on a block device (sysfs holders),
// with device-mapper names where there are.
func holdersOf(dir string) []string {
	entries, _ := os.ReadDir(filepath.Join(dir, "holders"))
	var names []string
	for _, e := range entries {
		n := e.Name()
		if dm := readTrim(filepath.Join(dir, "holders", n, "dm", "name")); dm != "" {
			n += " (" + dm + ")"
		}
		names = append(names, n)
	}
	return names
}

func readTrim(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// copyChunk is what a copy reads and writes at a time.
const copyChunk = 4 << 20

// copyInto copies src into the new volume at dst, skipping chunks of
// zeros (a new volume reads zeros already, and stays thin), and syncs it.
// hook, if set, runs before each chunk (tests). It returns the bytes read.
func copyInto(ctx context.Context, src *copySource, dst string, hook func()) (int64, error) {
	out, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("open the new volume: %w", err)
	}
	defer out.Close()
	buf := make([]byte, copyChunk)
	zero := make([]byte, copyChunk)
	var off int64
	for off < src.size {
		if hook != nil {
			hook()
		}
		if err := ctx.Err(); err != nil {
			return off, fmt.Errorf("copy from %s stopped at byte %d: %w", src.path, off, err)
		}
		n := int(min(int64(len(buf)), src.size-off))
		if _, err := src.f.ReadAt(buf[:n], off); err != nil {
			return off, fmt.Errorf("read %s at byte %d: %w", src.path, off, err)
		}
		if !bytes.Equal(buf[:n], zero[:n]) {
			if _, err := out.WriteAt(buf[:n], off); err != nil {
				return off, fmt.Errorf("write the new volume at byte %d: %w", off, err)
			}
		}
		off += int64(n)
	}
	if err := out.Sync(); err != nil {
		return off, fmt.Errorf("sync the new volume: %w", err)
	}
	return off, out.Close()
}
