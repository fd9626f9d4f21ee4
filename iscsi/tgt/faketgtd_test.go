package tgt

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/sand-appliance/sand/appliance/command"
)

// render prints targets the way tgt 1.0.85's `--op show --mode target`
// does (fields sand does not parse are printed with the values tgt shows
// for a plain disk).
func render(targets []LiveTarget) string {
	var b strings.Builder
	yn := func(v bool) string {
		if v {
			return "Yes"
		}
		return "No"
	}
	for _, t := range targets {
		fmt.Fprintf(&b, "Target %d: %s\n", t.TID, t.IQN)
		fmt.Fprintf(&b, "    System information:\n        Driver: %s\n        State: %s\n", t.Driver, t.State)
		b.WriteString("    I_T nexus information:\n")
		for _, n := range t.Nexuses {
			fmt.Fprintf(&b, "        I_T nexus: %d\n            Initiator: %s alias: %s\n", n.ID, n.Initiator, n.Alias)
			for _, c := range n.Connections {
				fmt.Fprintf(&b, "            Connection: %d\n                IP Address: %s\n", c.ID, c.Address)
			}
		}
		b.WriteString("    LUN information:\n")
		for _, l := range t.LUNs {
			fmt.Fprintf(&b, "        LUN: %d\n", l.Number)
			fmt.Fprintf(&b, "            Type: %s\n", l.Type)
			fmt.Fprintf(&b, "            SCSI ID: %s\n", l.SCSIID)
			fmt.Fprintf(&b, "            SCSI SN: %s\n", l.SCSISN)
			fmt.Fprintf(&b, "            Size: %d MB, Block size: %d\n", l.SizeMB, l.BlockSize)
			fmt.Fprintf(&b, "            Online: %s\n", yn(l.Online))
			b.WriteString("            Removable media: No\n            Prevent removal: No\n")
			fmt.Fprintf(&b, "            Readonly: %s\n", yn(l.Readonly))
			b.WriteString("            SWP: No\n            Thin-provisioning: No\n")
			fmt.Fprintf(&b, "            Backing store type: %s\n", l.BackingType)
			fmt.Fprintf(&b, "            Backing store path: %s\n", l.Path)
			fmt.Fprintf(&b, "            Backing store flags: %s\n", l.Flags)
		}
		b.WriteString("    Account information:\n")
		for _, a := range t.Accounts {
			fmt.Fprintf(&b, "        %s\n", a)
		}
		if t.OutgoingAccount != "" {
			fmt.Fprintf(&b, "        %s (outgoing)\n", t.OutgoingAccount)
		}
		b.WriteString("    ACL information:\n")
		for _, a := range t.ACL {
			fmt.Fprintf(&b, "        %s\n", a)
		}
	}
	return b.String()
}

// fakeTgtd interprets tgtadm command lines against an in-memory tgtd that
// behaves like tgt 1.0.85 where sand depends on it (rc 22 on duplicates
// and on missing objects, address rules printed before name rules, newest
// portal and account first, accounts global, deleting an account unbinds
// it everywhere). Use its Run as command.Fake's Respond.
type fakeTgtd struct {
	targets  []*fakeTarget
	portals  []netip.AddrPort
	accounts []string          // newest first, as tgt lists them
	secrets  map[string]string // user -> password
	sizes    map[string]int64  // backing store path -> bytes
	stopped  bool
	nexusID  uint64
}

type fakeTarget struct {
	LiveTarget
	addrACL, nameACL []string
}

func newFakeTgtd(portals ...string) *fakeTgtd {
	f := &fakeTgtd{secrets: map[string]string{}, sizes: map[string]int64{}}
	for _, p := range portals {
		f.portals = append(f.portals, netip.MustParseAddrPort(p))
	}
	return f
}

func (f *fakeTgtd) targetByTID(tid string) *fakeTarget {
	for _, t := range f.targets {
		if strconv.Itoa(t.TID) == tid {
			return t
		}
	}
	return nil
}

// login adds an I_T nexus, as an initiator logging in would.
func (f *fakeTgtd) login(tid int, initiator, addr string) {
	f.nexusID++
	t := f.targetByTID(strconv.Itoa(tid))
	t.Nexuses = append(t.Nexuses, Nexus{ID: f.nexusID, Initiator: initiator, Alias: "none", Connections: []Connection{{ID: 0, Address: addr}}})
}

func (f *fakeTgtd) show() []LiveTarget {
	var out []LiveTarget
	for _, t := range f.targets {
		lt := t.LiveTarget
		lt.ACL = append(slices.Clone(t.addrACL), t.nameACL...)
		out = append(out, lt)
	}
	return out
}

func (f *fakeTgtd) Run(argv []string) ([]byte, error) {
	out, msg := f.run(argv)
	if msg != "" {
		return nil, &command.Error{Argv: argv, Code: 22, Stderr: "tgtadm: " + msg + "\n", Err: errors.New("exit status 22")}
	}
	return []byte(out), nil
}

func (f *fakeTgtd) run(argv []string) (out, errMsg string) {
	if len(argv) < 3 || argv[0] != "tgtadm" || argv[1] != "-C" {
		return "", "fake tgtd: unexpected command"
	}
	if f.stopped {
		return "", "can't send the request to the tgt daemon, Transport endpoint is not connected"
	}
	opt := map[string]string{}
	for i := 3; i < len(argv); i++ {
		switch argv[i] {
		case "--force", "--outgoing":
			opt[argv[i]] = "yes"
		default:
			if i+1 >= len(argv) {
				return "", "fake tgtd: option without value " + argv[i]
			}
			opt[argv[i]] = argv[i+1]
			i++
		}
	}
	tid := opt["--tid"]
	t := f.targetByTID(tid)
	switch opt["--mode"] + " " + opt["--op"] {
	case "sys show":
		return "System:\n    State: ready\n", ""
	case "system delete":
		if len(f.targets) > 0 {
			return "", "invalid request"
		}
		f.stopped = true
		return "", ""
	case "target show":
		return render(f.show()), ""
	case "portal show":
		var b strings.Builder
		for _, p := range f.portals {
			fmt.Fprintf(&b, "Portal: %s,1\n", p)
		}
		return b.String(), ""
	case "account show":
		if len(f.accounts) == 0 {
			return "", ""
		}
		return "Account list:\n    " + strings.Join(f.accounts, "\n    ") + "\n", ""
	case "portal new", "portal delete":
		ap, err := netip.ParseAddrPort(strings.TrimPrefix(opt["--param"], "portal="))
		if err != nil {
			return "", "invalid request"
		}
		i := slices.Index(f.portals, ap)
		if opt["--op"] == "new" {
			if i >= 0 {
				return "", "invalid request"
			}
			f.portals = append([]netip.AddrPort{ap}, f.portals...)
		} else {
			if i < 0 {
				return "", "invalid request"
			}
			f.portals = slices.Delete(f.portals, i, i+1)
		}
	case "target new":
		n, err := strconv.Atoi(tid)
		if err != nil || n <= 0 {
			return "", "invalid request"
		}
		if t != nil || slices.ContainsFunc(f.targets, func(t *fakeTarget) bool { return t.IQN == opt["--targetname"] }) {
			return "", "this target already exists"
		}
		f.targets = append(f.targets, &fakeTarget{LiveTarget: LiveTarget{TID: n, IQN: opt["--targetname"], Driver: "iscsi", State: "ready",
			LUNs: []LiveLUN{{Number: 0, Type: "controller", SCSIID: fmt.Sprintf("IET     %04x0000", n), SCSISN: fmt.Sprintf("beaf%d0", n),
				BlockSize: 1, Online: true, BackingType: "null", Path: "None"}}}})
		slices.SortFunc(f.targets, func(a, b *fakeTarget) int { return a.TID - b.TID })
	case "target delete":
		if t == nil {
			return "", "can't find the target"
		}
		if len(t.Nexuses) > 0 && opt["--force"] == "" {
			return "", "this target is still active"
		}
		f.targets = slices.DeleteFunc(f.targets, func(x *fakeTarget) bool { return x == t })
	case "target bind", "target unbind":
		if t == nil {
			return "", "can't find the target"
		}
		list, rule := &t.nameACL, opt["--initiator-name"]
		if a, ok := opt["--initiator-address"]; ok {
			list, rule = &t.addrACL, a
		}
		i := slices.Index(*list, rule)
		if opt["--op"] == "bind" {
			if i >= 0 {
				return "", "this access control rule already exists"
			}
			*list = append(*list, rule)
		} else {
			if i < 0 {
				return "", "this access control rule does not exist"
			}
			*list = slices.Delete(*list, i, i+1)
		}
	case "logicalunit new":
		if t == nil {
			return "", "can't find the target"
		}
		n, err := strconv.Atoi(opt["--lun"])
		if err != nil {
			return "", "invalid request"
		}
		if slices.ContainsFunc(t.LUNs, func(l LiveLUN) bool { return l.Number == n }) {
			return "", "this logical unit number already exists"
		}
		size, ok := f.sizes[opt["--backing-store"]]
		if !ok {
			return "", "invalid request"
		}
		t.LUNs = append(t.LUNs, LiveLUN{Number: n, Type: "disk", SCSIID: fmt.Sprintf("IET     %04x%04x", t.TID, n), SCSISN: fmt.Sprintf("beaf%d%d", t.TID, n),
			SizeMB: sizeMB(size, 512), BlockSize: 512, Online: true, BackingType: "rdwr", Path: opt["--backing-store"], Flags: opt["--bsoflags"]})
		slices.SortFunc(t.LUNs, func(a, b LiveLUN) int { return a.Number - b.Number })
	case "logicalunit update", "logicalunit delete":
		if t == nil {
			return "", "can't find the target"
		}
		i := slices.IndexFunc(t.LUNs, func(l LiveLUN) bool { return strconv.Itoa(l.Number) == opt["--lun"] })
		if i < 0 {
			return "", "can't find the logical unit"
		}
		if opt["--op"] == "delete" {
			t.LUNs = slices.Delete(t.LUNs, i, i+1)
			break
		}
		for kv := range strings.SplitSeq(opt["--params"], ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "scsi_id":
				t.LUNs[i].SCSIID = v
			case "scsi_sn":
				t.LUNs[i].SCSISN = v
			case "vendor_id", "product_id":
			default:
				return "", "invalid request"
			}
		}
	case "account new":
		if slices.Contains(f.accounts, opt["--user"]) {
			return "", "this account already exists"
		}
		f.accounts = append([]string{opt["--user"]}, f.accounts...)
		f.secrets[opt["--user"]] = opt["--password"]
	case "account delete":
		u := opt["--user"]
		if !slices.Contains(f.accounts, u) {
			return "", "can't find the account"
		}
		f.accounts = slices.DeleteFunc(f.accounts, func(a string) bool { return a == u })
		delete(f.secrets, u)
		for _, t := range f.targets {
			t.Accounts = slices.DeleteFunc(t.Accounts, func(a string) bool { return a == u })
			if t.OutgoingAccount == u {
				t.OutgoingAccount = ""
			}
		}
	case "account bind", "account unbind":
		u := opt["--user"]
		if !slices.Contains(f.accounts, u) || t == nil {
			return "", "can't find the account"
		}
		out := opt["--outgoing"] != ""
		switch {
		case opt["--op"] == "bind" && out:
			if t.OutgoingAccount != "" {
				return "", "this target already has an outgoing account"
			}
			t.OutgoingAccount = u
		case opt["--op"] == "bind":
			if slices.Contains(t.Accounts, u) {
				return "", "this account already exists"
			}
			t.Accounts = append(t.Accounts, u)
		case out:
			if t.OutgoingAccount != u {
				return "", "can't find the account"
			}
			t.OutgoingAccount = ""
		default:
			if !slices.Contains(t.Accounts, u) {
				return "", "can't find the account"
			}
			t.Accounts = slices.DeleteFunc(t.Accounts, func(a string) bool { return a == u })
		}
	default:
		return "", "invalid request"
	}
	return "", ""
}
