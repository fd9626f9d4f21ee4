package failover

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func recordingGroup(log *[]string, failStart, failStop string) *Group {
	var steps []Step
	for _, name := range []string{"drbd", "pool", "target", "vip"} {
		steps = append(steps, Step{
			Name: name,
			Start: func(context.Context) error {
				*log = append(*log, "start "+name)
				if name == failStart {
					return errors.New("boom")
				}
				return nil
			},
			Stop: func(context.Context) error {
				*log = append(*log, "stop "+name)
				if name == failStop {
					return errors.New("device busy")
				}
				return nil
			},
		})
	}
	return &Group{Steps: steps, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func TestGroupOrder(t *testing.T) {
	tests := []struct {
		name                string
		failStart, failStop string
		start               bool
		want                []string
		wantErr             bool
	}{
		{name: "start in order", start: true, want: []string{"start drbd", "start pool", "start target", "start vip"}},
		{name: "stop in reverse", want: []string{"stop vip", "stop target", "stop pool", "stop drbd"}},
		{name: "failed start rolls back", start: true, failStart: "target", wantErr: true,
			want: []string{"start drbd", "start pool", "start target", "stop target", "stop pool", "stop drbd"}},
		{name: "failed stop halts before drbd", failStop: "target", wantErr: true,
			want: []string{"stop vip", "stop target"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log []string
			g := recordingGroup(&log, tt.failStart, tt.failStop)
			var err error
			var timings []StepTiming
			if tt.start {
				timings, err = g.Start(context.Background())
			} else {
				timings, err = g.Stop(context.Background())
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if diff := cmp.Diff(tt.want, log); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
			if len(timings) != len(log) {
				t.Errorf("%d timings for %d steps", len(timings), len(log))
			}
		})
	}
}

// Background chores run after the promotion returned, in order, a failed
// one not stopping the next, and outlive the promotion's context.
func TestBackgroundChores(t *testing.T) {
	release := make(chan struct{})
	ran := make(chan string, 3)
	chore := func(name string, err error) Chore {
		return Chore{Name: name, Run: func(ctx context.Context) error {
			<-release
			if ctx.Err() != nil {
				ran <- name + " cancelled"
				return ctx.Err()
			}
			ran <- name
			return err
		}}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	step := Background(log, chore("sweep", errors.New("lvs failed")), chore("monitor", nil))
	if err := step.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel() // the promotion is over
	select {
	case n := <-ran:
		t.Fatalf("chore %s ran before the step returned", n)
	default:
	}
	close(release)
	got := []string{<-ran, <-ran}
	if diff := cmp.Diff([]string{"sweep", "monitor"}, got); diff != "" {
		t.Errorf("chores (-want +got):\n%s", diff)
	}
	if err := step.Stop(context.Background()); err != nil {
		t.Errorf("stop after the chores ended: %v", err)
	}
}

// Stopping the step (a demotion) cancels the running chore, waits for it,
// and skips the rest: no LVM command may hold the DRBD device meanwhile.
func TestBackgroundChoresEndBeforeTheDemotion(t *testing.T) {
	started := make(chan struct{})
	var ran []string
	chore := func(name string) Chore {
		return Chore{Name: name, Run: func(ctx context.Context) error {
			close(started)
			<-ctx.Done()
			time.Sleep(50 * time.Millisecond) // the command takes a moment to die
			ran = append(ran, name+" ended")
			return ctx.Err()
		}}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	step := Background(log, chore("sweep"), Chore{Name: "monitor", Run: func(context.Context) error {
		ran = append(ran, "monitor")
		return nil
	}})
	if err := step.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-started
	if err := step.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"sweep ended"}, ran); diff != "" {
		t.Errorf("chores when Stop returned (-want +got):\n%s", diff)
	}
}
