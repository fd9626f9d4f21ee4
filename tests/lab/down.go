package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Down ends every QEMU of the lab (by PID, after checking the PID is still
// that QEMU), ends the processes started in its namespaces, deletes the
// namespaces (and with them the bridges, taps and veths) and removes the
// lab directory. It then looks for anything left and reports it as an
// error. Down is idempotent: a half-made or half-removed lab goes too.
func (l *Lab) Down(ctx context.Context) error {
	var errs []error
	l.mu.Lock()
	procs := l.procs
	l.procs = nil
	l.mu.Unlock()
	for _, p := range procs {
		p.Stop()
	}
	// The witness of a lab brought up by another process.
	if pid := l.WitnessPID; pid != 0 {
		if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && strings.Contains(string(cmdline), "witness\x00--name\x00"+witnessName) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, s := range l.Boxes {
		b := l.Box(s.Name)
		if !ourQEMU(l.Name, s) {
			continue
		}
		if err := syscall.Kill(s.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill QEMU of %s (pid %d): %w", s.Name, s.PID, err))
			continue
		}
		if err := b.waitGone(10 * time.Second); err != nil {
			errs = append(errs, err)
		}
		l.log.Info("box stopped", "box", s.Name, "pid", s.PID)
	}
	if l.State.Dom0 != nil {
		if err := l.Dom0().Kill(); err != nil {
			errs = append(errs, err)
		} else {
			l.log.Info("dom0 stopped")
		}
	}
	if err := l.removeNetwork(ctx); err != nil {
		errs = append(errs, err)
	}
	if l.Dir != "" {
		if err := os.RemoveAll(l.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove lab directory: %w", err))
		}
		// REPO/out/lab goes with its last lab (Remove fails while other
		// labs use it)
		if parent := filepath.Dir(l.Dir); filepath.Base(parent) == "lab" && filepath.Base(filepath.Dir(parent)) == "out" {
			os.Remove(parent)
		}
	}
	if left := l.leftovers(); len(left) > 0 {
		errs = append(errs, fmt.Errorf("lab %s left behind: %s", l.Name, strings.Join(left, ", ")))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	l.log.Info("lab down: no namespace, tap, QEMU or file of it left", "lab", l.Name)
	return nil
}

// Supervise keeps a lab that this process brought up running: the QEMUs
// are its children and are reaped here as they end. It returns when ctx
// ends, after taking the lab down, or when another process took the lab
// down (its state file is gone).
func (l *Lab) Supervise(ctx context.Context) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return l.Down(context.Background())
		case <-tick.C:
			if _, err := os.Stat(filepath.Join(l.Dir, stateFile)); err != nil {
				l.log.Info("lab taken down by another process", "lab", l.Name)
				return nil
			}
		}
	}
}
