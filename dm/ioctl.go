package dm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The ioctl commands used (DM_IOCTL 0xfd, each _IOWR with a dm_ioctl).
const (
	cmdDevCreate   = 3
	cmdDevRemove   = 4
	cmdDevSuspend  = 6
	cmdTableLoad   = 9
	cmdTableStatus = 12
)

// MapperDir is where device nodes are named.
const MapperDir = "/dev/mapper"

// Control is an open /dev/mapper/control.
type Control struct {
	f *os.File
	// Dir is where nodes are made and removed (MapperDir if "").
	Dir string
}

// Open opens the kernel's device-mapper control node.
func Open() (*Control, error) {
	f, err := os.OpenFile(filepath.Join(MapperDir, "control"), os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open device-mapper control: %w", err)
	}
	return &Control{f: f, Dir: MapperDir}, nil
}

// Close closes the control node.
func (c *Control) Close() error { return c.f.Close() }

func (c *Control) ioctl(cmd uintptr, b []byte) error {
	req := uintptr(3)<<30 | uintptr(headerSize)<<16 | 0xfd<<8 | cmd
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, c.f.Fd(), req, uintptr(unsafe.Pointer(&b[0])))
	if errno != 0 {
		return errno
	}
	return nil
}

// Read returns a device's name, UUID, number and live table.
func (c *Control) Read(name string) (Device, error) {
	for size := 16 << 10; size <= 4<<20; size *= 4 {
		b, err := header{name: name, flags: flagStatusTable}.marshal(size)
		if err != nil {
			return Device{}, err
		}
		if err := c.ioctl(cmdTableStatus, b); err != nil {
			return Device{}, fmt.Errorf("read the table of device-mapper device %s: %w", name, err)
		}
		h, ts, err := unmarshalTable(b)
		if errors.Is(err, errBufferFull) {
			continue
		}
		if err != nil {
			return Device{}, err
		}
		if h.flags&flagActive == 0 {
			return Device{}, fmt.Errorf("device-mapper device %s has no live table", name)
		}
		return Device{Name: h.name, UUID: h.uuid, ReadOnly: h.flags&flagReadOnly != 0, Targets: ts, Dev: h.dev}, nil
	}
	return Device{}, fmt.Errorf("read the table of device-mapper device %s: larger than 4 MiB", name)
}

// Replay makes devs, in order, from a record made portable by Portable:
// each device is created, loaded, resumed and given its node. external
// says which device numbers outside the record a table may use (the
// physical volume). On any error it removes what it made and says why.
func (c *Control) Replay(devs []Device, external func(Dev) bool) error {
	if err := CheckReplay(devs, external); err != nil {
		return err
	}
	made := map[string]Dev{}
	var names []string
	undo := func(err error) error {
		for i := len(names) - 1; i >= 0; i-- {
			if rerr := c.Remove(names[i]); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		return err
	}
	for _, d := range devs {
		ts := make([]Target, len(d.Targets))
		for i, t := range d.Targets {
			r, err := resolve(t, made, external)
			if err != nil {
				return undo(fmt.Errorf("device %s: %w", d.Name, err))
			}
			ts[i] = r
		}
		h, err := c.command(cmdDevCreate, header{name: d.Name, uuid: d.UUID}, "create")
		if err != nil {
			return undo(err)
		}
		names = append(names, d.Name)
		made[d.Name] = h.dev
		if err := c.load(d.Name, ts, d.ReadOnly); err != nil {
			return undo(err)
		}
		// Resume (DM_DEV_SUSPEND without the suspend flag) makes the
		// table live; the kernel sends the device's uevent now.
		if _, err := c.command(cmdDevSuspend, header{name: d.Name, eventNr: udevFlags}, "resume"); err != nil {
			return undo(err)
		}
		if err := c.makeNode(d.Name, h.dev); err != nil {
			return undo(err)
		}
	}
	return nil
}

// command runs an ioctl whose request is the header alone and returns the
// kernel's answer; what names the action for the error.
func (c *Control) command(cmd uintptr, h header, what string) (header, error) {
	b, err := h.marshal(headerSize)
	if err != nil {
		return header{}, err
	}
	if err := c.ioctl(cmd, b); err != nil {
		return header{}, fmt.Errorf("%s device-mapper device %s: %w", what, h.name, err)
	}
	return unmarshalHeader(b)
}

func (c *Control) load(name string, ts []Target, readOnly bool) error {
	b, err := marshalLoad(name, ts)
	if err != nil {
		return fmt.Errorf("load the table of %s: %w", name, err)
	}
	if readOnly {
		order.PutUint32(b[offFlags:], flagReadOnly)
	}
	if err := c.ioctl(cmdTableLoad, b); err != nil {
		return fmt.Errorf("load the table of device-mapper device %s: %w", name, err)
	}
	return nil
}

// Remove removes a device and its node. A device still open fails with
// EBUSY, as dmsetup remove does.
func (c *Control) Remove(name string) error {
	if _, err := c.command(cmdDevRemove, header{name: name, eventNr: udevFlags}, "remove"); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(c.Dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the node of device-mapper device %s: %w", name, err)
	}
	return nil
}

// makeNode makes /dev/mapper/NAME as libdevmapper does without udev: a
// block node, root's, mode 0600 (any stale node is replaced).
func (c *Control) makeNode(name string, d Dev) error {
	p := filepath.Join(c.Dir, name)
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("replace the node %s: %w", p, err)
	}
	if err := unix.Mknod(p, unix.S_IFBLK|0o600, int(unix.Mkdev(d.Major, d.Minor))); err != nil {
		return fmt.Errorf("make the node %s (%s): %w", p, d, err)
	}
	return nil
}
