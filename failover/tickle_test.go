package failover

import (
	"encoding/binary"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const procNetTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0A00630A:0CBC 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 19 1 0000000000000000 100 0 0 10 0
   1: 0A00630A:0CBC 3200630A:D431 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 20 4 30 10 -1
   2: 0A00630A:0CBC 3300630A:8001 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 20 4 30 10 -1
   3: 0B00630A:0CBC 3200630A:D432 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 20 4 30 10 -1
   4: 0A00630A:1D30 3200630A:D433 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 20 4 30 10 -1
   5: 0A00630A:0CBC 3400630A:9000 06 00000000:00000000 03:00000123 00000000     0        0 0 3 0000000000000000
`

func TestParseProcNetTCP(t *testing.T) {
	portal := netip.MustParseAddrPort("10.99.0.10:3260")
	got, err := ParseProcNetTCP([]byte(procNetTCP), portal)
	if err != nil {
		t.Fatal(err)
	}
	// Only ESTABLISHED connections to the portal: not the listener, not
	// another local address, not another port, not TIME_WAIT.
	want := []Conn{
		{Initiator: netip.MustParseAddrPort("10.99.0.50:54321"), Portal: portal},
		{Initiator: netip.MustParseAddrPort("10.99.0.51:32769"), Portal: portal},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{"hdr\n 0: 0A00630A 3200630A:D431 01\n", "hdr\n 0: 0A00630A:0CBC 3200630A:ZZZZ 01\n", "hdr\n 0: 0A0063:0CBC\n"} {
		if _, err := ParseProcNetTCP([]byte(bad), portal); err == nil {
			t.Errorf("ParseProcNetTCP(%q) accepted a damaged line", bad)
		}
	}
}

func TestTickleSegment(t *testing.T) {
	c := Conn{Initiator: netip.MustParseAddrPort("10.99.0.50:54321"), Portal: netip.MustParseAddrPort("10.99.0.10:3260")}
	p := TickleSegment(c)
	if len(p) != 40 || p[0] != 0x45 || p[9] != 6 {
		t.Fatalf("not an IPv4/TCP packet of 40 bytes: % x", p)
	}
	if got := netip.AddrFrom4([4]byte(p[12:16])); got != c.Portal.Addr() {
		t.Errorf("source %s, want the portal %s", got, c.Portal.Addr())
	}
	if got := netip.AddrFrom4([4]byte(p[16:20])); got != c.Initiator.Addr() {
		t.Errorf("destination %s, want the initiator %s", got, c.Initiator.Addr())
	}
	tcp := p[20:]
	if sp, dp := binary.BigEndian.Uint16(tcp[0:]), binary.BigEndian.Uint16(tcp[2:]); sp != 3260 || dp != 54321 {
		t.Errorf("ports %d -> %d, want 3260 -> 54321", sp, dp)
	}
	if tcp[13] != 0x10 {
		t.Errorf("flags %#x, want ACK only", tcp[13])
	}
	// A correct checksum sums (with the pseudo header) to 0xffff, so
	// checksumming the whole again yields 0.
	if sum := checksum(p[:20]); sum != 0 {
		t.Errorf("IP header checksum does not verify (%#x)", sum)
	}
	pseudo := append(append(append([]byte{}, p[12:20]...), 0, 6, 0, 20), tcp...)
	if sum := checksum(pseudo); sum != 0 {
		t.Errorf("TCP checksum does not verify (%#x)", sum)
	}
}

func TestInitiatorsRecord(t *testing.T) {
	dir := t.TempDir()
	proc := filepath.Join(dir, "tcp")
	if err := os.WriteFile(proc, []byte(procNetTCP), 0o644); err != nil {
		t.Fatal(err)
	}
	n := &Initiators{Portal: netip.MustParseAddrPort("10.99.0.10:3260"), File: filepath.Join(dir, "initiators.json"),
		ProcNetTCP: proc, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := n.Record(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(n.File)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"initiator":"10.99.0.50:54321","portal":"10.99.0.10:3260"},{"initiator":"10.99.0.51:32769","portal":"10.99.0.10:3260"}]`
	if string(data) != want {
		t.Errorf("recorded %s, want %s", data, want)
	}
	// A damaged list never stops a promotion.
	os.WriteFile(n.File, []byte("{not json"), 0o644)
	if err := n.Tickle(t.Context()); err != nil {
		t.Errorf("Tickle with a damaged list: %v, want nil", err)
	}
}
