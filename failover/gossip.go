package failover

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"golang.org/x/crypto/chacha20poly1305"
)

// gossipTransport is memberlist's UDP/TCP transport with sand's own
// encryption around every packet and stream: XChaCha20-Poly1305 under the
// gossip key (the first key seals, every key opens; see ParseKeys).
//
// Why not memberlist's keyring (Config.SecretKey): serf lets any member
// that holds the gossip key rotate every member's keyring through its
// internal queries (_serf_install-key, _serf_use-key, _serf_remove-key),
// handled inside serf before any event reaches sand, with no hook and no
// option to refuse them, and the witness must hold the gossip key to
// gossip. With the keyring, a witness could remove the configured key from
// both running boxes, and a box restarted afterwards could not gossip with
// its peer. Without a keyring (memberlist's encryption off), serf answers
// those queries "no keyring to modify" to everyone, and the gossip key
// changes only through each member's key file (README: rotating a key).
//
// The wire format is sand's own, so every member (both boxes and the
// witness) must run a sand that has it.
type gossipTransport struct {
	bindAddr string
	bindPort int
	logger   *log.Logger
	seal     cipher.AEAD
	open     []cipher.AEAD
	// conf is the memberlist config it serves, whose port it fills in.
	conf *memberlist.Config

	mu        sync.Mutex
	inner     *memberlist.NetTransport
	listenErr error
	packetCh  chan *memberlist.Packet
	streamCh  chan net.Conn
	done      chan struct{} // Shutdown began
	drained   chan struct{} // the inner transport has stopped
	stop      sync.Once
	wg        sync.WaitGroup
	// dropped counts packets that did not open since the last line
	// saying so (one a minute at most: a stranger must not flood the
	// journal).
	dropped   int
	droppedAt time.Time
}

var _ memberlist.NodeAwareTransport = (*gossipTransport)(nil)

// Sealing: a packet is version, nonce, then the AEAD's output; a stream is
// frames of a 4-byte length and the same.
const (
	gossipVersion = 1
	sealOverhead  = 1 + chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
	// maxFrame bounds one stream frame's plaintext (a Write is cut into
	// frames of at most this much).
	maxFrame = 64 << 10
)

// Additional data, so a packet cannot pass for a stream frame or the
// other way round.
var (
	adPacket = []byte("sand gossip packet v1")
	adStream = []byte("sand gossip stream v1")
)

func newGossipTransport(conf *memberlist.Config, keys [][]byte) (*gossipTransport, error) {
	if len(keys) == 0 {
		return nil, errors.New("gossip transport: no key")
	}
	t := &gossipTransport{bindAddr: conf.BindAddr, bindPort: conf.BindPort, logger: conf.Logger, conf: conf,
		packetCh: make(chan *memberlist.Packet), streamCh: make(chan net.Conn), done: make(chan struct{}), drained: make(chan struct{})}
	for _, k := range keys {
		a, err := chacha20poly1305.NewX(k)
		if err != nil {
			return nil, fmt.Errorf("gossip key: %w", err)
		}
		t.open = append(t.open, a)
	}
	t.seal = t.open[0]
	return t, nil
}

// listen binds the gossip port (a free one for port 0) and starts
// opening what arrives. memberlist's first call (FinalAdvertiseAddr,
// while serf starts) does it, so a config that is never started binds
// nothing.
func (t *gossipTransport) listen() (*memberlist.NetTransport, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inner != nil || t.listenErr != nil {
		return t.inner, t.listenErr
	}
	var inner *memberlist.NetTransport
	var err error
	// As memberlist does for its own transport: with port 0, the UDP and
	// TCP ports picked may collide with another process; retry.
	tries := 1
	if t.bindPort == 0 {
		tries = 10
	}
	for range tries {
		inner, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{t.bindAddr}, BindPort: t.bindPort, Logger: t.logger})
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		t.listenErr = fmt.Errorf("bind gossip %s:%d: %w", t.bindAddr, t.bindPort, err)
		return nil, t.listenErr
	}
	t.inner = inner
	// memberlist fills in a port it picked itself, not one a transport
	// picked: it advertises and probes with these.
	if t.conf != nil && t.conf.BindPort == 0 {
		t.conf.BindPort = inner.GetAutoBindPort()
		t.conf.AdvertisePort = t.conf.BindPort
	}
	t.wg.Add(2)
	go t.packets(inner.PacketCh())
	go t.streams(inner.StreamCh())
	return inner, nil
}

// transport is the inner transport once listening.
func (t *gossipTransport) transport() (*memberlist.NetTransport, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inner == nil {
		return nil, errors.New("gossip transport not listening")
	}
	return t.inner, nil
}

func (t *gossipTransport) sealPacket(b []byte) ([]byte, error) {
	out := make([]byte, 1+chacha20poly1305.NonceSizeX, sealOverhead+len(b))
	out[0] = gossipVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, err
	}
	return t.seal.Seal(out, out[1:], b, adPacket), nil
}

func (t *gossipTransport) openPacket(b []byte) ([]byte, error) {
	if len(b) < sealOverhead || b[0] != gossipVersion {
		return nil, errors.New("not a sealed gossip packet")
	}
	nonce, ct := b[1:1+chacha20poly1305.NonceSizeX], b[1+chacha20poly1305.NonceSizeX:]
	for _, a := range t.open {
		if p, err := a.Open(nil, nonce, ct, adPacket); err == nil {
			return p, nil
		}
	}
	return nil, errors.New("sealed with another gossip key")
}

// packets opens what arrives and hands it to memberlist. Once Shutdown
// began (done) it only drains the inner transport, whose listeners must
// not block on a send while they stop, until that is over (drained).
func (t *gossipTransport) packets(in <-chan *memberlist.Packet) {
	defer t.wg.Done()
	for {
		select {
		case <-t.drained:
			return
		case p := <-in:
			if t.closing() {
				continue
			}
			buf, err := t.openPacket(p.Buf)
			if err != nil {
				t.dropped++
				if time.Since(t.droppedAt) >= time.Minute {
					t.logger.Printf("[WARN] sand: dropped %d gossip packet(s) that did not open, the last from %s: %v", t.dropped, p.From, err)
					t.dropped, t.droppedAt = 0, time.Now()
				}
				continue
			}
			select {
			case t.packetCh <- &memberlist.Packet{Buf: buf, From: p.From, Timestamp: p.Timestamp}:
			case <-t.done:
			}
		}
	}
}

func (t *gossipTransport) streams(in <-chan net.Conn) {
	defer t.wg.Done()
	for {
		select {
		case <-t.drained:
			return
		case c := <-in:
			if t.closing() {
				c.Close()
				continue
			}
			select {
			case t.streamCh <- t.wrap(c):
			case <-t.done:
				c.Close()
			}
		}
	}
}

func (t *gossipTransport) closing() bool {
	select {
	case <-t.done:
		return true
	default:
		return false
	}
}

func (t *gossipTransport) wrap(c net.Conn) net.Conn {
	return &sealedConn{Conn: c, seal: t.seal, open: t.open}
}

func (t *gossipTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	in, err := t.listen()
	if err != nil {
		return nil, 0, err
	}
	return in.FinalAdvertiseAddr(ip, port)
}

func (t *gossipTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return t.WriteToAddress(b, memberlist.Address{Addr: addr})
}

func (t *gossipTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	in, err := t.transport()
	if err != nil {
		return time.Time{}, err
	}
	sealed, err := t.sealPacket(b)
	if err != nil {
		return time.Time{}, fmt.Errorf("seal a gossip packet: %w", err)
	}
	return in.WriteToAddress(sealed, addr)
}

func (t *gossipTransport) PacketCh() <-chan *memberlist.Packet { return t.packetCh }
func (t *gossipTransport) StreamCh() <-chan net.Conn           { return t.streamCh }

func (t *gossipTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *gossipTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	in, err := t.transport()
	if err != nil {
		return nil, err
	}
	c, err := in.DialAddressTimeout(addr, timeout)
	if err != nil {
		return nil, err
	}
	return t.wrap(c), nil
}

// Shutdown stops the inner transport and the goroutines that open what it
// receives. memberlist calls it once, on its own shutdown.
func (t *gossipTransport) Shutdown() error {
	in, err := t.transport()
	if err != nil {
		return nil // never listened
	}
	t.stop.Do(func() {
		close(t.done)
		err = in.Shutdown()
		close(t.drained)
		t.wg.Wait()
	})
	return err
}

// sealedConn frames a stream: each frame is a 4-byte length, then a
// sealed chunk whose nonce is the stream's random 16-byte prefix (the
// writer's, fixed for the connection) and an 8-byte counter, so frames
// cannot be dropped, reordered or spliced from another stream unnoticed.
type sealedConn struct {
	net.Conn
	seal cipher.AEAD
	open []cipher.AEAD

	wmu    sync.Mutex
	wpre   [16]byte
	wcount uint64
	wready bool

	rmu     sync.Mutex
	rpre    [16]byte
	rcount  uint64
	rkey    cipher.AEAD
	pending []byte
}

func (c *sealedConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if !c.wready {
		if _, err := rand.Read(c.wpre[:]); err != nil {
			return 0, err
		}
		c.wready = true
	}
	n := 0
	for len(p) > 0 {
		chunk := p[:min(len(p), maxFrame)]
		var nonce [chacha20poly1305.NonceSizeX]byte
		copy(nonce[:], c.wpre[:])
		binary.BigEndian.PutUint64(nonce[16:], c.wcount)
		c.wcount++
		frame := make([]byte, 4, 4+sealOverhead+len(chunk))
		frame = append(frame, gossipVersion)
		frame = append(frame, nonce[:]...)
		frame = c.seal.Seal(frame, nonce[:], chunk, adStream)
		binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
		if _, err := c.Conn.Write(frame); err != nil {
			return n, err
		}
		n += len(chunk)
		p = p[len(chunk):]
	}
	return n, nil
}

func (c *sealedConn) Read(p []byte) (int, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for len(c.pending) == 0 {
		if err := c.readFrame(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *sealedConn) readFrame() error {
	var hdr [4]byte
	if _, err := io.ReadFull(c.Conn, hdr[:]); err != nil {
		return err
	}
	size := binary.BigEndian.Uint32(hdr[:])
	if size < sealOverhead || size > sealOverhead+maxFrame {
		return fmt.Errorf("gossip stream from %s: frame of %d bytes is not sealed by sand", c.RemoteAddr(), size)
	}
	frame := make([]byte, size)
	if _, err := io.ReadFull(c.Conn, frame); err != nil {
		return err
	}
	if frame[0] != gossipVersion {
		return fmt.Errorf("gossip stream from %s: frame version %d, want %d", c.RemoteAddr(), frame[0], gossipVersion)
	}
	nonce, ct := frame[1:1+chacha20poly1305.NonceSizeX], frame[1+chacha20poly1305.NonceSizeX:]
	if c.rkey == nil {
		copy(c.rpre[:], nonce[:16])
	}
	var want [chacha20poly1305.NonceSizeX]byte
	copy(want[:], c.rpre[:])
	binary.BigEndian.PutUint64(want[16:], c.rcount)
	if string(nonce) != string(want[:]) {
		return fmt.Errorf("gossip stream from %s: frame out of sequence", c.RemoteAddr())
	}
	keys := c.open
	if c.rkey != nil {
		keys = []cipher.AEAD{c.rkey}
	}
	for _, k := range keys {
		// A fresh buffer: a failed Open may overwrite its destination.
		if p, err := k.Open(nil, nonce, ct, adStream); err == nil {
			c.rkey, c.pending = k, p
			c.rcount++
			return nil
		}
	}
	return fmt.Errorf("gossip stream from %s: sealed with another gossip key", c.RemoteAddr())
}
