// Package events is the box's event log: what happened to the box and the
// pair, for the events page, GET /api/v1/events and `sand events`. It names
// every kind of event once (Kind, with its label and tone for the web UI)
// and keeps the recent events in an in-memory ring buffer (Log).
//
// It is a leaf: the appliance, the failover layer and the UI all import it,
// and it imports none of them.
package events

import (
	"sync"
	"time"
)

// Event is one thing that happened to the box or the pair.
type Event struct {
	Time    time.Time `json:"time"`
	Kind    Kind      `json:"kind"`
	Message string    `json:"message"`
}

// DefaultLogSize is how many events a zero Log keeps.
const DefaultLogSize = 1000

// Log keeps the most recent events in memory, a ring buffer that drops the
// oldest when full. It is safe for concurrent use; its zero value keeps
// DefaultLogSize events. It is not persisted: a restart of sand starts a new
// log (the journal keeps the slog lines).
type Log struct {
	mu   sync.Mutex
	size int
	buf  []Event
	next int // where the next event goes once buf is full
}

// NewLog returns a log keeping the last size events.
func NewLog(size int) *Log {
	if size <= 0 {
		size = DefaultLogSize
	}
	return &Log{size: size}
}

// Add records an event; a zero Time is the time of the call.
func (l *Log) Add(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.size <= 0 {
		l.size = DefaultLogSize
	}
	if len(l.buf) < l.size {
		l.buf = append(l.buf, e)
		return
	}
	l.buf[l.next] = e
	l.next = (l.next + 1) % l.size
}

// List returns the events, newest first.
func (l *Log) List() []Event {
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
