package drbd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/sand-appliance/sand/appliance/command"
)

// fakeProc serves /proc/drbd from a testdata file ("" = the module is not
// loaded).
func fakeProc(t *testing.T, file string) func(string) ([]byte, error) {
	t.Helper()
	return func(name string) ([]byte, error) {
		if name != DefaultProcPath {
			return nil, fmt.Errorf("unexpected read of %s", name)
		}
		if file == "" {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		return os.ReadFile(filepath.Join("testdata", "proc", file))
	}
}

func cmdError(code int, stderr string, argv ...string) error {
	return &command.Error{Argv: argv, Code: code, Stderr: stderr, Err: fmt.Errorf("exit status %d", code)}
}

// TestAdminTranscripts runs the lifecycle the lab proved, step by step, and
// compares the commands with golden transcripts.
func TestAdminTranscripts(t *testing.T) {
	r := safeLabResource()
	ctx := context.Background()
	tests := []struct {
		name   string
		proc   string
		host   string // this box's host name; san2 if ""
		run    func(a *Admin) error
		golden string
	}{
		{
			name: "first setup of a new pair (8.4)",
			proc: "real-blog-down.txt",
			run: func(a *Admin) error {
				return errors.Join(a.WriteConfig(ctx, r), a.CreateMD(ctx, r.Name), a.Up(ctx, r.Name), a.Primary(ctx, r, true))
			},
			golden: "setup.golden",
		},
		{
			name: "takeover after the peer was decided dead",
			proc: "connected-primary.txt",
			run: func(a *Admin) error {
				return errors.Join(a.Disconnect(ctx, r, true), a.Primary(ctx, r, false))
			},
			golden: "takeover-peer-dead.golden",
		},
		{
			name: "takeover on a host the resource does not name goes through drbdadm",
			proc: "connected-primary.txt",
			host: "elsewhere",
			run: func(a *Admin) error {
				return a.Disconnect(ctx, r, true)
			},
			golden: "disconnect-unnamed-host.golden",
		},
		{
			name: "takeover on DRBD 9 goes through drbdadm",
			proc: "drbd9.txt",
			run: func(a *Admin) error {
				return a.Disconnect(ctx, r, true)
			},
			golden: "disconnect9.golden",
		},
		{
			name: "planned switchover, old primary side",
			proc: "connected-primary.txt",
			run: func(a *Admin) error {
				return a.Secondary(ctx, r)
			},
			golden: "switchover-demote.golden",
		},
		{
			name: "planned switchover on DRBD 9",
			proc: "drbd9.txt",
			run: func(a *Admin) error {
				return errors.Join(a.Secondary(ctx, r), a.Primary(ctx, r, false))
			},
			golden: "switchover9.golden",
		},
		{
			name: "rejoin: the returning box comes up as secondary",
			run: func(a *Admin) error {
				return a.Up(ctx, r.Name)
			},
			golden: "rejoin-returning.golden",
		},
		{
			name: "rejoin: the survivor reconnects",
			run: func(a *Admin) error {
				return a.Adjust(ctx, r.Name)
			},
			golden: "rejoin-survivor.golden",
		},
		{
			name: "isolated secondary outdates itself, then everything down",
			run: func(a *Admin) error {
				return errors.Join(a.Disconnect(ctx, r, false), a.Outdate(ctx, r.Name), a.Down(ctx, r.Name))
			},
			golden: "outdate-down.golden",
		},
		{
			name: "status on DRBD 9",
			proc: "drbd9.txt",
			run: func(a *Admin) error {
				_, err := a.Status(ctx, r)
				return err
			},
			golden: "status9.golden",
		},
		{
			name: "status on 8.4 runs nothing",
			proc: "connected-primary.txt",
			run: func(a *Admin) error {
				_, err := a.Status(ctx, r)
				return err
			},
			golden: "status84.golden",
		},
		{
			name: "version without /proc/drbd",
			run: func(a *Admin) error {
				_, err := a.Version(ctx)
				return err
			},
			golden: "version-fallback.golden",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &command.Fake{Respond: func(argv []string) ([]byte, error) {
				switch strings.Join(argv, " ") {
				case "drbdsetup status --json r0":
					return os.ReadFile(filepath.Join("testdata", "status-json", "connected-primary.json"))
				case "drbdadm --version":
					return []byte(drbdadmVersion84), nil
				}
				return nil, nil
			}}
			a := NewAdmin(fake)
			a.ReadFile = fakeProc(t, tt.proc)
			a.ConfDir = t.TempDir()
			host := tt.host
			if host == "" {
				host = "san2"
			}
			a.Hostname = func() (string, error) { return host, nil }
			if err := tt.run(a); err != nil {
				t.Fatal(err)
			}
			var got string
			for _, line := range fake.Transcript() {
				got += line + "\n"
			}
			path := filepath.Join("testdata", "admin", tt.golden)
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("read golden file (run go test -update to write it): %v", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("transcript mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAdminErrors(t *testing.T) {
	ctx := context.Background()
	r0 := Resource{Name: "r0", Minor: 0, Port: 7789, Nodes: [2]Node{
		{Name: "san1", Address: netip.MustParseAddr("10.99.1.11")},
		{Name: "san2", Address: netip.MustParseAddr("fd00::12")},
	}}
	tests := []struct {
		name string
		run  func(a *Admin) error
		argv string
		fail error
		want string
	}{
		{
			name: "promote without UpToDate data",
			run:  func(a *Admin) error { return a.Primary(ctx, r0, false) },
			argv: "/lib/drbd/drbdsetup-84 primary 0",
			fail: cmdError(17, "0: State change failed: (-2) Need access to UpToDate data\n", "/lib/drbd/drbdsetup-84", "primary", "0"),
			want: `promote drbd resource "r0": /lib/drbd/drbdsetup-84 primary 0: exit 17: 0: State change failed: (-2) Need access to UpToDate data`,
		},
		{
			name: "connect a resource that is down (real 8.4 message)",
			run:  func(a *Admin) error { return a.Connect(ctx, "r0") },
			argv: "drbdadm connect r0",
			fail: cmdError(10, "r0: Failure: (158) Unknown resource\nadditional info from kernel:\nunknown resource\nCommand 'drbdsetup-84 connect r0 ipv4:192.168.50.28:7788 ipv4:192.168.50.27:7788' terminated with exit code 10\n", "drbdadm", "connect", "r0"),
			want: `connect drbd resource "r0": drbdadm connect r0: exit 10: r0: Failure: (158) Unknown resource`,
		},
		{
			name: "force-promote",
			run:  func(a *Admin) error { return a.Primary(ctx, r0, true) },
			argv: "/lib/drbd/drbdsetup-84 primary 0 --force",
			fail: cmdError(17, "boom", "/lib/drbd/drbdsetup-84", "primary", "0", "--force"),
			want: `force-promote drbd resource "r0": /lib/drbd/drbdsetup-84 primary 0 --force: exit 17: boom`,
		},
		{
			name: "force-disconnect",
			run:  func(a *Admin) error { return a.Disconnect(ctx, r0, true) },
			argv: "/lib/drbd/drbdsetup-84 disconnect ipv4:10.99.1.11:7789 ipv6:[fd00::12]:7789 --force",
			fail: cmdError(1, "boom", "/lib/drbd/drbdsetup-84", "disconnect", "ipv4:10.99.1.11:7789", "ipv6:[fd00::12]:7789", "--force"),
			want: `force-disconnect drbd resource "r0": /lib/drbd/drbdsetup-84 disconnect ipv4:10.99.1.11:7789 ipv6:[fd00::12]:7789 --force: exit 1: boom`,
		},
		{
			name: "create-md",
			run:  func(a *Admin) error { return a.CreateMD(ctx, "r0") },
			argv: "drbdadm create-md --force r0",
			fail: cmdError(20, "Device '0' is configured!", "drbdadm", "create-md", "--force", "r0"),
			want: `create meta-data for drbd resource "r0": drbdadm create-md --force r0: exit 20: Device '0' is configured!`,
		},
		{name: "demote", run: func(a *Admin) error { return a.Secondary(ctx, r0) }, argv: "/lib/drbd/drbdsetup-84 secondary 0", fail: cmdError(11, "0: State change failed: (-12) Device is held open by someone", "/lib/drbd/drbdsetup-84"), want: `demote drbd resource "r0"`},
		{name: "up", run: func(a *Admin) error { return a.Up(ctx, "r0") }, argv: "drbdadm up r0", fail: cmdError(1, "x", "drbdadm"), want: `bring up drbd resource "r0"`},
		{name: "down", run: func(a *Admin) error { return a.Down(ctx, "r0") }, argv: "drbdadm down r0", fail: cmdError(1, "x", "drbdadm"), want: `take down drbd resource "r0"`},
		{name: "outdate", run: func(a *Admin) error { return a.Outdate(ctx, "r0") }, argv: "drbdadm outdate r0", fail: cmdError(17, "x", "drbdadm"), want: `outdate drbd resource "r0"`},
		{name: "adjust", run: func(a *Admin) error { return a.Adjust(ctx, "r0") }, argv: "drbdadm adjust r0", fail: cmdError(1, "x", "drbdadm"), want: `adjust drbd resource "r0"`},
		{name: "disconnect", run: func(a *Admin) error { return a.Disconnect(ctx, r0, false) }, argv: "/lib/drbd/drbdsetup-84 disconnect ipv4:10.99.1.11:7789 ipv6:[fd00::12]:7789", fail: cmdError(1, "x", "/lib/drbd/drbdsetup-84"), want: `disconnect drbd resource "r0"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &command.Fake{Respond: func(argv []string) ([]byte, error) {
				if strings.Join(argv, " ") == tt.argv {
					return nil, tt.fail
				}
				return nil, fmt.Errorf("unexpected command %q", argv)
			}}
			a := NewAdmin(fake)
			a.ReadFile = fakeProc(t, "connected-primary.txt") // 8.4
			a.Hostname = func() (string, error) { return "san1", nil }
			err := tt.run(a)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to start with %q", err, tt.want)
			}
			var ce *command.Error
			if !errors.As(err, &ce) || ce.Code != command.ExitCode(tt.fail) {
				t.Errorf("error does not wrap the command's error: %#v", err)
			}
		})
	}
}

func TestAdminStatus(t *testing.T) {
	ctx := context.Background()
	r := safeLabResource()
	tests := []struct {
		name    string
		proc    string
		respond func(argv []string) ([]byte, error)
		minor   int
		want    Status
		wantErr string
	}{
		{
			name: "8.4 connected primary",
			proc: "connected-primary.txt",
			want: Status{Resource: "r0", Role: RolePrimary, PeerRole: RoleSecondary, Connection: ConnConnected,
				Disk: DiskUpToDate, PeerDisk: DiskUpToDate, Protocol: "C"},
		},
		{
			name:  "8.4 picks the resource's minor",
			proc:  "unconfigured-and-hole.txt",
			minor: 2,
			want:  Status{Resource: "r0", Minor: 2, Role: RoleSecondary, Connection: ConnStandAlone, Disk: DiskOutdated},
		},
		{
			name: "8.4 resource down",
			proc: "real-blog-down.txt",
			want: Status{Resource: "r0", Connection: ConnUnconfigured},
		},
		{
			name:    "module not loaded",
			proc:    "",
			wantErr: `read status of drbd resource "r0": read /proc/drbd: drbd kernel module not loaded`,
		},
		{
			name: "9 connected primary",
			proc: "drbd9.txt",
			respond: func(argv []string) ([]byte, error) {
				return os.ReadFile(filepath.Join("testdata", "status-json", "connected-primary.json"))
			},
			want: Status{Resource: "r0", Role: RolePrimary, PeerRole: RoleSecondary, Connection: ConnConnected,
				Disk: DiskUpToDate, PeerDisk: DiskUpToDate},
		},
		{
			name: "9 no such resource",
			proc: "drbd9.txt",
			respond: func(argv []string) ([]byte, error) {
				return nil, cmdError(10, "r0: No such resource\n", argv...)
			},
			want: Status{Resource: "r0", Connection: ConnUnconfigured},
		},
		{
			name: "9 drbdsetup fails",
			proc: "drbd9.txt",
			respond: func(argv []string) ([]byte, error) {
				return nil, cmdError(20, "could not connect to netlink", argv...)
			},
			wantErr: `read status of drbd resource "r0": drbdsetup status --json r0: exit 20: could not connect to netlink`,
		},
		{
			name: "9 garbage",
			proc: "drbd9.txt",
			respond: func(argv []string) ([]byte, error) {
				return []byte("r0 role:Primary\n"), nil
			},
			wantErr: `read status of drbd resource "r0": parse drbdsetup status --json`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAdmin(&command.Fake{Respond: tt.respond})
			a.ReadFile = fakeProc(t, tt.proc)
			res := r
			res.Minor = tt.minor
			got, err := a.Status(ctx, res)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to start with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAdminWriteConfig(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		r       Resource
		proc    string
		version string // drbdadm --version output when proc is ""
		want    func(Resource) []byte
		wantErr error
	}{
		{name: "8.4 syntax for the 8.4 module", r: fencedResource(), proc: "connected-primary.txt", want: Render84},
		{name: "9 syntax for DRBD 9", r: fencedResource(), proc: "drbd9.txt", want: Render9},
		{name: "module not loaded yet: drbdadm --version", r: safeLabResource(), version: drbdadmVersion84, want: Render84},
		{name: "no module at all", r: safeLabResource(), version: drbdadmVersionNone, wantErr: ErrNotLoaded},
		{name: "the lab's unsafe policy is refused", r: labResource(), proc: "connected-primary.txt", wantErr: ErrUnsafe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &command.Fake{Respond: func(argv []string) ([]byte, error) {
				return []byte(tt.version), nil
			}}
			a := NewAdmin(fake)
			a.ReadFile = fakeProc(t, tt.proc)
			a.ConfDir = filepath.Join(t.TempDir(), "drbd.d")
			path := filepath.Join(a.ConfDir, tt.r.Name+".res")
			err := a.WriteConfig(ctx, tt.r)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || !strings.HasPrefix(err.Error(), `write drbd config for resource "r0": `) {
					t.Fatalf("WriteConfig = %v, want %v", err, tt.wantErr)
				}
				if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("a config was written despite the error: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(tt.want(tt.r)), string(got)); diff != "" {
				t.Errorf("written config mismatch (-want +got):\n%s", diff)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600: the file may hold the shared secret", fi.Mode().Perm())
			}
		})
	}
}

// drbdadm --version as drbd-utils 9.22 prints it (drbdadm_main.c, case 'V');
// written from the source, not captured.
const (
	drbdadmVersion84 = "DRBDADM_BUILDTAG=GIT-hash:\\ 0000000000000000000000000000000000000000\\ build\\ by\\ @buildd,\\ 2023-01-01\\ 00:00:00\n" +
		"DRBDADM_API_VERSION=1\nDRBD_KERNEL_VERSION_CODE=0x08040b\nDRBDADM_VERSION_CODE=0x091600\nDRBDADM_VERSION=9.22.0\n"
	drbdadmVersion9 = "DRBDADM_BUILDTAG=GIT-hash:\\ 0000000000000000000000000000000000000000\\ build\\ by\\ @buildd,\\ 2023-01-01\\ 00:00:00\n" +
		"DRBDADM_API_VERSION=2\nDRBD_KERNEL_VERSION_CODE=0x09020c\nDRBD_KERNEL_VERSION=9.2.12\nDRBDADM_VERSION_CODE=0x091600\nDRBDADM_VERSION=9.22.0\n"
	drbdadmVersionNone = "DRBDADM_BUILDTAG=GIT-hash:\\ 0\nDRBDADM_API_VERSION=2\nDRBD_KERNEL_VERSION_CODE=0x000000\nDRBDADM_VERSION_CODE=0x091600\nDRBDADM_VERSION=9.22.0\n"
)

func TestParseDrbdadmVersion(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Version
		wantErr string
	}{
		{name: "8.4 module", in: drbdadmVersion84, want: Version{Major: 8, Minor: 4, Patch: 11}},
		{name: "9 module", in: drbdadmVersion9, want: Version{Major: 9, Minor: 2, Patch: 12}},
		{name: "no module", in: drbdadmVersionNone, wantErr: "drbd kernel module not loaded"},
		{name: "no code", in: "DRBDADM_VERSION=9.22.0\n", wantErr: "no DRBD_KERNEL_VERSION_CODE"},
		{name: "bad code", in: "DRBD_KERNEL_VERSION_CODE=8.4.11\n", wantErr: "want 0xMMmmpp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDrbdadmVersion([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
