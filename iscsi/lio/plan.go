package lio

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sand-appliance/sand/iscsi"
)

// opKind is one configfs operation.
type opKind string

const (
	opMkdir   opKind = "mkdir"
	opWrite   opKind = "write"
	opSymlink opKind = "symlink"
	opRmdir   opKind = "rmdir"
	opUnlink  opKind = "unlink"
	opCheck   opKind = "check" // read back and verify, no change
)

// step is one operation of a plan. why is the verb phrase errors start
// with ("create backstore \"vm1\"").
type step struct {
	kind  opKind
	path  string
	data  string // value to write, or the symlink's target
	why   string
	check func(FS) error
}

// planner collects steps. Planning is pure: it reads a live snapshot and a
// desired state and touches nothing; the Driver executes the steps in
// order and stops at the first error.
type planner struct {
	steps []step
}

func (p *planner) mkdir(path, why string) {
	p.steps = append(p.steps, step{kind: opMkdir, path: path, why: why})
}

func (p *planner) write(path, value, why string) {
	p.steps = append(p.steps, step{kind: opWrite, path: path, data: value, why: why})
}

func (p *planner) symlink(path, target, why string) {
	p.steps = append(p.steps, step{kind: opSymlink, path: path, data: target, why: why})
}

func (p *planner) rmdir(path, why string) {
	p.steps = append(p.steps, step{kind: opRmdir, path: path, why: why})
}

func (p *planner) unlink(path, why string) {
	p.steps = append(p.steps, step{kind: opUnlink, path: path, why: why})
}

func (p *planner) check(path, why string, fn func(FS) error) {
	p.steps = append(p.steps, step{kind: opCheck, path: path, why: why, check: fn})
}

// Paths.
func backstorePath(name string) string { return join("core", fileioHBA, name) }
func targetPath(iqn string) string     { return join("iscsi", iqn) }
func tpgPath(iqn string) string        { return join("iscsi", iqn, tpgName) }

// bsState says what happens to a backstore sand manages.
type bsState int

const (
	bsCreate   bsState = iota // missing: create it
	bsKeep                    // right as it is (maybe a fix in place)
	bsRecreate                // wrong in a way that cannot change while exported
	bsRemove                  // not wanted
)

// classify decides a live backstore's fate. A backstore is recreated
// (unmapped, removed, made again) when its device, serial or I/O mode is
// wrong, because the kernel refuses those changes on a live device
// (vpd_unit_serial while exported; fd_dev_name and the O_DSYNC flag are only
// used when the file is opened at enable) or when it shrank. Growth is done
// in place: see planner.fixBackstore.
func classify(lb *liveBackstore, wb *wantBackstore) bsState {
	switch {
	case wb == nil:
		return bsRemove
	case lb == nil:
		return bsCreate
	case !lb.enabled, lb.path != wb.path, lb.serial != wb.serial, lb.buffered, lb.async:
		return bsRecreate
	case !wb.block && lb.size > wb.size:
		return bsRecreate
	}
	return bsKeep
}

// planApply is the whole change from l to w, in this order: dbroot; every
// removal, innermost first (ACL mappings, ACLs, LUN links, LUNs, and for
// removed targets portals, TPGs and the target), then backstores; then every
// creation, outermost first (backstores, targets, TPG attributes, LUNs,
// ACLs, mappings, portals; a kept target drops old portals only now), a
// read-back check of each TPG, and the TPG's enable last.
func planApply(l *live, w *desired) []step {
	var p planner
	if w.dbroot != "" && l.dbroot != w.dbroot {
		why := "set LIO dbroot (persistent reservation state) to " + w.dbroot +
			" (the kernel takes it only before iscsi_target_mod is loaded, and only if the directory exists)"
		p.write("dbroot", w.dbroot, why)
		p.check("dbroot", why, func(f FS) error {
			got, err := reader{f}.read("dbroot")
			if err != nil {
				return err
			}
			if got != w.dbroot {
				return fmt.Errorf("dbroot reads %q", got)
			}
			return nil
		})
	}

	state := map[string]bsState{}
	for name, wb := range w.backstores {
		state[name] = classify(l.backstores[fileioHBA+"/"+name], wb)
	}
	for _, lb := range l.backstores {
		if lb.hba == fileioHBA && w.backstores[lb.name] == nil {
			state[lb.name] = bsRemove
		}
	}
	bsOK := func(name string) bool { return state[name] == bsKeep }

	// Removals.
	for _, iqn := range sortedKeys(l.targets) {
		lt := l.targets[iqn]
		wt := w.targets[iqn]
		for _, tpg := range sortedKeys(lt.tpgs) {
			if wt == nil || tpg != tpgName {
				p.removeTPG(join(targetPath(iqn), tpg), lt.tpgs[tpg], fmt.Sprintf("remove target %s", iqn))
				continue
			}
			p.trimTPG(iqn, lt.tpgs[tpg], wt, w, bsOK)
		}
		if wt == nil {
			p.rmdir(targetPath(iqn), fmt.Sprintf("remove target %s", iqn))
		}
	}
	for _, key := range sortedKeys(l.backstores) {
		lb := l.backstores[key]
		if lb.hba != fileioHBA {
			continue // not sand's: Apply leaves other HBAs alone (Stop does not)
		}
		switch state[lb.name] {
		case bsRemove:
			p.rmdir(backstorePath(lb.name), fmt.Sprintf("remove backstore %q", lb.name))
		case bsRecreate:
			p.rmdir(backstorePath(lb.name), fmt.Sprintf("remove backstore %q to make it again (device, serial or mode changed, or it shrank)", lb.name))
		}
	}

	// Creations.
	if len(w.backstores) > 0 && !contains(l.hbas, fileioHBA) {
		p.mkdir(join("core", fileioHBA), "create the fileio HBA")
	}
	for _, name := range sortedKeys(w.backstores) {
		wb := w.backstores[name]
		switch state[name] {
		case bsCreate, bsRecreate:
			p.createBackstore(wb)
		case bsKeep:
			p.fixBackstore(l.backstores[fileioHBA+"/"+name], wb)
		}
	}
	if len(w.targets) > 0 && !l.fabric {
		p.mkdir("iscsi", "load the iSCSI fabric")
	}
	for _, iqn := range sortedKeys(w.targets) {
		wt := w.targets[iqn]
		lt := l.targets[iqn]
		if lt == nil {
			p.mkdir(targetPath(iqn), fmt.Sprintf("create target %s", iqn))
		}
		var ltpg *liveTPG
		if lt != nil {
			ltpg = lt.tpgs[tpgName]
		}
		if ltpg == nil {
			p.buildTPG(wt, w)
		} else {
			p.updateTPG(ltpg, wt, w, bsOK)
		}
	}
	return p.steps
}

// planStop tears everything down: every iSCSI target (sand's or not), then
// every backstore in every HBA, then the HBAs.
func planStop(l *live) []step {
	var p planner
	for _, iqn := range sortedKeys(l.targets) {
		lt := l.targets[iqn]
		for _, tpg := range sortedKeys(lt.tpgs) {
			p.removeTPG(join(targetPath(iqn), tpg), lt.tpgs[tpg], fmt.Sprintf("stop target %s", iqn))
		}
		p.rmdir(targetPath(iqn), fmt.Sprintf("stop target %s", iqn))
	}
	for _, key := range sortedKeys(l.backstores) {
		p.rmdir(join("core", key), fmt.Sprintf("release backstore %s", key))
	}
	for _, hba := range l.hbas {
		p.rmdir(join("core", hba), fmt.Sprintf("remove HBA %s", hba))
	}
	return p.steps
}

func (p *planner) removeTPG(tp string, t *liveTPG, why string) {
	if t.enabled != "0" {
		// Disable first: sessions end before their LUNs vanish.
		p.write(join(tp, "enable"), "0", why)
	}
	for _, acl := range sortedKeys(t.acls) {
		p.removeACL(join(tp, "acls", acl), t.acls[acl], why)
	}
	for _, d := range sortedLUNDirs(t.luns) {
		p.removeLUN(join(tp, "lun", d), t.luns[d], why)
	}
	for _, np := range sortedKeys(t.portals) {
		p.rmdir(join(tp, "np", np), why)
	}
	p.rmdir(tp, why)
}

func (p *planner) removeACL(ap string, a *liveACL, why string) {
	for _, d := range sortedLUNDirs(a.mapped) {
		p.removeMapped(join(ap, d), a.mapped[d], why)
	}
	p.rmdir(ap, why)
}

func (p *planner) removeMapped(mp string, m *liveMapped, why string) {
	for _, ln := range m.links {
		p.unlink(join(mp, ln.name), why)
	}
	p.rmdir(mp, why)
}

func (p *planner) removeLUN(lp string, lu *liveLUN, why string) {
	for _, ln := range lu.links {
		p.unlink(join(lp, ln.name), why)
	}
	p.rmdir(lp, why)
}

// lunOK reports whether the live TPG LUN dir is exactly what wt wants.
func lunOK(dir string, lu *liveLUN, wt *wantTarget, bsOK func(string) bool) bool {
	n, ok := lunNumber(dir)
	if !ok {
		return false
	}
	name, want := wt.luns[n]
	return want && lu != nil && len(lu.links) == 1 && lu.links[0].target == backstorePath(name) && bsOK(name)
}

// mappedOK reports whether an ACL's mapped LUN dir is exactly what wt wants:
// mapped LUN n shows the TPG's LUN n, which itself stays.
func mappedOK(iqn, dir string, m *liveMapped, t *liveTPG, wt *wantTarget, bsOK func(string) bool) bool {
	n, ok := lunNumber(dir)
	if !ok {
		return false
	}
	if _, want := wt.luns[n]; !want {
		return false
	}
	return len(m.links) == 1 && m.links[0].target == join(tpgPath(iqn), "lun", dir) && lunOK(dir, t.luns[dir], wt, bsOK)
}

// trimTPG removes what a kept TPG has and should not have, before
// anything is created: ACLs and mappings, then LUNs (a LUN whose backstore
// is made again goes too).
func (p *planner) trimTPG(iqn string, t *liveTPG, wt *wantTarget, w *desired, bsOK func(string) bool) {
	tp := tpgPath(iqn)
	if len(wt.lunNums) == 0 && t.enabled != "0" {
		p.write(join(tp, "enable"), "0", fmt.Sprintf("disable target %s: it has no LUN left, and LIO would show its read-only virtual LUN 0", iqn))
	}
	for _, acl := range sortedKeys(t.acls) {
		a := t.acls[acl]
		if !wt.aclSet[acl] {
			p.removeACL(join(tp, "acls", acl), a, fmt.Sprintf("remove initiator %s from target %s", acl, iqn))
			continue
		}
		for _, d := range sortedLUNDirs(a.mapped) {
			if !mappedOK(iqn, d, a.mapped[d], t, wt, bsOK) {
				p.removeMapped(join(tp, "acls", acl, d), a.mapped[d], fmt.Sprintf("unmap %s %s from initiator %s", iqn, d, acl))
			}
		}
	}
	for _, d := range sortedLUNDirs(t.luns) {
		if !lunOK(d, t.luns[d], wt, bsOK) {
			p.removeLUN(join(tp, "lun", d), t.luns[d], fmt.Sprintf("remove %s %s", iqn, d))
		}
	}
	// Portals go in updateTPG, after the new ones exist.
}

// createBackstore makes a fileio backstore. Order matters: the control
// string and the serial go in before enable, because enable opens the
// file (with O_DSYNC unless fd_buffered_io=1 was written) and the serial
// cannot change once a LUN exports the device.
//
// Write-through: sand never writes fd_buffered_io (the kernel opens the
// backing file O_DSYNC, so a WRITE completes only once it is on stable
// storage, which on /dev/drbd0 with protocol C means on both boxes) nor
// fd_async_io (its AIO path submits IOCB_DIRECT without IOCB_DSYNC unless
// the command has FUA, which would turn plain writes into write-back on a
// disk cache). emulate_write_cache=0 tells the initiator exactly that: no
// volatile cache, nothing to flush. Buffered fileio with WCE=1 would also be
// honest, but leaves data safe only if every initiator flushes (LAB.md:
// targetcli's default), and a dom0 crash mid-stream would lose writes.
func (p *planner) createBackstore(wb *wantBackstore) {
	bp := backstorePath(wb.name)
	why := fmt.Sprintf("create backstore %q for %s", wb.name, wb.usedBy)
	p.mkdir(bp, why)
	ctl := "fd_dev_name=" + wb.path
	if !wb.block {
		ctl += ",fd_dev_size=" + strconv.FormatInt(wb.size, 10)
	}
	p.write(join(bp, "control"), ctl, why)
	p.write(join(bp, "udev_path"), wb.path, why)
	p.write(join(bp, "wwn", "vpd_unit_serial"), wb.serial, why)
	p.write(join(bp, "attrib", "emulate_write_cache"), "0", why)
	p.write(join(bp, "enable"), "1", why)
	// Reservations go back before any LUN exports the device: the kernel
	// refuses res_aptpl_metadata once it is exported.
	for _, reg := range wb.aptpl {
		p.write(join(bp, "pr", "res_aptpl_metadata"), reg, why+": restore a persistent reservation (APTPL) from the dbroot")
	}
	p.check(bp, why, func(f FS) error { return verifyBackstore(f, wb) })
}

// fixBackstore brings a kept backstore in line: the write cache flag, and
// growth. LIO lets fd_dev_size change on a live fileio device:
// target_dev_control_store passes the string to fd_set_configfs_dev_params
// with no "configured" or export check, and fd_get_blocks, which READ
// CAPACITY and the LBA range check call on every command, computes the size
// from fd_dev_size each time for a regular file (for a block device it
// reads the inode size each time, so an LV grows by itself). Growing in
// place keeps the LUN and its sessions; the initiator sees the new size on
// its next READ CAPACITY (LIO sends no CAPACITY DATA HAS CHANGED unit
// attention, so the dom0 has to rescan).
func (p *planner) fixBackstore(lb *liveBackstore, wb *wantBackstore) {
	bp := backstorePath(wb.name)
	if lb.writeCache != "0" {
		p.write(join(bp, "attrib", "emulate_write_cache"), "0", fmt.Sprintf("turn off the write cache flag of backstore %q", wb.name))
	}
	if !wb.block && lb.size != wb.size {
		why := fmt.Sprintf("grow backstore %q from %d to %d bytes", wb.name, lb.size, wb.size)
		p.write(join(bp, "control"), "fd_dev_size="+strconv.FormatInt(wb.size, 10), why)
		p.check(bp, why, func(f FS) error { return verifyBackstore(f, wb) })
	}
}

// buildTPG makes tpgt_1 of a target from nothing; it is enabled last, after
// a read-back check, so no initiator can log in to a half-built target (and
// meet LIO's read-only virtual LUN 0 instead of its disk).
func (p *planner) buildTPG(wt *wantTarget, w *desired) {
	tp := tpgPath(wt.iqn)
	why := fmt.Sprintf("create target %s", wt.iqn)
	p.mkdir(tp, why)
	// A new TPG already has tpgAttribs' values (LIO's defaults): each
	// write is 10-50 ms of a failover on the lab's emulated CPU, so they
	// are read back by checkTPG before the enable instead of written.
	p.write(join(tp, "attrib", "authentication"), authValue(wt), why)
	if wt.alias != "" {
		p.write(join(tp, "param", "TargetAlias"), wt.alias, why)
	}
	for _, n := range wt.lunNums {
		p.createLUN(wt, n)
	}
	for _, acl := range wt.acls {
		p.createACL(wt, acl)
	}
	for _, np := range w.portals {
		p.mkdir(join(tp, "np", np), why)
	}
	p.checkTPG(wt, w)
	p.enable(wt)
}

// enable writes a TPG's enable, unless the target has no LUN: an enabled
// TPG without LUNs answers with LIO's read-only virtual LUN 0, which looks
// like a working but broken disk (LAB.md), so it stays disabled.
func (p *planner) enable(wt *wantTarget) {
	if len(wt.lunNums) > 0 {
		p.write(join(tpgPath(wt.iqn), "enable"), "1", fmt.Sprintf("enable target %s", wt.iqn))
	}
}

// updateTPG completes a kept TPG after trimTPG. It stays enabled: sessions
// of LUNs that do not change keep running.
func (p *planner) updateTPG(t *liveTPG, wt *wantTarget, w *desired, bsOK func(string) bool) {
	tp := tpgPath(wt.iqn)
	why := fmt.Sprintf("update target %s", wt.iqn)
	for _, a := range tpgAttribs {
		if t.attrib[a.name] != a.value {
			p.write(join(tp, "attrib", a.name), a.value, why)
		}
	}
	// Turning CHAP off: first stop requiring it, then clear the
	// secrets. Turning it on: set the secrets first (below), then
	// require it, so no ACL is ever required to use a secret it lacks.
	auth := authValue(wt)
	if t.attrib["authentication"] != auth && auth == "0" {
		p.write(join(tp, "attrib", "authentication"), auth, why)
	}
	if wt.alias != "" && t.alias != wt.alias {
		p.write(join(tp, "param", "TargetAlias"), wt.alias, why)
	}
	for _, n := range wt.lunNums {
		d := lunDir(n)
		if !lunOK(d, t.luns[d], wt, bsOK) {
			p.createLUN(wt, n)
		}
	}
	for _, acl := range wt.acls {
		a := t.acls[acl]
		if a == nil {
			p.createACL(wt, acl)
			continue
		}
		ap := join(tp, "acls", acl)
		for i, name := range authAttribs {
			want := authWant(wt)[i]
			if a.auth[name] != want {
				if want == "" {
					want = "NULL" // LIO's word for "unset"
				}
				p.write(join(ap, "auth", name), want, fmt.Sprintf("set CHAP of initiator %s on target %s", acl, wt.iqn))
			}
		}
		for _, n := range wt.lunNums {
			d := lunDir(n)
			m := a.mapped[d]
			if m == nil || !mappedOK(wt.iqn, d, m, t, wt, bsOK) {
				p.createMapped(wt, acl, n)
			} else if m.writeProtect != "0" {
				p.write(join(ap, d, "write_protect"), "0", fmt.Sprintf("make %s %s writable for %s", wt.iqn, d, acl))
			}
		}
	}
	for _, np := range w.portals {
		if !t.portals[np] {
			p.mkdir(join(tp, "np", np), fmt.Sprintf("add portal %s to target %s", np, wt.iqn))
		}
	}
	// Old portals go after the new ones exist, so the target is never
	// without a listener.
	for _, np := range sortedKeys(t.portals) {
		if !w.portalSet[np] {
			p.rmdir(join(tp, "np", np), fmt.Sprintf("remove portal %s from target %s", np, wt.iqn))
		}
	}
	if t.attrib["authentication"] != auth && auth == "1" {
		p.write(join(tp, "attrib", "authentication"), auth, why)
	}
	p.checkTPG(wt, w)
	if t.enabled != "1" {
		p.enable(wt)
	}
}

func (p *planner) createLUN(wt *wantTarget, n int) {
	name := wt.luns[n]
	lp := join(tpgPath(wt.iqn), "lun", lunDir(n))
	why := fmt.Sprintf("export backstore %q as %s LUN %d", name, wt.iqn, n)
	p.mkdir(lp, why)
	p.symlink(join(lp, name), backstorePath(name), why)
}

// createACL makes an initiator's ACL with CHAP and its LUN mappings. LIO
// keeps CHAP credentials per ACL (acls/<iqn>/auth), so the target's
// accounts go on every ACL of the target.
func (p *planner) createACL(wt *wantTarget, acl string) {
	ap := join(tpgPath(wt.iqn), "acls", acl)
	why := fmt.Sprintf("allow initiator %s on target %s", acl, wt.iqn)
	p.mkdir(ap, why)
	for i, v := range authWant(wt) {
		if v != "" {
			p.write(join(ap, "auth", authAttribs[i]), v, fmt.Sprintf("set CHAP of initiator %s on target %s", acl, wt.iqn))
		}
	}
	for _, n := range wt.lunNums {
		p.createMapped(wt, acl, n)
	}
}

func (p *planner) createMapped(wt *wantTarget, acl string, n int) {
	tp := tpgPath(wt.iqn)
	mp := join(tp, "acls", acl, lunDir(n))
	why := fmt.Sprintf("map %s LUN %d for initiator %s", wt.iqn, n, acl)
	p.mkdir(mp, why)
	// A new mapping is writable (prod_mode_write_protect is 0):
	// checkTPG reads write_protect back before the enable.
	p.symlink(join(mp, mappedLink), join(tp, "lun", lunDir(n)), why)
}

func (p *planner) checkTPG(wt *wantTarget, w *desired) {
	p.check(tpgPath(wt.iqn), fmt.Sprintf("check target %s before enabling it", wt.iqn), func(f FS) error {
		return verifyTPG(f, wt, w)
	})
}

func authValue(wt *wantTarget) string {
	if wt.chap != nil {
		return "1"
	}
	return "0"
}

// authWant is the value of each of authAttribs, "" for unset.
func authWant(wt *wantTarget) [4]string {
	var v [4]string
	if wt.chap != nil {
		v[0], v[1] = wt.chap.User, wt.chap.Secret
	}
	if wt.mutual != nil {
		v[2], v[3] = wt.mutual.User, wt.mutual.Secret
	}
	return v
}

// verifyBackstore reads a backstore back: enabled, the serial exactly as
// sand wrote it (so the NAA LIO derives from it is NAAFromSerial(serial)),
// O_DSYNC without AIO, no write cache, and the size.
func verifyBackstore(f FS, wb *wantBackstore) error {
	r := reader{f}
	bp := backstorePath(wb.name)
	lb, err := readBackstore(r, fileioHBA, wb.name)
	if err != nil {
		return err
	}
	switch {
	case !lb.enabled:
		return fmt.Errorf("%s/enable reads 0 after enabling it", bp)
	case lb.serial != wb.serial:
		return fmt.Errorf("%s/wwn/vpd_unit_serial reads %q, want %q (NAA would be %s, want %s)",
			bp, lb.serial, wb.serial, iscsi.NAAFromSerial(lb.serial), iscsi.NAAFromSerial(wb.serial))
	case lb.buffered || lb.async:
		return fmt.Errorf("%s/info shows buffered or async I/O: writes would be acknowledged before they are stable", bp)
	case lb.writeCache != "0":
		return fmt.Errorf("%s/attrib/emulate_write_cache reads %q, want 0", bp, lb.writeCache)
	case !wb.block && lb.size != wb.size:
		return fmt.Errorf("%s/info shows size %d, want %d", bp, lb.size, wb.size)
	}
	return nil
}

// verifyTPG reads a target back before it is enabled: every LUN links to
// its enabled backstore with the right serial, every initiator sees every
// LUN read-write, the portals exist and demo mode is off. A target that
// fails stays disabled.
func verifyTPG(f FS, wt *wantTarget, w *desired) error {
	r := reader{f}
	tp := tpgPath(wt.iqn)
	t, err := readTPG(r, tp)
	if err != nil {
		return err
	}
	var problems []string
	for _, a := range tpgAttribs {
		if t.attrib[a.name] != a.value {
			problems = append(problems, fmt.Sprintf("attrib/%s is %q, want %s (%s)", a.name, t.attrib[a.name], a.value, a.why))
		}
	}
	if t.attrib["authentication"] != authValue(wt) {
		problems = append(problems, fmt.Sprintf("attrib/authentication is %q, want %s", t.attrib["authentication"], authValue(wt)))
	}
	for _, n := range wt.lunNums {
		d := lunDir(n)
		name := wt.luns[n]
		lu := t.luns[d]
		if lu == nil || len(lu.links) != 1 || lu.links[0].target != backstorePath(name) {
			problems = append(problems, fmt.Sprintf("lun/%s does not link to %s", d, backstorePath(name)))
			continue
		}
		lb, err := readBackstore(r, fileioHBA, name)
		if err != nil {
			return err
		}
		if !lb.enabled || lb.serial != w.backstores[name].serial {
			problems = append(problems, fmt.Sprintf("lun/%s: backstore %s is not enabled with serial %q", d, name, w.backstores[name].serial))
		}
	}
	for _, acl := range wt.acls {
		a := t.acls[acl]
		if a == nil {
			problems = append(problems, fmt.Sprintf("acls/%s is missing", acl))
			continue
		}
		want := authWant(wt)
		for i, name := range authAttribs {
			if a.auth[name] != want[i] {
				problems = append(problems, fmt.Sprintf("acls/%s/auth/%s is not what the target's CHAP says", acl, name))
			}
		}
		for _, n := range wt.lunNums {
			d := lunDir(n)
			m := a.mapped[d]
			switch {
			case m == nil || len(m.links) != 1 || m.links[0].target != join(tp, "lun", d):
				problems = append(problems, fmt.Sprintf("acls/%s/%s does not map lun/%s", acl, d, d))
			case m.writeProtect != "0":
				problems = append(problems, fmt.Sprintf("acls/%s/%s is write-protected", acl, d))
			}
		}
	}
	for _, np := range w.portals {
		if !t.portals[np] {
			problems = append(problems, fmt.Sprintf("np/%s is missing", np))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %s", tp, strings.Join(problems, "; "))
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
