package drbd

import (
	"fmt"
	"time"
)

// Role is a node's role in a resource.
type Role int

const (
	// RoleUnknown is DRBD's "Unknown": the peer's role while not connected,
	// or a role that was not reported.
	RoleUnknown Role = iota
	RolePrimary
	RoleSecondary
)

var roleNames = map[Role]string{
	RoleUnknown:   "Unknown",
	RolePrimary:   "Primary",
	RoleSecondary: "Secondary",
}

func (r Role) String() string {
	if s, ok := roleNames[r]; ok {
		return s
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// ParseRole maps DRBD's spelling of a role (drbd_role_str) to a Role.
func ParseRole(s string) (Role, error) {
	if r, ok := rolesByName[s]; ok {
		return r, nil
	}
	return RoleUnknown, fmt.Errorf("unknown drbd role %q", s)
}

// ConnState is the state of the replication link, in DRBD 8.4's terms
// (drbd_conn_str). DRBD 9 splits it into a connection state and a
// replication state per peer device; ParseStatusJSON and EventState fold
// those back into this one enum, so decision code sees one vocabulary.
type ConnState int

const (
	// ConnStateUnknown is the zero value: nothing was reported. It is not
	// a DRBD state.
	ConnStateUnknown ConnState = iota
	// ConnUnconfigured: the resource is down (/proc/drbd's
	// "cs:Unconfigured", or no such resource at all).
	ConnUnconfigured
	ConnStandAlone
	ConnDisconnecting
	ConnUnconnected
	ConnTimeout
	ConnBrokenPipe
	ConnNetworkFailure
	ConnProtocolError
	// ConnWFConnection is waiting for the peer ("Connecting" in DRBD 9).
	ConnWFConnection
	// ConnWFReportParams is the handshake after the TCP connection is up
	// (DRBD 9: connection Connected, replication Off).
	ConnWFReportParams
	ConnTearDown
	// ConnConnected is replicating normally (DRBD 9: replication
	// Established).
	ConnConnected
	ConnStartingSyncS
	ConnStartingSyncT
	ConnWFBitMapS
	ConnWFBitMapT
	ConnWFSyncUUID
	ConnSyncSource
	ConnSyncTarget
	ConnPausedSyncS
	ConnPausedSyncT
	ConnVerifyS
	ConnVerifyT
	ConnAhead
	ConnBehind
)

var connNames = map[ConnState]string{
	ConnStateUnknown:   "Unknown",
	ConnUnconfigured:   "Unconfigured",
	ConnStandAlone:     "StandAlone",
	ConnDisconnecting:  "Disconnecting",
	ConnUnconnected:    "Unconnected",
	ConnTimeout:        "Timeout",
	ConnBrokenPipe:     "BrokenPipe",
	ConnNetworkFailure: "NetworkFailure",
	ConnProtocolError:  "ProtocolError",
	ConnWFConnection:   "WFConnection",
	ConnWFReportParams: "WFReportParams",
	ConnTearDown:       "TearDown",
	ConnConnected:      "Connected",
	ConnStartingSyncS:  "StartingSyncS",
	ConnStartingSyncT:  "StartingSyncT",
	ConnWFBitMapS:      "WFBitMapS",
	ConnWFBitMapT:      "WFBitMapT",
	ConnWFSyncUUID:     "WFSyncUUID",
	ConnSyncSource:     "SyncSource",
	ConnSyncTarget:     "SyncTarget",
	ConnPausedSyncS:    "PausedSyncS",
	ConnPausedSyncT:    "PausedSyncT",
	ConnVerifyS:        "VerifyS",
	ConnVerifyT:        "VerifyT",
	ConnAhead:          "Ahead",
	ConnBehind:         "Behind",
}

func (c ConnState) String() string {
	if s, ok := connNames[c]; ok {
		return s
	}
	return fmt.Sprintf("ConnState(%d)", int(c))
}

// ParseConnState maps DRBD 8.4's spelling of a connection state
// (drbd_conn_str, plus /proc/drbd's "Unconfigured") to a ConnState.
func ParseConnState(s string) (ConnState, error) {
	// "Unknown" is this package's zero value, never a DRBD state.
	if c, ok := connsByName[s]; ok && c != ConnStateUnknown {
		return c, nil
	}
	return ConnStateUnknown, fmt.Errorf("unknown drbd connection state %q", s)
}

// Connected reports whether the peers talk to each other and replicate
// (normally, resyncing, paused, verifying or ahead/behind).
func (c ConnState) Connected() bool { return c >= ConnConnected }

// Syncing reports whether a resync (or online verify) is running or paused.
func (c ConnState) Syncing() bool { return c >= ConnStartingSyncS && c <= ConnVerifyT }

// DiskState is the state of a node's local disk (drbd_disk_str).
type DiskState int

const (
	// DiskDUnknown is DRBD's "DUnknown" (the peer's disk while not
	// connected) and the zero value: not reported.
	DiskDUnknown DiskState = iota
	DiskDiskless
	DiskAttaching
	// DiskDetaching exists in DRBD 9 only.
	DiskDetaching
	DiskFailed
	DiskNegotiating
	DiskInconsistent
	DiskOutdated
	DiskConsistent
	DiskUpToDate
)

var diskNames = map[DiskState]string{
	DiskDUnknown:     "DUnknown",
	DiskDiskless:     "Diskless",
	DiskAttaching:    "Attaching",
	DiskDetaching:    "Detaching",
	DiskFailed:       "Failed",
	DiskNegotiating:  "Negotiating",
	DiskInconsistent: "Inconsistent",
	DiskOutdated:     "Outdated",
	DiskConsistent:   "Consistent",
	DiskUpToDate:     "UpToDate",
}

func (d DiskState) String() string {
	if s, ok := diskNames[d]; ok {
		return s
	}
	return fmt.Sprintf("DiskState(%d)", int(d))
}

// ParseDiskState maps DRBD's spelling of a disk state to a DiskState.
func ParseDiskState(s string) (DiskState, error) {
	if d, ok := disksByName[s]; ok {
		return d, nil
	}
	return DiskDUnknown, fmt.Errorf("unknown drbd disk state %q", s)
}

var (
	rolesByName = invert(roleNames)
	connsByName = invert(connNames)
	disksByName = invert(diskNames)
)

func invert[K comparable](m map[K]string) map[string]K {
	out := make(map[string]K, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

// Status is one DRBD device (resource volume) as seen from this node, in one
// vocabulary whatever the DRBD version and whatever it was read from
// (/proc/drbd, drbdsetup status --json, drbdsetup events2).
type Status struct {
	// Resource is the resource name. /proc/drbd only knows minors: Admin
	// fills it in there.
	Resource string
	Minor    int
	Volume   int

	Role       Role
	PeerRole   Role
	Connection ConnState
	Disk       DiskState
	PeerDisk   DiskState
	// Protocol is the wire protocol ("A", "B" or "C"), or "" when not
	// reported (no network configuration, or a DRBD 9 source).
	Protocol string
	// Suspended: I/O on the device is frozen (by the admin, by fencing,
	// for lack of data or of quorum).
	Suspended bool
	// ResyncSuspended: a resync is paused (by the admin, the peer or a
	// resync-after dependency); /proc/drbd's a/p/u flags.
	ResyncSuspended bool

	// SyncPercent is the share of the resync (or verify) done, 0-100,
	// while Connection.Syncing(); 0 otherwise.
	SyncPercent float64
	// SyncRemaining is DRBD's estimate of the time left, 0 if unknown.
	SyncRemaining time.Duration
	// OutOfSync is how much this node knows differs from the peer, in
	// bytes (DRBD counts it in KiB).
	OutOfSync int64
}
