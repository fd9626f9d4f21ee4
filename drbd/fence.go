package drbd

import "fmt"

// FenceOutcome is what a fence-peer handler found, with the exit code
// DRBD 8.4 reads from it (drbd_nl.c, conn_try_outdate_peer).
type FenceOutcome int

const (
	// FenceUnreachable: the peer neither outdated nor was confirmed
	// gone. Deliberately not 5: DRBD reads 5 as "peer unreachable,
	// assumed dead", marks the peer Outdated and resumes I/O, which would
	// let an isolated primary acknowledge writes the promoted peer never
	// sees. 1 is a code DRBD does not know: I/O stays frozen.
	FenceUnreachable FenceOutcome = iota
	// FenceOutdated: the peer's disk is Outdated; it cannot be promoted.
	FenceOutdated
	// FenceRefused: the peer is primary and refused; DRBD outdates this
	// side instead.
	FenceRefused
	// FenceDead: the peer is gone and the witness confirms it ("fenced
	// off the cluster").
	FenceDead
)

var fenceNames = [...]string{
	FenceUnreachable: "unreachable",
	FenceOutdated:    "outdated",
	FenceRefused:     "refused",
	FenceDead:        "dead",
}

var fenceExit = [...]int{
	FenceUnreachable: 1,
	FenceOutdated:    4,
	FenceRefused:     6,
	FenceDead:        7,
}

// String is the outcome's name, as the API reports it.
func (o FenceOutcome) String() string {
	if o < 0 || int(o) >= len(fenceNames) {
		return fmt.Sprintf("FenceOutcome(%d)", int(o))
	}
	return fenceNames[o]
}

// ExitCode is the fence-peer handler's exit code for DRBD; an unknown
// outcome keeps I/O frozen (1).
func (o FenceOutcome) ExitCode() int {
	if o < 0 || int(o) >= len(fenceExit) {
		return 1
	}
	return fenceExit[o]
}

// ParseFenceOutcome reads an outcome's name (the API's answer).
func ParseFenceOutcome(s string) (FenceOutcome, error) {
	for i, n := range fenceNames {
		if n == s {
			return FenceOutcome(i), nil
		}
	}
	return FenceUnreachable, fmt.Errorf("unknown fence outcome %q (want unreachable, outdated, refused or dead)", s)
}

// MarshalText gives the outcome's name in JSON.
func (o FenceOutcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText reads an outcome's name.
func (o *FenceOutcome) UnmarshalText(b []byte) error {
	v, err := ParseFenceOutcome(string(b))
	if err != nil {
		return err
	}
	*o = v
	return nil
}
