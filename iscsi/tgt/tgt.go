// Package tgt drives the Linux SCSI target framework's user-space daemon
// (tgtd, tgt 1.0.85) through tgtadm: Driver makes a live tgtd match an
// iscsi.TargetGroup, Daemon starts and stops tgtd itself.
//
// Facts about tgt this package is built on (measured on the project's
// machines, see testdata/README.md):
//   - tgtd's control socket is /var/run/tgtd/socket.<N>, a filesystem path
//     shared by every network namespace, so each sand instance has its own
//     control port N and every tgtadm call passes -C N.
//   - LUN 0 of every target is tgt's controller; data LUNs start at 1.
//   - tgt caches a LUN's size when the LUN is created and cannot resize it:
//     a grown backing store means deleting and re-adding that LUN.
//   - tgt never shows a CHAP password and cannot change one; accounts are
//     global to the daemon.
//   - tgtd ignores SIGTERM: it stops with --op delete --mode system once it
//     has no targets.
package tgt

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/sand-appliance/sand/appliance/command"
	"github.com/sand-appliance/sand/iscsi"
)

// Driver is the tgt implementation of iscsi.Driver for one tgtd, addressed
// by its control port.
type Driver struct {
	runner command.Runner
	port   int
	log    *slog.Logger

	mu sync.Mutex
	// secrets remembers, per CHAP user, a hash of the password this Driver
	// set, since tgt cannot show it. A user it does not remember (say after
	// a restart of sand that kept tgtd running) gets its account replaced
	// once.
	secrets map[string]string
}

var _ iscsi.Driver = (*Driver)(nil)

// New returns a Driver for the tgtd listening on control port controlPort.
func New(runner command.Runner, controlPort int, logger *slog.Logger) *Driver {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Driver{runner: runner, port: controlPort, log: logger, secrets: map[string]string{}}
}

// FirstLUN is 1: tgt keeps LUN 0 of every target for its controller.
func (d *Driver) FirstLUN() int { return 1 }

// tgtadm runs tgtadm on this Driver's control port.
func (d *Driver) tgtadm(ctx context.Context, args ...string) ([]byte, error) {
	return d.runner.Run(ctx, "tgtadm", append([]string{"-C", strconv.Itoa(d.port)}, args...)...)
}

func (d *Driver) readTargets(ctx context.Context) ([]LiveTarget, error) {
	out, err := d.tgtadm(ctx, "--lld", "iscsi", "--op", "show", "--mode", "target")
	if err != nil {
		return nil, fmt.Errorf("list tgt targets on control port %d: %w", d.port, err)
	}
	targets, err := ParseShow(out)
	if err != nil {
		return nil, fmt.Errorf("list tgt targets on control port %d: %w", d.port, err)
	}
	return targets, nil
}

func (d *Driver) readPortals(ctx context.Context) ([]Portal, error) {
	out, err := d.tgtadm(ctx, "--lld", "iscsi", "--op", "show", "--mode", "portal")
	if err != nil {
		return nil, fmt.Errorf("list tgt portals on control port %d: %w", d.port, err)
	}
	portals, err := ParsePortals(out)
	if err != nil {
		return nil, fmt.Errorf("list tgt portals on control port %d: %w", d.port, err)
	}
	return portals, nil
}

func (d *Driver) readAccounts(ctx context.Context) ([]string, error) {
	out, err := d.tgtadm(ctx, "--lld", "iscsi", "--op", "show", "--mode", "account")
	if err != nil {
		return nil, fmt.Errorf("list tgt accounts on control port %d: %w", d.port, err)
	}
	users, err := ParseAccounts(out)
	if err != nil {
		return nil, fmt.Errorf("list tgt accounts on control port %d: %w", d.port, err)
	}
	return users, nil
}

// Apply makes tgtd match tg: it reads the live targets, portals and
// accounts, and runs only the tgtadm commands that differ, so applying the
// same group twice changes nothing the second time. Targets and LUNs it
// does not change keep their sessions. An empty tg.Portals leaves the
// listening portals alone (ietd.conf carries none; the Daemon set them).
//
// On error Apply stops at the failing command; what ran stays applied and
// the next Apply continues from the live state.
func (d *Driver) Apply(ctx context.Context, tg iscsi.TargetGroup) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := validate(tg); err != nil {
		return err
	}
	var live liveState
	var err error
	if live.targets, err = d.readTargets(ctx); err != nil {
		return err
	}
	if live.portals, err = d.readPortals(ctx); err != nil {
		return err
	}
	if live.accounts, err = d.readAccounts(ctx); err != nil {
		return err
	}
	steps, err := plan(live, tg, d.secrets)
	if err != nil {
		return err
	}
	for i, s := range steps {
		d.log.Debug("tgtadm", "control_port", d.port, "step", i+1, "of", len(steps), "args", strings.Join(redact(s.args), " "))
		if _, err := d.tgtadm(ctx, s.args...); err != nil {
			return fmt.Errorf("apply iSCSI target group to tgtd on control port %d, step %d of %d: %w", d.port, i+1, len(steps), redactErr(err))
		}
		switch s.kind {
		case stepAccountNew:
			d.secrets[s.user] = s.hash
		case stepAccountDelete:
			delete(d.secrets, s.user)
		}
	}
	if len(steps) > 0 {
		d.log.Info("applied iSCSI target group to tgtd", "control_port", d.port, "targets", len(tg.Targets), "tgtadm_commands", len(steps))
	}
	return nil
}

// Sessions lists the initiators logged in now, one per I_T nexus, with the
// address of its first connection.
func (d *Driver) Sessions(ctx context.Context) ([]iscsi.Session, error) {
	targets, err := d.readTargets(ctx)
	if err != nil {
		return nil, err
	}
	var sessions []iscsi.Session
	for _, t := range targets {
		for _, n := range t.Nexuses {
			s := iscsi.Session{Target: t.IQN, Initiator: n.Initiator}
			if len(n.Connections) > 0 {
				s.Address = n.Connections[0].Address
			}
			sessions = append(sessions, s)
		}
	}
	return sessions, nil
}

// Stop deletes every target (dropping its sessions) and every account. It
// leaves tgtd running with its portals: stopping the daemon is Daemon.Stop.
func (d *Driver) Stop(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	targets, err := d.readTargets(ctx)
	if err != nil {
		return err
	}
	for _, t := range targets {
		if _, err := d.tgtadm(ctx, "--lld", "iscsi", "--op", "delete", "--mode", "target", "--tid", strconv.Itoa(t.TID), "--force"); err != nil {
			return fmt.Errorf("delete tgt target %d (%s): %w", t.TID, t.IQN, err)
		}
	}
	users, err := d.readAccounts(ctx)
	if err != nil {
		return err
	}
	for _, u := range users {
		if _, err := d.tgtadm(ctx, "--lld", "iscsi", "--op", "delete", "--mode", "account", "--user", u); err != nil {
			return fmt.Errorf("delete tgt account %q: %w", u, err)
		}
		delete(d.secrets, u)
	}
	if len(targets)+len(users) > 0 {
		d.log.Info("removed every tgt target and account", "control_port", d.port, "targets", len(targets), "accounts", len(users))
	}
	return nil
}

// secretHash is what the Driver keeps of a password: enough to notice a
// change, without holding the secret for the life of the process.
func secretHash(secret string) string {
	h := sha256.Sum256([]byte("sand-tgt-chap\x00" + secret))
	return hex.EncodeToString(h[:])
}

// redact hides the value of --password in an argument list.
func redact(args []string) []string {
	i := slices.Index(args, "--password")
	if i < 0 || i+1 >= len(args) {
		return args
	}
	r := slices.Clone(args)
	r[i+1] = "********"
	return r
}

// redactErr keeps CHAP passwords out of error messages: a failed command's
// error quotes its command line.
func redactErr(err error) error {
	var ce *command.Error
	if !errors.As(err, &ce) || !slices.Contains(ce.Argv, "--password") {
		return err
	}
	c := *ce
	c.Argv = redact(ce.Argv)
	return &c
}
