package iscsi

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// sandPrefix starts the comment lines that carry sand's own facts.
const sandPrefix = "#sand:"

// maxScsiIDLen is IET's limit for ScsiId= (SCSI_ID_LEN in its kernel
// module).
const maxScsiIDLen = 24

// ietdHeader opens every rendered file. It holds no date or host so that
// the same group always renders to the same bytes.
const ietdHeader = `# ietd.conf written by sand. Do not edit: sand rewrites this file from its
# LUN registry; change LUNs, initiators and CHAP with the sand CLI or web UI.
#
# IET syntax, plus "#sand:" lines that IET ignores as comments and sand reads:
# the portals every target listens on, the initiators allowed to log in to
# each target (IET keeps those in initiators.allow), and each LUN's registry
# name, size in bytes and NAA identifier (the WWN initiators see).
`

// RenderIETD writes tg as an ietd.conf. The output depends on tg alone (same
// group, same bytes) and keeps the order of portals, targets, initiators
// and LUNs. tg must pass Validate; RenderIETD does not check it. The file
// holds CHAP secrets: write it readable by root only.
//
// The file is sand's human-readable record of what the box exports: IET's
// own syntax, so an admin who knows IET can read it, plus "#sand:" comment
// lines for the facts IET has no keyword for. IET takes any line whose
// first word starts with '#' as a comment, so it ignores them; ParseIETD
// reads them back.
//
// The "#sand:" lines (words separated by blanks, "#sand:" in lower case):
//
//	#sand: portal <ip:port>
//		Before the first Target, one line per portal, in order. The
//		address is in canonical form: 10.0.0.50:3260, [2001:db8::50]:3260.
//	#sand: allow <initiator IQN>
//		Inside a Target, one line per initiator allowed to log in (IET
//		keeps this list in its separate initiators.allow file). A target
//		without one gets a plain comment saying nobody may log in.
//	#sand: lun <number> [name=<name>] [size=<bytes>] [naa=<32 hex digits>]
//		Right above the Lun line with the same number (blank lines and
//		plain comments may come between): the LUN's registry name, the
//		size of its backing store in bytes and its NAA identifier (VPD
//		page 0x83). RenderIETD writes the keys in this order, only those
//		that are set, and leaves the line out when none is; ParseIETD
//		takes them in any order, each at most once. naa= must be the NAA
//		derived from the Lun's ScsiSN (see NAAFromSerial): it is there for
//		the admin, who matches it against the disk an initiator sees.
//
// Example:
//
//	#sand: portal 10.0.0.50:3260
//
//	Target iqn.2026-11.org.example.san:vm01
//		Alias vm01
//		#sand: allow iqn.2026-11.org.example:dom0-a
//		IncomingUser dom0 secretsecret1
//		#sand: lun 0 name=vm01 size=21474836480 naa=60014058a1b2c3d4e5f6a7b000000000
//		Lun 0 Path=/dev/sand/lun-vm01,Type=blockio,ScsiId=8a1b2c3d4e5f6a7b,ScsiSN=8a1b2c3d4e5f6a7b
func RenderIETD(tg TargetGroup) []byte {
	var b bytes.Buffer
	b.WriteString(ietdHeader)
	if len(tg.Portals) > 0 {
		b.WriteByte('\n')
	}
	for _, p := range tg.Portals {
		fmt.Fprintf(&b, "%s portal %s\n", sandPrefix, p)
	}
	for _, t := range tg.Targets {
		fmt.Fprintf(&b, "\nTarget %s\n", t.IQN)
		if t.Alias != "" {
			fmt.Fprintf(&b, "\tAlias %s\n", t.Alias)
		}
		for _, ini := range t.Initiators {
			fmt.Fprintf(&b, "\t%s allow %s\n", sandPrefix, ini)
		}
		if len(t.Initiators) == 0 {
			// Said in words, since an IET admin would read no list as
			// "everyone".
			b.WriteString("\t# no initiator may log in to this target\n")
		}
		if t.CHAP != nil {
			fmt.Fprintf(&b, "\tIncomingUser %s %s\n", t.CHAP.User, t.CHAP.Secret)
		}
		if t.MutualCHAP != nil {
			fmt.Fprintf(&b, "\tOutgoingUser %s %s\n", t.MutualCHAP.User, t.MutualCHAP.Secret)
		}
		for _, lu := range t.LUNs {
			renderLUN(&b, lu)
		}
	}
	return b.Bytes()
}

func renderLUN(b *bytes.Buffer, lu LogicalUnit) {
	if lu.Name != "" || lu.Size != 0 || lu.NAA != "" {
		fmt.Fprintf(b, "\t%s lun %d", sandPrefix, lu.Number)
		if lu.Name != "" {
			fmt.Fprintf(b, " name=%s", lu.Name)
		}
		if lu.Size != 0 {
			fmt.Fprintf(b, " size=%d", lu.Size)
		}
		if lu.NAA != "" {
			fmt.Fprintf(b, " naa=%s", lu.NAA)
		}
		b.WriteByte('\n')
	}
	fmt.Fprintf(b, "\tLun %d Path=%s,Type=%s", lu.Number, lu.Path, lu.Type)
	if lu.Serial != "" {
		// ScsiId too, so an IET daemon reading the file presents the
		// serial in VPD page 0x83 as well instead of an id of its own.
		fmt.Fprintf(b, ",ScsiId=%s,ScsiSN=%s", lu.Serial, lu.Serial)
	}
	b.WriteByte('\n')
}

// ParseError is a problem on one line of an ietd.conf.
type ParseError struct {
	Line int // 1-based
	Err  error
}

func (e *ParseError) Error() string { return fmt.Sprintf("ietd.conf line %d: %v", e.Line, e.Err) }
func (e *ParseError) Unwrap() error { return e.Err }

// ParseIETD reads an ietd.conf written by RenderIETD or by hand for IET, and
// returns a group that passes Validate, or the first problem as a
// *ParseError that names the line, what is wrong and how to fix it.
//
// It reads IET's syntax the way ietd does where that is safe: keywords and
// Lun option names in any case, blanks (spaces or tabs) between words, '#'
// comments on lines of their own, blank lines. It does not join lines
// ending in a backslash: ietd 1.4 does not either, despite its man page.
//
//   - IncomingUser and OutgoingUser before the first Target set IET's
//     discovery authentication. They are checked like a target's and then
//     dropped: a TargetGroup has no place for them.
//   - IET's tuning parameters (MaxConnections, InitialR2T, ImmediateData,
//     HeaderDigest, DataDigest, the burst and segment lengths, Wthreads,
//     QueuedCommands, NOPInterval, ...) and its iSNS settings are accepted
//     and dropped: the tgt and LIO drivers tune targets themselves.
//   - A target takes one IncomingUser (sand keeps one CHAP account per
//     target) and one OutgoingUser (as IET).
//   - Lun takes Path (required, absolute and clean), Type (fileio, the
//     default, or blockio), ScsiId, ScsiSN, IOMode and BlockSize. It
//     rejects Type=nullio (no storage behind it), IOMode=ro (a TargetGroup
//     cannot say read-only, and exporting the LUN writable is not what the
//     file asks for) and BlockSize other than 512 (the drivers export
//     512-byte blocks, and data written in bigger blocks would be misread).
//   - A LUN's Serial is its ScsiSN, or else its ScsiId if that passes
//     ValidateSerial; its NAA is NAAFromSerial(Serial). Name and Size come
//     from its "#sand: lun" line and stay empty and 0 without one.
//   - Targets without "#sand: allow" lines allow nobody, as in any
//     TargetGroup: an imported file needs its initiators added.
func ParseIETD(data []byte) (TargetGroup, error) {
	p := ietdParser{
		targets: make(map[string]int),
		portals: make(map[string]int),
		paths:   make(map[string]lunRef),
		serials: make(map[string]lunRef),
		naas:    make(map[string]lunRef),
		names:   make(map[string]lunRef),
	}
	// Editors on Windows may start the file with a byte order mark.
	text := strings.TrimPrefix(string(data), "\ufeff")
	for i, line := range strings.Split(text, "\n") {
		p.line = i + 1
		if err := p.parseLine(line); err != nil {
			return TargetGroup{}, err
		}
	}
	if p.note != nil {
		return TargetGroup{}, p.errAt(p.note.line, "#sand: lun %d is not followed by its Lun line (the file ends first): put it right above Lun %d, or remove it", p.note.number, p.note.number)
	}
	if err := p.endTarget(); err != nil {
		return TargetGroup{}, err
	}
	// The checks above should have caught everything with a line number;
	// this keeps the promise that whatever parses can be applied.
	if err := p.tg.Validate(); err != nil {
		return TargetGroup{}, fmt.Errorf("ietd.conf: %w", err)
	}
	return p.tg, nil
}

// ignoredKeys are IET's iSCSI, target and iSNS parameters (lower case),
// accepted anywhere and dropped. "type" here is IET's target-level Type
// parameter, not the Type= of a Lun.
var ignoredKeys = map[string]bool{
	"initialr2t": true, "immediatedata": true, "maxconnections": true,
	"maxrecvdatasegmentlength": true, "maxxmitdatasegmentlength": true,
	"maxburstlength": true, "firstburstlength": true,
	"defaulttime2wait": true, "defaulttime2retain": true,
	"maxoutstandingr2t": true, "datapduinorder": true,
	"datasequenceinorder": true, "errorrecoverylevel": true,
	"headerdigest": true, "datadigest": true,
	"ofmarker": true, "ifmarker": true, "ofmarkint": true, "ifmarkint": true,
	"wthreads": true, "type": true, "queuedcommands": true,
	"nopinterval": true, "noptimeout": true, "maxsessions": true,
	"isnsserver": true, "isnsaccesscontrol": true,
}

// lunOptions are the Lun options IET knows (lower case), nullio's aside.
var lunOptions = map[string]bool{
	"path": true, "type": true, "scsiid": true, "scsisn": true,
	"iomode": true, "blocksize": true,
}

// lunRef says where a LUN was defined, for errors about duplicates.
type lunRef struct {
	line   int
	target string
	number int
}

// lunNote is a "#sand: lun" line waiting for its Lun line.
type lunNote struct {
	line   int
	number int
	name   string
	size   int64
	naa    string
}

type ietdParser struct {
	tg   TargetGroup
	line int

	targets map[string]int // IQN -> line
	portals map[string]int // portal -> line
	paths   map[string]lunRef
	serials map[string]lunRef
	naas    map[string]lunRef
	names   map[string]lunRef

	// Discovery OutgoingUser line, before the first Target.
	discoveryOut int

	// The current target: nil before the first Target line.
	cur        *Target
	targetLine int
	luns       map[int]int    // LUN number -> line
	allowed    map[string]int // initiator -> line
	aliasLine  int
	inLine     int
	outLine    int
	note       *lunNote
}

func (p *ietdParser) errf(format string, args ...any) error {
	return p.errAt(p.line, format, args...)
}

func (p *ietdParser) errAt(line int, format string, args ...any) error {
	return &ParseError{Line: line, Err: fmt.Errorf(format, args...)}
}

func (p *ietdParser) parseLine(line string) error {
	s := trimBlanks(line)
	switch {
	case s == "":
		return nil
	case strings.HasPrefix(s, sandPrefix):
		return p.sandLine(s[len(sandPrefix):])
	case s[0] == '#':
		return nil
	}
	f := fields(s)
	kw := strings.ToLower(f[0])
	if p.note != nil && kw != "lun" {
		return p.errAt(p.note.line, "#sand: lun %d is not followed by its Lun line (line %d is %s): put it right above Lun %d", p.note.number, p.line, shown(f[0]), p.note.number)
	}
	switch kw {
	case "target":
		return p.target(f)
	case "alias":
		return p.alias(trimBlanks(s[len(f[0]):]))
	case "incominguser", "outgoinguser":
		return p.user(kw == "outgoinguser", f)
	case "lun":
		return p.lun(f)
	}
	if ignoredKeys[kw] {
		return nil
	}
	return p.errf("unknown keyword %q: ietd.conf takes Target, Alias, Lun, IncomingUser, OutgoingUser and IET's iSCSI parameters; fix the spelling, or put '#' in front to keep it as a comment", f[0])
}

func (p *ietdParser) target(f []string) error {
	// Finish the previous target first, so its errors come before this
	// line's.
	if err := p.endTarget(); err != nil {
		return err
	}
	if len(f) != 2 {
		return p.errf("Target needs one IQN, got %s: write Target iqn.2026-11.org.example:name", countWords(len(f)-1))
	}
	iqn := f[1]
	if err := ValidateIQN(iqn); err != nil {
		return p.errf("Target name: %w", err)
	}
	if line, ok := p.targets[iqn]; ok {
		return p.errf("Target %s is already defined on line %d: give each target its own IQN", iqn, line)
	}
	p.targets[iqn] = p.line
	p.tg.Targets = append(p.tg.Targets, Target{IQN: iqn})
	p.cur = &p.tg.Targets[len(p.tg.Targets)-1]
	p.targetLine = p.line
	p.luns = make(map[int]int)
	p.allowed = make(map[string]int)
	p.aliasLine, p.inLine, p.outLine = 0, 0, 0
	return nil
}

// endTarget checks the rules that need the whole target, and reports them
// on its Target line.
func (p *ietdParser) endTarget() error {
	if p.cur == nil {
		return nil
	}
	if err := p.cur.validate(); err != nil {
		return p.errAt(p.targetLine, "%w", err)
	}
	return nil
}

func (p *ietdParser) alias(alias string) error {
	if p.cur == nil {
		return p.errf("Alias comes before any Target: put it inside the Target stanza it names")
	}
	if alias == "" {
		return p.errf("Alias has no name: write Alias <name>, or remove the line")
	}
	if p.aliasLine != 0 {
		return p.errf("second Alias for target %s (the first is on line %d): keep one", p.cur.IQN, p.aliasLine)
	}
	if err := validateAlias(alias); err != nil {
		return p.errf("Alias: %w", err)
	}
	p.aliasLine = p.line
	p.cur.Alias = alias
	return nil
}

func (p *ietdParser) user(outgoing bool, f []string) error {
	kw := "IncomingUser"
	if outgoing {
		kw = "OutgoingUser"
	}
	if len(f) != 3 {
		return p.errf("%s needs a user and a secret, got %s: write %s <user> <secret>", kw, countWords(len(f)-1), kw)
	}
	c := CHAP{User: f[1], Secret: f[2]}
	if err := c.Validate(); err != nil {
		return p.errf("%s: %w", kw, err)
	}
	switch {
	case p.cur == nil && !outgoing:
		// Discovery authentication: checked, then dropped (see ParseIETD).
		return nil
	case p.cur == nil:
		if p.discoveryOut != 0 {
			return p.errf("second OutgoingUser for discovery (the first is on line %d): IET allows one; remove one", p.discoveryOut)
		}
		p.discoveryOut = p.line
		return nil
	case !outgoing:
		if p.inLine != 0 {
			return p.errf("second IncomingUser for target %s (the first is on line %d): sand keeps one CHAP account per target; remove one", p.cur.IQN, p.inLine)
		}
		p.inLine = p.line
		p.cur.CHAP = &c
	default:
		if p.outLine != 0 {
			return p.errf("second OutgoingUser for target %s (the first is on line %d): IET allows one per target; remove one", p.cur.IQN, p.outLine)
		}
		p.outLine = p.line
		p.cur.MutualCHAP = &c
	}
	return nil
}

func (p *ietdParser) lun(f []string) error {
	if len(f) < 2 {
		return p.errf("Lun needs a number and options: write Lun 0 Path=/dev/vg/lv,Type=blockio")
	}
	if p.cur == nil {
		return p.errf("Lun %s comes before any Target: put it inside a Target stanza", shown(f[1]))
	}
	n, err := parseLUNNumber(f[1])
	if err != nil {
		return p.errf("Lun: %w", err)
	}
	if line, ok := p.luns[n]; ok {
		return p.errf("Lun %d is already defined on line %d for target %s: give each LUN its own number", n, line, p.cur.IQN)
	}
	if p.note != nil && p.note.number != n {
		return p.errAt(p.note.line, "#sand: lun %d is followed by Lun %d on line %d: put it right above Lun %d, or fix its number", p.note.number, n, p.line, p.note.number)
	}
	switch {
	case len(f) == 2:
		return p.errf("Lun %d has no Path=: add Path=/dev/vg/lv", n)
	case len(f) > 3:
		return p.errf("Lun %d options have blanks between them: write one comma-separated list without blanks, e.g. Path=/dev/vg/lv,Type=blockio", n)
	}
	lu, err := parseLUNOptions(n, f[2])
	if err != nil {
		return p.errf("%w", err)
	}
	if note := p.note; note != nil {
		p.note = nil
		lu.Name, lu.Size = note.name, note.size
		switch {
		case note.naa == "":
		case lu.Serial == "":
			return p.errAt(note.line, "#sand: lun %d has naa=%s but Lun %d on line %d has no ScsiSN=: the NAA derives from the serial; add ScsiSN= or remove naa=", n, note.naa, n, p.line)
		case note.naa != lu.NAA:
			return p.errAt(note.line, "#sand: lun %d has naa=%s but serial %s of Lun %d on line %d gives %s: the NAA derives from the serial; fix naa= or ScsiSN=", n, note.naa, lu.Serial, n, p.line, lu.NAA)
		}
	}
	if err := lu.validate(); err != nil {
		return p.errf("%w", err)
	}
	ref := lunRef{line: p.line, target: p.cur.IQN, number: n}
	if prev, ok := p.paths[lu.Path]; ok {
		return p.errf("Lun %d: path %s is already exported by target %s Lun %d on line %d: export each backing store once", n, lu.Path, prev.target, prev.number, prev.line)
	}
	if prev, ok := p.serials[lu.Serial]; ok && lu.Serial != "" {
		return p.errf("Lun %d: serial %s is already used by target %s Lun %d on line %d: give each LUN its own ScsiSN (initiators would take both for one disk)", n, lu.Serial, prev.target, prev.number, prev.line)
	}
	if prev, ok := p.naas[lu.NAA]; ok && lu.NAA != "" {
		return p.errf("Lun %d: serial %s gives NAA %s, as target %s Lun %d on line %d does: give this LUN a ScsiSN with other hex digits (initiators would take both for one disk)", n, lu.Serial, lu.NAA, prev.target, prev.number, prev.line)
	}
	if prev, ok := p.names[lu.Name]; ok && lu.Name != "" {
		return p.errf("Lun %d: name %s is already used by target %s Lun %d on line %d: give each LUN its own name", n, lu.Name, prev.target, prev.number, prev.line)
	}
	p.paths[lu.Path] = ref
	if lu.Serial != "" {
		p.serials[lu.Serial] = ref
		p.naas[lu.NAA] = ref
	}
	if lu.Name != "" {
		p.names[lu.Name] = ref
	}
	p.luns[n] = p.line
	p.cur.LUNs = append(p.cur.LUNs, lu)
	return nil
}

// parseLUNOptions reads IET's comma-separated Lun options.
func parseLUNOptions(n int, s string) (LogicalUnit, error) {
	vals := make(map[string]string)
	var order []string // keys as written, for errors in file order
	for _, opt := range strings.Split(s, ",") {
		if opt == "" {
			continue // IET skips empty options too
		}
		k, v, ok := strings.Cut(opt, "=")
		if !ok {
			return LogicalUnit{}, fmt.Errorf("Lun %d option %q has no '=': write Key=value, e.g. Type=blockio", n, opt)
		}
		lk := strings.ToLower(k)
		if _, dup := vals[lk]; dup {
			return LogicalUnit{}, fmt.Errorf("Lun %d gives %s= twice: keep one", n, shown(k))
		}
		vals[lk] = v
		order = append(order, k)
	}

	lu := LogicalUnit{Number: n, Type: FileIO}
	// Type first: nullio's own options would otherwise be reported as
	// unknown, hiding the real problem.
	if v, ok := vals["type"]; ok {
		switch strings.ToLower(v) {
		case "fileio":
			lu.Type = FileIO
		case "blockio":
			lu.Type = BlockIO
		case "nullio":
			return LogicalUnit{}, fmt.Errorf("Lun %d is Type=nullio, a test device that stores nothing: sand exports real storage only; use Type=fileio or Type=blockio with Path=", n)
		default:
			return LogicalUnit{}, fmt.Errorf("Lun %d Type=%s is unknown: use Type=fileio or Type=blockio", n, shown(v))
		}
	}
	for _, k := range order {
		if !lunOptions[strings.ToLower(k)] {
			return LogicalUnit{}, fmt.Errorf("Lun %d option %s= is unknown: IET takes Path, Type, ScsiId, ScsiSN, IOMode and BlockSize; fix the spelling or remove it", n, shown(k))
		}
	}

	path, ok := vals["path"]
	if !ok {
		return LogicalUnit{}, fmt.Errorf("Lun %d has no Path=: add Path=/dev/vg/lv", n)
	}
	if err := validatePath(path); err != nil {
		return LogicalUnit{}, fmt.Errorf("Lun %d: %w", n, err)
	}
	lu.Path = path

	if v, ok := vals["iomode"]; ok {
		switch strings.ToLower(v) {
		case "wt", "wb":
			// Caching is the drivers' business.
		case "ro":
			return LogicalUnit{}, fmt.Errorf("Lun %d is IOMode=ro: sand exports LUNs read-write only, so it would make this one writable; remove IOMode=ro to export it read-write, or leave the LUN out", n)
		default:
			return LogicalUnit{}, fmt.Errorf("Lun %d IOMode=%s is unknown: IET takes wt, wb or ro; remove it for the default", n, shown(v))
		}
	}
	if v, ok := vals["blocksize"]; ok {
		switch v {
		case "512":
		case "1024", "2048", "4096":
			return LogicalUnit{}, fmt.Errorf("Lun %d has BlockSize=%s: sand exports 512-byte blocks, and data written in %s-byte blocks would be misread; copy the data to a new LUN, or remove BlockSize= if the LUN holds no data yet", n, v, v)
		default:
			return LogicalUnit{}, fmt.Errorf("Lun %d BlockSize=%s is invalid: IET takes 512, 1024, 2048 or 4096, and sand 512 only", n, shown(v))
		}
	}

	scsiID, hasID := vals["scsiid"]
	if hasID {
		switch {
		case scsiID == "":
			return LogicalUnit{}, fmt.Errorf("Lun %d ScsiId= is empty: give an id or remove ScsiId=", n)
		case len(scsiID) > maxScsiIDLen:
			return LogicalUnit{}, fmt.Errorf("Lun %d ScsiId=%s is %d characters long: IET takes at most %d", n, shown(scsiID), len(scsiID), maxScsiIDLen)
		}
	}
	if sn, ok := vals["scsisn"]; ok {
		if err := ValidateSerial(sn); err != nil {
			return LogicalUnit{}, fmt.Errorf("Lun %d ScsiSN: %w; fix ScsiSN= or remove it", n, err)
		}
		lu.Serial = sn
	} else if hasID && ValidateSerial(scsiID) == nil {
		lu.Serial = scsiID
	}
	if lu.Serial != "" {
		lu.NAA = NAAFromSerial(lu.Serial)
	}
	return lu, nil
}

func parseLUNNumber(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if errors.Is(err, strconv.ErrRange) {
		return 0, fmt.Errorf("LUN number %s is out of range: use 0 to %d", s, MaxLUN)
	}
	if err != nil {
		return 0, fmt.Errorf("LUN number %q is not a number: use 0 to %d", s, MaxLUN)
	}
	if err := validateLUNNumber(n); err != nil {
		return 0, err
	}
	return n, nil
}

func (p *ietdParser) sandLine(rest string) error {
	f := fields(rest)
	if len(f) == 0 {
		return p.errf("%q has nothing after it: write #sand: portal, #sand: allow or #sand: lun, or \"# \" for a plain comment", sandPrefix)
	}
	if p.note != nil {
		return p.errAt(p.note.line, "#sand: lun %d is not followed by its Lun line (line %d is another #sand: line): put it right above Lun %d", p.note.number, p.line, p.note.number)
	}
	switch f[0] {
	case "portal":
		return p.sandPortal(f)
	case "allow":
		return p.sandAllow(f)
	case "lun":
		return p.sandLUN(f)
	}
	return p.errf("unknown sand line \"#sand: %s\": sand writes #sand: portal, allow and lun; for a plain comment write \"# \"", shown(f[0]))
}

func (p *ietdParser) sandPortal(f []string) error {
	if len(f) != 2 {
		return p.errf("#sand: portal needs one ip:port, got %s: write #sand: portal 10.0.0.50:3260", countWords(len(f)-1))
	}
	portal := f[1]
	if p.cur != nil {
		return p.errf("#sand: portal %s is inside target %s: portals apply to every target; move the line above the first Target", shown(portal), p.cur.IQN)
	}
	if err := validatePortal(portal); err != nil {
		return p.errf("#sand: %w", err)
	}
	if line, ok := p.portals[portal]; ok {
		return p.errf("#sand: portal %s is already listed on line %d: list each portal once", portal, line)
	}
	p.portals[portal] = p.line
	p.tg.Portals = append(p.tg.Portals, portal)
	return nil
}

func (p *ietdParser) sandAllow(f []string) error {
	if len(f) != 2 {
		return p.errf("#sand: allow needs one initiator IQN, got %s: write #sand: allow iqn.2026-11.org.example:dom0-a", countWords(len(f)-1))
	}
	ini := f[1]
	if p.cur == nil {
		return p.errf("#sand: allow %s comes before any Target: put it inside the Target stanza it opens", shown(ini))
	}
	if err := ValidateIQN(ini); err != nil {
		return p.errf("#sand: allow: initiator %w", err)
	}
	if line, ok := p.allowed[ini]; ok {
		return p.errf("#sand: allow %s is already listed on line %d for target %s: list each initiator once", ini, line, p.cur.IQN)
	}
	p.allowed[ini] = p.line
	p.cur.Initiators = append(p.cur.Initiators, ini)
	return nil
}

func (p *ietdParser) sandLUN(f []string) error {
	if p.cur == nil {
		return p.errf("#sand: lun comes before any Target: put it right above its Lun line, inside a Target stanza")
	}
	if len(f) < 2 {
		return p.errf("#sand: lun needs a LUN number: write #sand: lun 0 name=vm01 size=21474836480 naa=<32 hex digits>")
	}
	n, err := parseLUNNumber(f[1])
	if err != nil {
		return p.errf("#sand: lun: %w", err)
	}
	note := lunNote{line: p.line, number: n}
	seen := make(map[string]bool)
	for _, kv := range f[2:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return p.errf("#sand: lun %d: %q is not key=value: write name=<name>, size=<bytes> or naa=<32 hex digits>", n, kv)
		}
		if seen[k] {
			return p.errf("#sand: lun %d gives %s= twice: keep one", n, shown(k))
		}
		seen[k] = true
		switch k {
		case "name":
			if err := ValidateLUNName(v); err != nil {
				return p.errf("#sand: lun %d: %w", n, err)
			}
			note.name = v
		case "size":
			size, err := parseSize(v)
			if err != nil {
				return p.errf("#sand: lun %d: %w", n, err)
			}
			note.size = size
		case "naa":
			if err := validateNAAFormat(v); err != nil {
				return p.errf("#sand: lun %d: %w", n, err)
			}
			note.naa = v
		default:
			return p.errf("#sand: lun %d: unknown key %q: sand writes name=, size= and naa=", n, k)
		}
	}
	p.note = &note
	return nil
}

// parseSize reads a size in bytes: decimal digits only, as RenderIETD
// writes it.
func parseSize(s string) (int64, error) {
	bad := s == "" || strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	size, err := strconv.ParseInt(s, 10, 64)
	if bad || err != nil {
		return 0, fmt.Errorf("size=%s is not a size in bytes: write a whole number of bytes, e.g. size=21474836480", shown(s))
	}
	return size, nil
}

// shown quotes s for an error message if it holds anything but printable
// text, so a stray control byte in a file cannot garble a terminal.
func shown(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return s
	}
	return strconv.Quote(s)
}

func countWords(n int) string {
	if n == 1 {
		return "1 word"
	}
	return fmt.Sprintf("%d words", n)
}

// isBlank is C's isspace in the C locale, as ietd splits words; every
// other byte, UTF-8 or not, belongs to a word and is kept as it is.
func isBlank(r rune) bool {
	switch r {
	case ' ', '\t', '\r', '\v', '\f':
		return true
	}
	return false
}

func fields(s string) []string { return strings.FieldsFunc(s, isBlank) }

func trimBlanks(s string) string { return strings.TrimFunc(s, isBlank) }
