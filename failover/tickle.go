package failover

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sand-appliance/sand/appliance/durable"
)

// Initiator connections and tickle ACKs.
//
// After the VIP moves, an initiator whose TCP connection went to the old
// primary only notices when its next retransmission reaches the new box
// and is answered with a RST: with TCP's backoff that can be seconds after
// the new box is ready. CTDB's answer, used here: the new primary sends
// each known initiator connection an ACK with sequence numbers the client
// does not expect (a "tickle"); the client answers with its real ones, the
// new box has no such connection and resets it, and the initiator logs in
// again at once. The primary records its portal connections on the
// replicated metadata volume, so the box that takes over knows them.

// Conn is one initiator's TCP connection to the portal.
type Conn struct {
	Initiator netip.AddrPort `json:"initiator"`
	Portal    netip.AddrPort `json:"portal"`
}

// tcpEstablished is the state column of /proc/net/tcp for ESTABLISHED.
const tcpEstablished = "01"

// ParseProcNetTCP returns the established connections to portal from the
// text of /proc/net/tcp (IPv4; addresses are little-endian hex words).
func ParseProcNetTCP(data []byte, portal netip.AddrPort) ([]Conn, error) {
	var out []Conn
	lines := strings.Split(string(data), "\n")
	for i, line := range lines {
		f := strings.Fields(line)
		if i == 0 || len(f) == 0 {
			continue // header
		}
		if len(f) < 4 {
			return nil, fmt.Errorf("/proc/net/tcp line %d: %d fields, want at least 4: %q", i+1, len(f), line)
		}
		local, err := parseProcAddr(f[1])
		if err != nil {
			return nil, fmt.Errorf("/proc/net/tcp line %d: local address: %w", i+1, err)
		}
		remote, err := parseProcAddr(f[2])
		if err != nil {
			return nil, fmt.Errorf("/proc/net/tcp line %d: remote address: %w", i+1, err)
		}
		if f[3] == tcpEstablished && local == portal {
			out = append(out, Conn{Initiator: remote, Portal: local})
		}
	}
	slices.SortFunc(out, func(a, b Conn) int { return a.Initiator.Compare(b.Initiator) })
	return out, nil
}

// parseProcAddr reads "0100007F:0CBC" (127.0.0.1:3260).
func parseProcAddr(s string) (netip.AddrPort, error) {
	ip, port, ok := strings.Cut(s, ":")
	if !ok || len(ip) != 8 {
		return netip.AddrPort{}, fmt.Errorf("%q is not an IPv4 address:port in /proc/net/tcp form", s)
	}
	b, err := hex.DecodeString(ip)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: %w", s, err)
	}
	p, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: port: %w", s, err)
	}
	// The kernel prints the address as a host-order (little-endian) word.
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]}), uint16(p)), nil
}

// TickleSegment builds the IPv4 packet of a tickle: a bare ACK from the
// portal to the initiator with sequence and acknowledgement numbers 0.
func TickleSegment(c Conn) []byte {
	p := make([]byte, 40)
	src, dst := c.Portal.Addr().As4(), c.Initiator.Addr().As4()
	p[0] = 0x45 // IPv4, 5-word header
	binary.BigEndian.PutUint16(p[2:4], 40)
	p[8] = 64 // TTL
	p[9] = syscall.IPPROTO_TCP
	copy(p[12:16], src[:])
	copy(p[16:20], dst[:])
	binary.BigEndian.PutUint16(p[10:12], checksum(p[:20]))
	t := p[20:]
	binary.BigEndian.PutUint16(t[0:2], c.Portal.Port())
	binary.BigEndian.PutUint16(t[2:4], c.Initiator.Port())
	// seq and ack stay 0: no live connection expects them.
	t[12] = 5 << 4 // data offset: 5 words
	t[13] = 0x10   // ACK
	binary.BigEndian.PutUint16(t[14:16], 1234)
	pseudo := make([]byte, 0, 12+len(t))
	pseudo = append(pseudo, src[:]...)
	pseudo = append(pseudo, dst[:]...)
	pseudo = append(pseudo, 0, syscall.IPPROTO_TCP, 0, byte(len(t)))
	pseudo = append(pseudo, t...)
	binary.BigEndian.PutUint16(t[16:18], checksum(pseudo))
	return p
}

// checksum is the Internet checksum (RFC 1071).
func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// Initiators records the primary's portal connections and tickles them on
// the box that takes over.
type Initiators struct {
	Portal netip.AddrPort
	// File lives on the replicated metadata volume (state_dir).
	File string
	Log  *slog.Logger
	// ProcNetTCP is /proc/net/tcp (a test may point elsewhere).
	ProcNetTCP string
	last       []Conn
}

func (n *Initiators) procFile() string {
	if n.ProcNetTCP != "" {
		return n.ProcNetTCP
	}
	return "/proc/net/tcp"
}

// Record writes the portal's current connections to File when they
// changed since the last call. Only the primary calls it.
func (n *Initiators) Record() error {
	data, err := os.ReadFile(n.procFile())
	if err != nil {
		return fmt.Errorf("read %s: %w", n.procFile(), err)
	}
	conns, err := ParseProcNetTCP(data, n.Portal)
	if err != nil {
		return err
	}
	if n.last != nil && slices.Equal(conns, n.last) {
		return nil
	}
	out, err := json.Marshal(conns)
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(n.File); err == nil && bytes.Equal(old, out) {
		n.last = conns
		return nil
	}
	if err := durable.WriteFile(n.File, out, 0o644); err != nil {
		return fmt.Errorf("record initiator connections: %w", err)
	}
	n.last = conns
	return nil
}

// Forget drops the remembered list, so the next Record compares with the
// file again (after a demotion the file may have changed under it).
func (n *Initiators) Forget() { n.last = nil }

// Tickle sends three tickle ACKs to every connection recorded in File (by
// the old primary). A missing file means no initiator was connected.
func (n *Initiators) Tickle(ctx context.Context) error {
	data, err := os.ReadFile(n.File)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read recorded initiator connections: %w", err)
	}
	var conns []Conn
	if err := json.Unmarshal(data, &conns); err != nil {
		// A damaged list must not stop a promotion: initiators then
		// reconnect on their own retransmission.
		n.Log.Warn("recorded initiator connections unreadable; not tickling", "file", n.File, "err", err)
		return nil
	}
	if len(conns) == 0 {
		return nil
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		return fmt.Errorf("open raw socket for tickle ACKs: %w", err)
	}
	defer syscall.Close(fd)
	sent := 0
	for round := range 3 {
		if round > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
		for _, c := range conns {
			if !c.Initiator.Addr().Is4() || c.Portal != n.Portal {
				continue
			}
			to := &syscall.SockaddrInet4{Addr: c.Initiator.Addr().As4()}
			if err := syscall.Sendto(fd, TickleSegment(c), 0, to); err != nil {
				n.Log.Warn("tickle ACK not sent", "initiator", c.Initiator, "err", err)
				continue
			}
			sent++
		}
	}
	n.Log.Info("tickled initiator connections of the old primary", "connections", len(conns), "segments", sent)
	return nil
}
