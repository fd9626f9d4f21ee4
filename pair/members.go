package pair

import (
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/failover"
)

// NewMembership makes this box's serf member from the node config: its
// name, gossip address and key, and the pair key it signs and checks the
// messages to and from its peer with (the witness never has it).
func NewMembership(cfg appliance.Config, log *slog.Logger) (*failover.Membership, error) {
	keyText, err := appliance.ReadSecretFile(cfg.Pair.SerfKeyFile)
	if err != nil {
		return nil, fmt.Errorf("read the gossip key: %w", err)
	}
	keys, err := failover.ParseGossipKeys(keyText)
	if err != nil {
		return nil, fmt.Errorf("gossip key %s: %w", cfg.Pair.SerfKeyFile, err)
	}
	bind, err := netip.ParseAddrPort(cfg.Pair.SerfBind)
	if err != nil {
		return nil, fmt.Errorf("config pair.serf_bind %q: %w", cfg.Pair.SerfBind, err)
	}
	conf, err := failover.NewSerfConfig(cfg.Name, bind.Addr().String(), int(bind.Port()), keys, log)
	if err != nil {
		return nil, err
	}
	auth, err := PairAuth(cfg)
	if err != nil {
		return nil, err
	}
	m := failover.NewMembership(conf, log, nil)
	if err := m.Authenticate(auth); err != nil {
		return nil, err
	}
	return m, nil
}

// PairAuth reads this box's pair credentials from the node config.
func PairAuth(cfg appliance.Config) (failover.PairAuth, error) {
	if cfg.Pair.PairKeyFile == "" {
		return failover.PairAuth{}, fmt.Errorf("config pair.pair_key_file is empty: the boxes sign what they send each other with a key only they hold; put the same one on both boxes, never on the witness (head -c 32 /dev/urandom | base64 > FILE; chmod 600 FILE)")
	}
	text, err := appliance.ReadSecretFile(cfg.Pair.PairKeyFile)
	if err != nil {
		return failover.PairAuth{}, fmt.Errorf("read the pair key: %w", err)
	}
	keys, err := failover.ParsePairKey(text)
	if err != nil {
		return failover.PairAuth{}, fmt.Errorf("pair key %s: %w", cfg.Pair.PairKeyFile, err)
	}
	return failover.PairAuth{Keys: keys, Self: cfg.Name, Peer: cfg.Pair.Peer, Witness: cfg.Pair.Witness}, nil
}
