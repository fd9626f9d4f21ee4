package appliance

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/sand-appliance/sand/appliance/pool"
)

// ErrOutsidePool is returned for a LUN whose backing store would be
// anything but the volume sand's pool made for it.
var ErrOutsidePool = errors.New("backing store outside sand's pool")

// volumePath is the one place a LUN's backing path comes from: every path a
// target driver is given (LIO's udev_path, tgt's --backing-store, the
// rendered ietd.conf) goes through it. The answer is the volume the pool
// made for the LUN (path is the pool's Path: /dev/VG/lun-NAME or
// DIR/lun-NAME.img), and nothing else: a pool path that does not name the
// volume lun-NAME, and the foreign path a LUN imported by an older sand
// carries, are refused.
func volumePath(l LUN, path func(name string) string) (string, error) {
	if err := ValidateName("LUN", l.Name); err != nil {
		return "", fmt.Errorf("%w: %v", ErrOutsidePool, err)
	}
	p := path(l.Name)
	want := pool.VolumePrefix + l.Name
	base := filepath.Base(p)
	ext, hasExt := strings.CutPrefix(base, want+".")
	if !filepath.IsAbs(p) || filepath.Clean(p) != p || (base != want && (!hasExt || ext == "" || strings.Contains(ext, "."))) {
		return "", fmt.Errorf("%w: LUN %s: the pool gives %q as its volume, which is not a volume named %s: sand exports only the volumes its pool made", ErrOutsidePool, l.Name, p, want)
	}
	if l.Path != "" && l.Path != p {
		return "", fmt.Errorf("%w: LUN %s is set to export %s, which is not a volume of sand's pool, so it is not exported: delete the LUN (sand lun delete %s; the data stays at %s) and import it again with --copy-data %s, which copies the data into a new volume", ErrOutsidePool, l.Name, l.Path, l.Name, l.Path, l.Path)
	}
	return p, nil
}
