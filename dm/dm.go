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
// (the physical volume under them) stays as it is; Replay checks it.
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
			fields := strings.Fields(t.Params)
			for k, f := range fields {
				dev, ok := ParseDev(f)
				if !ok {
					continue
				}
				if name, ours := byDev[dev]; ours {
					if !made[name] {
						return nil, fmt.Errorf("device %s uses %s (%s), which comes later in the order", d.Name, name, dev)
					}
					fields[k] = refPrefix + name
				}
			}
			t.Params = strings.Join(fields, " ")
			out[i].Targets[j] = t
		}
		made[d.Name] = true
	}
	return out, nil
}

// resolve turns a portable table back into device numbers: "@name" from
// made (the devices created so far), other numbers only if external allows
// them (the physical volume).
func resolve(t Target, made map[string]Dev, external func(Dev) bool) (Target, error) {
	fields := strings.Fields(t.Params)
	for k, f := range fields {
		if name, ok := strings.CutPrefix(f, refPrefix); ok {
			dev, known := made[name]
			if !known {
				return Target{}, fmt.Errorf("%s target uses %s, which is not made yet", t.Type, name)
			}
			fields[k] = dev.String()
			continue
		}
		if dev, ok := ParseDev(f); ok && !external(dev) {
			return Target{}, fmt.Errorf("%s target uses device %s, which is neither in the record nor allowed", t.Type, dev)
		}
	}
	t.Params = strings.Join(fields, " ")
	return t, nil
}

// Check validates a record before anything is made from it: names and
// UUIDs that fit the kernel's fields, at least one target each, known
// target types, contiguous targets.
func Check(devs []Device) error {
	seen := map[string]bool{}
	for _, d := range devs {
		switch {
		case d.Name == "" || len(d.Name) >= nameLen || strings.ContainsAny(d.Name, "/\x00") || d.Name == "." || d.Name == "..":
			return fmt.Errorf("device name %q is not a device-mapper name", d.Name)
		case len(d.UUID) >= uuidLen || strings.ContainsRune(d.UUID, 0):
			return fmt.Errorf("device %s: UUID %q does not fit", d.Name, d.UUID)
		case seen[d.Name]:
			return fmt.Errorf("device %s appears twice", d.Name)
		case len(d.Targets) == 0:
			return fmt.Errorf("device %s has no table", d.Name)
		}
		seen[d.Name] = true
		var next uint64
		for _, t := range d.Targets {
			if !knownTypes[t.Type] {
				return fmt.Errorf("device %s: target type %q is not one LVM makes for sand's pool", d.Name, t.Type)
			}
			if t.Start != next || t.Length == 0 {
				return fmt.Errorf("device %s: target at sector %d (length %d) leaves a gap or overlaps", d.Name, t.Start, t.Length)
			}
			if strings.ContainsRune(t.Params, 0) {
				return fmt.Errorf("device %s: target parameters hold a NUL", d.Name)
			}
			next = t.Start + t.Length
		}
	}
	return nil
}

// knownTypes are the targets LVM makes for linear volumes and thin pools.
var knownTypes = map[string]bool{"linear": true, "striped": true, "thin-pool": true, "thin": true, "zero": true, "error": true}
