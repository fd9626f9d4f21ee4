package agent

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func newAgent(t *testing.T) *Client {
	t.Helper()
	srv := httptest.NewServer((&Server{Token: "secret"}).Handler())
	t.Cleanup(srv.Close)
	return &Client{URL: srv.URL, Token: "secret", HTTP: srv.Client()}
}

func TestRunAndFiles(t *testing.T) {
	ctx := context.Background()
	c := newAgent(t)
	out, err := c.Run(ctx, "printf", "%s-%s", "a b", "c")
	if err != nil || out != "a b-c" {
		t.Fatalf("run printf: %q, %v", out, err)
	}
	res, err := c.Exec(ctx, RunRequest{Argv: []string{"cat"}, Stdin: []byte("in")})
	if err != nil || string(res.Stdout) != "in" || res.Exit != 0 {
		t.Fatalf("cat with stdin: %+v, %v", res, err)
	}
	if _, err := c.Run(ctx, "false"); err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Errorf("false: %v, want exit status 1", err)
	}
	if _, err := c.Run(ctx, "/no/such/program"); err == nil {
		t.Errorf("a missing program ran")
	}

	dir := t.TempDir()
	f := filepath.Join(dir, "f")
	if err := c.WriteFile(ctx, f, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteAttr(ctx, f, "two"); err != nil {
		t.Fatal(err)
	}
	if data, err := c.ReadFile(ctx, f, 1); err != nil || string(data) != "wo" {
		t.Errorf("read from offset 1: %q, %v", data, err)
	}
	if err := c.WriteAttr(ctx, filepath.Join(dir, "missing"), "x"); err == nil {
		t.Errorf("an attribute write created a file")
	}
	if err := c.FS(ctx, "mkdir", filepath.Join(dir, "d"), ""); err != nil {
		t.Fatal(err)
	}
	if err := c.FS(ctx, "symlink", filepath.Join(dir, "l"), "d"); err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "l")); err != nil || target != "d" {
		t.Errorf("symlink: %q, %v", target, err)
	}
	if err := c.FS(ctx, "rmdir", filepath.Join(dir, "d"), ""); err != nil {
		t.Fatal(err)
	}

	bad := *c
	bad.Token = "wrong"
	if _, err := bad.Run(ctx, "true"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong token: %v, want 401", err)
	}
}

func TestBackgroundProcess(t *testing.T) {
	ctx := context.Background()
	c := newAgent(t)
	p, err := c.Start(ctx, "sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(ctx, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, p)

	p, err = c.Start(ctx, "printf", "one\ntwo\nthree")
	if err != nil {
		t.Fatal(err)
	}
	out := waitExit(t, p)
	if len(out.Lines) != 3 || out.Lines[0].Text != "one" || out.Lines[2].Text != "three" || out.Lines[0].At == 0 {
		t.Errorf("lines %+v", out.Lines)
	}
	rest, err := p.Output(ctx, 2)
	if err != nil || len(rest.Lines) != 1 || rest.Next != 3 {
		t.Errorf("output from line 2: %+v, %v", rest, err)
	}
}

func waitExit(t *testing.T, p *Proc) ProcOutput {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := p.Output(context.Background(), 0)
		if err != nil {
			t.Fatal(err)
		}
		if out.Exited {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v still running", p.Argv)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWriteAndSumFiles(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var out bytes.Buffer
	w := &syncWriter{w: &out, after: 5, cancel: cancel}
	if err := WriteFiles(ctx, dir, 4096, time.Millisecond, 7, w); err != nil {
		t.Fatal(err)
	}
	acks := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		f := strings.Fields(l)
		if len(f) != 6 || f[0] != "ack" || f[3] != "4096" {
			t.Fatalf("writer line %q", l)
		}
		acks[f[2]] = f[4]
	}
	var sums bytes.Buffer
	if err := SumFiles(dir, &sums); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(sums.String()), "\n")
	if lines[len(lines)-1] != "sums-done "+strconv.Itoa(len(acks)) {
		t.Fatalf("sums end %q, want %d files", lines[len(lines)-1], len(acks))
	}
	for _, l := range lines[:len(lines)-1] {
		f := strings.Fields(l)
		if acks[f[1]] != f[2] {
			t.Errorf("file %s: sum %s, acknowledged %s", f[1], f[2], acks[f[1]])
		}
	}
	// different salts, different data
	a, b := make([]byte, 64), make([]byte, 64)
	fill(a, 1, 1)
	fill(b, 2, 1)
	if bytes.Equal(a, b) {
		t.Errorf("salts 1 and 2 made the same data")
	}
}

// syncWriter cancels the writer after so many lines.
type syncWriter struct {
	w      *bytes.Buffer
	after  int
	cancel context.CancelFunc
}

func (s *syncWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if strings.Count(s.w.String(), "\n") >= s.after {
		s.cancel()
	}
	return n, err
}
