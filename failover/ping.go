package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Pinger is the pingd-style tie-breaker of a pair without a witness: it
// sends an ICMP echo to each target (the gateway, say) every Interval and
// counts a target reachable while its last answer is younger than Window.
// A box that reaches none of its targets is the isolated one (HasQuorum).
//
// Interval 200 ms, Window 600 ms (three echoes): one lost echo does not
// count, and a cut link shows 0.4-0.6 s after the cut, before serf declares
// the peer failed (~0.8 s). A primary loses quorum only when both are gone,
// so an isolated primary starts to let go at about 0.8 s + QuorumGrace,
// while the other box waits serf's detection + Settle (about 1.8 s). Five
// echoes a second is nothing for a gateway.
type Pinger struct {
	Targets  []netip.Addr
	Interval time.Duration
	Window   time.Duration
	Log      *slog.Logger

	mu       sync.Mutex
	answered map[netip.Addr]time.Time
}

// NewPinger parses the configured targets (IPv4 or IPv6 addresses).
func NewPinger(targets []string, log *slog.Logger) (*Pinger, error) {
	p := &Pinger{Interval: 200 * time.Millisecond, Window: 600 * time.Millisecond, Log: log, answered: map[netip.Addr]time.Time{}}
	for _, t := range targets {
		a, err := netip.ParseAddr(t)
		if err != nil {
			return nil, fmt.Errorf("ping target %q is not an IP address (e.g. the gateway, 10.0.0.1)", t)
		}
		p.Targets = append(p.Targets, a.Unmap())
	}
	if len(p.Targets) == 0 {
		return nil, errors.New("no ping targets")
	}
	return p, nil
}

// View is the Ping input of the decision at now.
func (p *Pinger) View(now time.Time) Ping {
	p.mu.Lock()
	defer p.mu.Unlock()
	v := Ping{Targets: len(p.Targets)}
	for _, t := range p.Targets {
		if at, ok := p.answered[t]; ok && now.Sub(at) < p.Window {
			v.Reachable++
		}
	}
	return v
}

func (p *Pinger) answer(a netip.Addr, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answered[a] = at
}

// Run probes until ctx ends. It needs raw ICMP sockets (root, as sand runs).
func (p *Pinger) Run(ctx context.Context) error {
	// One raw socket per address family in use; closing them ends the
	// receivers.
	var c4, c6 *icmp.PacketConn
	defer func() {
		for _, c := range []*icmp.PacketConn{c4, c6} {
			if c != nil {
				c.Close()
			}
		}
	}()
	for _, t := range p.Targets {
		var err error
		switch {
		case t.Is4() && c4 == nil:
			c4, err = icmp.ListenPacket("ip4:icmp", "0.0.0.0")
			if err == nil {
				go p.receive(c4, 1, false)
			}
		case t.Is6() && c6 == nil:
			c6, err = icmp.ListenPacket("ip6:ipv6-icmp", "::")
			if err == nil {
				go p.receive(c6, 58, true)
			}
		}
		if err != nil {
			return fmt.Errorf("open an ICMP socket for the ping targets: %w", err)
		}
	}
	id := os.Getpid() & 0xffff
	tick := time.NewTicker(p.Interval)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		for _, t := range p.Targets {
			c, typ := c4, icmp.Type(ipv4.ICMPTypeEcho)
			if t.Is6() {
				c, typ = c6, ipv6.ICMPTypeEchoRequest
			}
			msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq & 0xffff, Data: []byte("sand")}}
			b, err := msg.Marshal(nil)
			if err != nil {
				return fmt.Errorf("build an ICMP echo: %w", err)
			}
			if _, err := c.WriteTo(b, &net.IPAddr{IP: t.AsSlice()}); err != nil {
				// Unreachable network and the like: the target simply
				// does not count.
				p.Log.Debug("ping target", "target", t, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// receive records echo replies from the targets until the socket closes.
// A raw socket sees every echo reply the host gets; only a reply from a
// target counts, whatever its ID (an answer is an answer).
func (p *Pinger) receive(c *icmp.PacketConn, proto int, v6 bool) {
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil {
			continue
		}
		if (v6 && m.Type != ipv6.ICMPTypeEchoReply) || (!v6 && m.Type != ipv4.ICMPTypeEchoReply) {
			continue
		}
		ip, ok := from.(*net.IPAddr)
		if !ok {
			continue
		}
		a, ok := netip.AddrFromSlice(ip.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		for _, t := range p.Targets {
			if t == a {
				p.answer(a, time.Now())
			}
		}
	}
}
