package appliance

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
)

// PairConfig makes the box one of a highly available pair. An empty Peer
// means a standalone box.
type PairConfig struct {
	// Peer is the other storage box's node name.
	Peer string `mapstructure:"peer"`
	// Witness is the witness's node name ("" for none: then ping targets
	// break ties).
	Witness string `mapstructure:"witness"`
	// PingTargets are addresses (e.g. the gateway) whose reachability
	// breaks a tie when no witness is configured.
	PingTargets []string `mapstructure:"ping_targets"`
	// SerfBind is this box's gossip address, ip:port.
	SerfBind string `mapstructure:"serf_bind"`
	// Join lists gossip addresses of the peer and the witness.
	Join []string `mapstructure:"join"`
	// SerfKeyFile holds the base64 gossip encryption key (32 bytes). The
	// witness holds it too: it lets a member gossip and vote, nothing more.
	SerfKeyFile string `mapstructure:"serf_key_file"`
	// PairKeyFile holds the pair key (32 random bytes, base64), the same
	// on both boxes and nowhere else: every intent, query and answer
	// between the boxes is signed with it (failover.PairAuth).
	PairKeyFile string `mapstructure:"pair_key_file"`
	// VIP is the floating portal address with its prefix, e.g. 10.0.0.50/24,
	// on VIPInterface.
	VIP          string `mapstructure:"vip"`
	VIPInterface string `mapstructure:"vip_interface"`
	// Storage is "drbd" (each box its own disk, mirrored) or "shared" (both
	// boxes see the same disk, as in the netns test tier).
	Storage string `mapstructure:"storage"`
	// DRBD describes the mirror when Storage is drbd.
	DRBD DRBDConfig `mapstructure:"drbd"`
}

// DRBDConfig is the DRBD resource under the pool. Both boxes use the same
// resource name, minor, port and backing disk path.
type DRBDConfig struct {
	Resource string `mapstructure:"resource"`
	Minor    int    `mapstructure:"minor"`
	Port     int    `mapstructure:"port"`
	// Disk is the backing block device, e.g. /dev/vdb.
	Disk string `mapstructure:"disk"`
	// Address and PeerAddress are the boxes' replication-link addresses.
	Address     string `mapstructure:"address"`
	PeerAddress string `mapstructure:"peer_address"`
	// MetaSize is the size of the metadata volume (the registry's home).
	MetaSize string `mapstructure:"meta_size"`
	// SecretFile holds the shared secret that authenticates the DRBD link
	// (cram-hmac-alg sha256): the same on both boxes, made at pairing,
	// 16-63 letters, digits or + / = . _ - (base64 of 30 random bytes).
	SecretFile string `mapstructure:"secret_file"`
}

// Paired reports whether the box is one of a pair.
func (c Config) Paired() bool { return c.Pair.Peer != "" }

// VIPPrefix parses the VIP.
func (p PairConfig) VIPPrefix() (netip.Prefix, error) {
	v, err := netip.ParsePrefix(p.VIP)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("config pair.vip %q is not an address with its prefix length, e.g. 10.0.0.50/24", p.VIP)
	}
	return v, nil
}

func (c Config) validatePair() error {
	p := c.Pair
	if !c.Paired() {
		return nil
	}
	if err := ValidateName("peer", p.Peer); err != nil {
		return fmt.Errorf("config pair.peer: %w", err)
	}
	if p.Peer == c.Name {
		return fmt.Errorf("config pair.peer is this box's own name %q: name the other box", p.Peer)
	}
	if p.Witness != "" {
		if err := ValidateName("witness", p.Witness); err != nil {
			return fmt.Errorf("config pair.witness: %w", err)
		}
	}
	for _, t := range p.PingTargets {
		if _, err := netip.ParseAddr(t); err != nil {
			return fmt.Errorf("config pair.ping_targets entry %q must be an IP address, e.g. the gateway 10.0.0.1", t)
		}
	}
	if p.Witness != "" && len(p.PingTargets) > 0 {
		return fmt.Errorf("config pair has both a witness and ping_targets: the witness is the third vote, remove ping_targets (or the witness, to fall back to pingd's rule)")
	}
	if _, err := netip.ParseAddrPort(p.SerfBind); err != nil {
		return fmt.Errorf("config pair.serf_bind %q must be ip:port, e.g. 10.0.0.11:7946", p.SerfBind)
	}
	for _, j := range p.Join {
		if _, err := netip.ParseAddrPort(j); err != nil {
			return fmt.Errorf("config pair.join entry %q must be ip:port, e.g. 10.0.0.12:7946", j)
		}
	}
	if len(p.Join) == 0 {
		return fmt.Errorf("config pair.join is empty: list the peer's (and the witness's) serf_bind addresses")
	}
	if p.SerfKeyFile == "" {
		return fmt.Errorf("config pair.serf_key_file is empty: gossip between the boxes must be encrypted (32 random bytes, base64)")
	}
	if _, err := os.Stat(p.SerfKeyFile); err != nil {
		return fmt.Errorf("config pair.serf_key_file: %w", err)
	}
	if p.PairKeyFile == "" {
		return fmt.Errorf("config pair.pair_key_file is empty: the boxes sign what they send each other with a key only they hold (32 random bytes, base64, the same on both boxes, never on the witness)")
	}
	if _, err := os.Stat(p.PairKeyFile); err != nil {
		return fmt.Errorf("config pair.pair_key_file: %w", err)
	}
	if _, err := p.VIPPrefix(); err != nil {
		return err
	}
	if p.VIPInterface == "" {
		return fmt.Errorf("config pair.vip_interface is empty: name the interface the VIP goes on, e.g. eth0")
	}
	switch p.Storage {
	case "drbd":
		d := p.DRBD
		if err := ValidateName("drbd resource", d.Resource); err != nil {
			return fmt.Errorf("config pair.drbd.resource: %w", err)
		}
		if !filepath.IsAbs(d.Disk) {
			return fmt.Errorf("config pair.drbd.disk %q must be the backing block device, e.g. /dev/vdb", d.Disk)
		}
		for key, a := range map[string]string{"address": d.Address, "peer_address": d.PeerAddress} {
			if _, err := netip.ParseAddr(a); err != nil {
				return fmt.Errorf("config pair.drbd.%s %q must be the replication-link IP address", key, a)
			}
		}
		if d.Port <= 0 || d.Port > 65535 {
			return fmt.Errorf("config pair.drbd.port %d must be 1 to 65535", d.Port)
		}
		if _, err := ParseSize(d.MetaSize); err != nil {
			return fmt.Errorf("config pair.drbd.meta_size: %w", err)
		}
		if d.SecretFile == "" {
			return fmt.Errorf("config pair.drbd.secret_file is empty: the DRBD link must authenticate the peer; put the same secret on both boxes (head -c 30 /dev/urandom | base64 > FILE; chmod 600 FILE)")
		}
		if _, err := os.Stat(d.SecretFile); err != nil {
			return fmt.Errorf("config pair.drbd.secret_file: %w", err)
		}
		if c.Pool.Kind != "lvm" {
			return fmt.Errorf("config pool.kind must be lvm with pair.storage drbd: the pool lives on the DRBD device")
		}
	case "shared":
	default:
		return fmt.Errorf("config pair.storage %q is unknown: use drbd or shared", p.Storage)
	}
	return nil
}
