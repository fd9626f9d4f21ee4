package appliance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func pairConfig(t *testing.T) Config {
	t.Helper()
	key := filepath.Join(t.TempDir(), "serf.key")
	if err := os.WriteFile(key, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	pairKey := filepath.Join(t.TempDir(), "pair.key")
	if err := os.WriteFile(pairKey, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.Pair = PairConfig{Peer: "san2", Witness: "dom0-a", SerfBind: "10.0.0.11:7946", Join: []string{"10.0.0.12:7946"},
		SerfKeyFile: key, PairKeyFile: pairKey, VIP: "10.0.0.50/24", VIPInterface: "eth0", Storage: "shared"}
	return c
}

func TestValidatePair(t *testing.T) {
	if err := pairConfig(t).Validate(); err != nil {
		t.Fatalf("valid pair config: %v", err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*PairConfig)
		wants string
	}{
		{"peer is self", func(p *PairConfig) { p.Peer = "san1" }, "this box's own name"},
		{"ping target not an address", func(p *PairConfig) { p.Witness, p.PingTargets = "", []string{"gateway"} }, `ping_targets entry "gateway" must be an IP address`},
		{"ping target with a port", func(p *PairConfig) { p.Witness, p.PingTargets = "", []string{"10.0.0.1:80"} }, "must be an IP address"},
		{"witness and ping targets", func(p *PairConfig) { p.PingTargets = []string{"10.0.0.1"} }, "both a witness and ping_targets"},
		{"serf_bind without port", func(p *PairConfig) { p.SerfBind = "10.0.0.11" }, "serf_bind"},
		{"no join", func(p *PairConfig) { p.Join = nil }, "join is empty"},
		{"no pair key", func(p *PairConfig) { p.PairKeyFile = "" }, "pair_key_file is empty"},
		{"pair key missing", func(p *PairConfig) { p.PairKeyFile = "/nonexistent/pair.key" }, "pair_key_file"},
		{"vip without prefix", func(p *PairConfig) { p.VIP = "10.0.0.50" }, "prefix length"},
		{"unknown storage", func(p *PairConfig) { p.Storage = "nfs" }, `storage "nfs" is unknown`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := pairConfig(t)
			tc.edit(&c.Pair)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.wants) {
				t.Fatalf("Validate() = %v, want an error saying %q", err, tc.wants)
			}
		})
	}
	c := pairConfig(t)
	c.Pair.Witness, c.Pair.PingTargets = "", []string{"10.0.0.1", "fd00::1"}
	if err := c.Validate(); err != nil {
		t.Fatalf("ping targets without a witness: %v", err)
	}
}
