package lio

import (
	"context"
	"fmt"
	"strings"

	"github.com/sand-appliance/sand/iscsi"
)

// Sessions implements iscsi.Driver from each ACL's info attribute
// (iscsi/<iqn>/tpgt_N/acls/<initiator>/info). sand uses explicit ACLs only
// (generate_node_acls=0), so every normal session belongs to an ACL.
func (d *Driver) Sessions(ctx context.Context) ([]iscsi.Session, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	r := reader{d.fs}
	ok, err := r.exists("iscsi")
	if err != nil || !ok {
		if err != nil {
			return nil, fmt.Errorf("list LIO sessions: %w", err)
		}
		return nil, nil
	}
	wwns, err := r.dirs("iscsi")
	if err != nil {
		return nil, fmt.Errorf("list LIO sessions: %w", err)
	}
	var out []iscsi.Session
	for _, wwn := range wwns {
		if wwn == "discovery_auth" {
			continue
		}
		tpgs, err := r.dirs(join("iscsi", wwn))
		if err != nil {
			return nil, fmt.Errorf("list LIO sessions: %w", err)
		}
		for _, tpg := range tpgs {
			if !strings.HasPrefix(tpg, "tpgt_") {
				continue
			}
			acls, err := r.dirs(join("iscsi", wwn, tpg, "acls"))
			if err != nil {
				return nil, fmt.Errorf("list LIO sessions: %w", err)
			}
			for _, acl := range acls {
				if err := ctx.Err(); err != nil {
					return nil, fmt.Errorf("list LIO sessions: %w", err)
				}
				info, err := r.read(join("iscsi", wwn, tpg, "acls", acl, "info"))
				if err != nil {
					return nil, fmt.Errorf("list LIO sessions: %w", err)
				}
				if s, ok := parseACLInfo(info); ok {
					s.Target = wwn
					if s.Initiator == "" {
						s.Initiator = acl
					}
					out = append(out, s)
				}
			}
		}
	}
	return out, nil
}

// parseACLInfo reads lio_target_nacl_info_show's text. With a session:
//
//	InitiatorName: iqn.1993-08.org.debian:01:dom0
//	InitiatorAlias: dom0
//	LIO Session ID: 3   ISID: 0x23 3d 00 00 01 00  TSIH: 3  SessionType: Normal
//	Session State: TARG_SESS_STATE_LOGGED_IN
//	---------------------[iSCSI Session Values]-----------------------
//	  CmdSN/WR  :  CmdSN/WC  :  ExpCmdSN  :  MaxCmdSN  :     ITT    :     TTT
//	 0x00000040   0x00000040   0x00000137   0x00000176   0x00000108   0xffffffff
//	----------------------[iSCSI Connections]-------------------------
//	CID: 0  Connection State: TARG_CONN_STATE_LOGGED_IN
//	   Address 10.99.0.1 TCP  StatSN: 0x00000137
//
// and without: "No active iSCSI Session for Initiator Endpoint: <iqn>". A
// session counts when it is a normal (not discovery) session that is
// logged in or active; the address is its first connection's.
func parseACLInfo(info string) (iscsi.Session, bool) {
	var s iscsi.Session
	normal, up := true, false
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "No active"):
			return s, false
		case strings.HasPrefix(line, "InitiatorName:"):
			s.Initiator = strings.TrimSpace(strings.TrimPrefix(line, "InitiatorName:"))
		case strings.Contains(line, "SessionType:"):
			f := strings.Fields(line[strings.Index(line, "SessionType:")+len("SessionType:"):])
			normal = len(f) > 0 && f[0] == "Normal"
		case strings.HasPrefix(line, "Session State:"):
			st := strings.TrimSpace(strings.TrimPrefix(line, "Session State:"))
			up = st == "TARG_SESS_STATE_LOGGED_IN" || st == "TARG_SESS_STATE_ACTIVE"
		case strings.HasPrefix(line, "Address ") && s.Address == "":
			if f := strings.Fields(line); len(f) >= 2 {
				s.Address = f[1]
			}
		}
	}
	return s, normal && up && s.Initiator != ""
}
