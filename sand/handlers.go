package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

// exitError ends sand with a given exit code: DRBD reads its handlers'
// exit codes.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// DRBD 8.4's fence-peer exit codes. "Unreachable" is deliberately not 5:
// for DRBD, 5 means "peer unreachable, assumed dead": it marks the peer
// Outdated and resumes I/O, which would let an isolated primary acknowledge
// writes the promoted peer never sees. Any code DRBD does not know leaves
// I/O frozen (drbd_nl.c, conn_try_outdate_peer).
var fenceExit = map[string]int{
	fenceOutdated:    4, // peer's disk is Outdated
	fenceUnreachable: 1, // neither outdated nor confirmed gone: I/O stays frozen
	fenceRefused:     6, // peer is primary and refused
	fenceDead:        7, // peer fenced off the cluster (gone, quorum agrees)
}

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
			c, err := e.client(f)
			if err != nil {
				return &exitError{code: 1, msg: err.Error()}
			}
			outcome, err := c.FencePeer(cmd.Context())
			if err != nil {
				return &exitError{code: 1, msg: fmt.Sprintf("fence peer: %v", err)}
			}
			fmt.Fprintf(e.stdout, "fence-peer: %s\n", outcome)
			if code, ok := fenceExit[outcome]; ok && code != 0 {
				return &exitError{code: code, msg: "fence-peer: " + outcome}
			}
			return &exitError{code: 1, msg: "fence-peer: unknown outcome " + outcome}
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
