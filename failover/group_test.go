package failover

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

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
