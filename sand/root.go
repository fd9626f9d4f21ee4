package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/sand-appliance/sand/appliance"
)

const defaultConfigFile = "/etc/sand/sand.yaml"

// env carries what every command needs: its output streams and the config.
type env struct {
	ctx            context.Context
	stdout, stderr io.Writer
	// stdin answers the CLI's question about a certificate seen for the
	// first time, when it is a terminal (interactive).
	stdin       io.Reader
	interactive bool
	v           *viper.Viper
	configFile  string
	logLevel    string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr, stdin: os.Stdin, interactive: isTerminal(os.Stdin), v: viper.New()}
	root := &cobra.Command{
		Use:           "sand",
		Short:         "sand: a two-box highly available iSCSI SAN for Xen",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	root.PersistentFlags().StringVar(&e.configFile, "config", defaultConfigFile, "node configuration file")
	root.PersistentFlags().StringVar(&e.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.AddCommand(serveCmd(e), lunCmd(e), groupCmd(e), statusCmd(e), targetCmd(e), importCmd(e), witnessCmd(e))
	root.AddCommand(pairCmds(e)...)
	root.AddCommand(handlerCmds(e)...)
	root.AddCommand(tlsCmd(e))
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "sand:", err)
		var ee *exitError
		if errors.As(err, &ee) {
			return ee.code
		}
		return 1
	}
	return 0
}

func (e *env) logger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(e.logLevel)); err != nil {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
}

// configKeys are every key of sand.yaml with its default, so SAND_* env
// variables reach nested keys (SAND_POOL_KIND for pool.kind).
func configKeys() map[string]any {
	d := appliance.DefaultConfig()
	return map[string]any{
		"name": d.Name, "listen": d.Listen, "portal": d.Portal, "base_iqn": d.BaseIQN,
		"state_dir": d.StateDir, "api_token": d.APIToken, "api_token_file": d.APITokenFile,
		"monitor_token": d.MonitorToken, "monitor_token_file": d.MonitorTokenFile,
		"admin_password_hash": d.AdminPasswordHash, "admin_password_file": d.AdminPasswordFile,
		"admin_password_hash_file": d.AdminPasswordHashFile, "secure_cookies": d.SecureCookies,
		"pool.kind": d.Pool.Kind, "pool.dir": d.Pool.Dir, "pool.size": d.Pool.Size,
		"pool.vg": d.Pool.VG, "pool.thin_pool": d.Pool.ThinPool, "pool.overcommit": d.Pool.Overcommit,
		"target.driver": d.Target.Driver, "target.tgt_control_port": d.Target.TgtControlPort,
		"target.configfs": d.Target.ConfigFS,
		"pair.peer":       d.Pair.Peer, "pair.witness": d.Pair.Witness, "pair.ping_targets": d.Pair.PingTargets,
		"pair.serf_bind": d.Pair.SerfBind, "pair.join": d.Pair.Join, "pair.serf_key_file": d.Pair.SerfKeyFile, "pair.pair_key_file": d.Pair.PairKeyFile,
		"pair.vip": d.Pair.VIP, "pair.vip_interface": d.Pair.VIPInterface, "pair.storage": d.Pair.Storage,
		"pair.drbd.resource": d.Pair.DRBD.Resource, "pair.drbd.minor": d.Pair.DRBD.Minor, "pair.drbd.port": d.Pair.DRBD.Port,
		"pair.drbd.disk": d.Pair.DRBD.Disk, "pair.drbd.address": d.Pair.DRBD.Address,
		"pair.drbd.peer_address": d.Pair.DRBD.PeerAddress, "pair.drbd.meta_size": d.Pair.DRBD.MetaSize,
		"pair.drbd.secret_file": d.Pair.DRBD.SecretFile,
	}
}

// loadConfig reads sand.yaml (optional when it is the default path), SAND_*
// variables and the flags bound to keys, in viper's order: flag, env, file,
// default.
func (e *env) loadConfig(flags map[string]*pflag.Flag) (appliance.Config, error) {
	v := e.v
	for k, d := range configKeys() {
		v.SetDefault(k, d)
	}
	for k, d := range tlsConfigKeys() {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix("SAND")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	for key, f := range flags {
		if err := v.BindPFlag(key, f); err != nil {
			return appliance.Config{}, fmt.Errorf("bind flag --%s: %w", f.Name, err)
		}
	}
	v.SetConfigFile(e.configFile)
	v.SetConfigType("yaml")
	if err := v.ReadInConfig(); err != nil {
		if !(errors.Is(err, fs.ErrNotExist) && e.configFile == defaultConfigFile) {
			return appliance.Config{}, fmt.Errorf("read config %s: %w", e.configFile, err)
		}
	}
	var cfg appliance.Config
	if err := v.UnmarshalExact(&cfg); err != nil {
		return appliance.Config{}, fmt.Errorf("config %s: %w", e.configFile, err)
	}
	return cfg, nil
}

// flagMap names flags by the config key they set.
func flagMap(cmd *cobra.Command, pairs ...string) map[string]*pflag.Flag {
	m := map[string]*pflag.Flag{}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i]] = cmd.Flags().Lookup(pairs[i+1])
	}
	return m
}
