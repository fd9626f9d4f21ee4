package pair

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sand-appliance/sand/drbd"
	"github.com/sand-appliance/sand/events"
	"github.com/sand-appliance/sand/failover"
)

// cluster is the membership as a fence sees it: a fixed view and scripted
// answers to the outdate query, one per ask (the last one repeats).
type cluster struct {
	mu      sync.Mutex
	peer    failover.MemberStatus
	witness *failover.MemberStatus // nil: no witness configured
	answers []answer
	asked   int
}

type answer struct {
	text string
	err  error
}

func (c *cluster) View(peer, witness string) (failover.Peer, failover.Witness) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := failover.Witness{Name: witness}
	if c.witness != nil {
		w.Configured, w.Member = true, *c.witness
	}
	return failover.Peer{Name: peer, Member: c.peer}, w
}

func (c *cluster) Ask(ctx context.Context, member, name string, payload []byte) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if name != failover.OutdateQuery || string(payload) != "r0" {
		return nil, fmt.Errorf("unexpected query %s %q", name, payload)
	}
	c.asked++
	a := c.answers[min(c.asked, len(c.answers))-1]
	return []byte(a.text), a.err
}

func status(s failover.MemberStatus) *failover.MemberStatus { return &s }

func TestFenceOutcomes(t *testing.T) {
	timeout := errors.New("ask san2 sand-outdate: no answer within 2s")
	tests := []struct {
		name      string
		c         *cluster
		want      drbd.FenceOutcome
		exit      int
		wantAsked int    // at least
		record    string // in the events, "" for none
	}{
		{
			name: "peer outdated its disk",
			c:    &cluster{peer: failover.MemberAlive, answers: []answer{{text: failover.OutdateDone}}},
			want: drbd.FenceOutdated, exit: 4, wantAsked: 1, record: "san2 outdated its disk",
		},
		{
			name: "peer outdates once its own link timeout passed",
			c: &cluster{peer: failover.MemberAlive, answers: []answer{
				{text: "error: disk still UpToDate, connection Connected"}, {text: "error: disk still UpToDate, connection Connected"}, {text: failover.OutdateDone}}},
			want: drbd.FenceOutdated, exit: 4, wantAsked: 3,
		},
		{
			name: "peer answers it is primary",
			c:    &cluster{peer: failover.MemberAlive, answers: []answer{{text: failover.OutdateRefused}}},
			want: drbd.FenceRefused, exit: 6, wantAsked: 1, record: "is primary and refused",
		},
		{
			name: "peer unreachable, the witness confirms it gone",
			c:    &cluster{peer: failover.MemberFailed, witness: status(failover.MemberAlive)},
			want: drbd.FenceDead, exit: 7, record: "the witness agrees: fenced",
		},
		{
			name: "peer left, the witness confirms it",
			c:    &cluster{peer: failover.MemberLeft, witness: status(failover.MemberAlive)},
			want: drbd.FenceDead, exit: 7,
		},
		{
			name: "peer unreachable without a witness: I/O stays frozen",
			c:    &cluster{peer: failover.MemberFailed},
			want: drbd.FenceUnreachable, exit: 1, record: "no witness is configured",
		},
		{
			name: "peer unreachable and the witness lost too: I/O stays frozen",
			c:    &cluster{peer: failover.MemberFailed, witness: status(failover.MemberFailed)},
			want: drbd.FenceUnreachable, exit: 1, record: "the witness is failed",
		},
		{
			name: "peer alive but its answers time out: I/O stays frozen",
			c:    &cluster{peer: failover.MemberAlive, answers: []answer{{err: timeout}}},
			want: drbd.FenceUnreachable, exit: 1, wantAsked: 2, record: "no answer within",
		},
		{
			name: "peer answers nonsense: I/O stays frozen",
			c:    &cluster{peer: failover.MemberAlive, answers: []answer{{text: "maybe"}}},
			want: drbd.FenceUnreachable, exit: 1, wantAsked: 2, record: `answered "maybe"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var recorded []string
			f := &Fence{Peer: "san2", Resource: "r0", Members: tt.c, Wait: 60 * time.Millisecond, Retry: 5 * time.Millisecond,
				Record: func(kind events.Kind, format string, args ...any) {
					recorded = append(recorded, string(kind)+": "+fmt.Sprintf(format, args...))
				}}
			if tt.c.witness != nil {
				f.Witness = "witness"
			}
			got := f.Run(context.Background())
			if got != tt.want || got.ExitCode() != tt.exit {
				t.Errorf("fence = %s (exit %d), want %s (exit %d)", got, got.ExitCode(), tt.want, tt.exit)
			}
			if tt.c.asked < tt.wantAsked {
				t.Errorf("asked the peer %d times, want at least %d", tt.c.asked, tt.wantAsked)
			}
			if tt.wantAsked == 0 && tt.c.asked > 0 {
				t.Errorf("asked a peer that is gone %d times", tt.c.asked)
			}
			all := strings.Join(recorded, "\n")
			if tt.record != "" && !strings.Contains(all, tt.record) {
				t.Errorf("events %q: want one saying %q", all, tt.record)
			}
		})
	}
}

// outdater is drbd.Admin's outdate and status, scripted.
type outdater struct {
	outdateErr error
	disk       drbd.DiskState
	outdated   bool
}

func (o *outdater) Outdate(ctx context.Context, name string) error {
	o.outdated = true
	return o.outdateErr
}

func (o *outdater) Status(ctx context.Context, r drbd.Resource) (drbd.Status, error) {
	return drbd.Status{Disk: o.disk, Connection: drbd.ConnWFConnection}, nil
}

func TestAnswerOutdate(t *testing.T) {
	tests := []struct {
		name        string
		primary     bool
		o           outdater
		want        string
		wantOutdate bool
	}{
		{name: "a primary refuses", primary: true, o: outdater{disk: drbd.DiskUpToDate}, want: failover.OutdateRefused},
		{name: "a secondary outdates", o: outdater{disk: drbd.DiskOutdated}, want: failover.OutdateDone, wantOutdate: true},
		{name: "DRBD still sees the link: not outdated yet", o: outdater{disk: drbd.DiskUpToDate}, want: "error: disk still UpToDate, connection WFConnection", wantOutdate: true},
		{name: "drbdadm outdate fails", o: outdater{outdateErr: errors.New("exit 17"), disk: drbd.DiskUpToDate}, want: "error: exit 17", wantOutdate: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := answerOutdate(context.Background(), &tt.o, drbd.Resource{Name: "r0"}, tt.primary, func(events.Kind, string, ...any) {})
			if string(got) != tt.want {
				t.Errorf("answer %q, want %q", got, tt.want)
			}
			if tt.o.outdated != tt.wantOutdate {
				t.Errorf("outdate ran: %v, want %v", tt.o.outdated, tt.wantOutdate)
			}
		})
	}
}
