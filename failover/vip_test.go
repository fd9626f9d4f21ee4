package failover

import (
	"encoding/hex"
	"net"
	"net/netip"
	"testing"
)

func TestGARPFrame(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:00:00:00:0b")
	got := hex.EncodeToString(garpFrame(mac, netip.MustParseAddr("10.0.0.50")))
	want := "ffffffffffff" + "02000000000b" + "0806" + // Ethernet: broadcast, from us, ARP
		"0001" + "0800" + "06" + "04" + "0001" + // Ethernet/IPv4, request
		"02000000000b" + "0a000032" + // sender: our MAC, the VIP
		"000000000000" + "0a000032" // target: unknown MAC, the VIP
	if got != want {
		t.Errorf("frame\n got %s\nwant %s", got, want)
	}
}
