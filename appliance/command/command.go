// Package command is the one seam through which sand runs other programs
// (tgtadm, lvcreate, drbdadm, ...): argument lists only, never a shell, with
// LC_ALL=C so output parses the same everywhere, and errors that carry the
// command line and what it printed.
package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Runner runs a program and returns its standard output.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// Error is a command that failed: the command line, its exit code (-1 if it
// did not start or was killed) and its standard error.
type Error struct {
	Argv   []string
	Code   int
	Stderr string
	Err    error
}

func (e *Error) Error() string {
	msg := strings.TrimSpace(e.Stderr)
	if msg == "" {
		msg = e.Err.Error()
	}
	return fmt.Sprintf("%s: exit %d: %s", strings.Join(e.Argv, " "), e.Code, msg)
}

func (e *Error) Unwrap() error { return e.Err }

// ExitCode returns the exit code of a failed command, or -1 if err is not a
// command failure.
func ExitCode(err error) int {
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// SlowCommand is how long a command may take before Exec logs it: a
// failover is a chain of commands (drbdadm, vgchange, lvs), and the log
// says which of them the time went to. Only the program's name is logged:
// arguments can carry secrets (CHAP).
const SlowCommand = 150 * time.Millisecond

// Exec runs programs for real. With Log set, a command that took
// SlowCommand or longer is logged.
type Exec struct {
	Log *slog.Logger
}

func (e Exec) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	if took := time.Since(start); took >= SlowCommand && e.Log != nil {
		e.Log.Info("slow command", "cmd", name, "took", took)
	}
	if err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return stdout.Bytes(), &Error{Argv: append([]string{name}, args...), Code: code, Stderr: stderr.String(), Err: err}
	}
	return stdout.Bytes(), nil
}

// Fake records every command it is asked to run, for golden transcripts in
// unit tests, and answers from a script of responses.
type Fake struct {
	mu         sync.Mutex
	transcript []string
	// Respond, if set, answers a command line (joined by spaces) with its
	// output or an error. Unanswered commands succeed with no output.
	Respond func(argv []string) ([]byte, error)
}

func (f *Fake) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	argv := append([]string{name}, args...)
	f.mu.Lock()
	f.transcript = append(f.transcript, strings.Join(argv, " "))
	respond := f.Respond
	f.mu.Unlock()
	if respond == nil {
		return nil, nil
	}
	return respond(argv)
}

// Transcript returns the command lines run so far and forgets them.
func (f *Fake) Transcript() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.transcript
	f.transcript = nil
	return t
}
