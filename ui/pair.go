package ui

import (
	"context"
	"errors"
	"time"
)

// Roles a box can have in the pair.
const (
	RolePrimary    = "primary"    // serves the LUNs: DRBD Primary, target up, holds the VIP
	RoleSecondary  = "secondary"  // DRBD Secondary, ready to take over
	RoleStandby    = "standby"    // put aside by an admin for maintenance: never promoted
	RoleDown       = "down"       // not answering
	RoleStandalone = "standalone" // no peer configured
)

// Pair is what the failover layer tells the UI about the pair, and what it
// lets an admin do. sand serve adapts the failover engine to it; Options.Pair
// is nil on a standalone box, and the UI then says so instead of showing a
// peer, a VIP, DRBD or a witness.
type Pair interface {
	// State is the pair now. It must not block for long: the home page
	// polls it every few seconds.
	State(ctx context.Context) PairState
	// Switchover moves the primary role to the peer (planned, both boxes
	// up): stop here in reverse order, promote there.
	Switchover(ctx context.Context) error
	// Standby takes the named box out of the pair for maintenance: it is
	// demoted if primary and never promoted until Resume.
	Standby(ctx context.Context, box string) error
	// Resume puts a box in standby back into the pair as secondary.
	Resume(ctx context.Context, box string) error
}

// PairState is the pair at a glance: what the home page and /metrics show.
// Nil parts are not configured.
type PairState struct {
	// Boxes are both boxes, this one first.
	Boxes   []PairBox     `json:"boxes"`
	VIP     *VIPState     `json:"vip,omitempty"`
	DRBD    *DRBDState    `json:"drbd,omitempty"`
	Witness *WitnessState `json:"witness,omitempty"`
	// Ping is the ping targets' tie-breaker of a pair without a witness.
	Ping *PingState `json:"ping,omitempty"`
	// Failovers counts the failovers (automatic promotions) this box has
	// seen since sand started.
	Failovers uint64 `json:"failovers"`
	// Why* say why an action is not possible now; empty when it is.
	WhyNoSwitchover string `json:"why_no_switchover,omitempty"`
	WhyNoStandby    string `json:"why_no_standby,omitempty"`
	WhyNoResume     string `json:"why_no_resume,omitempty"`
}

// PairBox is one box of the pair.
type PairBox struct {
	Name    string `json:"name"`
	Address string `json:"address,omitempty"`
	Role    string `json:"role"`
	Local   bool   `json:"local"`
	// Detail is a short note, e.g. "last heard 14 s ago".
	Detail string `json:"detail,omitempty"`
}

// VIPState is the floating address initiators use.
type VIPState struct {
	Address string `json:"address"`
	// Holder names the box that holds the VIP; empty when nobody does.
	Holder string `json:"holder,omitempty"`
}

// DRBDState is the replication link between the boxes.
type DRBDState struct {
	Resource string `json:"resource"`
	// Connection is DRBD's connection state: Connected, Connecting,
	// StandAlone, SyncSource, SyncTarget...
	Connection string `json:"connection"`
	LocalRole  string `json:"local_role"`
	PeerRole   string `json:"peer_role"`
	// LocalDisk and PeerDisk are disk states: UpToDate, Inconsistent,
	// Outdated, DUnknown...
	LocalDisk string `json:"local_disk"`
	PeerDisk  string `json:"peer_disk"`
	Protocol  string `json:"protocol"`
	// Syncing is true while a resync runs; SyncPercent (0-100) and
	// SyncLeft (0 when unknown) describe it.
	Syncing     bool          `json:"syncing"`
	SyncPercent float64       `json:"sync_percent,omitempty"`
	SyncLeft    time.Duration `json:"sync_left,omitempty"`
	SplitBrain  bool          `json:"split_brain"`
}

// WitnessState is the third serf member that breaks ties.
type WitnessState struct {
	Name      string `json:"name"`
	Address   string `json:"address,omitempty"`
	Reachable bool   `json:"reachable"`
}

// PingState is how many of the configured ping targets (e.g. the gateway)
// answered lately: a box that reaches none has no quorum.
type PingState struct {
	Targets   []string `json:"targets"`
	Reachable int      `json:"reachable"`
}

// errStandalone answers pair actions on a box without a peer.
var errStandalone = errors.New("this box is standalone: switchover, standby and resume need a peer and failover, which are not configured")

// whyStandalone is the reason shown next to the disabled pair actions.
const whyStandalone = "This box is standalone: switchover, standby and resume need a peer box and failover, which are not configured."

// standalonePair describes a box without a peer from what it knows.
func standalonePair(name, portal string) PairState {
	return PairState{
		Boxes:           []PairBox{{Name: name, Address: portal, Role: RoleStandalone, Local: true}},
		WhyNoSwitchover: whyStandalone, WhyNoStandby: whyStandalone, WhyNoResume: whyStandalone,
	}
}
