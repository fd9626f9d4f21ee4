package main

import (
	"github.com/spf13/cobra"

	"github.com/sand-appliance/sand/daemon"
)

func serveCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the appliance daemon: pool, registry, iSCSI target and API",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := e.loadConfig(flagMap(cmd,
				"name", "name", "listen", "listen", "portal", "portal", "state_dir", "state-dir",
				"api_token_file", "api-token-file", "pool.kind", "pool-kind", "pool.dir", "pool-dir",
				"pool.size", "pool-size", "target.driver", "driver", "target.tgt_control_port", "tgt-control-port"))
			if err != nil {
				return err
			}
			return daemon.Run(cmd.Context(), cfg, e.logger())
		},
	}
	f := cmd.Flags()
	f.String("name", "", "this box's name")
	f.String("listen", "", "API address, host:port")
	f.String("portal", "", "iSCSI portal address (ip or ip:port)")
	f.String("state-dir", "", "directory of the registry and ietd.conf")
	f.String("api-token-file", "", "file holding the API token")
	f.String("pool-kind", "", "storage pool: file or lvm")
	f.String("pool-dir", "", "directory of the file pool")
	f.String("pool-size", "", "size limit of the file pool, e.g. 100G")
	f.String("driver", "", "iSCSI target driver: tgt or lio")
	f.Int("tgt-control-port", 0, "tgtd control port (tgtd -C), unique per tgtd on a host")
	return cmd
}
