package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/sand-appliance/sand/drbd"
)

// exitError ends sand with a given exit code: DRBD reads its handlers'
// exit codes.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// handlerCmds are the commands DRBD runs as handlers of the pair's
// resource. They talk to the local daemon, which knows the membership.
func handlerCmds(e *env) []*cobra.Command {
	f := &apiFlags{}
	fence := &cobra.Command{
		Use:    "fence-peer",
		Short:  "DRBD fence-peer handler: outdate the peer or confirm it is gone (exit 4 or 7), else keep I/O frozen",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			outcome := drbd.FenceUnreachable
			c, err := e.client(f)
			if err == nil {
				outcome, err = c.FencePeer(cmd.Context())
			}
			if err != nil {
				return &exitError{code: outcome.ExitCode(), msg: fmt.Sprintf("fence peer: %v", err)}
			}
			fmt.Fprintf(e.stdout, "fence-peer: %s\n", outcome)
			return &exitError{code: outcome.ExitCode(), msg: "fence-peer: " + outcome.String()}
		},
	}
	addAPIFlags(fence, f)
	sf := &apiFlags{}
	split := &cobra.Command{
		Use:    "split-brain",
		Short:  "DRBD split-brain handler: report the split brain; sand never resolves it by itself",
		Hidden: true,
		Args:   cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client(sf)
			if err != nil {
				return err
			}
			return c.SplitBrain(cmd.Context())
		},
	}
	addAPIFlags(split, sf)
	return []*cobra.Command{fence, split}
}
