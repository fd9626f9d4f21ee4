package failover

import (
	"context"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sand-appliance/sand/appliance/command"
)

func TestPortBlockTranscript(t *testing.T) {
	f := &command.Fake{}
	p := PortBlock{Portal: netip.MustParseAddrPort("10.0.0.50:3260"), Run: f}
	if err := p.Block(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.Unblock(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"nft add table inet sand ; add chain inet sand portal { type filter hook input priority 0 ; policy accept ; } ; flush chain inet sand portal ; add rule inet sand portal ip daddr 10.0.0.50 tcp dport 3260 tcp flags & (syn | ack) == syn drop",
		"nft flush chain inet sand portal",
	}
	if diff := cmp.Diff(want, f.Transcript()); diff != "" {
		t.Errorf("nft commands (-want +got):\n%s", diff)
	}
}
