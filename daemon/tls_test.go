package daemon

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sand-appliance/sand/appliance"
)

func TestBoxIdentity(t *testing.T) {
	ifaces := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.0.0.11"), netip.MustParseAddr("fe80::1"),
		netip.MustParseAddr("10.1.0.11"), netip.MustParseAddr("::1"), netip.MustParseAddr("fd00::11")}
	tests := []struct {
		name  string
		mod   func(c *appliance.Config)
		addrs []string
	}{
		{"every address", func(c *appliance.Config) { c.Listen = ":7443"; c.Portal = "10.0.0.50" }, []string{"10.0.0.11", "10.1.0.11", "fd00::11", "10.0.0.50"}},
		{"one address", func(c *appliance.Config) { c.Listen = "10.0.0.11:7443"; c.Portal = "10.0.0.11" }, []string{"10.0.0.11"}},
		{"pair", func(c *appliance.Config) {
			c.Listen = "10.0.0.11:7443"
			c.Pair = appliance.PairConfig{Peer: "san2", SerfBind: "10.2.0.11:7946", VIP: "10.0.0.50/24", Storage: "shared"}
		}, []string{"10.0.0.11", "10.2.0.11"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := appliance.DefaultConfig()
			c.Name = "san1"
			tt.mod(&c)
			id := boxIdentity(c, ifaces)
			var got []string
			for _, a := range id.Addrs {
				got = append(got, a.String())
			}
			if diff := cmp.Diff(tt.addrs, got); diff != "" || len(id.Names) != 1 || id.Names[0] != "san1" {
				t.Errorf("identity %v (-want +got addresses):\n%s", id.Names, diff)
			}
		})
	}
}
