package drbd

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		edit   func(r *Resource)
		want   string // "" for valid
		unsafe bool
	}{
		{name: "lab resource with a safe policy", edit: func(r *Resource) {}},
		{name: "fenced appliance resource", edit: func(r *Resource) { *r = fencedResource() }},
		{name: "ipv6 with DRBD defaults", edit: func(r *Resource) { *r = ipv6Resource() }},
		{name: "explicit protocol C", edit: func(r *Resource) { r.Protocol = "C" }},
		{name: "consensus", edit: func(r *Resource) { r.Net.AfterSB1Pri = AfterSBConsensus }},

		{name: "protocol A", edit: func(r *Resource) { r.Protocol = "A" }, want: `protocol "A"`, unsafe: true},
		{name: "protocol B", edit: func(r *Resource) { r.Protocol = "B" }, want: `protocol "B"`, unsafe: true},
		{name: "1pri discard-secondary (lost writes in the lab)", edit: func(r *Resource) { r.Net.AfterSB1Pri = AfterSBDiscardSecondary }, want: "after-sb-1pri discard-secondary", unsafe: true},
		{name: "1pri violently-as0p", edit: func(r *Resource) { r.Net.AfterSB1Pri = AfterSBViolentlyAs0p }, want: "after-sb-1pri violently-as0p", unsafe: true},
		{name: "2pri violently-as0p", edit: func(r *Resource) { r.Net.AfterSB2Pri = AfterSBViolentlyAs0p }, want: "after-sb-2pri violently-as0p", unsafe: true},
		{name: "2pri discard-secondary", edit: func(r *Resource) { r.Net.AfterSB2Pri = AfterSBDiscardSecondary }, want: "after-sb-2pri discard-secondary", unsafe: true},
		{name: "0pri discard-younger-primary", edit: func(r *Resource) { r.Net.AfterSB0Pri = AfterSBDiscardYoungerPri }, want: "after-sb-0pri discard-younger-primary", unsafe: true},
		{name: "0pri discard-older-primary", edit: func(r *Resource) { r.Net.AfterSB0Pri = AfterSBDiscardOlderPri }, want: "after-sb-0pri discard-older-primary", unsafe: true},
		{name: "0pri discard-least-changes", edit: func(r *Resource) { r.Net.AfterSB0Pri = AfterSBDiscardLeastChanges }, want: "discard-least-changes", unsafe: true},
		{name: "0pri discard-local", edit: func(r *Resource) { r.Net.AfterSB0Pri = AfterSBDiscardLocal }, want: "discard-local", unsafe: true},
		{name: "0pri discard-remote", edit: func(r *Resource) { r.Net.AfterSB0Pri = AfterSBDiscardRemote }, want: "discard-remote", unsafe: true},
		{name: "0pri consensus is not a 0pri policy", edit: func(r *Resource) { r.Net.AfterSB0Pri = AfterSBConsensus }, want: `after-sb-0pri "consensus"`},
		{name: "1pri discard-zero-changes is not a 1pri policy", edit: func(r *Resource) { r.Net.AfterSB1Pri = AfterSBDiscardZeroChanges }, want: `after-sb-1pri "discard-zero-changes"`},
		{name: "2pri made up", edit: func(r *Resource) { r.Net.AfterSB2Pri = "toss-a-coin" }, want: `after-sb-2pri "toss-a-coin"`},
		{name: "call-pri-lost-after-sb without its handler", edit: func(r *Resource) { r.Net.AfterSB1Pri = AfterSBCallPriLostAfterSB }, want: "needs a pri-lost-after-sb handler"},

		{name: "empty name", edit: func(r *Resource) { r.Name = "" }, want: `resource name ""`},
		{name: "name with a space", edit: func(r *Resource) { r.Name = "r 0" }, want: `resource name "r 0"`},
		{name: "name with a brace", edit: func(r *Resource) { r.Name = "r0{" }, want: `resource name "r0{"`},
		{name: "negative minor", edit: func(r *Resource) { r.Minor = -1 }, want: "minor -1"},
		{name: "huge minor", edit: func(r *Resource) { r.Minor = 1 << 20 }, want: "minor 1048576"},
		{name: "no port", edit: func(r *Resource) { r.Port = 0 }, want: "port 0"},
		{name: "node without a name", edit: func(r *Resource) { r.Nodes[0].Name = "" }, want: "host name"},
		{name: "node name with a semicolon", edit: func(r *Resource) { r.Nodes[1].Name = "san2;" }, want: `node 1 ("san2;")`},
		{name: "same node names", edit: func(r *Resource) { r.Nodes[1].Name = "SAN1" }, want: "both nodes are named"},
		{name: "no address", edit: func(r *Resource) { r.Nodes[0].Address = netip.Addr{} }, want: "no replication address"},
		{name: "same address", edit: func(r *Resource) { r.Nodes[1].Address = r.Nodes[0].Address }, want: "both nodes have address"},
		{name: "unspecified address", edit: func(r *Resource) { r.Nodes[1].Address = netip.IPv4Unspecified() }, want: "want a unicast address"},
		{name: "loopback", edit: func(r *Resource) { r.Nodes[1].Address = netip.MustParseAddr("127.0.0.1") }, want: "want a unicast address"},
		{name: "mixed families", edit: func(r *Resource) { r.Nodes[1].Address = netip.MustParseAddr("fd00::2") }, want: "different families"},
		{name: "zone", edit: func(r *Resource) { r.Nodes[1].Address = netip.MustParseAddr("fe80::1%eth1") }, want: "zones are not supported"},
		{name: "4in6", edit: func(r *Resource) { r.Nodes[1].Address = netip.MustParseAddr("::ffff:10.99.1.12") }, want: "plain IPv4 form"},
		{name: "relative disk", edit: func(r *Resource) { r.Nodes[0].Disk = "vda" }, want: `backing disk "vda"`},
		{name: "disk outside /dev", edit: func(r *Resource) { r.Nodes[0].Disk = "/tmp/disk.img" }, want: `backing disk "/tmp/disk.img"`},
		{name: "unclean disk path", edit: func(r *Resource) { r.Nodes[0].Disk = "/dev/../etc/passwd" }, want: "backing disk"},
		{name: "disk path with a space", edit: func(r *Resource) { r.Nodes[0].Disk = "/dev/vd a" }, want: "backing disk"},
		{name: "same node ids", edit: func(r *Resource) { r.Nodes[0].NodeID, r.Nodes[1].NodeID = 2, 2 }, want: "both nodes have node-id 2"},
		{name: "node id out of range", edit: func(r *Resource) { r.Nodes[0].NodeID = 32 }, want: "node-id 32"},

		{name: "ping-int not whole seconds", edit: func(r *Resource) { r.Net.PingInt = 2500 * time.Millisecond }, want: "ping-int 2.5s: want a multiple of 1s"},
		{name: "ping-timeout below a tenth", edit: func(r *Resource) { r.Net.PingTimeout = 50 * time.Millisecond }, want: "ping-timeout 50ms"},
		{name: "timeout too long", edit: func(r *Resource) { r.Net.Timeout = 61 * time.Second }, want: "timeout 1m1s: want 100ms-1m0s"},
		{name: "timeout not below ping-int", edit: func(r *Resource) { r.Net.Timeout = 2 * time.Second }, want: "timeout 2s must be below ping-int 2s"},
		{name: "timeout not below connect-int", edit: func(r *Resource) { r.Net.PingInt = 10 * time.Second; r.Net.Timeout = 3 * time.Second }, want: "must be below connect-int 3s"},
		{name: "default timeout with a short ping-int", edit: func(r *Resource) { r.Net.Timeout = 0; r.Net.PingInt = 5 * time.Second }, want: "timeout 6s must be below ping-int 5s"},
		{name: "connect-int too long", edit: func(r *Resource) { r.Net.ConnectInt = 121 * time.Second }, want: "connect-int 2m1s"},

		{name: "on-io-error pass_on", edit: func(r *Resource) { r.Disk.OnIOError = "pass_on" }, want: `on-io-error "pass_on"`},
		{name: "resync rate too high", edit: func(r *Resource) { r.Disk.ResyncRate = 5 << 20 }, want: "resync-rate"},
		{name: "al-extents too small", edit: func(r *Resource) { r.Disk.ALExtents = 10 }, want: "al-extents 10"},

		{name: "fencing without a fence-peer handler", edit: func(r *Resource) { r.Fencing = FencingResourceOnly }, want: "needs a fence-peer handler"},
		{name: "unknown fencing", edit: func(r *Resource) { r.Fencing = "hope" }, want: `fencing "hope"`},
		{name: "handler with a quote", edit: func(r *Resource) { r.Handlers.SplitBrain = `/bin/echo "hi"` }, want: "handler split-brain"},
		{name: "relative handler", edit: func(r *Resource) { r.Handlers.AfterResyncTarget = "sand unfence" }, want: "handler after-resync-target"},
		{name: "handler with a newline", edit: func(r *Resource) { r.Handlers.FencePeer = "/bin/true\n" }, want: "handler fence-peer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := safeLabResource()
			tt.edit(&r)
			err := r.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want an error containing %q", err, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate error does not wrap ErrInvalid: %v", err)
			}
			if got := errors.Is(err, ErrUnsafe); got != tt.unsafe {
				t.Errorf("errors.Is(err, ErrUnsafe) = %v, want %v (%v)", got, tt.unsafe, err)
			}
		})
	}
}

func TestDevice(t *testing.T) {
	if got := (Resource{Minor: 12}).Device(); got != "/dev/drbd12" {
		t.Errorf("Device() = %q", got)
	}
}
