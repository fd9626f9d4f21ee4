package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sand-appliance/sand/ui"
)

// pairCmds are the admin's actions on the pair: switchover, standby,
// resume, and the events log.
func pairCmds(e *env) []*cobra.Command {
	action := func(use, short, action string, args cobra.PositionalArgs) *cobra.Command {
		f := &apiFlags{}
		cmd := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  args,
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := e.client(f)
				if err != nil {
					return err
				}
				box := ""
				if len(args) > 0 {
					box = args[0]
				}
				p, err := c.PairAction(cmd.Context(), action, box)
				if err != nil {
					return fmt.Errorf("%s: %w", action, err)
				}
				return e.print(f, p, func(w *tabwriter.Writer) { showPair(w, p) })
			},
		}
		addAPIFlags(cmd, f)
		return cmd
	}
	f := &apiFlags{}
	events := &cobra.Command{
		Use:   "events",
		Short: "Show what happened on the box and the pair, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client(f)
			if err != nil {
				return err
			}
			evs, err := c.Events(cmd.Context())
			if err != nil {
				return fmt.Errorf("read events: %w", err)
			}
			return e.print(f, evs, func(w *tabwriter.Writer) {
				for _, ev := range evs {
					fmt.Fprintf(w, "%s\t%s\t%s\n", ev.Time.Local().Format(time.DateTime+".000"), ev.Kind, ev.Message)
				}
			})
		},
	}
	addAPIFlags(events, f)
	return []*cobra.Command{
		action("switchover", "Move the primary role to the peer (planned: one short reconnect for initiators)", "switchover", cobra.NoArgs),
		action("standby BOX", "Take a box out of service for maintenance (it hands over if primary, never promotes)", "standby", cobra.ExactArgs(1)),
		action("resume BOX", "Put a box in standby back into the pair as secondary", "resume", cobra.ExactArgs(1)),
		events,
	}
}

func showPair(w *tabwriter.Writer, p ui.PairView) {
	if p.Standalone {
		fmt.Fprintf(w, "pair:\tnone (standalone box)\n")
		return
	}
	for _, b := range p.Boxes {
		here := ""
		if b.Local {
			here = " (this box)"
		}
		fmt.Fprintf(w, "box %s%s:\t%s\t%s\n", b.Name, here, b.Role, b.Detail)
	}
	if p.VIP != nil {
		fmt.Fprintf(w, "vip:\t%s held by %s\n", p.VIP.Address, orDash(p.VIP.Holder))
	}
	if p.DRBD != nil {
		d := p.DRBD
		fmt.Fprintf(w, "drbd %s:\t%s, %s/%s, disks %s/%s, protocol %s\n", d.Resource, d.Connection, d.LocalRole, d.PeerRole, d.LocalDisk, d.PeerDisk, d.Protocol)
		if d.Syncing {
			fmt.Fprintf(w, "resync:\t%.1f%%, %s left\n", d.SyncPercent, d.SyncLeft.Round(time.Second))
		}
		if d.SplitBrain {
			fmt.Fprintf(w, "SPLIT BRAIN:\tDRBD reported a split brain; sand will not resolve it by itself\n")
		}
	}
	if p.Witness != nil {
		fmt.Fprintf(w, "witness %s:\treachable %v\n", p.Witness.Name, p.Witness.Reachable)
	}
	if p.Ping != nil {
		fmt.Fprintf(w, "ping targets:\t%d of %d answer (%s)\n", p.Ping.Reachable, len(p.Ping.Targets), strings.Join(p.Ping.Targets, ", "))
	}
	fmt.Fprintf(w, "failovers:\t%d since sand started\n", p.Failovers)
}
