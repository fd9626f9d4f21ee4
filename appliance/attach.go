package appliance

import (
	"fmt"
	"strings"
)

// Attach tells a dom0 admin how to reach a LUN: where it is and lines to
// paste.
type Attach struct {
	Portal string `json:"portal"`
	Target string `json:"target"`
	LUN    int    `json:"lun"`
	// Iscsiadm are open-iscsi commands for a dom0, one shell command line
	// each: discovery, CHAP if the group has it, login. Every argument is
	// shell-quoted; CHAP secrets are read from shell variables
	// (CHAPSecretVar, MutualCHAPSecretVar), never printed.
	Iscsiadm []string `json:"iscsiadm"`
	// XenDisk is an xl domain config line using Xen's block-iscsi hotplug
	// script. It carries no CHAP settings: block-iscsi ignores them and
	// logs in with the dom0's node record, which the iscsiadm lines set.
	XenDisk string `json:"xen_disk"`
	// Note warns about what the lines cannot do, e.g. block-iscsi only
	// attaching LUN 0, and what to do first, e.g. set the CHAP secret.
	Note string `json:"note,omitempty"`
}

// The shell variables the attach lines read CHAP secrets from: sand shows
// a secret only in the answer to the change that sets it, so the admin
// sets the variable on the dom0 first (read -rs CHAP_SECRET keeps it out
// of the shell's history).
const (
	CHAPSecretVar       = "CHAP_SECRET"
	MutualCHAPSecretVar = "MUTUAL_CHAP_SECRET"
)

// AttachFor builds the attach lines for a LUN.
func (b *Box) AttachFor(l LUN) Attach {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var g InitiatorGroup
	if i := b.reg.FindGroup(l.Group); i >= 0 {
		g = b.reg.Groups[i]
	}
	return attachLines(b.Portal(), l, g)
}

func attachLines(portal string, l LUN, g InitiatorGroup) Attach {
	a := Attach{Portal: portal, Target: l.Target, LUN: l.Number}
	node := []string{"iscsiadm", "-m", "node", "-T", l.Target, "-p", portal}
	a.Iscsiadm = append(a.Iscsiadm, shellLine("iscsiadm", "-m", "discovery", "-t", "sendtargets", "-p", portal))
	var notes []string
	if g.CHAP != nil {
		update := func(key string) []string { return append(node[:len(node):len(node)], "-o", "update", "-n", key, "-v") }
		set := func(key, value string) string { return shellLine(append(update(key), value)...) }
		// "$VAR" in double quotes: the shell expands it to the secret as
		// one argument, whatever characters the secret holds.
		fromVar := func(key, name string) string { return shellLine(update(key)...) + ` "$` + name + `"` }
		a.Iscsiadm = append(a.Iscsiadm,
			set("node.session.auth.authmethod", "CHAP"),
			set("node.session.auth.username", g.CHAP.User),
			fromVar("node.session.auth.password", CHAPSecretVar))
		vars := "$" + CHAPSecretVar + " to the CHAP secret"
		if g.MutualCHAP != nil {
			a.Iscsiadm = append(a.Iscsiadm,
				set("node.session.auth.username_in", g.MutualCHAP.User),
				fromVar("node.session.auth.password_in", MutualCHAPSecretVar))
			vars += " and $" + MutualCHAPSecretVar + " to the mutual CHAP secret"
		}
		notes = append(notes, fmt.Sprintf("Initiator group %s uses CHAP: before pasting the lines, set %s (e.g. read -rs %s); sand shows secrets only when they are set. Xen's block-iscsi takes no CHAP settings from the disk line: it logs in with the node record these lines write.", g.Name, vars, CHAPSecretVar))
	}
	a.Iscsiadm = append(a.Iscsiadm, shellLine(append(node, "--login")...))
	// target= must come last: its value holds commas.
	target := fmt.Sprintf("iqn=%s,portal=%s", l.Target, portal)
	if xlSafe(target) {
		a.XenDisk = fmt.Sprintf("disk = [ 'vdev=xvda, access=rw, script=block-iscsi, target=%s' ]", target)
	} else {
		notes = append(notes, "The target or portal holds characters an xl disk line cannot carry: attach it through open-iscsi and a phy: path.")
	}
	if l.Number != 0 {
		notes = append(notes, fmt.Sprintf("Xen's block-iscsi script attaches LUN 0 of a target; this LUN is number %d (the tgt driver keeps LUN 0 for its controller), so attach it through open-iscsi and a phy: path, or run the appliance with the lio driver.", l.Number))
	}
	if g.Name == "" {
		notes = append(notes, "The LUN has no initiator group, so no initiator can log in yet: set one with sand lun set-group.")
	}
	a.Note = strings.Join(notes, " ")
	return a
}

// shellLine joins args into one POSIX shell command line, each argument
// quoted when it needs to be.
func shellLine(args ...string) string {
	quoted := make([]string, len(args))
	for i, arg := range args {
		quoted[i] = shellQuote(arg)
	}
	return strings.Join(quoted, " ")
}

// shellQuote returns s as one shell word: as it is when every byte is
// plain (letters, digits and @%+=:,./_-), otherwise in single quotes,
// where a single quote of s closes the quotes, is escaped with a
// backslash, and opens them again.
func shellQuote(s string) string {
	plain := s != ""
	for i := 0; i < len(s) && plain; i++ {
		c := s[i]
		plain = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("@%+=:,./_-", c) >= 0
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// xlSafe reports whether s can stand inside a single-quoted xl config
// string: no quote, no backslash, no control character.
func xlSafe(s string) bool {
	for _, r := range s {
		if r < ' ' || r == 0x7f || r == '\'' || r == '"' || r == '\\' {
			return false
		}
	}
	return true
}
