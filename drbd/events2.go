package drbd

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Watching DRBD for changes.
//
// `drbdsetup events2` prints one line per state change and, with --now, the
// current state followed by "exists -" and exits. Both drbd-utils binaries
// have it with the same line grammar:
//
//   - DRBD 9: drbdsetup (user/v9), objects resource, device, connection,
//     peer-device, path, helper.
//   - DRBD 8.4: /lib/drbd/drbdsetup-84 (user/v84), through the in-tree
//     module's events2 netlink notifications (kernel 4.6 and later, so
//     Debian 12's 6.1). It speaks DRBD 9's vocabulary: the connection is
//     "Connecting"/"Connected", the peer device's replication "Off",
//     "Established", "SyncSource"...; peer-node-id is always 0 and
//     conn-name always "peer". It reports no resync progress ("done:"):
//     poll /proc/drbd for that.
//
// drbd-utils 9.22's drbdadm dispatches to drbdadm-84 by itself, but its
// drbdsetup does not dispatch to drbdsetup-84 (only to drbdsetup-83), so on
// 8.4 the watcher must run /lib/drbd/drbdsetup-84 itself (EventsCommand).
// drbdsetup-84 also has the older `events` command ("2 ST 0,r0[0] { cs:...
// }"); it is not parsed here: events2 carries the same states.

// Event is one line of `drbdsetup events2`.
type Event struct {
	// Time is set with --timestamps.
	Time time.Time
	// Action is exists, create, change, destroy, call, response, or
	// "skipped" for a "- skipped N" line (N events were lost).
	Action string
	// Object is resource, device, connection, peer-device, path, helper,
	// or "-" for the "exists -" line that ends the initial state.
	Object string
	// Fields are the key:value pairs, identifying ones (name, volume,
	// minor, peer-node-id, conn-name) and state ones alike.
	Fields map[string]string
	// Skipped is N of "- skipped N".
	Skipped int
}

var (
	ansiRE     = regexp.MustCompile("\x1b\\[[0-9;]*m")
	eventTSRE  = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d$`)
	eventNames = map[string]bool{"exists": true, "create": true, "change": true, "destroy": true, "call": true, "response": true}
	objNames   = map[string]bool{"resource": true, "device": true, "connection": true, "peer-device": true, "path": true, "helper": true, "-": true}
)

// ErrEventsLost is returned by EventState.Apply for a "- skipped N" line:
// the state is stale and must be rebuilt from `events2 --now`.
var ErrEventsLost = errors.New("drbd events were lost")

// ParseEvent parses one line of `drbdsetup events2` (with or without
// --timestamps and --statistics).
func ParseEvent(line string) (Event, error) {
	fail := func(format string, args ...any) (Event, error) {
		return Event{}, fmt.Errorf("parse drbd event %q: %s", line, fmt.Sprintf(format, args...))
	}
	clean := ansiRE.ReplaceAllString(strings.TrimRight(line, "\r\n"), "")
	f := strings.Fields(clean)
	var ev Event
	if len(f) > 0 && eventTSRE.MatchString(f[0]) {
		t, err := time.Parse("2006-01-02T15:04:05.000000-07:00", f[0])
		if err != nil {
			return fail("timestamp: %v", err)
		}
		ev.Time = t
		f = f[1:]
	}
	if len(f) == 3 && f[0] == "-" && f[1] == "skipped" {
		n, err := atoiSmall(f[2])
		if err != nil {
			return fail("skipped count: %v", err)
		}
		ev.Action, ev.Skipped = "skipped", n
		return ev, nil
	}
	if len(f) < 2 {
		return fail("want ACTION OBJECT [key:value...]")
	}
	if !eventNames[f[0]] {
		return fail("unknown action %q", f[0])
	}
	if !objNames[f[1]] {
		return fail("unknown object %q", f[1])
	}
	ev.Action, ev.Object = f[0], f[1]
	if ev.Object == "-" && len(f) > 2 {
		return fail("unexpected fields after %q", f[0]+" -")
	}
	ev.Fields = make(map[string]string, len(f)-2)
	for _, kv := range f[2:] {
		k, v, ok := strings.Cut(kv, ":")
		if !ok || k == "" {
			return fail("field %q: want key:value", kv)
		}
		if _, dup := ev.Fields[k]; dup {
			return fail("field %q twice", k)
		}
		ev.Fields[k] = v
	}
	if ev.Object != "-" && ev.Fields["name"] == "" {
		return fail("no resource name")
	}
	return ev, nil
}

// EventState folds events2 lines into the current Status of each device.
// Feed it the output of `events2 --now` and then the live stream; each
// change line carries only what changed.
type EventState struct {
	resources map[string]*evResource
	// InitialDone is set by the "exists -" line.
	InitialDone bool
}

type evResource struct {
	role      Role
	suspended bool
	devices   map[int]*evDevice      // by volume
	conns     map[int]*evConnection  // by peer-node-id
	peers     map[[2]int]*evPeerDisk // by peer-node-id, volume
}

type evDevice struct {
	minor int
	disk  DiskState
}

type evConnection struct {
	state string // DRBD 9 spelling: Connecting, Connected, StandAlone...
	role  Role
}

type evPeerDisk struct {
	repl      string
	disk      DiskState
	susp      bool
	oos       int64
	done      float64
	haveDone  bool
	seenState bool
}

// Apply folds one event into the state. An error leaves the state as it was,
// except for ErrEventsLost, after which the state must be rebuilt.
func (s *EventState) Apply(ev Event) error {
	if ev.Action == "skipped" {
		return fmt.Errorf("%w: %d skipped", ErrEventsLost, ev.Skipped)
	}
	if ev.Object == "-" {
		s.InitialDone = true
		return nil
	}
	if ev.Action == "call" || ev.Action == "response" || ev.Object == "helper" || ev.Object == "path" {
		return nil
	}
	if s.resources == nil {
		s.resources = map[string]*evResource{}
	}
	name := ev.Fields["name"]
	fail := func(err error) error {
		return fmt.Errorf("apply drbd %s %s event for %q: %w", ev.Action, ev.Object, name, err)
	}
	res := s.resources[name]
	if ev.Object == "resource" && ev.Action == "destroy" {
		delete(s.resources, name)
		return nil
	}
	if res == nil {
		res = &evResource{devices: map[int]*evDevice{}, conns: map[int]*evConnection{}, peers: map[[2]int]*evPeerDisk{}}
	}
	// Work on copies so that an error leaves the state unchanged.
	switch ev.Object {
	case "resource":
		r := *res
		if v, ok := ev.Fields["role"]; ok {
			role, err := ParseRole(v)
			if err != nil {
				return fail(err)
			}
			r.role = role
		}
		if v, ok := ev.Fields["suspended"]; ok {
			r.suspended = v != "no"
		}
		*res = r
	case "device":
		vol, err := intField(ev.Fields, "volume")
		if err != nil {
			return fail(err)
		}
		if ev.Action == "destroy" {
			delete(res.devices, vol)
			break
		}
		d := evDevice{}
		if old := res.devices[vol]; old != nil {
			d = *old
		}
		if _, ok := ev.Fields["minor"]; ok {
			if d.minor, err = intField(ev.Fields, "minor"); err != nil {
				return fail(err)
			}
		}
		if v, ok := ev.Fields["disk"]; ok {
			if d.disk, err = ParseDiskState(v); err != nil {
				return fail(err)
			}
		}
		res.devices[vol] = &d
	case "connection":
		peer, err := intField(ev.Fields, "peer-node-id")
		if err != nil {
			return fail(err)
		}
		if ev.Action == "destroy" {
			delete(res.conns, peer)
			break
		}
		c := evConnection{}
		if old := res.conns[peer]; old != nil {
			c = *old
		}
		if v, ok := ev.Fields["connection"]; ok {
			if _, err := connState9(v, "Established"); err != nil {
				return fail(err)
			}
			c.state = v
		}
		if v, ok := ev.Fields["role"]; ok {
			if c.role, err = ParseRole(v); err != nil {
				return fail(err)
			}
		}
		res.conns[peer] = &c
	case "peer-device":
		peer, err := intField(ev.Fields, "peer-node-id")
		if err != nil {
			return fail(err)
		}
		vol, err := intField(ev.Fields, "volume")
		if err != nil {
			return fail(err)
		}
		key := [2]int{peer, vol}
		if ev.Action == "destroy" {
			delete(res.peers, key)
			break
		}
		p := evPeerDisk{}
		if old := res.peers[key]; old != nil {
			p = *old
		}
		if v, ok := ev.Fields["replication"]; ok {
			if _, err := connState9("Connected", v); err != nil {
				return fail(err)
			}
			p.repl = v
		}
		if v, ok := ev.Fields["peer-disk"]; ok {
			if p.disk, err = ParseDiskState(v); err != nil {
				return fail(err)
			}
		}
		if v, ok := ev.Fields["resync-suspended"]; ok {
			p.susp = v != "no"
		}
		// With --statistics every event carries received/sent;
		// out-of-sync is printed only when it is not zero.
		if v, ok := ev.Fields["out-of-sync"]; ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 || n > 1<<52 {
				return fail(fmt.Errorf("out-of-sync %q: want KiB", v))
			}
			p.oos = n * 1024
		} else if _, ok := ev.Fields["received"]; ok {
			p.oos = 0
		}
		if v, ok := ev.Fields["done"]; ok {
			d, err := strconv.ParseFloat(v, 64)
			if err != nil || !(d >= 0 && d <= 100) {
				return fail(fmt.Errorf("done %q: want a percentage", v))
			}
			p.done, p.haveDone = d, true
		}
		res.peers[key] = &p
	}
	s.resources[name] = res
	return nil
}

// Statuses returns one Status per device, sorted by resource name and
// volume. The peer's side comes from the connection with the lowest
// peer-node-id.
func (s *EventState) Statuses() []Status {
	var out []Status
	names := make([]string, 0, len(s.resources))
	for n := range s.resources {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, name := range names {
		res := s.resources[name]
		vols := make([]int, 0, len(res.devices))
		for v := range res.devices {
			vols = append(vols, v)
		}
		slices.Sort(vols)
		peers := make([]int, 0, len(res.conns))
		for p := range res.conns {
			peers = append(peers, p)
		}
		slices.Sort(peers)
		for _, vol := range vols {
			d := res.devices[vol]
			st := Status{
				Resource:   name,
				Minor:      d.minor,
				Volume:     vol,
				Role:       res.role,
				Suspended:  res.suspended,
				Disk:       d.disk,
				Connection: ConnStandAlone,
			}
			if len(peers) > 0 {
				c := res.conns[peers[0]]
				st.PeerRole = c.role
				repl := ""
				if p := res.peers[[2]int{peers[0], vol}]; p != nil {
					repl = p.repl
					st.PeerDisk = p.disk
					st.ResyncSuspended = p.susp
					st.OutOfSync = p.oos
					if p.haveDone {
						st.SyncPercent = p.done
					}
				}
				if cs, err := connState9(c.state, repl); err == nil {
					st.Connection = cs
				} else {
					st.Connection = ConnStateUnknown
				}
				if !st.Connection.Syncing() {
					st.SyncPercent = 0
				}
			}
			out = append(out, st)
		}
	}
	return out
}

func intField(f map[string]string, key string) (int, error) {
	v, ok := f[key]
	if !ok {
		return 0, fmt.Errorf("no %s", key)
	}
	n, err := atoiSmall(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return n, nil
}

// EventsCommand is the command line that prints the current state of
// resource name as events2 lines and exits (drop "--now" to keep watching):
// /lib/drbd/drbdsetup-84 on the 8.4 module, drbdsetup on DRBD 9.
func EventsCommand(v Version, name string) []string {
	bin := "drbdsetup"
	if v.Is84() {
		bin = Drbdsetup84
	}
	return []string{bin, "events2", "--now", "--statistics", name}
}
