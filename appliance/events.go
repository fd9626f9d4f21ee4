package appliance

import (
	"fmt"

	"github.com/sand-appliance/sand/events"
)

// Events is the box's event log; other layers (failover) add to it too.
func (b *Box) Events() *events.Log { return &b.events }

// record adds an event stamped with the box's clock.
func (b *Box) record(kind events.Kind, format string, args ...any) {
	b.events.Add(events.Event{Time: b.now(), Kind: kind, Message: fmt.Sprintf(format, args...)})
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
