package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/ui"
)

func lunCmd(e *env) *cobra.Command {
	f := &apiFlags{}
	cmd := &cobra.Command{Use: "lun", Short: "Create, list, grow and delete LUNs"}
	addAPIFlags(cmd, f)

	var size, group, target string
	create := &cobra.Command{
		Use:   "create NAME --size SIZE [--group GROUP]",
		Short: "Create a LUN and print how to attach it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := appliance.ParseSize(size)
			if err != nil {
				return err
			}
			c, err := e.client(f)
			if err != nil {
				return err
			}
			l, err := c.CreateLUN(cmd.Context(), ui.CreateLUNRequest{Name: args[0], Size: ui.Size(n), Group: group, Target: target})
			if err != nil {
				return fmt.Errorf("create LUN %s: %w", args[0], err)
			}
			return e.print(f, l, func(w *tabwriter.Writer) { showLUN(w, l) })
		},
	}
	create.Flags().StringVar(&size, "size", "", "size, e.g. 20G (binary units K, M, G, T)")
	create.Flags().StringVar(&group, "group", "", "initiator group allowed to see the LUN")
	create.Flags().StringVar(&target, "target", "", "put the LUN into this shared target instead of a target of its own")
	create.MarkFlagRequired("size")

	list := &cobra.Command{
		Use:   "list",
		Short: "List LUNs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client(f)
			if err != nil {
				return err
			}
			luns, err := c.LUNs(cmd.Context())
			if err != nil {
				return fmt.Errorf("list LUNs: %w", err)
			}
			return e.print(f, luns, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "NAME\tSIZE\tGROUP\tTARGET\tLUN\tSERIAL")
				for _, l := range luns {
					fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", l.Name, l.SizeHuman, orDash(l.Group), l.Target, l.Number, l.Serial)
				}
			})
		},
	}

	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show a LUN and how to attach it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client(f)
			if err != nil {
				return err
			}
			l, err := c.LUN(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("show LUN %s: %w", args[0], err)
			}
			return e.print(f, l, func(w *tabwriter.Writer) { showLUN(w, l) })
		},
	}

	var newSize string
	resize := &cobra.Command{
		Use:   "resize NAME --size SIZE",
		Short: "Grow a LUN (shrinking is refused)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			n, err := appliance.ParseSize(newSize)
			if err != nil {
				return err
			}
			c, err := e.client(f)
			if err != nil {
				return err
			}
			s := ui.Size(n)
			l, err := c.UpdateLUN(cmd.Context(), args[0], ui.UpdateLUNRequest{Size: &s})
			if err != nil {
				return fmt.Errorf("resize LUN %s: %w", args[0], err)
			}
			return e.print(f, l, func(w *tabwriter.Writer) { showLUN(w, l) })
		},
	}
	resize.Flags().StringVar(&newSize, "size", "", "new size, e.g. 40G")
	resize.MarkFlagRequired("size")

	setGroup := &cobra.Command{
		Use:   "set-group NAME GROUP",
		Short: "Let another initiator group see a LUN (\"\" for none)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client(f)
			if err != nil {
				return err
			}
			l, err := c.UpdateLUN(cmd.Context(), args[0], ui.UpdateLUNRequest{Group: &args[1]})
			if err != nil {
				return fmt.Errorf("set group of LUN %s: %w", args[0], err)
			}
			return e.print(f, l, func(w *tabwriter.Writer) { showLUN(w, l) })
		},
	}

	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Stop exporting a LUN and delete its volume",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client(f)
			if err != nil {
				return err
			}
			if err := c.DeleteLUN(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("delete LUN %s: %w", args[0], err)
			}
			return e.print(f, map[string]string{"deleted": args[0]}, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "deleted LUN %s\n", args[0])
			})
		},
	}
	cmd.AddCommand(create, list, show, resize, setGroup, del)
	return cmd
}

func showLUN(w *tabwriter.Writer, l ui.LUNView) {
	fmt.Fprintf(w, "name:\t%s\n", l.Name)
	fmt.Fprintf(w, "size:\t%s (%d bytes)\n", l.SizeHuman, l.Size)
	fmt.Fprintf(w, "group:\t%s\n", orDash(l.Group))
	fmt.Fprintf(w, "target:\t%s\n", l.Target)
	fmt.Fprintf(w, "lun:\t%d\n", l.Number)
	fmt.Fprintf(w, "portal:\t%s\n", l.Attach.Portal)
	fmt.Fprintf(w, "serial:\t%s\n", l.Serial)
	fmt.Fprintf(w, "wwn:\tnaa.%s\n", l.NAA)
	if l.Path != "" {
		fmt.Fprintf(w, "backing store:\t%s (imported)\n", l.Path)
	}
	fmt.Fprintf(w, "\nattach from a dom0:\n")
	for _, line := range l.Attach.Iscsiadm {
		fmt.Fprintf(w, "  %s\n", line)
	}
	if l.Attach.XenDisk != "" {
		fmt.Fprintf(w, "xen domain config:\n  %s\n", l.Attach.XenDisk)
	}
	if l.Attach.Note != "" {
		fmt.Fprintf(w, "note: %s\n", l.Attach.Note)
	}
}
