// Package appliance is the domain of a sand box: its node configuration,
// the LUN registry (the desired state of the SAN), the storage pool, and the
// Box that keeps the pool and the iSCSI target matching the registry.
package appliance

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"

	"github.com/sand-appliance/sand/iscsi"
)

// Config is one box's node configuration (/etc/sand/sand.yaml, SAND_* env,
// flags). It is local to the box; the registry is what the pair shares.
type Config struct {
	// Name of this box, e.g. san1.
	Name string `mapstructure:"name"`
	// Listen is the API and UI address: HTTPS (see TLS).
	Listen string `mapstructure:"listen"`
	// TLS: the API's certificate and the plain-HTTP redirect.
	TLS TLSConfig `mapstructure:",squash"`
	// Portal is the iSCSI portal address (ip or ip:port): the box's own
	// address when standalone, the VIP in a pair.
	Portal string `mapstructure:"portal"`
	// BaseIQN prefixes every target's IQN: BaseIQN:lun-name.
	BaseIQN string `mapstructure:"base_iqn"`
	// StateDir holds the registry and the rendered ietd.conf.
	StateDir string `mapstructure:"state_dir"`
	// APIToken authorises writes through the API; APITokenFile is read
	// instead when set.
	APIToken     string `mapstructure:"api_token"`
	APITokenFile string `mapstructure:"api_token_file"`
	// MonitorToken lets monitoring read and nothing else: GET /metrics and
	// the API's read routes, none of which shows a secret. MonitorTokenFile
	// is read instead when set. Empty: /metrics needs the API token.
	MonitorToken     string `mapstructure:"monitor_token"`
	MonitorTokenFile string `mapstructure:"monitor_token_file"`
	// AdminPasswordHash is the bcrypt hash of the web UI's admin password
	// (user admin), e.g. from `mkpasswd -m bcrypt` or `htpasswd -nbB admin
	// PASSWORD | cut -d: -f2`. When set it is the password, and the UI
	// cannot change it.
	AdminPasswordHash string `mapstructure:"admin_password_hash"`
	// AdminPasswordFile holds a first admin password in clear text (first
	// boot writes one). At the first start sand keeps its bcrypt hash in
	// AdminPasswordPath, removes the file and reads it no more; the admin
	// changes the password in the UI.
	AdminPasswordFile string `mapstructure:"admin_password_file"`
	// AdminPasswordHashFile is where the UI keeps the admin password's
	// bcrypt hash (default state_dir/admin-password). The image keeps it
	// on the config partition, which a paired box has at every start
	// (its state_dir is on the replicated volume, there only on the
	// primary).
	AdminPasswordHashFile string `mapstructure:"admin_password_hash_file"`
	// SecureCookies is accepted and has no effect: sand answers over
	// HTTPS only and its cookies are always Secure.
	SecureCookies bool `mapstructure:"secure_cookies"`

	Pool   PoolConfig   `mapstructure:"pool"`
	Target TargetConfig `mapstructure:"target"`
	Pair   PairConfig   `mapstructure:"pair"`
}

// PoolConfig selects and sizes the storage pool.
type PoolConfig struct {
	// Kind is "file" (sparse files in Dir) or "lvm" (thin LVs in
	// VG/ThinPool).
	Kind     string `mapstructure:"kind"`
	Dir      string `mapstructure:"dir"`
	Size     string `mapstructure:"size"`
	VG       string `mapstructure:"vg"`
	ThinPool string `mapstructure:"thin_pool"`
	// Overcommit lets thin LUNs together exceed the pool's size.
	Overcommit bool `mapstructure:"overcommit"`
}

// TargetConfig selects the iSCSI target driver.
type TargetConfig struct {
	// Driver is "tgt" or "lio".
	Driver string `mapstructure:"driver"`
	// TgtControlPort separates tgtd instances on one host (tgtd -C).
	TgtControlPort int `mapstructure:"tgt_control_port"`
	// ConfigFS is LIO's configfs target directory.
	ConfigFS string `mapstructure:"configfs"`
}

// DefaultConfig is what a box runs with when sand.yaml says nothing.
func DefaultConfig() Config {
	return Config{
		Name:     "san1",
		Listen:   DefaultListen,
		TLS:      defaultTLS(),
		BaseIQN:  "iqn.2026-11.org.sand-appliance",
		StateDir: "/var/lib/sand",
		Pool:     PoolConfig{Kind: "lvm", VG: "sand", ThinPool: "pool", Dir: "/var/lib/sand/pool"},
		Target:   TargetConfig{Driver: "lio", TgtControlPort: 3260, ConfigFS: "/sys/kernel/config/target"},
		Pair: PairConfig{VIPInterface: "eth0", Storage: "drbd",
			DRBD: DRBDConfig{Resource: "r0", Port: 7789, Disk: "/dev/vdb", MetaSize: "64M"}},
	}
}

// RegistryPath is where the registry lives.
func (c Config) RegistryPath() string { return filepath.Join(c.StateDir, "registry.json") }

// IETDPath is where the rendered target configuration is written.
func (c Config) IETDPath() string { return filepath.Join(c.StateDir, "ietd.conf") }

// AdminPasswordPath is where the UI keeps the admin password's hash:
// admin_password_hash_file, else state_dir/admin-password.
func (c Config) AdminPasswordPath() string {
	if c.AdminPasswordHashFile != "" {
		return c.AdminPasswordHashFile
	}
	return filepath.Join(c.StateDir, "admin-password")
}

// PortalAddr returns the portal as ip:port.
func (c Config) PortalAddr() (netip.AddrPort, error) {
	if c.Paired() {
		vip, err := c.Pair.VIPPrefix()
		if err != nil {
			return netip.AddrPort{}, err
		}
		return netip.AddrPortFrom(vip.Addr(), iscsi.DefaultPort), nil
	}
	if ap, err := netip.ParseAddrPort(c.Portal); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(c.Portal)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("portal %q is not an IP address or ip:port, e.g. 10.0.0.50 or 10.0.0.50:3260", c.Portal)
	}
	return netip.AddrPortFrom(a, iscsi.DefaultPort), nil
}

// Validate reports what is wrong with the configuration and how to fix it.
func (c Config) Validate() error {
	if err := ValidateName("node", c.Name); err != nil {
		return fmt.Errorf("config name: %w", err)
	}
	if _, err := c.PortalAddr(); err != nil && !c.Paired() {
		return fmt.Errorf("config portal: %w", err)
	}
	if err := iscsi.ValidateIQN(c.BaseIQN); err != nil {
		return fmt.Errorf("config base_iqn: %w", err)
	}
	if c.StateDir == "" || !filepath.IsAbs(c.StateDir) {
		return fmt.Errorf("config state_dir %q must be an absolute path", c.StateDir)
	}
	if err := c.validateMonitorToken(); err != nil {
		return err
	}
	for key, p := range map[string]string{"admin_password_file": c.AdminPasswordFile, "admin_password_hash_file": c.AdminPasswordHashFile} {
		if p != "" && !filepath.IsAbs(p) {
			return fmt.Errorf("config %s %q must be an absolute path", key, p)
		}
	}
	switch c.Pool.Kind {
	case "file":
		if !filepath.IsAbs(c.Pool.Dir) {
			return fmt.Errorf("config pool.dir %q must be an absolute path for the file pool", c.Pool.Dir)
		}
		if c.Pool.Size != "" {
			if _, err := ParseSize(c.Pool.Size); err != nil {
				return fmt.Errorf("config pool.size: %w", err)
			}
		}
	case "lvm":
		if c.Pool.VG == "" || c.Pool.ThinPool == "" {
			return fmt.Errorf("config pool: the lvm pool needs vg and thin_pool")
		}
	default:
		return fmt.Errorf("config pool.kind %q is unknown: use file or lvm", c.Pool.Kind)
	}
	switch c.Target.Driver {
	case "tgt":
		if c.Target.TgtControlPort <= 0 || c.Target.TgtControlPort > 32767 {
			return fmt.Errorf("config target.tgt_control_port %s must be 1 to 32767 (tgtd -C range)", strconv.Itoa(c.Target.TgtControlPort))
		}
	case "lio":
		if !filepath.IsAbs(c.Target.ConfigFS) {
			return fmt.Errorf("config target.configfs %q must be an absolute path", c.Target.ConfigFS)
		}
	default:
		return fmt.Errorf("config target.driver %q is unknown: use tgt or lio", c.Target.Driver)
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	return c.validatePair()
}

// MinMonitorTokenLen is the shortest monitoring token sand accepts: the
// token is a password a program sends, so it must not be guessable.
const MinMonitorTokenLen = 16

// validateMonitorToken checks monitor_token and monitor_token_file; the
// token read from the file is checked where it is read (ui.New).
func (c Config) validateMonitorToken() error {
	switch {
	case c.MonitorToken != "" && c.MonitorTokenFile != "":
		return fmt.Errorf("config sets both monitor_token and monitor_token_file: keep one (the file keeps the token out of sand.yaml)")
	case c.MonitorTokenFile != "" && !filepath.IsAbs(c.MonitorTokenFile):
		return fmt.Errorf("config monitor_token_file %q must be an absolute path", c.MonitorTokenFile)
	case c.MonitorToken == "":
		return nil
	case len(c.MonitorToken) < MinMonitorTokenLen:
		return fmt.Errorf("config monitor_token is %d characters long: use at least %d random ones, e.g. from openssl rand -hex 24", len(c.MonitorToken), MinMonitorTokenLen)
	case c.MonitorToken == c.APIToken:
		return fmt.Errorf("config monitor_token is the api_token: give monitoring a token of its own (it may only read)")
	}
	return nil
}
