package tgt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Systemd is what the Daemon needs from systemd to run tgtd as a transient
// service. DBusSystemd implements it over D-Bus; unit tests use a fake.
type Systemd interface {
	// StartTransientService runs argv (argv[0] an absolute path) as the
	// transient service name and waits for its start job to finish.
	StartTransientService(ctx context.Context, name, description string, argv []string) error
	// ActiveState is the unit's ActiveState: "active", "activating",
	// "deactivating", "inactive" (also for a unit systemd does not know)
	// or "failed".
	ActiveState(ctx context.Context, name string) (string, error)
	// KillService sends SIGKILL to every process of the service.
	KillService(ctx context.Context, name string) error
	// ResetFailed makes systemd forget a failed unit, so its name can be
	// started again.
	ResetFailed(ctx context.Context, name string) error
}

// systemdRunning is systemd's own test (sd_booted): the directory exists
// only while systemd is PID 1.
func systemdRunning() bool {
	fi, err := os.Stat("/run/systemd/system")
	return err == nil && fi.IsDir()
}

// DBusSystemd is Systemd over the system bus, through go-systemd.
type DBusSystemd struct {
	conn *sddbus.Conn
}

var _ Systemd = (*DBusSystemd)(nil)

// ConnectSystemd connects to systemd over the system bus. Close it when done.
func ConnectSystemd(ctx context.Context) (*DBusSystemd, error) {
	conn, err := sddbus.NewSystemConnectionContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to systemd over D-Bus: %w", err)
	}
	return &DBusSystemd{conn: conn}, nil
}

// Close closes the D-Bus connection.
func (s *DBusSystemd) Close() { s.conn.Close() }

// StartTransientService implements Systemd. The service is Type=exec (the
// start job fails if the binary cannot run), is garbage-collected once it
// has ended, even when it failed, and is killed 5 s after a stop request,
// since tgtd ignores SIGTERM.
func (s *DBusSystemd) StartTransientService(ctx context.Context, name, description string, argv []string) error {
	props := []sddbus.Property{
		sddbus.PropDescription(description),
		sddbus.PropType("exec"),
		sddbus.PropExecStart(argv, true),
		{Name: "CollectMode", Value: dbus.MakeVariant("inactive-or-failed")},
		{Name: "TimeoutStopUSec", Value: dbus.MakeVariant(uint64(5 * time.Second / time.Microsecond))},
	}
	done := make(chan string, 1)
	if _, err := s.conn.StartTransientUnitContext(ctx, name, "fail", props, done); err != nil {
		return fmt.Errorf("start transient unit %s: %w", name, err)
	}
	select {
	case result := <-done:
		if result != "done" {
			return fmt.Errorf("start transient unit %s: job %s", name, result)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("start transient unit %s: waiting for the start job: %w", name, ctx.Err())
	}
}

// ActiveState implements Systemd.
func (s *DBusSystemd) ActiveState(ctx context.Context, name string) (string, error) {
	p, err := s.conn.GetUnitPropertyContext(ctx, name, "ActiveState")
	if err != nil {
		return "", fmt.Errorf("read ActiveState of %s: %w", name, err)
	}
	state, ok := p.Value.Value().(string)
	if !ok {
		return "", fmt.Errorf("read ActiveState of %s: unexpected value %v", name, p.Value)
	}
	return state, nil
}

// KillService implements Systemd.
func (s *DBusSystemd) KillService(ctx context.Context, name string) error {
	if err := s.conn.KillUnitWithTarget(ctx, name, sddbus.All, int32(syscall.SIGKILL)); err != nil {
		return fmt.Errorf("kill unit %s: %w", name, err)
	}
	return nil
}

// ResetFailed implements Systemd. A unit systemd does not know is not an
// error.
func (s *DBusSystemd) ResetFailed(ctx context.Context, name string) error {
	err := s.conn.ResetFailedUnitContext(ctx, name)
	var de dbus.Error
	if errors.As(err, &de) && de.Name == "org.freedesktop.systemd1.NoSuchUnit" {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reset failed unit %s: %w", name, err)
	}
	return nil
}
