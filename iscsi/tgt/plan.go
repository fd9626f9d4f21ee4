package tgt

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/sand-appliance/sand/iscsi"
)

// Identity every data LUN presents in the standard INQUIRY. The product is
// a constant rather than the LUN's name: tgt does not show vendor or product
// in its target listing, so a value that could change would be one Apply
// cannot compare, and the unit's identity is its serial and NAA anyway.
const (
	VendorID  = "SAND"
	ProductID = "sand"
)

// maxLUN is the largest LUN tgt can report with flat addressing (14 bits).
const maxLUN = 16383

// Backing store flags. Every data LUN is opened O_SYNC: tgt's rdwr backing
// store answers a WRITE with GOOD as soon as pwrite() returns, and without
// O_SYNC that is when the data sits in this box's page cache. On a failover
// that page cache is lost while the initiator believes the write is done;
// with O_SYNC the write has reached the backing device (for a pair, DRBD
// protocol C, so both disks) before tgt acknowledges it. blockio adds
// O_DIRECT, as IET's blockio bypasses the page cache.
const (
	flagsFileIO  = "sync"
	flagsBlockIO = "sync:direct"
)

// stepKind tells Apply what a step means for the accounts it remembers.
type stepKind int

const (
	stepOther stepKind = iota
	stepAccountNew
	stepAccountDelete
)

// step is one tgtadm invocation (the arguments after "-C N").
type step struct {
	args []string
	kind stepKind
	user string // for account steps
	hash string // for stepAccountNew: secretHash of the password set
}

// liveState is everything Apply reads from tgtd.
type liveState struct {
	targets  []LiveTarget
	portals  []Portal
	accounts []string
}

// validate checks tg before anything is changed, and returns the accounts
// it needs (user -> secret; tgt's accounts are global, one password each).
func validate(tg iscsi.TargetGroup) (map[string]string, error) {
	var errs []error
	iqns := map[string]bool{}
	accounts := map[string]string{}
	addAccount := func(iqn, what string, c *iscsi.CHAP) {
		if c == nil {
			return
		}
		if err := c.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("target %s: %s: %w", iqn, what, err))
			return
		}
		if s, ok := accounts[c.User]; ok && s != c.Secret {
			errs = append(errs, fmt.Errorf("target %s: CHAP user %q is used with two different secrets: tgt keeps one password per user for all targets", iqn, c.User))
			return
		}
		accounts[c.User] = c.Secret
	}
	for _, p := range tg.Portals {
		if _, err := parsePortal(p); err != nil {
			errs = append(errs, err)
		}
	}
	for _, t := range tg.Targets {
		if err := iscsi.ValidateIQN(t.IQN); err != nil {
			errs = append(errs, fmt.Errorf("target: %w", err))
		}
		if iqns[t.IQN] {
			errs = append(errs, fmt.Errorf("target %s is listed twice", t.IQN))
		}
		iqns[t.IQN] = true
		luns := map[int]bool{}
		for _, lu := range t.LUNs {
			if err := validateLUN(lu); err != nil {
				errs = append(errs, fmt.Errorf("target %s: %w", t.IQN, err))
			}
			if luns[lu.Number] {
				errs = append(errs, fmt.Errorf("target %s: LUN %d is listed twice", t.IQN, lu.Number))
			}
			luns[lu.Number] = true
		}
		seen := map[string]bool{}
		for _, ini := range t.Initiators {
			switch {
			case ini == "" || strings.ContainsAny(ini, " \t\r\n,="):
				errs = append(errs, fmt.Errorf("target %s: initiator name %q is empty or has spaces, ',' or '='", t.IQN, ini))
			case strings.EqualFold(ini, "ALL"):
				errs = append(errs, fmt.Errorf("target %s: initiator \"ALL\" is refused: sand exports only to named initiators", t.IQN))
			case isAddressRule(ini):
				errs = append(errs, fmt.Errorf("target %s: initiator %q is an address, not an initiator name", t.IQN, ini))
			case seen[ini]:
				errs = append(errs, fmt.Errorf("target %s: initiator %s is listed twice", t.IQN, ini))
			}
			seen[ini] = true
		}
		if t.MutualCHAP != nil && t.CHAP == nil {
			errs = append(errs, fmt.Errorf("target %s: mutual CHAP needs CHAP too: the target only authenticates back to an initiator that authenticated itself", t.IQN))
		}
		addAccount(t.IQN, "CHAP", t.CHAP)
		addAccount(t.IQN, "mutual CHAP", t.MutualCHAP)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid target group: %w", errors.Join(errs...))
	}
	return accounts, nil
}

func validateLUN(lu iscsi.LogicalUnit) error {
	switch {
	case lu.Number < 1:
		return fmt.Errorf("LUN %d: tgt keeps LUN 0 for its controller, data LUNs start at %d", lu.Number, 1)
	case lu.Number > maxLUN:
		return fmt.Errorf("LUN %d: tgt numbers LUNs up to %d", lu.Number, maxLUN)
	case lu.Path == "" || !filepath.IsAbs(lu.Path):
		return fmt.Errorf("LUN %d: backing store path %q must be absolute", lu.Number, lu.Path)
	case strings.ContainsAny(lu.Path, ",\n"):
		return fmt.Errorf("LUN %d: backing store path %q has ',' or a newline, which tgtadm cannot pass", lu.Number, lu.Path)
	case lu.Type != "" && lu.Type != iscsi.FileIO && lu.Type != iscsi.BlockIO:
		return fmt.Errorf("LUN %d: unknown type %q (want %s or %s)", lu.Number, lu.Type, iscsi.FileIO, iscsi.BlockIO)
	case lu.Size < 0:
		return fmt.Errorf("LUN %d: negative size %d", lu.Number, lu.Size)
	}
	if err := iscsi.ValidateSerial(lu.Serial); err != nil {
		return fmt.Errorf("LUN %d: %w (sand pins every LUN's serial so both boxes present one identity)", lu.Number, err)
	}
	if lu.NAA != "" && !validNAA(lu.NAA) {
		return fmt.Errorf("LUN %d: NAA %q must be 32 hex digits starting with 6 (NAA IEEE Registered Extended)", lu.Number, lu.NAA)
	}
	return nil
}

func validNAA(s string) bool {
	if len(s) != 32 || s[0] != '6' {
		return false
	}
	for _, r := range strings.ToLower(s) {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// naa is the scsi_id given to tgt: the LUN's NAA, or the one derived from
// its serial when the registry left it empty.
func naa(lu iscsi.LogicalUnit) string {
	if lu.NAA == "" {
		return iscsi.NAAFromSerial(lu.Serial)
	}
	return strings.ToLower(lu.NAA)
}

func flagsFor(t iscsi.IOType) string {
	if t == iscsi.BlockIO {
		return flagsBlockIO
	}
	return flagsFileIO
}

// parsePortal reads "ip:port" (or a bare ip, on the default port).
func parsePortal(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return netip.AddrPortFrom(a, iscsi.DefaultPort), nil
	}
	return netip.AddrPort{}, fmt.Errorf("portal %q is not ip:port", s)
}

// sizeMB is the size tgt shows for a backing store of the given bytes: it
// keeps whole blocks and prints 10^6-byte units rounded to nearest
// (measured on tgt 1.0.85: 1500001 B -> 1 MB, 2500096 B -> 3 MB, 104857600
// B -> 105 MB). Grows of at least 1 MB always change it.
func sizeMB(bytes int64, blockSize int) int64 {
	if blockSize <= 0 {
		blockSize = 512
	}
	b := bytes / int64(blockSize) * int64(blockSize)
	return (b + 500000) / 1000000
}

// isAddressRule tells an address ACL rule (ALL, an IP, a CIDR) from an
// initiator name rule; tgt prints both under "ACL information".
func isAddressRule(s string) bool {
	if s == "ALL" {
		return true
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	_, err := netip.ParsePrefix(s)
	return err == nil
}

// planner computes the tgtadm steps from the live state to the wanted
// TargetGroup. It keeps a simulated copy of the live state that each step
// updates, so later decisions see what earlier steps did.
type planner struct {
	live  liveState
	known map[string]string // user -> secretHash of the password sand set
	steps []step
}

func (p *planner) add(s step) { p.steps = append(p.steps, s) }

func (p *planner) target(iqn string) *LiveTarget {
	for i := range p.live.targets {
		if p.live.targets[i].IQN == iqn {
			return &p.live.targets[i]
		}
	}
	return nil
}

// plan returns the steps that make live match tg. It is pure: no tgtadm
// runs here. known holds what Apply remembers of the passwords it set,
// since tgt never shows one.
func plan(live liveState, tg iscsi.TargetGroup, known map[string]string) ([]step, error) {
	accounts, err := validate(tg)
	if err != nil {
		return nil, err
	}
	p := &planner{live: cloneState(live), known: known}
	wanted := map[string]bool{}
	for _, t := range tg.Targets {
		wanted[t.IQN] = true
	}

	// Portals that must go close first; new ones open last, once every
	// target is complete.
	var addPortals []netip.AddrPort
	if len(tg.Portals) > 0 {
		want := map[netip.AddrPort]bool{}
		for _, s := range tg.Portals {
			ap, _ := parsePortal(s)
			if !want[ap] {
				addPortals = append(addPortals, ap)
			}
			want[ap] = true
		}
		have := map[netip.AddrPort]bool{}
		for _, lp := range p.live.portals {
			have[lp.Addr] = true
			if !want[lp.Addr] {
				p.add(step{args: []string{"--lld", "iscsi", "--op", "delete", "--mode", "portal", "--param", "portal=" + lp.Addr.String()}})
			}
		}
		addPortals = slices.DeleteFunc(addPortals, func(ap netip.AddrPort) bool { return have[ap] })
	}

	// Targets that must go, with their sessions.
	maxTID := 0
	for _, lt := range p.live.targets {
		maxTID = max(maxTID, lt.TID)
		if !wanted[lt.IQN] {
			p.add(step{args: []string{"--lld", "iscsi", "--op", "delete", "--mode", "target", "--tid", strconv.Itoa(lt.TID), "--force"}})
		}
	}
	p.live.targets = slices.DeleteFunc(p.live.targets, func(lt LiveTarget) bool { return !wanted[lt.IQN] })

	// Accounts: create the missing ones; replace those whose password sand
	// did not set (or set differently). tgt has no way to change or show a
	// password, so replacing is delete + new, and deleting an account
	// unbinds it from every target. A target left without its incoming
	// account would let initiators in without CHAP, so the targets that
	// use the account lose their ACL first and get it back (below) only
	// after the new account is bound.
	for _, user := range sortedKeys(accounts) {
		hash := secretHash(accounts[user])
		if slices.Contains(p.live.accounts, user) {
			if p.known[user] == hash {
				continue
			}
			for i := range p.live.targets {
				lt := &p.live.targets[i]
				if slices.Contains(lt.Accounts, user) || lt.OutgoingAccount == user {
					p.narrowACL(lt, func(string) bool { return false })
				}
			}
			p.deleteAccount(user)
		}
		p.add(step{args: []string{"--lld", "iscsi", "--op", "new", "--mode", "account", "--user", user, "--password", accounts[user]}, kind: stepAccountNew, user: user, hash: hash})
		p.live.accounts = append(p.live.accounts, user)
	}

	next := maxTID + 1
	for _, t := range tg.Targets {
		lt := p.target(t.IQN)
		if lt == nil {
			p.live.targets = append(p.live.targets, LiveTarget{TID: next, IQN: t.IQN})
			lt = &p.live.targets[len(p.live.targets)-1]
			next++
			p.add(step{args: []string{"--lld", "iscsi", "--op", "new", "--mode", "target", "--tid", strconv.Itoa(lt.TID), "--targetname", t.IQN}})
		}
		p.target1(lt, t)
	}

	// Accounts nobody uses any more (bindings were removed above).
	for _, user := range slices.Clone(p.live.accounts) {
		if _, ok := accounts[user]; !ok {
			p.deleteAccount(user)
		}
	}

	for _, ap := range addPortals {
		p.add(step{args: []string{"--lld", "iscsi", "--op", "new", "--mode", "portal", "--param", "portal=" + ap.String()}})
	}
	return p.steps, nil
}

// target1 makes one (existing or just created) target match t, in an order
// that never lets an initiator see less than it should: access is narrowed
// first, LUNs and accounts are set up next, and access is widened last, so
// a new target is complete before anyone can log in.
func (p *planner) target1(lt *LiveTarget, t iscsi.Target) {
	tid := strconv.Itoa(lt.TID)

	// 1. Narrow the ACL.
	p.narrowACL(lt, func(rule string) bool { return slices.Contains(t.Initiators, rule) })

	// 2. LUNs: drop the unwanted, re-add the changed, add the new.
	wantLUN := map[int]iscsi.LogicalUnit{}
	for _, lu := range t.LUNs {
		wantLUN[lu.Number] = lu
	}
	var kept []LiveLUN
	for _, ll := range lt.LUNs {
		if ll.Number == 0 {
			kept = append(kept, ll) // tgt's controller
			continue
		}
		lu, ok := wantLUN[ll.Number]
		if ok && lunMatches(ll, lu) {
			kept = append(kept, ll)
			continue
		}
		p.add(step{args: []string{"--lld", "iscsi", "--op", "delete", "--mode", "logicalunit", "--tid", tid, "--lun", strconv.Itoa(ll.Number)}})
	}
	lt.LUNs = kept
	luns := slices.Clone(t.LUNs)
	slices.SortFunc(luns, func(a, b iscsi.LogicalUnit) int { return cmp.Compare(a.Number, b.Number) })
	for _, lu := range luns {
		if slices.ContainsFunc(lt.LUNs, func(ll LiveLUN) bool { return ll.Number == lu.Number }) {
			continue
		}
		n := strconv.Itoa(lu.Number)
		p.add(step{args: []string{"--lld", "iscsi", "--op", "new", "--mode", "logicalunit", "--tid", tid, "--lun", n, "--backing-store", lu.Path, "--bsoflags", flagsFor(lu.Type)}})
		p.add(step{args: []string{"--lld", "iscsi", "--op", "update", "--mode", "logicalunit", "--tid", tid, "--lun", n, "--params",
			"vendor_id=" + VendorID + ",product_id=" + ProductID + ",scsi_id=" + naa(lu) + ",scsi_sn=" + lu.Serial}})
		lt.LUNs = append(lt.LUNs, LiveLUN{Number: lu.Number})
	}

	// 3. CHAP. The new incoming account is bound before the old one goes,
	// so the target never runs without one; tgt allows one outgoing
	// account per target, so that one is swapped.
	if t.CHAP != nil && !slices.Contains(lt.Accounts, t.CHAP.User) {
		p.add(step{args: []string{"--lld", "iscsi", "--op", "bind", "--mode", "account", "--tid", tid, "--user", t.CHAP.User}})
		lt.Accounts = append(lt.Accounts, t.CHAP.User)
	}
	for _, user := range slices.Clone(lt.Accounts) {
		if t.CHAP == nil || user != t.CHAP.User {
			p.add(step{args: []string{"--lld", "iscsi", "--op", "unbind", "--mode", "account", "--tid", tid, "--user", user}})
			lt.Accounts = slices.DeleteFunc(lt.Accounts, func(u string) bool { return u == user })
		}
	}
	wantOut := ""
	if t.MutualCHAP != nil {
		wantOut = t.MutualCHAP.User
	}
	if lt.OutgoingAccount != wantOut {
		if lt.OutgoingAccount != "" {
			p.add(step{args: []string{"--lld", "iscsi", "--op", "unbind", "--mode", "account", "--tid", tid, "--user", lt.OutgoingAccount, "--outgoing"}})
		}
		if wantOut != "" {
			p.add(step{args: []string{"--lld", "iscsi", "--op", "bind", "--mode", "account", "--tid", tid, "--user", wantOut, "--outgoing"}})
		}
		lt.OutgoingAccount = wantOut
	}

	// 4. Widen the ACL, last.
	for _, ini := range t.Initiators {
		if !slices.Contains(lt.ACL, ini) {
			p.add(step{args: []string{"--lld", "iscsi", "--op", "bind", "--mode", "target", "--tid", tid, "--initiator-name", ini}})
			lt.ACL = append(lt.ACL, ini)
		}
	}
}

// deleteAccount deletes a global account; tgt unbinds it from every target.
func (p *planner) deleteAccount(user string) {
	p.add(step{args: []string{"--lld", "iscsi", "--op", "delete", "--mode", "account", "--user", user}, kind: stepAccountDelete, user: user})
	p.live.accounts = slices.DeleteFunc(p.live.accounts, func(u string) bool { return u == user })
	for i := range p.live.targets {
		lt := &p.live.targets[i]
		lt.Accounts = slices.DeleteFunc(lt.Accounts, func(u string) bool { return u == user })
		if lt.OutgoingAccount == user {
			lt.OutgoingAccount = ""
		}
	}
}

// narrowACL unbinds every rule of lt but the initiator names keep accepts.
// Address rules (ALL, IPs, subnets) always go: sand binds names only.
func (p *planner) narrowACL(lt *LiveTarget, keep func(name string) bool) {
	var kept []string
	for i, rule := range lt.ACL {
		how := "--initiator-name"
		switch {
		case slices.Contains(lt.ACL[i+1:], rule):
			// tgt refuses a rule twice and prints address rules before
			// name rules, so the first of two equal entries is an address
			// rule holding a name (bound with --initiator-address by
			// mistake): it never matches anyone.
			how = "--initiator-address"
		case isAddressRule(rule):
			how = "--initiator-address"
		case keep(rule):
			kept = append(kept, rule)
			continue
		}
		p.add(step{args: []string{"--lld", "iscsi", "--op", "unbind", "--mode", "target", "--tid", strconv.Itoa(lt.TID), how, rule}})
	}
	lt.ACL = kept
}

// lunMatches reports whether the live LUN already is lu; anything else
// means delete and re-add, because tgt can change neither a LUN's backing
// store nor its cached size in place.
func lunMatches(ll LiveLUN, lu iscsi.LogicalUnit) bool {
	if ll.Type != "disk" || ll.BackingType != "rdwr" || ll.Path != lu.Path || ll.Flags != flagsFor(lu.Type) {
		return false
	}
	if ll.SCSIID != naa(lu) || ll.SCSISN != lu.Serial {
		return false
	}
	if lu.Size > 0 && sizeMB(lu.Size, ll.BlockSize) != ll.SizeMB {
		return false
	}
	return true
}

func cloneState(s liveState) liveState {
	c := liveState{portals: slices.Clone(s.portals), accounts: slices.Clone(s.accounts)}
	for _, t := range s.targets {
		t.LUNs = slices.Clone(t.LUNs)
		t.Accounts = slices.Clone(t.Accounts)
		t.ACL = slices.Clone(t.ACL)
		t.Nexuses = slices.Clone(t.Nexuses)
		c.targets = append(c.targets, t)
	}
	return c
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
