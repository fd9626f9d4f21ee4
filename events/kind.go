package events

import "strings"

// Kind says what an event is about. Its value is what the API's JSON and
// `sand events` show: noun-verb, lower case. Every kind sand records is a
// constant here, with its label and tone in kinds below.
type Kind string

// Kinds the box records (appliance.Box and sand serve).
const (
	SandStarted    Kind = "sand-started"
	LUNCreated     Kind = "lun-created"
	LUNUpdated     Kind = "lun-updated"
	LUNDeleted     Kind = "lun-deleted"
	GroupCreated   Kind = "group-created"
	GroupUpdated   Kind = "group-updated"
	GroupDeleted   Kind = "group-deleted"
	ServingStarted Kind = "serving-started"
	ServingStopped Kind = "serving-stopped"
)

// Kinds the failover layer records (failover.Controller and the pair's
// wiring in sand).
const (
	// Decision is a decision of the failover loop, or of the fence-peer
	// protocol, with its reason.
	Decision   Kind = "decision"
	Promoted   Kind = "failover-promoted"
	Demoted    Kind = "failover-demoted"
	StepFailed Kind = "failover-step-failed"
	// Membership is a change of a serf member as this box sees it.
	Membership Kind = "membership"
	// Replication is a change of DRBD's state as this box sees it: the
	// replication link, either disk, either role.
	Replication Kind = "replication"
	PeerLost    Kind = "peer-lost"
	PeerJoined  Kind = "peer-joined"
	// ResyncStarted and ResyncFinished bracket a DRBD resynchronisation.
	ResyncStarted  Kind = "resync-started"
	ResyncFinished Kind = "resync-finished"
	// SplitBrain is DRBD's report of a split brain, which sand never
	// resolves on its own.
	SplitBrain Kind = "split-brain"
	// MessageRefused is an intent, query or answer the box dropped: not
	// from its peer, not signed with the pair key, stale or replayed.
	MessageRefused Kind = "message-refused"
)

// Tone is how alarming an event looks in the web UI: the class of its badge.
type Tone string

// Tones, from alarming to quiet.
const (
	ToneBad   Tone = "bad"   // something failed or is at risk: look now
	ToneWarn  Tone = "warn"  // a change that moved or removed something
	ToneGood  Tone = "good"  // the pair is whole again
	TonePlain Tone = "plain" // routine
)

// kinds is the one table of what the UI shows for each kind.
var kinds = map[Kind]struct {
	label string
	tone  Tone
}{
	SandStarted:    {"sand started", TonePlain},
	LUNCreated:     {"LUN created", TonePlain},
	LUNUpdated:     {"LUN changed", TonePlain},
	LUNDeleted:     {"LUN deleted", ToneWarn},
	GroupCreated:   {"Group created", TonePlain},
	GroupUpdated:   {"Group changed", TonePlain},
	GroupDeleted:   {"Group deleted", ToneWarn},
	ServingStarted: {"Serving started", TonePlain},
	ServingStopped: {"Serving stopped", ToneWarn},
	Decision:       {"Failover decision", TonePlain},
	Promoted:       {"Promoted", ToneWarn},
	Demoted:        {"Demoted", ToneWarn},
	StepFailed:     {"Failover step failed", ToneBad},
	Membership:     {"Membership", TonePlain},
	Replication:    {"Replication", TonePlain},
	PeerLost:       {"Peer lost", ToneBad},
	PeerJoined:     {"Peer joined", ToneGood},
	ResyncStarted:  {"Resync started", ToneWarn},
	ResyncFinished: {"Resync finished", ToneGood},
	SplitBrain:     {"Split brain", ToneBad},
	MessageRefused: {"Message refused", ToneBad},
}

// Label words the kind for people; a kind missing from the table is its
// value with spaces for dashes.
func (k Kind) Label() string {
	if d, ok := kinds[k]; ok {
		return d.label
	}
	return strings.ReplaceAll(string(k), "-", " ")
}

// Tone is how alarming the kind looks in the web UI; an unknown kind is
// plain.
func (k Kind) Tone() Tone {
	if d, ok := kinds[k]; ok {
		return d.tone
	}
	return TonePlain
}
