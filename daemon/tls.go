package daemon

import (
	"log/slog"
	"net"
	"net/netip"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/ui/cert"
)

// openCerts loads the API's certificates, making the box's at the first
// start: the box's own on its addresses, and in a pair the pair's on the
// VIP, kept beside the registry (see cert.Store).
func openCerts(cfg appliance.Config, serving func() bool, log *slog.Logger) (*cert.Store, error) {
	o := cert.Options{
		Box:     cert.Files{Cert: cfg.TLS.CertFile, Key: cfg.TLS.KeyFile},
		BoxID:   boxIdentity(cfg, interfaceAddrs()),
		Serving: serving,
		Log:     log,
	}
	if cfg.Paired() {
		vip, err := cfg.Pair.VIPPrefix()
		if err != nil {
			return nil, err
		}
		c, k := cfg.PairTLSFiles()
		o.VIP, o.Pair = vip.Addr(), cert.Files{Cert: c, Key: k}
		o.PairID = cert.Identity{Names: []string{cfg.Name, cfg.Pair.Peer}, Addrs: []netip.Addr{vip.Addr()}}
		o.BoxID.Addrs = without(o.BoxID.Addrs, vip.Addr())
		if host, _, _ := net.SplitHostPort(cfg.Listen); host != "" {
			if a, err := netip.ParseAddr(host); err != nil || !a.IsUnspecified() && a.Unmap() != vip.Addr().Unmap() {
				log.Warn("the API listens on one address only, not on the VIP: admins and the CLI reach the pair's API only through the boxes' own addresses; set listen to :PORT for every address", "listen", cfg.Listen, "vip", vip.Addr())
			}
		}
	}
	return cert.Open(o)
}

// boxIdentity is what the box's certificate names: the box's name, the
// address it listens on (or, listening on every address, the addresses
// of its interfaces), its portal when standalone and its gossip address in
// a pair. Loopback addresses are left out.
func boxIdentity(cfg appliance.Config, ifaces []netip.Addr) cert.Identity {
	id := cert.Identity{Names: []string{cfg.Name}}
	add := func(a netip.Addr) {
		a = a.Unmap()
		if !a.IsValid() || a.IsUnspecified() || a.IsLoopback() || a.IsLinkLocalUnicast() {
			return
		}
		for _, b := range id.Addrs {
			if b == a {
				return
			}
		}
		id.Addrs = append(id.Addrs, a)
	}
	host, _, _ := net.SplitHostPort(cfg.Listen)
	if a, err := netip.ParseAddr(host); err == nil && !a.IsUnspecified() {
		add(a)
	} else {
		for _, a := range ifaces {
			add(a)
		}
	}
	if cfg.Paired() {
		if h, _, err := net.SplitHostPort(cfg.Pair.SerfBind); err == nil {
			if a, err := netip.ParseAddr(h); err == nil {
				add(a)
			}
		}
	} else if p, err := cfg.PortalAddr(); err == nil {
		add(p.Addr())
	}
	return id
}

// interfaceAddrs are the addresses of the box's interfaces now.
func interfaceAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}

func without(addrs []netip.Addr, x netip.Addr) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		if a != x.Unmap() {
			out = append(out, a)
		}
	}
	return out
}
