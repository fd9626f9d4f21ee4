// Package dm reads and makes device-mapper devices through the kernel's
// ioctl interface (/dev/mapper/control), without dmsetup or LVM.
//
// sand uses it on the switchover's critical path: the box that lets go
// records the tables of its volume group's devices (Capture) before it
// removes them, and the box that takes over makes the same devices from
// that record (Replay) instead of running vgchange, which costs about a
// second under the lab's emulated CPU, most of it LVM starting up and
// reading its metadata. The record is only good for a planned hand-over:
// nothing changes the volume group between the two moments, because only
// the primary changes it and it has just stood down. After a crash, sand
// activates with LVM.
//
// The ioctl structures are encoded by hand (encoding.go, tested without
// root); the calls are in ioctl.go.
package dm

import (
	"fmt"
	"strconv"
	"strings"
)

// Target is one line of a device's table.
type Target struct {
	Start  uint64 `json:"start"`  // first sector
	Length uint64 `json:"length"` // sectors
	Type   string `json:"type"`   // linear, thin-pool, thin, ...
	Params string `json:"params"`
}

// Device is a device-mapper device: its name, its UUID (LVM's names its
// volume group and volume), and its live table.
type Device struct {
	Name     string   `json:"name"`
	UUID     string   `json:"uuid"`
	ReadOnly bool     `json:"read_only,omitempty"`
	Targets  []Target `json:"targets"`
	// Dev is the device number (major:minor) on the box it was read on;
	// Portable replaces references to it by name.
	Dev Dev `json:"-"`
}

// Dev is a device number.
type Dev struct{ Major, Minor uint32 }

func (d Dev) String() string { return fmt.Sprintf("%d:%d", d.Major, d.Minor) }

// ParseDev reads "major:minor".
func ParseDev(s string) (Dev, bool) {
	maj, min, ok := strings.Cut(s, ":")
	if !ok {
		return Dev{}, false
	}
	a, err1 := strconv.ParseUint(maj, 10, 32)
	b, err2 := strconv.ParseUint(min, 10, 32)
	if err1 != nil || err2 != nil {
		return Dev{}, false
	}
	return Dev{uint32(a), uint32(b)}, true
}

// refPrefix marks a reference to another device of the same record by
// name: device numbers differ from box to box, names do not.
const refPrefix = "@"

// Portable rewrites devs (in creation order: a device after every device
// its table uses) so that each table names the devices of the set it
// stacks on ("@name") instead of their numbers. A number outside the set
// (the physical volume under them) stays as it is; Replay checks it. Only
// the fields a target's grammar says are devices are rewritten (see
// parseParams); a table sand would refuse to replay is refused here.
func Portable(devs []Device) ([]Device, error) {
	byDev := map[Dev]string{}
	for _, d := range devs {
		byDev[d.Dev] = d.Name
	}
	out := make([]Device, len(devs))
	made := map[string]bool{}
	for i, d := range devs {
		out[i] = d
		out[i].Dev = Dev{}
		out[i].Targets = make([]Target, len(d.Targets))
		for j, t := range d.Targets {
			// The kernel ends some tables with a space (thin-pool's).
			t.Params = strings.Join(strings.Fields(t.Params), " ")
			l, err := parseParams(t)
			if err != nil {
				return nil, fmt.Errorf("device %s: %w", d.Name, err)
			}
			for _, k := range l.devs {
				dev, ok := ParseDev(l.fields[k])
				if !ok {
					return nil, fmt.Errorf("device %s: %s target names %q, not a device number", d.Name, t.Type, l.fields[k])
				}
				if name, ours := byDev[dev]; ours {
					if !made[name] {
						return nil, fmt.Errorf("device %s uses %s (%s), which comes later in the order", d.Name, name, dev)
					}
					l.fields[k] = refPrefix + name
				}
			}
			t.Params = strings.Join(l.fields, " ")
			out[i].Targets[j] = t
		}
		made[d.Name] = true
	}
	return out, nil
}

// resolve turns a portable table back into device numbers: "@name" from
// made (the devices created so far in this replay), a number only if
// external allows it (the physical volume). Only the fields the target's
// grammar says are devices are read; Check has vetted the rest.
func resolve(t Target, made map[string]Dev, external func(Dev) bool) (Target, error) {
	l, err := parseParams(t)
	if err != nil {
		return Target{}, err
	}
	for _, k := range l.devs {
		f := l.fields[k]
		if name, ok := strings.CutPrefix(f, refPrefix); ok {
			dev, known := made[name]
			if !known {
				return Target{}, fmt.Errorf("%s target uses %s, which is not made yet", t.Type, name)
			}
			l.fields[k] = dev.String()
			continue
		}
		dev, ok := ParseDev(f)
		if !ok || !external(dev) {
			return Target{}, fmt.Errorf("%s target uses device %s, which is neither in the record nor allowed", t.Type, f)
		}
		// The kernel reads the number it is given: write it plainly.
		l.fields[k] = dev.String()
	}
	t.Params = strings.Join(l.fields, " ")
	return t, nil
}

// CheckReplay is Check, and that each device field of the record names a
// device made before it in the record or one external allows: Replay
// runs it before it makes anything.
func CheckReplay(devs []Device, external func(Dev) bool) error {
	if err := Check(devs); err != nil {
		return err
	}
	made := map[string]Dev{}
	for i, d := range devs {
		for _, t := range d.Targets {
			if _, err := resolve(t, made, external); err != nil {
				return fmt.Errorf("device %s: %w", d.Name, err)
			}
		}
		made[d.Name] = Dev{Major: 0, Minor: uint32(i)} // a stand-in: only its presence counts
	}
	return nil
}

// Check validates a record before anything is made from it: names and
// UUIDs of LVM's characters that fit the kernel's fields, at least one
// target each, contiguous targets, and tables only of the kinds LVM makes
// for a thin pool on one physical volume, stacked only on devices made
// before them in the record (see parseParams and checkTables).
func Check(devs []Device) error {
	seen := map[string]bool{}
	for _, d := range devs {
		switch {
		case !lvmName(d.Name) || len(d.Name) >= nameLen || d.Name == "." || d.Name == "..":
			return fmt.Errorf("device name %q is not a device-mapper name LVM makes", d.Name)
		case len(d.UUID) >= uuidLen || (d.UUID != "" && !lvmName(d.UUID)):
			return fmt.Errorf("device %s: UUID %q does not fit", d.Name, d.UUID)
		case seen[d.Name]:
			return fmt.Errorf("device %s appears twice", d.Name)
		case len(d.Targets) == 0:
			return fmt.Errorf("device %s has no table", d.Name)
		}
		seen[d.Name] = true
		var next uint64
		for _, t := range d.Targets {
			if t.Start != next || t.Length == 0 {
				return fmt.Errorf("device %s: target at sector %d (length %d) leaves a gap or overlaps", d.Name, t.Start, t.Length)
			}
			if strings.ContainsRune(t.Params, 0) {
				return fmt.Errorf("device %s: target parameters hold a NUL", d.Name)
			}
			next = t.Start + t.Length
		}
	}
	return checkTables(devs)
}
