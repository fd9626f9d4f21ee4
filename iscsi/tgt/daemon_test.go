package tgt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sand-appliance/sand/appliance/command"
)

// TestMain doubles as a fake tgtd for the child-process tests: the Daemon
// runs this test binary with SAND_FAKE_TGTD set.
func TestMain(m *testing.M) {
	switch os.Getenv("SAND_FAKE_TGTD") {
	case "":
		os.Exit(m.Run())
	case "locked":
		fmt.Fprintln(os.Stderr, "tgtd: iser_ib_init(3431) Failed to initialize RDMA; load kernel modules?")
		fmt.Fprintln(os.Stderr, "tgtd: ipc_init(787) another tgtd is using /var/run/tgtd/socket.4791.lock")
		os.Exit(1)
	case "serve":
		// Runs until the fake tgtadm's "delete system" opens the FIFO.
		fmt.Fprintln(os.Stderr, "tgtd: iser_ib_init(3431) Failed to initialize RDMA; load kernel modules?")
		fifo, err := os.Open(os.Getenv("SAND_FAKE_TGTD_FIFO"))
		if err != nil {
			os.Exit(3)
		}
		fifo.Close()
		os.Exit(0)
	}
}

var errNotRunning = &command.Error{Argv: []string{"tgtadm"}, Code: 107, Stderr: "tgtadm: can't send the request to the tgt daemon, Transport endpoint is not connected\n", Err: errors.New("exit status 107")}

// fakeSystemd records what the Daemon asks of systemd.
type fakeSystemd struct {
	mu    sync.Mutex
	calls []string
	state string
}

func (s *fakeSystemd) record(c string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
}

func (s *fakeSystemd) StartTransientService(ctx context.Context, name, desc string, argv []string) error {
	s.record("start " + name + " " + strings.Join(argv, " "))
	s.mu.Lock()
	s.state = "active"
	s.mu.Unlock()
	return nil
}

func (s *fakeSystemd) ActiveState(ctx context.Context, name string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == "" {
		return "inactive", nil
	}
	return s.state, nil
}

func (s *fakeSystemd) KillService(ctx context.Context, name string) error {
	s.record("kill " + name)
	return nil
}

func (s *fakeSystemd) ResetFailed(ctx context.Context, name string) error {
	s.record("reset-failed " + name)
	return nil
}

func TestDaemonArgv(t *testing.T) {
	d := NewDaemon(&command.Fake{}, 4791, []string{"10.0.0.1:3260", "10.0.0.50", "[fd00::1]:3260"}, nil)
	d.Wrap = []string{"ip", "netns", "exec", "sand-a"}
	want := []string{"ip", "netns", "exec", "sand-a", "tgtd", "-f", "-C", "4791", "--iscsi", "portal=10.0.0.1:3260,portal=10.0.0.50:3260,portal=[fd00::1]:3260"}
	if diff := cmp.Diff(want, d.Argv()); diff != "" {
		t.Errorf("Argv mismatch (-want +got):\n%s", diff)
	}
	if got := UnitName(4791); got != "sand-tgtd-4791.service" {
		t.Errorf("UnitName = %q", got)
	}
}

func TestDaemonStartRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name    string
		port    int
		portals []string
		want    string
	}{
		{name: "no portal", port: 4791, want: "no portal given"},
		{name: "bad portal", port: 4791, portals: []string{"box1:3260"}, want: "not ip:port"},
		{name: "no control port", port: 0, portals: []string{"10.0.0.1:3260"}, want: "must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := &command.Fake{}
			err := NewDaemon(run, tt.port, tt.portals, nil).Start(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start error = %v, want one containing %q", err, tt.want)
			}
			if got := run.Transcript(); len(got) != 0 {
				t.Errorf("Start ran %q", got)
			}
		})
	}
}

func TestDaemonStart(t *testing.T) {
	sys := adm("--op show --mode sys")
	portals := adm("--lld iscsi --op show --mode portal")
	tests := []struct {
		name       string
		systemd    bool
		live       *fakeTgtd // a tgtd already answering, or nil
		want       []string
		wantSD     []string
		wantErr    string
		wantReused bool
	}{
		{
			name:       "a live tgtd on the control port is reused, sessions and all",
			live:       newFakeTgtd("10.0.0.1:3260"),
			want:       []string{sys, portals, portals},
			wantReused: true,
		},
		{
			name: "a reused tgtd listening everywhere gets its portal fixed",
			live: newFakeTgtd("[::]:3260", "0.0.0.0:3260"),
			want: []string{sys, portals,
				adm("--lld iscsi --op delete --mode portal --param portal=[::]:3260"),
				adm("--lld iscsi --op delete --mode portal --param portal=0.0.0.0:3260"),
				adm("--lld iscsi --op new --mode portal --param portal=10.0.0.1:3260"),
				portals},
			wantReused: true,
		},
		{
			name:    "none running, systemd running: a transient unit",
			systemd: true,
			want:    []string{sys, sys, portals},
			wantSD: []string{
				"reset-failed sand-tgtd-4791.service",
				"start sand-tgtd-4791.service /usr/sbin/tgtd -f -C 4791 --iscsi portal=10.0.0.1:3260",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sd := &fakeSystemd{}
			f := tt.live
			run := &command.Fake{Respond: func(argv []string) ([]byte, error) {
				if f == nil {
					if sd.state != "active" {
						return nil, errNotRunning
					}
					f = newFakeTgtd("10.0.0.1:3260")
				}
				return f.Run(argv)
			}}
			d := NewDaemon(run, testPort, []string{"10.0.0.1:3260"}, nil)
			d.Binary = "/usr/sbin/tgtd"
			d.Systemd = sd
			d.SystemdRunning = func() bool { return tt.systemd }
			err := d.Start(context.Background())
			if err != nil {
				t.Fatalf("Start: %v", err)
			}
			if diff := cmp.Diff(tt.want, run.Transcript()); diff != "" {
				t.Errorf("tgtadm transcript mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantSD, sd.calls); diff != "" {
				t.Errorf("systemd calls mismatch (-want +got):\n%s", diff)
			}
			if (d.mode == modeReused) != tt.wantReused || d.PID() != 0 {
				t.Errorf("mode %s, pid %d; want reused=%v and no pid", d.mode, d.PID(), tt.wantReused)
			}

			// Stop: targets and accounts out, then the system.
			if tt.systemd {
				run.Respond = func(argv []string) ([]byte, error) {
					out, err := f.Run(argv)
					if f.stopped {
						sd.state = "inactive"
					}
					return out, err
				}
			}
			if err := d.Stop(context.Background()); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			wantStop := []string{sys,
				adm("--lld iscsi --op show --mode target"),
				adm("--lld iscsi --op show --mode account"),
				adm("--op delete --mode system")}
			if !tt.systemd {
				wantStop = append(wantStop, sys) // adopted: gone when the port stops answering
			}
			if diff := cmp.Diff(wantStop, run.Transcript()); diff != "" {
				t.Errorf("Stop transcript mismatch (-want +got):\n%s", diff)
			}
			if !f.stopped {
				t.Error("tgtd still running after Stop")
			}
		})
	}
}

// fakeChild sets up the test binary as tgtd in the given mode.
func fakeChild(t *testing.T, mode string) (d *Daemon, f *fakeTgtd, run *command.Fake, fifo string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	fifo = filepath.Join(t.TempDir(), "stop")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SAND_FAKE_TGTD", mode)
	t.Setenv("SAND_FAKE_TGTD_FIFO", fifo)
	f = newFakeTgtd("10.0.0.1:3260")
	probed := false
	run = &command.Fake{Respond: func(argv []string) ([]byte, error) {
		if !probed || mode == "locked" { // nothing answers before Start launches the child
			probed = true
			return nil, errNotRunning
		}
		out, err := f.Run(argv)
		if slices.Contains(argv, "system") && err == nil {
			w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
			if err != nil {
				return nil, err
			}
			w.Close()
		}
		return out, err
	}}
	d = NewDaemon(run, testPort, []string{"10.0.0.1:3260"}, nil)
	d.Binary = exe
	d.SystemdRunning = func() bool { return false }
	d.Systemd = &fakeSystemd{}
	return d, f, run, fifo
}

func TestDaemonChild(t *testing.T) {
	ctx := context.Background()
	d, f, _, _ := fakeChild(t, "serve")
	if err := d.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	pid := d.PID()
	if pid == 0 || d.mode != modeChild {
		t.Fatalf("mode %s pid %d, want a child process", d.mode, pid)
	}
	if err := d.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !f.stopped || d.PID() != 0 {
		t.Errorf("after Stop: tgtd stopped=%v, pid %d", f.stopped, d.PID())
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("tgtd pid %d still exists after Stop (kill 0: %v)", pid, err)
	}
	// Stop again: nothing answers, nothing to do.
	if err := d.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestDaemonChildKilledWhenItWillNotStop(t *testing.T) {
	d, f, run, _ := fakeChild(t, "serve")
	if err := d.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	pid := d.PID()
	// tgtadm acknowledges "delete system" but tgtd stays.
	run.Respond = func(argv []string) ([]byte, error) { return f.Run(argv) }
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := d.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("tgtd pid %d still exists after Stop (kill 0: %v)", pid, err)
	}
}

func TestDaemonChildExitsAtStart(t *testing.T) {
	d, _, _, _ := fakeChild(t, "locked")
	err := d.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "another tgtd is using /var/run/tgtd/socket.4791.lock") {
		t.Fatalf("Start error = %v, want tgtd's own complaint in it", err)
	}
	if d.PID() != 0 {
		t.Errorf("pid %d kept after a failed start", d.PID())
	}
}

func TestDaemonChildWrongPortals(t *testing.T) {
	d, f, _, _ := fakeChild(t, "serve")
	// As tgtd does when the portal's address is not on the box.
	f.portals = nil
	f.run([]string{"tgtadm", "-C", "4791", "--op", "new", "--mode", "portal", "--param", "portal=0.0.0.0:3260"})
	f.run([]string{"tgtadm", "-C", "4791", "--op", "new", "--mode", "portal", "--param", "portal=[::]:3260"})
	err := d.Start(context.Background())
	if err == nil || !strings.Contains(err.Error(), "listens on [[::]:3260 0.0.0.0:3260], not on [10.0.0.1:3260] as asked") {
		t.Fatalf("Start error = %v, want the portal mismatch", err)
	}
	if !f.stopped || d.PID() != 0 {
		t.Errorf("the tgtd that listened everywhere was left running (stopped=%v pid=%d)", f.stopped, d.PID())
	}
}
