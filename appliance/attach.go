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
	// Iscsiadm are open-iscsi commands for a dom0: discovery, CHAP if the
	// group has it, login.
	Iscsiadm []string `json:"iscsiadm"`
	// XenDisk is an xl domain config line using Xen's block-iscsi hotplug
	// script.
	XenDisk string `json:"xen_disk"`
	// Note warns about what the lines cannot do, e.g. block-iscsi only
	// attaching LUN 0.
	Note string `json:"note,omitempty"`
}

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
	line := func(args ...string) string { return strings.Join(args, " ") }
	a.Iscsiadm = append(a.Iscsiadm, line("iscsiadm", "-m", "discovery", "-t", "sendtargets", "-p", portal))
	target := fmt.Sprintf("iqn=%s,portal=%s", l.Target, portal)
	if g.CHAP != nil {
		set := func(key, value string) string {
			return line(append(node, "-o", "update", "-n", key, "-v", value)...)
		}
		a.Iscsiadm = append(a.Iscsiadm,
			set("node.session.auth.authmethod", "CHAP"),
			set("node.session.auth.username", g.CHAP.User),
			set("node.session.auth.password", g.CHAP.Secret))
		if g.MutualCHAP != nil {
			a.Iscsiadm = append(a.Iscsiadm,
				set("node.session.auth.username_in", g.MutualCHAP.User),
				set("node.session.auth.password_in", g.MutualCHAP.Secret))
		}
		target += fmt.Sprintf(",auth_method=CHAP,user=%s,password=%s", g.CHAP.User, g.CHAP.Secret)
	}
	a.Iscsiadm = append(a.Iscsiadm, line(append(node, "--login")...))
	// target= must come last: its value holds commas.
	a.XenDisk = fmt.Sprintf("disk = [ 'vdev=xvda, access=rw, script=block-iscsi, target=%s' ]", target)
	if l.Number != 0 {
		a.Note = fmt.Sprintf("Xen's block-iscsi script attaches LUN 0 of a target; this LUN is number %d (the tgt driver keeps LUN 0 for its controller), so attach it through open-iscsi and a phy: path, or run the appliance with the lio driver", l.Number)
	}
	if g.Name == "" {
		a.Note = strings.TrimSpace(a.Note + " The LUN has no initiator group, so no initiator can log in yet: set one with sand lun set-group.")
	}
	return a
}
