package pair

import (
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/failover"
)

// NewMembership makes this box's serf member from the node config: its
// name, gossip address and key.
func NewMembership(cfg appliance.Config, log *slog.Logger) (*failover.Membership, error) {
	keyText, err := appliance.ReadSecretFile(cfg.Pair.SerfKeyFile)
	if err != nil {
		return nil, fmt.Errorf("read the gossip key: %w", err)
	}
	key, err := failover.ParseKey(keyText)
	if err != nil {
		return nil, fmt.Errorf("gossip key %s: %w", cfg.Pair.SerfKeyFile, err)
	}
	bind, err := netip.ParseAddrPort(cfg.Pair.SerfBind)
	if err != nil {
		return nil, fmt.Errorf("config pair.serf_bind %q: %w", cfg.Pair.SerfBind, err)
	}
	conf, err := failover.NewSerfConfig(cfg.Name, bind.Addr().String(), int(bind.Port()), key, log)
	if err != nil {
		return nil, err
	}
	return failover.NewMembership(conf, log, nil), nil
}
