// Package drbd is the DRBD side of the appliance: the resource model and its
// safety rules (Resource, Validate), rendering .res files (Render84,
// Render9), parsing DRBD's state (ParseProcDRBD, ParseStatusJSON,
// ParseEvent/EventState) into one typed Status, and a thin driver over
// drbdadm/drbdsetup (Admin) that runs everything through command.Runner.
//
// Two kernel modules are targets:
//
//   - DRBD 8.4.11, in-tree in Debian 12's 6.1 kernel, driven by drbd-utils
//     9.22. drbdadm notices the 8.4 module and execs /lib/drbd/drbdadm-84,
//     which calls /lib/drbd/drbdsetup-84; the config must use 8.4 syntax.
//     State comes from /proc/drbd (polled); drbdsetup-84 has no status
//     --json. Changes can be watched with `drbdsetup-84 events2` (see
//     EventsCommand), without resync progress.
//   - DRBD 9 where it is loaded: `drbdsetup status --json` and
//     `drbdsetup events2`.
//
// Which one is loaded comes from /proc/drbd's first line
// ("version: 8.4.11 (api:1/proto:86-101)"), or from `drbdadm --version`
// when /proc/drbd cannot be read.
//
// Commands the lab proved on 8.4 (lab-proof/e2e.sh, guest-san.sh):
// `create-md --force`, `up`, `primary --force` for the first promotion,
// `disconnect --force` (returns at once; only once the peer is decided
// dead), `primary`, `secondary`, `adjust`. The net timeouts in TCGNet took
// a takeover from 14 s to 0.4 s.
//
// Pure logic (model, render, parse) never execs or touches files; Admin is
// the only side effect, and its tests compare command transcripts.
package drbd
