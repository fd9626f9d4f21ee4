package lab

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/viper"

	"github.com/sand-appliance/sand/appliance"
)

// TestNodeSetupRendersWhatSandAccepts runs the image's sand-node-setup (in
// its render-only mode, no root) on the kernel command line and node.conf
// the lab gives a box, standalone and as a DRBD pair, and reads the
// sand.yaml it writes the way sand serve does (unknown keys are errors)
// before validating it.
func TestNodeSetupRendersWhatSandAccepts(t *testing.T) {
	repo, err := FindRepo("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("needs bash")
	}
	tests := []struct {
		name     string
		pair     string
		wantPool string
		check    func(t *testing.T, c appliance.Config)
	}{
		{
			name: "standalone", wantPool: "/dev/disk/by-id/virtio-sand-data",
			check: func(t *testing.T, c appliance.Config) {
				if c.Paired() {
					t.Errorf("standalone box has a pair block: %+v", c.Pair)
				}
			},
		},
		{
			name: "drbd pair", pair: "drbd", wantPool: "/dev/drbd0",
			check: func(t *testing.T, c appliance.Config) {
				want := appliance.PairConfig{
					Peer: "san2", Witness: "witness", SerfBind: "10.99.0.11:7946", Join: []string{"10.99.0.12:7946", "10.99.0.1:7946"},
					VIP: "10.99.0.10/24", Storage: "drbd",
					DRBD: appliance.DRBDConfig{Disk: "/dev/disk/by-id/virtio-sand-data", Address: "10.98.0.11", PeerAddress: "10.98.0.12"},
				}
				got := c.Pair
				got.PairKeyFile = ""
				got.SerfKeyFile, got.VIPInterface, got.DRBD.SecretFile = "", "", ""
				got.DRBD.Resource, got.DRBD.Minor, got.DRBD.Port, got.DRBD.MetaSize = "", 0, 0, ""
				got.PingTargets = nil
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("pair block (-want +got):\n%s", diff)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := &Lab{State: State{Token: "0123456789abcdef0123", Pair: tc.pair, SerfKey: "c2FuZC1sYWItc2VyZi1rZXktb2YtMzItYnl0ZXMhISE=",
				PairKey: "c2FuZC1sYWItcGFpci1rZXktb2YtMzItYnl0ZXMhISE="}, boxes: map[string]*Box{}}
			for i, n := range []string{"san1", "san2"} {
				octet := 11 + i
				l.Boxes = append(l.Boxes, BoxState{Name: n, Octet: octet,
					FrontIP: FrontPrefix + "." + strconv.Itoa(octet), ReplIP: ReplPrefix + "." + strconv.Itoa(octet),
					FrontMAC: "52:54:00:99:00:0b", ReplMAC: "52:54:00:98:00:0b"})
			}
			root := t.TempDir()
			cmdline := filepath.Join(root, "cmdline")
			// The MACs cannot be resolved outside the box: name eth0.
			line := strings.ReplaceAll(l.Box("san1").Cmdline(), "sand.front_if=52:54:00:99:00:0b", "sand.front_if=eth0")
			if err := os.WriteFile(cmdline, []byte(line+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			// node.conf as on the box's config disk.
			if err := os.MkdirAll(filepath.Join(root, "etc/sand"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "etc/sand/node.conf"), []byte(l.Box("san1").nodeConf()), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("bash", filepath.Join(repo, "image/rootfs/usr/lib/sand/node-setup"))
			cmd.Env = append(os.Environ(), "SAND_SETUP_ROOT="+root, "SAND_SETUP_CMDLINE="+cmdline,
				"SAND_SETUP_RENDER_ONLY=1", "SAND_SETUP_TEMPLATE="+filepath.Join(repo, "image/sand.yaml"))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("node-setup: %v\n%s", err, out)
			}

			v := viper.New()
			v.SetConfigFile(filepath.Join(root, "etc/sand/sand.yaml"))
			v.SetConfigType("yaml")
			if err := v.ReadInConfig(); err != nil {
				t.Fatal(err)
			}
			c := appliance.DefaultConfig()
			if err := v.UnmarshalExact(&c); err != nil {
				t.Fatalf("sand would refuse the rendered sand.yaml: %v", err)
			}
			if err := c.Validate(); err != nil {
				t.Fatalf("rendered sand.yaml does not validate: %v", err)
			}
			if c.Name != "san1" || c.Portal != "10.99.0.11" || c.Target.Driver != "lio" || c.Pool.Kind != "lvm" {
				t.Errorf("rendered config: name %q portal %q driver %q pool %q", c.Name, c.Portal, c.Target.Driver, c.Pool.Kind)
			}
			token, err := os.ReadFile(c.APITokenFile)
			if err != nil || strings.TrimSpace(string(token)) != l.Token {
				t.Errorf("api token file %s: %q, %v; want the lab's token", c.APITokenFile, token, err)
			}
			tc.check(t, c)

			env, err := os.ReadFile(filepath.Join(root, "run/sand/node.env"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.pair != "" {
				if key, err := appliance.ReadSecretFile(c.Pair.PairKeyFile); err != nil || key != l.PairKey {
					t.Errorf("pair key file %q: %v; want the lab's pair key", c.Pair.PairKeyFile, err)
				}
			}
			if !strings.Contains(string(env), "SAND_NODE_POOL_DEVICE="+tc.wantPool+"\n") {
				t.Errorf("node.env pool device: want %s in\n%s", tc.wantPool, env)
			}
			if strings.Contains(string(env), l.Token) || strings.Contains(string(env), l.SerfKey) || strings.Contains(string(env), l.PairKey) || strings.Contains(string(env), drbdSecret(l.SerfKey)) {
				t.Errorf("node.env holds a secret:\n%s", env)
			}
			if tc.pair != "" {
				secret, err := appliance.ReadSecretFile(c.Pair.DRBD.SecretFile)
				if err != nil || secret != drbdSecret(l.SerfKey) {
					t.Errorf("drbd secret file %s: %v; want the lab's DRBD secret", c.Pair.DRBD.SecretFile, err)
				}
			}
		})
	}
}
