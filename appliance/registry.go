package appliance

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sand-appliance/sand/iscsi"
)

// Errors the API maps to HTTP statuses. Every error a Box returns for bad
// input wraps one of them and says what is wrong and how to fix it.
var (
	ErrInvalid  = errors.New("invalid request")
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrNoSpace  = errors.New("not enough space")
	ErrInUse    = errors.New("in use")
)

// Registry is the desired state of the SAN: every LUN and initiator group.
// It is persisted by a Store; the Box is its only writer.
type Registry struct {
	// Generation increases with every committed change, so a peer or an
	// admin can tell which copy is newer.
	Generation uint64           `json:"generation"`
	LUNs       []LUN            `json:"luns"`
	Groups     []InitiatorGroup `json:"groups"`
}

// LUN is one exported volume.
type LUN struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	// Serial (VPD 0x80) and NAA (VPD 0x83) are made once at creation and
	// never change, so a dom0 sees the same device after a restart or a
	// failover.
	Serial string `json:"serial"`
	NAA    string `json:"naa"`
	// Target is the IQN of the target that exports the LUN and Number its
	// LUN number there.
	Target string `json:"target"`
	Number int    `json:"number"`
	// Group names the initiator group allowed to see the LUN; empty means
	// no initiator can.
	Group string `json:"group,omitempty"`
	// Path and Type are kept as an older sand's import wrote them: it
	// exported the imported file's Path= as given. Nothing sets them now,
	// and a LUN whose Path is not its pool volume is not exported
	// (volumePath); every LUN is exported from its pool volume, of the
	// pool's type.
	Path    string       `json:"path,omitempty"`
	Type    iscsi.IOType `json:"type,omitempty"`
	Created time.Time    `json:"created"`
}

// InitiatorGroup is a named set of initiators, e.g. every dom0 of a Xen
// cluster, with optional CHAP.
type InitiatorGroup struct {
	Name       string      `json:"name"`
	Initiators []string    `json:"initiators"`
	CHAP       *iscsi.CHAP `json:"chap,omitempty"`
	MutualCHAP *iscsi.CHAP `json:"mutual_chap,omitempty"`
}

// maxNameLen keeps "lun-" + name within LVM's and tgt's limits and the
// target IQN readable.
const maxNameLen = 63

// namePattern: lower-case letters, digits, '.' and '-', as allowed in the
// unique part of an IQN and in LV and file names.
var namePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$`)

// ValidateName reports whether s can name a LUN, a group or a target.
func ValidateName(kind, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: %s name is empty", ErrInvalid, kind)
	case len(s) > maxNameLen:
		return fmt.Errorf("%w: %s name %q is %d characters long: at most %d", ErrInvalid, kind, s, len(s), maxNameLen)
	case strings.Contains(s, ".."):
		return fmt.Errorf("%w: %s name %q contains \"..\"", ErrInvalid, kind, s)
	case !namePattern.MatchString(s):
		return fmt.Errorf("%w: %s name %q may hold only lower-case letters, digits, '.' and '-', starting and ending with a letter or digit (e.g. vm-web01)", ErrInvalid, kind, s)
	}
	return nil
}

// FindLUN returns the index of the named LUN, or -1.
func (r *Registry) FindLUN(name string) int {
	return slices.IndexFunc(r.LUNs, func(l LUN) bool { return l.Name == name })
}

// FindGroup returns the index of the named group, or -1.
func (r *Registry) FindGroup(name string) int {
	return slices.IndexFunc(r.Groups, func(g InitiatorGroup) bool { return g.Name == name })
}

// Clone returns a deep copy, so a change can be prepared on the copy and
// committed or dropped whole.
func (r Registry) Clone() Registry {
	c := Registry{Generation: r.Generation, LUNs: slices.Clone(r.LUNs)}
	for _, g := range r.Groups {
		g.Initiators = slices.Clone(g.Initiators)
		if g.CHAP != nil {
			chap := *g.CHAP
			g.CHAP = &chap
		}
		if g.MutualCHAP != nil {
			chap := *g.MutualCHAP
			g.MutualCHAP = &chap
		}
		c.Groups = append(c.Groups, g)
	}
	return c
}

// Validate checks the whole registry: what a Store loads from disk and
// what a change is about to commit.
func (r *Registry) Validate() error {
	groups := map[string]bool{}
	for _, g := range r.Groups {
		if err := g.validate(false); err != nil {
			return err
		}
		if groups[g.Name] {
			return fmt.Errorf("%w: initiator group %q appears twice", ErrInvalid, g.Name)
		}
		groups[g.Name] = true
	}
	names := map[string]bool{}
	type slot struct {
		target string
		number int
	}
	slots := map[slot]string{}
	targetGroup := map[string]string{}
	serials := map[string]string{}
	naas := map[string]string{}
	for _, l := range r.LUNs {
		if err := ValidateName("LUN", l.Name); err != nil {
			return err
		}
		if names[l.Name] {
			return fmt.Errorf("%w: LUN %q appears twice", ErrInvalid, l.Name)
		}
		names[l.Name] = true
		if l.Size <= 0 {
			return fmt.Errorf("%w: LUN %q has size %d", ErrInvalid, l.Name, l.Size)
		}
		if err := iscsi.ValidateSerial(l.Serial); err != nil {
			return fmt.Errorf("%w: LUN %q: %v", ErrInvalid, l.Name, err)
		}
		if other, ok := serials[l.Serial]; ok {
			return fmt.Errorf("%w: LUNs %q and %q share serial %q", ErrInvalid, other, l.Name, l.Serial)
		}
		serials[l.Serial] = l.Name
		if l.NAA != iscsi.NAAFromSerial(l.Serial) {
			return fmt.Errorf("%w: LUN %q: NAA %q does not match serial %q", ErrInvalid, l.Name, l.NAA, l.Serial)
		}
		// Imported serials such as "disk1" and "disk-1" give the same NAA;
		// initiators would take the two LUNs for one disk.
		if other, ok := naas[l.NAA]; ok {
			return fmt.Errorf("%w: LUNs %q and %q would share the NAA %s (their serials differ only in non-hex characters): give one of them another ScsiSN", ErrInvalid, other, l.Name, l.NAA)
		}
		naas[l.NAA] = l.Name
		if err := iscsi.ValidateIQN(l.Target); err != nil {
			return fmt.Errorf("%w: LUN %q: %v", ErrInvalid, l.Name, err)
		}
		if l.Number < 0 || l.Number > 16383 {
			return fmt.Errorf("%w: LUN %q has LUN number %d: it must be 0 to 16383", ErrInvalid, l.Name, l.Number)
		}
		s := slot{l.Target, l.Number}
		if other, ok := slots[s]; ok {
			return fmt.Errorf("%w: LUNs %q and %q are both LUN %d of target %s", ErrInvalid, other, l.Name, l.Number, l.Target)
		}
		slots[s] = l.Name
		if l.Group != "" && !groups[l.Group] {
			return fmt.Errorf("%w: LUN %q names initiator group %q, which does not exist", ErrInvalid, l.Name, l.Group)
		}
		// Access control is per target, so LUNs sharing a target share a group.
		if g, ok := targetGroup[l.Target]; ok && g != l.Group {
			return fmt.Errorf("%w: LUN %q is in target %s with initiator group %q, but the target's other LUNs use %q", ErrInvalid, l.Name, l.Target, l.Group, g)
		}
		targetGroup[l.Target] = l.Group
	}
	return nil
}

// RedactedSecret stands in for a CHAP secret wherever sand shows a group
// (API reads, the web UI, the CLI): secrets are write-only, shown once in
// the answer to the change that set them. It is shorter than any secret
// sand accepts, so sending a read group back cannot set it as a secret.
const RedactedSecret = "********"

// Redacted returns a copy of g with its CHAP secrets replaced by
// RedactedSecret.
func (g InitiatorGroup) Redacted() InitiatorGroup {
	g.Initiators = slices.Clone(g.Initiators)
	if g.CHAP != nil {
		g.CHAP = &iscsi.CHAP{User: g.CHAP.User, Secret: RedactedSecret}
	}
	if g.MutualCHAP != nil {
		g.MutualCHAP = &iscsi.CHAP{User: g.MutualCHAP.User, Secret: RedactedSecret}
	}
	return g
}

// chapUserPattern is the CHAP user names sand accepts: letters, digits and
// ". - _ : @", enough for a plain name, an initiator IQN or user@domain,
// and nothing a shell, ietd.conf or an initiator's node record treats
// specially. The length limit (255, LIO's and open-iscsi's) is
// iscsi.CHAP.Validate's.
var chapUserPattern = regexp.MustCompile(`^[A-Za-z0-9._:@-]+$`)

// chapSecretForbidden are printable characters a CHAP secret may not hold:
// quotes and backslashes change meaning in shells and config files.
const chapSecretForbidden = "'\"`\\"

// chapProblem says what is wrong with a CHAP account: iscsi.CHAP.Validate's
// limits (what IET, tgt and LIO accept) and, when strict, sand's
// restricted characters. kind names the account ("CHAP" or "mutual
// CHAP"); the error never quotes the secret.
func chapProblem(kind string, c iscsi.CHAP, strict bool) error {
	if strict && c.Secret == RedactedSecret {
		return fmt.Errorf("the %s secret is %q, the placeholder sand shows instead of a secret: send the secret itself (sand shows a secret only in the answer to the change that sets it)", kind, RedactedSecret)
	}
	if err := c.Validate(); err != nil {
		return errors.New(strings.Replace(err.Error(), "CHAP", kind, 1))
	}
	if !strict {
		return nil
	}
	if !chapUserPattern.MatchString(c.User) {
		return fmt.Errorf("%s user %q may hold only letters, digits and . - _ : @ (e.g. xen-cluster or an initiator IQN)", kind, c.User)
	}
	if strings.ContainsAny(c.Secret, chapSecretForbidden) {
		return fmt.Errorf("%s secret for %q holds a quote, backquote or backslash: use other printable characters", kind, c.User)
	}
	return nil
}

// Validate checks one initiator group as an admin sets it, CHAP accounts
// with sand's restricted characters.
func (g InitiatorGroup) Validate() error { return g.validate(true) }

// validate checks one group; strict adds chapProblem's character rules.
// A registry loaded from disk is checked without them (Registry.Validate),
// so an account set before the rules existed keeps working until the
// admin replaces it: every create and update goes through Validate.
func (g InitiatorGroup) validate(strict bool) error {
	if err := ValidateName("initiator group", g.Name); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, iqn := range g.Initiators {
		if err := iscsi.ValidateIQN(iqn); err != nil {
			return fmt.Errorf("%w: initiator group %q: %v", ErrInvalid, g.Name, err)
		}
		if seen[iqn] {
			return fmt.Errorf("%w: initiator group %q lists %s twice", ErrInvalid, g.Name, iqn)
		}
		seen[iqn] = true
	}
	if g.CHAP != nil {
		if err := chapProblem("CHAP", *g.CHAP, strict); err != nil {
			return fmt.Errorf("%w: initiator group %q: %v", ErrInvalid, g.Name, err)
		}
	}
	if g.MutualCHAP != nil {
		if g.CHAP == nil {
			return fmt.Errorf("%w: initiator group %q: mutual CHAP needs CHAP first: set a CHAP user and secret too", ErrInvalid, g.Name)
		}
		if err := chapProblem("mutual CHAP", *g.MutualCHAP, strict); err != nil {
			return fmt.Errorf("%w: initiator group %q: %v", ErrInvalid, g.Name, err)
		}
		if g.MutualCHAP.Secret == g.CHAP.Secret {
			return fmt.Errorf("%w: initiator group %q: the mutual CHAP secret must differ from the CHAP secret (initiators refuse equal secrets)", ErrInvalid, g.Name)
		}
	}
	return nil
}

// TargetGroup derives what the target driver must export: one target per
// distinct LUN.Target, each LUN at its number, access from the LUN's group.
// path is the pool's Path: each LUN is exported from its pool volume, of
// the pool's ioType, through volumePath; a LUN that volumePath refuses is
// left out (Box.reconcile reports it).
func (r *Registry) TargetGroup(portals []string, ioType iscsi.IOType, path func(name string) string) iscsi.TargetGroup {
	tg := iscsi.TargetGroup{Portals: slices.Clone(portals)}
	index := map[string]int{}
	for _, l := range r.LUNs {
		backing, err := volumePath(l, path)
		if err != nil {
			continue
		}
		i, ok := index[l.Target]
		if !ok {
			i = len(tg.Targets)
			index[l.Target] = i
			t := iscsi.Target{IQN: l.Target, Alias: l.Name}
			if gi := r.FindGroup(l.Group); gi >= 0 {
				g := r.Groups[gi]
				t.Initiators = slices.Clone(g.Initiators)
				t.CHAP, t.MutualCHAP = g.CHAP, g.MutualCHAP
			}
			tg.Targets = append(tg.Targets, t)
		}
		lu := iscsi.LogicalUnit{
			Number: l.Number, Name: l.Name, Path: backing, Type: ioType,
			Size: l.Size, Serial: l.Serial, NAA: l.NAA,
		}
		tg.Targets[i].LUNs = append(tg.Targets[i].LUNs, lu)
	}
	for i := range tg.Targets {
		slices.SortFunc(tg.Targets[i].LUNs, func(a, b iscsi.LogicalUnit) int { return a.Number - b.Number })
	}
	slices.SortFunc(tg.Targets, func(a, b iscsi.Target) int { return strings.Compare(a.IQN, b.IQN) })
	return tg
}
