package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Step is one resource of the resource group: started in order on
// promotion, stopped in reverse order on demotion. Both functions must be
// idempotent: a retried promotion runs them again.
type Step struct {
	Name  string
	Start func(ctx context.Context) error
	Stop  func(ctx context.Context) error
}

// StepTiming is how long one step took, for the events log.
type StepTiming struct {
	Step string
	Took time.Duration
	Err  error
}

// Group is the ordered resource group of a primary: e.g. DRBD primary ->
// pool -> registry and target -> VIP.
type Group struct {
	Steps []Step
	Log   *slog.Logger
}

// Start starts every step in order. If one fails, it and the steps
// already started are stopped again in reverse order, so a failed
// promotion leaves the box as it was (secondary, no VIP, no target). The
// failed step is stopped too: it may have got half way (a volume group
// whose thin pool failed its check still holds the DRBD device open, and
// DRBD then refuses to demote: seen in the VM lab).
func (g *Group) Start(ctx context.Context) ([]StepTiming, error) {
	var timings []StepTiming
	for i, s := range g.Steps {
		t0 := time.Now()
		err := s.Start(ctx)
		timings = append(timings, StepTiming{Step: "start " + s.Name, Took: time.Since(t0), Err: err})
		if err == nil {
			g.Log.Info("resource started", "step", s.Name, "took", time.Since(t0))
			continue
		}
		g.Log.Error("resource failed to start; rolling back", "step", s.Name, "err", err)
		rollback, rerr := g.stop(ctx, g.Steps[:i+1])
		timings = append(timings, rollback...)
		err = fmt.Errorf("start %s: %w", s.Name, err)
		if rerr != nil {
			err = errors.Join(err, fmt.Errorf("roll back: %w", rerr))
		}
		return timings, err
	}
	return timings, nil
}

// Stop stops every step in reverse order. It stops at the first failure:
// a step below a failed one must not run (DRBD must not be demoted while
// the target still holds its device).
func (g *Group) Stop(ctx context.Context) ([]StepTiming, error) {
	return g.stop(ctx, g.Steps)
}

func (g *Group) stop(ctx context.Context, steps []Step) ([]StepTiming, error) {
	var timings []StepTiming
	for i := len(steps) - 1; i >= 0; i-- {
		s := steps[i]
		t0 := time.Now()
		err := s.Stop(ctx)
		timings = append(timings, StepTiming{Step: "stop " + s.Name, Took: time.Since(t0), Err: err})
		if err != nil {
			g.Log.Error("resource failed to stop", "step", s.Name, "err", err)
			return timings, fmt.Errorf("stop %s: %w", s.Name, err)
		}
		g.Log.Info("resource stopped", "step", s.Name, "took", time.Since(t0))
	}
	return timings, nil
}

// Background is the group's last step: chores that follow serving but
// that no initiator waits for (removing orphan volumes, thin-pool
// monitoring), run in the background one after the other, each given a
// minute, once ChoreDelay has passed. A failed chore is logged; it never
// fails the promotion. Stopping the step cancels the chores and waits for
// the one running: an LVM command still scanning the DRBD device would
// make DRBD refuse to demote.
func Background(log *slog.Logger, chores ...Chore) Step {
	var mu sync.Mutex
	var cancel context.CancelFunc
	var done chan struct{}
	return Step{
		Name: "background chores",
		Start: func(ctx context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			if done != nil {
				return nil // running already (an adopted primary)
			}
			var cctx context.Context
			cctx, cancel = context.WithCancel(context.WithoutCancel(ctx))
			done = make(chan struct{})
			go runChores(cctx, log, done, chores)
			return nil
		},
		Stop: func(ctx context.Context) error {
			mu.Lock()
			defer mu.Unlock()
			if done == nil {
				return nil
			}
			cancel()
			select {
			case <-done:
			case <-ctx.Done():
				return fmt.Errorf("wait for the background chores to end: %w", ctx.Err())
			}
			done = nil
			return nil
		},
	}
}

func runChores(ctx context.Context, log *slog.Logger, done chan<- struct{}, chores []Chore) {
	defer close(done)
	select {
	case <-ctx.Done():
		return
	case <-time.After(ChoreDelay):
	}
	for _, c := range chores {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		t0 := time.Now()
		err := c.Run(cctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			log.Info("background chore cancelled: the box demotes", "chore", c.Name)
			return
		case err != nil:
			log.Warn("background chore failed", "chore", c.Name, "err", err)
		default:
			log.Info("background chore done", "chore", c.Name, "took", time.Since(t0))
		}
	}
}

// ChoreDelay leaves the CPU to the initiators' reconnects (tickled a
// moment before) ahead of the chores: on a one-CPU box an lvs started at
// once competes with the logins.
const ChoreDelay = 2 * time.Second

// Chore is one background job of a primary.
type Chore struct {
	Name string
	Run  func(ctx context.Context) error
}
