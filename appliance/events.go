package appliance

import (
	"fmt"
	"sync"
	"time"
)

// Event is one thing that happened to the box or the pair, as the events
// page and GET /api/v1/events show it.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
}

// Event kinds. The failover layer adds its own with the same naming:
// noun-verb, lower case.
const (
	EventStarted        = "sand-started"
	EventLUNCreated     = "lun-created"
	EventLUNUpdated     = "lun-updated"
	EventLUNDeleted     = "lun-deleted"
	EventGroupCreated   = "group-created"
	EventGroupUpdated   = "group-updated"
	EventGroupDeleted   = "group-deleted"
	EventFailover       = "failover"
	EventSwitchover     = "switchover"
	EventResyncStarted  = "resync-started"
	EventResyncFinished = "resync-finished"
	EventPeerLost       = "peer-lost"
	EventPeerJoined     = "peer-joined"
	EventSplitBrain     = "split-brain"
)

// DefaultEventLogSize is how many events a zero EventLog keeps.
const DefaultEventLogSize = 1000

// EventLog keeps the most recent events in memory, a ring buffer that
// drops the oldest when full. It is safe for concurrent use; its zero value
// keeps DefaultEventLogSize events. It is not persisted: a restart of sand
// starts a new log (the journal keeps the slog lines).
type EventLog struct {
	mu   sync.Mutex
	size int
	buf  []Event
	next int // where the next event goes once buf is full
}

// NewEventLog returns a log keeping the last size events.
func NewEventLog(size int) *EventLog {
	if size <= 0 {
		size = DefaultEventLogSize
	}
	return &EventLog{size: size}
}

// Add records an event; a zero Time is the time of the call.
func (l *EventLog) Add(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.size <= 0 {
		l.size = DefaultEventLogSize
	}
	if len(l.buf) < l.size {
		l.buf = append(l.buf, e)
		return
	}
	l.buf[l.next] = e
	l.next = (l.next + 1) % l.size
}

// List returns the events, newest first.
func (l *EventLog) List() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]Event, 0, len(l.buf))
	// The oldest is at next once the buffer has wrapped, else at 0; walk
	// back from the newest.
	for i := range len(l.buf) {
		j := (l.next - 1 - i + 2*len(l.buf)) % len(l.buf)
		out = append(out, l.buf[j])
	}
	return out
}

// Events is the box's event log; other layers (failover) add to it too.
func (b *Box) Events() *EventLog { return &b.events }

// record adds an event stamped with the box's clock.
func (b *Box) record(kind, format string, args ...any) {
	b.events.Add(Event{Time: b.now(), Kind: kind, Message: fmt.Sprintf(format, args...)})
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// groupPhrase names a LUN's initiator group in an event message.
func groupPhrase(g string) string {
	if g == "" {
		return "no initiator group"
	}
	return "initiator group " + g
}
