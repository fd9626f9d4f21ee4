package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/iscsi"
)

func groupCmd(e *env) *cobra.Command {
	f := &apiFlags{}
	cmd := &cobra.Command{Use: "group", Short: "Manage initiator groups (the dom0s allowed to see LUNs)"}
	addAPIFlags(cmd, f)

	create := &cobra.Command{
		Use:   "create NAME [INITIATOR-IQN...]",
		Short: "Create an initiator group, optionally with its first initiators",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client(f)
			if err != nil {
				return err
			}
			g, err := c.CreateGroup(cmd.Context(), appliance.InitiatorGroup{Name: args[0], Initiators: append([]string{}, args[1:]...)})
			if err != nil {
				return fmt.Errorf("create initiator group %s: %w", args[0], err)
			}
			return e.print(f, g, func(w *tabwriter.Writer) { showGroup(w, g) })
		},
	}

	update := func(use, short string, u func(args []string) appliance.GroupUpdate) *cobra.Command {
		return &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.MinimumNArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := e.client(f)
				if err != nil {
					return err
				}
				g, err := c.UpdateGroup(cmd.Context(), args[0], u(args[1:]))
				if err != nil {
					return fmt.Errorf("update initiator group %s: %w", args[0], err)
				}
				return e.print(f, g, func(w *tabwriter.Writer) { showGroup(w, g) })
			},
		}
	}
	add := update("add GROUP INITIATOR-IQN...", "Add initiators to a group",
		func(a []string) appliance.GroupUpdate { return appliance.GroupUpdate{Add: a} })
	remove := update("remove GROUP INITIATOR-IQN...", "Remove initiators from a group",
		func(a []string) appliance.GroupUpdate { return appliance.GroupUpdate{Remove: a} })

	var user, secretFile, mutualUser, mutualSecretFile string
	var off bool
	chap := &cobra.Command{
		Use:   "chap GROUP --user USER --secret-file FILE [--mutual-user U --mutual-secret-file F] | --off",
		Short: "Require CHAP (and optionally mutual CHAP) for a group's initiators",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			u := appliance.GroupUpdate{CHAP: &iscsi.CHAP{}, MutualCHAP: &iscsi.CHAP{}}
			if !off {
				if user == "" || secretFile == "" {
					return fmt.Errorf("give --user and --secret-file (secrets stay out of the shell history), or --off")
				}
				secret, err := appliance.ReadSecretFile(secretFile)
				if err != nil {
					return fmt.Errorf("read CHAP secret: %w", err)
				}
				u.CHAP = &iscsi.CHAP{User: user, Secret: secret}
				if mutualUser != "" {
					ms, err := appliance.ReadSecretFile(mutualSecretFile)
					if err != nil {
						return fmt.Errorf("read mutual CHAP secret: %w", err)
					}
					u.MutualCHAP = &iscsi.CHAP{User: mutualUser, Secret: ms}
				}
			}
			c, err := e.client(f)
			if err != nil {
				return err
			}
			g, err := c.UpdateGroup(cmd.Context(), args[0], u)
			if err != nil {
				return fmt.Errorf("set CHAP of initiator group %s: %w", args[0], err)
			}
			return e.print(f, g, func(w *tabwriter.Writer) { showGroup(w, g) })
		},
	}
	chap.Flags().StringVar(&user, "user", "", "CHAP user the initiators log in with (letters, digits and .-_:@)")
	chap.Flags().StringVar(&secretFile, "secret-file", "", "file holding the CHAP secret (12 to 16 characters, no quote, backquote or backslash)")
	chap.Flags().StringVar(&mutualUser, "mutual-user", "", "mutual CHAP user the target answers with")
	chap.Flags().StringVar(&mutualSecretFile, "mutual-secret-file", "", "file holding the mutual CHAP secret")
	chap.Flags().BoolVar(&off, "off", false, "turn CHAP off for the group")

	list := &cobra.Command{
		Use:   "list",
		Short: "List initiator groups",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client(f)
			if err != nil {
				return err
			}
			groups, err := c.Groups(cmd.Context())
			if err != nil {
				return fmt.Errorf("list initiator groups: %w", err)
			}
			return e.print(f, groups, func(w *tabwriter.Writer) {
				fmt.Fprintln(w, "NAME\tCHAP\tINITIATORS")
				for _, g := range groups {
					fmt.Fprintf(w, "%s\t%s\t%s\n", g.Name, chapMode(g), orDash(strings.Join(g.Initiators, ",")))
				}
			})
		},
	}

	show := &cobra.Command{
		Use:   "show NAME",
		Short: "Show an initiator group",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client(f)
			if err != nil {
				return err
			}
			g, err := c.Group(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("show initiator group %s: %w", args[0], err)
			}
			return e.print(f, g, func(w *tabwriter.Writer) { showGroup(w, g) })
		},
	}

	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an initiator group no LUN uses",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client(f)
			if err != nil {
				return err
			}
			if err := c.DeleteGroup(cmd.Context(), args[0]); err != nil {
				return fmt.Errorf("delete initiator group %s: %w", args[0], err)
			}
			return e.print(f, map[string]string{"deleted": args[0]}, func(w *tabwriter.Writer) {
				fmt.Fprintf(w, "deleted initiator group %s\n", args[0])
			})
		},
	}
	cmd.AddCommand(create, add, remove, chap, list, show, del)
	return cmd
}

func chapMode(g appliance.InitiatorGroup) string {
	switch {
	case g.MutualCHAP != nil:
		return "mutual"
	case g.CHAP != nil:
		return "chap"
	}
	return "none"
}

func showGroup(w *tabwriter.Writer, g appliance.InitiatorGroup) {
	fmt.Fprintf(w, "name:\t%s\n", g.Name)
	fmt.Fprintf(w, "chap:\t%s\n", chapMode(g))
	if g.CHAP != nil {
		fmt.Fprintf(w, "chap user:\t%s\n", g.CHAP.User)
	}
	if g.MutualCHAP != nil {
		fmt.Fprintf(w, "mutual chap user:\t%s\n", g.MutualCHAP.User)
	}
	fmt.Fprintf(w, "initiators:\t%s\n", orDash(strings.Join(g.Initiators, "\n\t")))
}
