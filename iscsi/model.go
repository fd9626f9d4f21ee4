// Package iscsi models what the appliance exports over iSCSI (a TargetGroup of
// targets, each with logical units and an access list), renders and parses it
// as IET's ietd.conf, and defines the Driver contract that the tgt and lio
// drivers implement.
//
// The TargetGroup is pure data derived from the registry; it is what moves to
// the peer on failover. Drivers make a live target match it.
package iscsi

import (
	"context"
)

// IOType is IET's Type= for a logical unit: how the target opens the backing
// store.
type IOType string

const (
	FileIO  IOType = "fileio"  // a regular file, or a block device through the page cache
	BlockIO IOType = "blockio" // a block device, direct
)

// DefaultPort is the well-known iSCSI port.
const DefaultPort = 3260

// TargetGroup is every target the box exports, all on the same portals.
type TargetGroup struct {
	// Portals are the "ip:port" addresses every target listens on: the
	// box's own address for a standalone box, the VIP for a pair.
	Portals []string
	Targets []Target
}

// Target is one iSCSI target (one IQN) with its logical units and access
// control. By default sand makes one target per LUN, exporting it as the
// driver's first LUN number.
type Target struct {
	IQN   string
	Alias string
	LUNs  []LogicalUnit
	// Initiators may log in and see the LUNs. Empty means nobody: sand
	// never exports to every initiator.
	Initiators []string
	// CHAP is IET's IncomingUser: the initiator authenticates to the target.
	CHAP *CHAP
	// MutualCHAP is IET's OutgoingUser: the target authenticates back.
	MutualCHAP *CHAP
}

// LogicalUnit is one SCSI logical unit of a target.
type LogicalUnit struct {
	Number int
	// Name is the registry's name of the LUN (sand's, not IET's).
	Name string
	Path string
	Type IOType
	// Size of the backing store in bytes, so drivers can notice a grow.
	Size int64
	// Serial is the unit serial number (VPD page 0x80, IET ScsiSN).
	Serial string
	// NAA is the 32 hex digit NAA IEEE Registered Extended identifier
	// (VPD page 0x83), derived from Serial the way LIO derives it so both
	// drivers present the same identity.
	NAA string
}

// CHAP is one CHAP account.
type CHAP struct {
	User   string
	Secret string
}

// Session is an initiator logged in to a target.
type Session struct {
	Target    string
	Initiator string
	Address   string
}

// Driver makes a live iSCSI target match a TargetGroup.
type Driver interface {
	// Apply makes the live target match tg exactly, idempotently: it adds,
	// changes and removes single targets and LUNs without restarting the
	// target or dropping sessions of targets it does not change.
	Apply(ctx context.Context, tg TargetGroup) error
	// Sessions lists the initiators logged in now.
	Sessions(ctx context.Context) ([]Session, error)
	// Stop removes every target and releases every backing store.
	Stop(ctx context.Context) error
	// FirstLUN is the lowest LUN number that can carry data: tgt keeps LUN
	// 0 for its controller, LIO exports data at LUN 0.
	FirstLUN() int
}
