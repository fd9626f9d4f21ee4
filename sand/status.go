package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/ui"
)

func statusCmd(e *env) *cobra.Command {
	f := &apiFlags{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the box: role, portal, pool, LUNs, sessions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client(f)
			if err != nil {
				return err
			}
			s, err := c.Status(cmd.Context())
			if err != nil {
				return fmt.Errorf("read status: %w", err)
			}
			p, err := c.Pair(cmd.Context())
			if err != nil {
				return fmt.Errorf("read pair state: %w", err)
			}
			v, err := c.TLS(cmd.Context())
			if err != nil {
				return fmt.Errorf("read the certificates: %w", err)
			}
			out := struct {
				Box  appliance.Status `json:"box"`
				Pair ui.PairView      `json:"pair"`
				TLS  tlsView          `json:"tls"`
			}{s, p, v}
			return e.print(f, out, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "box:\t%s (%s)\n", s.Name, s.Role)
				fmt.Fprintf(w, "portal:\t%s\n", s.Portal)
				fmt.Fprintf(w, "target driver:\t%s\n", s.Driver)
				fmt.Fprintf(w, "pool:\t%s, %s provisioned of %s, %s used\n", s.Pool,
					appliance.FormatSize(s.Capacity.Provisioned), appliance.FormatSize(s.Capacity.Size), appliance.FormatSize(s.Capacity.Used))
				fmt.Fprintf(w, "luns:\t%d in %d initiator groups\n", s.LUNs, s.Groups)
				fmt.Fprintf(w, "sessions:\t%d\n", s.Sessions)
				fmt.Fprintf(w, "registry generation:\t%d\n", s.Generation)
				for _, p := range s.Problems {
					fmt.Fprintf(w, "problem:\t%s\n", p)
				}
				showPair(w, p)
				showTLS(w, v, c.PeerFingerprint())
			})
		},
	}
	addAPIFlags(cmd, f)
	return cmd
}

func targetCmd(e *env) *cobra.Command {
	f := &apiFlags{}
	cmd := &cobra.Command{
		Use:   "target",
		Short: "Print the exported target configuration (ietd.conf)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client(f)
			if err != nil {
				return err
			}
			conf, err := c.TargetConfig(cmd.Context())
			if err != nil {
				return fmt.Errorf("read target configuration: %w", err)
			}
			_, err = e.stdout.Write(conf)
			return err
		},
	}
	addAPIFlags(cmd, f)
	return cmd
}

func importCmd(e *env) *cobra.Command {
	f := &apiFlags{}
	var group string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "import ietd.conf FILE",
		Short: "Turn an existing IET configuration into sand LUNs serving the same backing stores",
		Long: "Reads an ietd.conf (as kept by classic Heartbeat + IET setups) and registers each Lun as a\n" +
			"sand LUN under the same target IQN and serial. The backing stores stay yours: deleting an\n" +
			"imported LUN never deletes its volume. Nothing changes if any entry is wrong.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "ietd.conf" {
				return fmt.Errorf("import knows the format ietd.conf only, not %q", args[0])
			}
			conf, err := os.ReadFile(args[1])
			if err != nil {
				return fmt.Errorf("read %s: %w", args[1], err)
			}
			c, err := e.client(f)
			if err != nil {
				return err
			}
			luns, err := c.Import(cmd.Context(), conf, group, dryRun)
			if err != nil {
				return fmt.Errorf("import %s: %w", args[1], err)
			}
			return e.print(f, luns, func(w *tabwriter.Writer) {
				verb := "imported"
				if dryRun {
					verb = "would import"
				}
				fmt.Fprintf(w, "%s %d LUNs\n", verb, len(luns))
				fmt.Fprintln(w, "NAME\tSIZE\tTARGET\tLUN\tSERIAL\tBACKING STORE")
				for _, l := range luns {
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", l.Name, l.SizeHuman, l.Target, l.Number, l.Serial, orDash(l.Path))
				}
			})
		},
	}
	cmd.Flags().StringVar(&group, "group", "", "initiator group for the imported LUNs")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only show what would be imported")
	addAPIFlags(cmd, f)
	return cmd
}
