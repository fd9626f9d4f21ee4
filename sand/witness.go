package main

import (
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/failover"
)

// witnessCmd runs a storage-less serf member that only votes: the third
// member of the quorum (self + peer + witness, 2 of 3). Its one credential
// is the gossip key: it holds no pair key, so the boxes accept no intent,
// query or answer from it.
func witnessCmd(e *env) *cobra.Command {
	var name, bind, keyFile string
	var join []string
	cmd := &cobra.Command{
		Use:   "witness",
		Short: "Run a quorum witness: a serf member with no storage that only votes (e.g. on a dom0)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log := e.logger().With("component", "witness")
			if name == "" {
				h, err := os.Hostname()
				if err != nil {
					return fmt.Errorf("witness name: --name not given and hostname unknown: %w", err)
				}
				name = h
			}
			host, portStr, err := net.SplitHostPort(bind)
			if err != nil {
				return fmt.Errorf("parse --bind %q (want ip:port): %w", bind, err)
			}
			port, err := strconv.Atoi(portStr)
			if err != nil {
				return fmt.Errorf("parse --bind port %q: %w", portStr, err)
			}
			if keyFile == "" {
				return fmt.Errorf("--key-file is required: the gossip key (base64 of %d bytes) shared with the boxes (their pair.serf_key_file; never their pair key)", failover.KeySize)
			}
			raw, err := appliance.ReadSecretFile(keyFile)
			if err != nil {
				return fmt.Errorf("read gossip key: %w", err)
			}
			keys, err := failover.ParseGossipKeys(raw)
			if err != nil {
				return fmt.Errorf("gossip key %s: %w", keyFile, err)
			}
			conf, err := failover.NewSerfConfig(name, host, port, keys, log)
			if err != nil {
				return err
			}
			return failover.RunWitness(cmd.Context(), failover.NewMembership(conf, log, nil), join, log.With("name", name))
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "serf node name of this witness (default: host name)")
	cmd.Flags().StringVar(&bind, "bind", "0.0.0.0:7946", "gossip address, ip:port")
	cmd.Flags().StringSliceVar(&join, "join", nil, "storage boxes to join, ip:port (repeat or comma-separate)")
	cmd.Flags().StringVar(&keyFile, "key-file", "", "file holding the base64 gossip key (32 bytes; one per line while rotating): the boxes' serf key, not their pair key")
	return cmd
}
