package drbd

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// The shape of `drbdsetup status --json` (DRBD 9, drbd-utils
// user/v9/drbdsetup.c: resource_status_json, device_status_json,
// connection_status_json, peer_device_status_json). Sizes are KiB.
type jsonResource struct {
	Name        string           `json:"name"`
	NodeID      int              `json:"node-id"`
	Role        string           `json:"role"`
	Suspended   bool             `json:"suspended"`
	Devices     []jsonDevice     `json:"devices"`
	Connections []jsonConnection `json:"connections"`
}

type jsonDevice struct {
	Volume    int    `json:"volume"`
	Minor     int    `json:"minor"`
	DiskState string `json:"disk-state"`
	Size      int64  `json:"size"`
}

type jsonConnection struct {
	PeerNodeID      int              `json:"peer-node-id"`
	Name            string           `json:"name"`
	ConnectionState string           `json:"connection-state"`
	PeerRole        string           `json:"peer-role"`
	PeerDevices     []jsonPeerDevice `json:"peer_devices"`
}

type jsonPeerDevice struct {
	Volume            int      `json:"volume"`
	ReplicationState  string   `json:"replication-state"`
	PeerDiskState     string   `json:"peer-disk-state"`
	ResyncSuspended   string   `json:"resync-suspended"`
	OutOfSync         int64    `json:"out-of-sync"`
	PercentInSync     *float64 `json:"percent-in-sync"`
	PercentResyncDone *float64 `json:"percent-resync-done"`
	SecondsToFinish   *float64 `json:"estimated-seconds-to-finish"`
}

// noEstimate is what drbdsetup prints for estimated-seconds-to-finish when
// nothing has been synced yet.
const noEstimate = 987654321

// ParseStatusJSON parses `drbdsetup status --json` (DRBD 9): one Status per
// device (volume) of every resource, with the peer's side taken from the
// first connection that has a peer device for that volume (sand resources
// have one peer). A resource with no connection is StandAlone.
func ParseStatusJSON(data []byte) ([]Status, error) {
	var resources []jsonResource
	if err := json.Unmarshal(data, &resources); err != nil {
		return nil, fmt.Errorf("parse drbdsetup status --json: %w", err)
	}
	var out []Status
	for _, r := range resources {
		role, err := ParseRole(r.Role)
		if err != nil {
			return nil, fmt.Errorf("parse drbdsetup status --json: resource %q: %w", r.Name, err)
		}
		for _, d := range r.Devices {
			st := Status{
				Resource:   r.Name,
				Minor:      d.Minor,
				Volume:     d.Volume,
				Role:       role,
				Suspended:  r.Suspended,
				Connection: ConnStandAlone,
			}
			if st.Disk, err = ParseDiskState(d.DiskState); err != nil {
				return nil, fmt.Errorf("parse drbdsetup status --json: resource %q volume %d: %w", r.Name, d.Volume, err)
			}
			if err := st.applyConnection(r.Connections, d.Volume); err != nil {
				return nil, fmt.Errorf("parse drbdsetup status --json: resource %q volume %d: %w", r.Name, d.Volume, err)
			}
			out = append(out, st)
		}
	}
	return out, nil
}

func (st *Status) applyConnection(conns []jsonConnection, volume int) error {
	if len(conns) == 0 {
		return nil
	}
	c := conns[0]
	var pd *jsonPeerDevice
	for i := range conns {
		for j := range conns[i].PeerDevices {
			if conns[i].PeerDevices[j].Volume == volume {
				c, pd = conns[i], &conns[i].PeerDevices[j]
				break
			}
		}
		if pd != nil {
			break
		}
	}
	var err error
	if st.PeerRole, err = ParseRole(c.PeerRole); err != nil {
		return err
	}
	repl := ""
	if pd != nil {
		repl = pd.ReplicationState
		if st.PeerDisk, err = ParseDiskState(pd.PeerDiskState); err != nil {
			return err
		}
		st.ResyncSuspended = pd.ResyncSuspended != "" && pd.ResyncSuspended != "no"
		if pd.OutOfSync < 0 || pd.OutOfSync > 1<<52 {
			return fmt.Errorf("out-of-sync %d KiB out of range", pd.OutOfSync)
		}
		st.OutOfSync = pd.OutOfSync * 1024
	}
	if st.Connection, err = connState9(c.ConnectionState, repl); err != nil {
		return err
	}
	if pd != nil && st.Connection.Syncing() {
		if p := pd.PercentResyncDone; p != nil && *p >= 0 && *p <= 100 {
			st.SyncPercent = *p
		}
		if s := pd.SecondsToFinish; s != nil && *s >= 0 && *s < noEstimate && !math.IsNaN(*s) {
			st.SyncRemaining = time.Duration(*s) * time.Second
		}
	}
	return nil
}

// connState9 folds DRBD 9's connection state and replication state into one
// 8.4-style ConnState. drbdsetup-84's events2 uses the same words.
func connState9(conn, repl string) (ConnState, error) {
	switch conn {
	case "Connecting":
		return ConnWFConnection, nil
	case "Connected":
	default:
		c, err := ParseConnState(conn)
		if err != nil || c == ConnUnconfigured {
			return ConnStateUnknown, fmt.Errorf("unknown drbd connection state %q", conn)
		}
		if c < ConnWFReportParams || c == ConnTearDown {
			return c, nil
		}
		// A connected state in 8.4's spelling: the peer device says more.
	}
	switch repl {
	case "Off", "":
		return ConnWFReportParams, nil
	case "Established":
		return ConnConnected, nil
	}
	c, err := ParseConnState(repl)
	if err != nil || c < ConnStartingSyncS {
		return ConnStateUnknown, fmt.Errorf("unknown drbd replication state %q", repl)
	}
	return c, nil
}
