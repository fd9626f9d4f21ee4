package failover

import (
	"bytes"
	"encoding/binary"
	"io"
	"log"
	"net"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

func testTransport(t *testing.T, keys ...[]byte) *gossipTransport {
	t.Helper()
	tr, err := newGossipTransport(&memberlist.Config{BindAddr: "127.0.0.1", Logger: log.New(io.Discard, "", 0)}, keys)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestGossipPackets(t *testing.T) {
	a, b := testTransport(t, testKey()), testTransport(t, bytes.Repeat([]byte{1}, KeySize), testKey())
	msg := []byte("alive san1 incarnation 7")
	sealed, err := a.sealPacket(msg)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != len(msg)+sealOverhead || bytes.Contains(sealed, msg) {
		t.Fatalf("sealed packet: %d bytes for %d, plaintext visible %v", len(sealed), len(msg), bytes.Contains(sealed, msg))
	}
	if got, err := b.openPacket(sealed); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("open with the key second in the file: %q, %v", got, err)
	}
	for name, p := range map[string][]byte{
		"flipped bit": func() []byte { c := bytes.Clone(sealed); c[len(c)-1] ^= 1; return c }(),
		"plaintext":   msg,
		"short":       sealed[:sealOverhead-1],
		"other key":   func() []byte { c, _ := testTransport(t, bytes.Repeat([]byte{2}, KeySize)).sealPacket(msg); return c }(),
	} {
		if _, err := b.openPacket(p); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
}

func TestGossipStreams(t *testing.T) {
	tr := testTransport(t, testKey())
	// A write larger than a frame arrives whole.
	c1, c2 := net.Pipe()
	t.Cleanup(func() { c1.Close(); c2.Close() })
	w, r := tr.wrap(c1), tr.wrap(c2)
	big := bytes.Repeat([]byte("push-pull state "), 10000)
	go func() { _, _ = w.Write(big) }()
	got := make([]byte, len(big))
	if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("read %d bytes back: %v", len(got), err)
	}

	// Frames recorded off the wire: replayed out of order, they are refused.
	var wire bytes.Buffer
	rec := &sealedConn{Conn: connOver(&wire), seal: tr.seal, open: tr.open}
	for _, s := range []string{"first", "second"} {
		if _, err := rec.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	frames := wire.Bytes()
	n1 := 4 + int(binary.BigEndian.Uint32(frames))
	swapped := append(append([]byte(nil), frames[n1:]...), frames[:n1]...)
	for _, tc := range []struct {
		name string
		wire []byte
		want string
	}{
		{"in order", frames, ""},
		{"swapped", swapped, "out of sequence"},
		{"the second alone", frames[n1:], "out of sequence"},
		{"not sealed", []byte("\x00\x00\x00\x05hello"), "not sealed by sand"},
		{"huge", []byte("\xff\xff\xff\xff"), "not sealed by sand"},
	} {
		c := &sealedConn{Conn: connOver(bytes.NewBuffer(tc.wire)), seal: tr.seal, open: tr.open}
		out, err := io.ReadAll(c)
		switch {
		case tc.want == "" && (err != nil || string(out) != "firstsecond"):
			t.Errorf("%s: %q, %v", tc.name, out, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %q, %v; want an error with %q", tc.name, out, err, tc.want)
		}
	}
	other := testTransport(t, bytes.Repeat([]byte{2}, KeySize))
	c := &sealedConn{Conn: connOver(bytes.NewBuffer(frames)), seal: other.seal, open: other.open}
	if _, err := io.ReadAll(c); err == nil || !strings.Contains(err.Error(), "another gossip key") {
		t.Errorf("a stream under another key: %v", err)
	}
}

// recordConn is a connection over a buffer (only Read, Write and
// RemoteAddr are used).
type recordConn struct {
	net.Conn
	b *bytes.Buffer
}

func (c recordConn) Read(p []byte) (int, error)  { return c.b.Read(p) }
func (c recordConn) Write(p []byte) (int, error) { return c.b.Write(p) }
func (recordConn) RemoteAddr() net.Addr          { return &net.TCPAddr{} }

func connOver(b *bytes.Buffer) net.Conn { return recordConn{b: b} }
