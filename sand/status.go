package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/ui"
	"github.com/sand-appliance/sand/ui/client"
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
	var copyData []string
	cmd := &cobra.Command{
		Use:   "import ietd.conf FILE",
		Short: "Turn an existing IET configuration into new sand LUNs, copying data only from paths you name",
		Long: "Reads an ietd.conf (as kept by classic Heartbeat + IET setups, or as sand target prints it)\n" +
			"and makes each Lun a new LUN in sand's pool under the same target IQN and serial, so\n" +
			"initiators see the same disk. sand never exports the Path= of the file itself.\n\n" +
			"A LUN's size is the file's own (the #sand: lun lines of files sand wrote). To copy an old\n" +
			"LUN's data into its new LUN, name its Path= with --copy-data (once per LUN); the new LUN\n" +
			"then takes the size of the data. sand opens only the paths named so, and only a block device\n" +
			"under /dev or a regular file under /mnt, /media or /srv that the box does not use: devices\n" +
			"under DRBD or LVM, mounted, swap or on the box's system disks are refused. The command waits\n" +
			"for the copies; interrupting it stops them. Nothing changes if any entry is wrong.",
		Example: "  sand import ietd.conf /root/old-ietd.conf --group xen-cluster --dry-run\n" +
			"  sand import ietd.conf /root/old-ietd.conf --group xen-cluster --copy-data /dev/vg0/vm7",
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
			if len(copyData) > 0 && !dryRun && c.HTTP != nil {
				c.HTTP.Timeout = 0 // a copy takes what it takes; Ctrl-C ends it
			}
			luns, err := c.ImportIETD(cmd.Context(), conf, client.ImportOptions{Group: group, DryRun: dryRun, CopyFrom: copyData})
			if err != nil {
				return fmt.Errorf("import %s: %w", args[1], err)
			}
			return e.print(f, luns, func(w *tabwriter.Writer) {
				verb, copied := "imported", "copied from "
				if dryRun {
					verb, copied = "would import", "to copy from "
				}
				fmt.Fprintf(w, "%s %d LUNs\n", verb, len(luns))
				fmt.Fprintln(w, "NAME\tSIZE\tTARGET\tLUN\tSERIAL\tDATA")
				for _, l := range luns {
					data := "none (new empty LUN)"
					if l.CopiedFrom != "" {
						data = copied + l.CopiedFrom
					}
					fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%s\t%s\n", l.Name, l.SizeHuman, l.Target, l.Number, l.Serial, data)
				}
			})
		},
	}
	cmd.Flags().StringVar(&group, "group", "", "initiator group for the imported LUNs")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "only show what would be imported (opens only the --copy-data paths, to check them)")
	cmd.Flags().StringArrayVar(&copyData, "copy-data", nil, "copy the data of this Path= of the file into its new LUN (repeat per LUN)")
	addAPIFlags(cmd, f)
	return cmd
}
