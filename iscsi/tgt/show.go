package tgt

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// LiveTarget is one target as `tgtadm --op show --mode target` reports it.
type LiveTarget struct {
	TID    int
	IQN    string
	Driver string
	State  string
	// Nexuses are the logged-in initiators (the "I_T nexus information").
	Nexuses []Nexus
	// LUNs include tgt's controller at LUN 0.
	LUNs []LiveLUN
	// Accounts are the incoming CHAP users bound to the target.
	Accounts []string
	// OutgoingAccount is the mutual CHAP user, "" if none (tgt allows one).
	OutgoingAccount string
	// ACL is the access list as printed: tgt prints the address rules
	// (bound with --initiator-address) and then the name rules (bound with
	// --initiator-name) under one heading, so the two can only be told
	// apart by their syntax (see isAddressRule).
	ACL []string
}

// Nexus is one I_T nexus: an initiator logged in to a target.
type Nexus struct {
	ID          uint64
	Initiator   string
	Alias       string
	Connections []Connection
}

// Connection is one TCP connection of a nexus.
type Connection struct {
	ID      int
	Address string
}

// LiveLUN is one logical unit of a live target.
type LiveLUN struct {
	Number int
	Type   string // "controller", "disk", ...
	SCSIID string
	SCSISN string
	// SizeMB is the size tgt cached when the LUN was created, in units of
	// 10^6 bytes, rounded to nearest (see sizeMB).
	SizeMB      int64
	BlockSize   int
	Online      bool
	Readonly    bool
	BackingType string // "rdwr", "null", ...
	Path        string // "None" for the controller
	Flags       string // "", "sync", "direct", "sync:direct"
}

// Portal is one listening portal from `tgtadm --op show --mode portal`.
type Portal struct {
	Addr netip.AddrPort
	TPGT int
}

// section of a target block in the show output.
type section int

const (
	secNone section = iota
	secSystem
	secNexus
	secLUN
	secAccount
	secACL
	secOther
)

var sections = map[string]section{
	"System information:":    secSystem,
	"I_T nexus information:": secNexus,
	"LUN information:":       secLUN,
	"Account information:":   secAccount,
	"ACL information:":       secACL,
}

// ParseShow parses the output of `tgtadm --lld iscsi --op show --mode
// target` (tgt 1.0.85). tgt indents by four spaces per level; the parser
// relies on that indentation and on the section headings, and ignores keys
// and sections it does not know, so a newer tgt that adds fields still
// parses.
func ParseShow(out []byte) ([]LiveTarget, error) {
	var (
		targets []LiveTarget
		t       *LiveTarget
		sec     section
		lun     *LiveLUN
		nexus   *Nexus
	)
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	n := 0
	for sc.Scan() {
		n++
		raw := strings.TrimRight(sc.Text(), " \t\r")
		if raw == "" {
			continue
		}
		text := strings.TrimLeft(raw, " ")
		level := (len(raw) - len(text)) / 4
		fail := func(format string, args ...any) error {
			return fmt.Errorf("parse tgtadm show output, line %d %q: %s", n, raw, fmt.Sprintf(format, args...))
		}
		if level == 0 {
			rest, ok := strings.CutPrefix(text, "Target ")
			if !ok {
				return nil, fail("expected \"Target <tid>: <iqn>\"")
			}
			num, iqn, ok := strings.Cut(rest, ":")
			iqn = strings.TrimSpace(iqn)
			if !ok || iqn == "" {
				return nil, fail("expected \"Target <tid>: <iqn>\"")
			}
			tid, err := strconv.Atoi(num)
			if err != nil || tid <= 0 {
				return nil, fail("bad target id %q", num)
			}
			targets = append(targets, LiveTarget{TID: tid, IQN: iqn})
			t = &targets[len(targets)-1]
			sec, lun, nexus = secNone, nil, nil
			continue
		}
		if t == nil {
			return nil, fail("indented line before the first target")
		}
		if level == 1 {
			s, ok := sections[text]
			if !ok {
				s = secOther
			}
			sec, lun, nexus = s, nil, nil
			continue
		}
		switch sec {
		case secSystem:
			if k, v, ok := cutKV(text); ok {
				switch k {
				case "Driver":
					t.Driver = v
				case "State":
					t.State = v
				}
			}
		case secNexus:
			switch {
			case level == 2:
				v, ok := strings.CutPrefix(text, "I_T nexus:")
				if !ok {
					return nil, fail("expected \"I_T nexus: <id>\"")
				}
				id, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				if err != nil {
					return nil, fail("bad nexus id: %v", err)
				}
				t.Nexuses = append(t.Nexuses, Nexus{ID: id})
				nexus = &t.Nexuses[len(t.Nexuses)-1]
			case nexus == nil:
				return nil, fail("nexus detail outside an I_T nexus")
			case level == 3:
				k, v, ok := cutKV(text)
				if !ok {
					continue
				}
				switch k {
				case "Initiator":
					// "iqn... alias: none": the name has no spaces.
					name, alias, _ := strings.Cut(" "+v, " alias:")
					nexus.Initiator = strings.TrimSpace(name)
					nexus.Alias = strings.TrimSpace(alias)
				case "Connection":
					id, err := strconv.Atoi(v)
					if err != nil {
						return nil, fail("bad connection id: %v", err)
					}
					nexus.Connections = append(nexus.Connections, Connection{ID: id})
				}
			default:
				k, v, ok := cutKV(text)
				if ok && k == "IP Address" {
					if len(nexus.Connections) == 0 {
						return nil, fail("IP address outside a connection")
					}
					nexus.Connections[len(nexus.Connections)-1].Address = v
				}
			}
		case secLUN:
			if level == 2 {
				v, ok := strings.CutPrefix(text, "LUN:")
				if !ok {
					return nil, fail("expected \"LUN: <number>\"")
				}
				num, err := strconv.Atoi(strings.TrimSpace(v))
				if err != nil || num < 0 {
					return nil, fail("bad LUN number %q", v)
				}
				t.LUNs = append(t.LUNs, LiveLUN{Number: num})
				lun = &t.LUNs[len(t.LUNs)-1]
				continue
			}
			if lun == nil {
				return nil, fail("LUN detail outside a LUN")
			}
			k, v, ok := cutKV(text)
			if !ok {
				continue
			}
			switch k {
			case "Type":
				lun.Type = v
			case "SCSI ID":
				lun.SCSIID = v
			case "SCSI SN":
				lun.SCSISN = v
			case "Size":
				// "67 MB, Block size: 512"
				size, bs, ok := strings.Cut(v, ",")
				mb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(size), " MB"), 10, 64)
				if !ok || err != nil || mb < 0 {
					return nil, fail("expected \"Size: <n> MB, Block size: <n>\"")
				}
				lun.SizeMB = mb
				bk, bv, ok := cutKV(strings.TrimSpace(bs))
				if b, err := strconv.Atoi(bv); ok && bk == "Block size" && err == nil && b >= 0 {
					lun.BlockSize = b
				} else {
					return nil, fail("expected \"Block size: <n>\"")
				}
			case "Online":
				lun.Online = v == "Yes"
			case "Readonly":
				lun.Readonly = v == "Yes"
			case "Backing store type":
				lun.BackingType = v
			case "Backing store path":
				lun.Path = v
			case "Backing store flags":
				lun.Flags = v
			}
		case secAccount:
			if user, ok := strings.CutSuffix(text, " (outgoing)"); ok {
				t.OutgoingAccount = user
			} else {
				t.Accounts = append(t.Accounts, text)
			}
		case secACL:
			t.ACL = append(t.ACL, text)
		case secNone:
			return nil, fail("detail outside a section")
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read tgtadm show output: %w", err)
	}
	return targets, nil
}

// cutKV splits "Key: value" (value may be empty, as in "Backing store
// flags: ").
func cutKV(s string) (key, value string, ok bool) {
	k, v, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", false
	}
	return strings.TrimSpace(k), strings.TrimSpace(v), true
}

// ParsePortals parses `tgtadm --lld iscsi --op show --mode portal`:
// lines "Portal: 10.0.0.1:3260,1" and "Portal: [::]:3260,1".
func ParsePortals(out []byte) ([]Portal, error) {
	var portals []Portal
	for i, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		v, ok := strings.CutPrefix(line, "Portal:")
		if !ok {
			return nil, fmt.Errorf("parse tgtadm portal list, line %d %q: expected \"Portal: <ip>:<port>,<tpgt>\"", i+1, line)
		}
		addr, tpgt, _ := strings.Cut(strings.TrimSpace(v), ",")
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return nil, fmt.Errorf("parse tgtadm portal list, line %d %q: %w", i+1, line, err)
		}
		p := Portal{Addr: ap}
		if tpgt != "" {
			if p.TPGT, err = strconv.Atoi(tpgt); err != nil {
				return nil, fmt.Errorf("parse tgtadm portal list, line %d %q: bad portal group tag: %w", i+1, line, err)
			}
		}
		portals = append(portals, p)
	}
	return portals, nil
}

// ParseAccounts parses `tgtadm --lld iscsi --op show --mode account`:
// "Account list:" and one user per indented line (nothing at all when there
// are no accounts).
func ParseAccounts(out []byte) ([]string, error) {
	var users []string
	for i, line := range strings.Split(string(out), "\n") {
		text := strings.TrimSpace(line)
		switch {
		case text == "":
		case text == "Account list:" && !strings.HasPrefix(line, " "):
		case strings.HasPrefix(line, " "):
			users = append(users, text)
		default:
			return nil, fmt.Errorf("parse tgtadm account list, line %d %q: expected \"Account list:\" or an indented user", i+1, line)
		}
	}
	return users, nil
}
