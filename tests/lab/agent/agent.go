// Package agent is the lab's hands inside its VMs: a small HTTP server
// (sand-lab-agent serve) that the lab reaches over the front network to run
// programs by argv, to start background programs whose output it keeps
// line by line with the time each line arrived, and to read and write
// files (logs, configfs). Typing into a TCG guest's console is unreliable
// (input arrives only when more input follows), so the lab drives its
// dom0, and a box booted with the lab's hook, through this agent instead.
//
// It runs only in the lab's VMs: the product image never contains it. Every
// call needs the lab's token as a bearer token.
package agent

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Port is where the agent listens in the lab's VMs.
const Port = 7999

// RunRequest runs one program to its end.
type RunRequest struct {
	Argv  []string `json:"argv"`
	Env   []string `json:"env,omitempty"` // added to the agent's environment
	Stdin []byte   `json:"stdin,omitempty"`
	// TimeoutMS kills the program after so many milliseconds (default 10
	// minutes).
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
}

// RunResult is how a program ended. Exit is -1 when it could not start or
// was killed.
type RunResult struct {
	Stdout []byte `json:"stdout"`
	Stderr []byte `json:"stderr"`
	Exit   int    `json:"exit"`
	Err    string `json:"err,omitempty"`
	TookNS int64  `json:"took_ns"`
}

// StartRequest starts a program in the background.
type StartRequest struct {
	Argv []string `json:"argv"`
	Env  []string `json:"env,omitempty"`
}

// Line is one line a background program printed, with the agent's clock
// when it arrived.
type Line struct {
	At   int64  `json:"at"` // Unix nanoseconds
	Text string `json:"text"`
}

// ProcOutput is what a background program printed from line From on.
type ProcOutput struct {
	Lines  []Line `json:"lines"`
	Next   int    `json:"next"`
	Exited bool   `json:"exited"`
	Exit   int    `json:"exit"`
}

// FSRequest changes the file tree: mkdir, rmdir, symlink (Path -> Target),
// remove.
type FSRequest struct {
	Op     string `json:"op"`
	Path   string `json:"path"`
	Target string `json:"target,omitempty"`
}

// Server is the agent.
type Server struct {
	Token string
	Log   *slog.Logger

	mu    sync.Mutex
	procs map[string]*proc
	next  int
}

type proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []Line
	done  chan struct{}
	exit  int
}

// Handler serves the agent's API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/run", s.run)
	mux.HandleFunc("POST /v1/start", s.start)
	mux.HandleFunc("GET /v1/proc/{id}", s.output)
	mux.HandleFunc("POST /v1/proc/{id}/signal", s.signal)
	mux.HandleFunc("GET /v1/file", s.readFile)
	mux.HandleFunc("PUT /v1/file", s.writeFile)
	mux.HandleFunc("POST /v1/fs", s.fs)
	mux.HandleFunc("GET /v1/clock", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]int64{"unix_nano": time.Now().UnixNano()})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := "Bearer " + s.Token
		if s.Token == "" || subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(want)) != 1 {
			http.Error(w, "agent: wrong or missing token", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(v); err != nil {
		http.Error(w, "agent: bad request: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func (s *Server) logger() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

func command(ctx context.Context, argv, env []string) (*exec.Cmd, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("empty argv")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 5 * time.Second
	return cmd, nil
}

func (s *Server) run(w http.ResponseWriter, r *http.Request) {
	var req RunRequest
	if !readJSON(w, r, &req) {
		return
	}
	timeout := 10 * time.Minute
	if req.TimeoutMS > 0 {
		timeout = time.Duration(req.TimeoutMS) * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	var res RunResult
	cmd, err := command(ctx, req.Argv, req.Env)
	if err != nil {
		http.Error(w, "agent: "+err.Error(), http.StatusBadRequest)
		return
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdin = bytes.NewReader(req.Stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err = cmd.Run()
	res.TookNS = int64(time.Since(start))
	res.Stdout, res.Stderr = stdout.Bytes(), stderr.Bytes()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		res.Exit = exit.ExitCode()
	default:
		res.Exit, res.Err = -1, err.Error()
		if ctx.Err() != nil {
			res.Err = fmt.Sprintf("killed after %v: %v", timeout, err)
		}
	}
	s.logger().Info("run", "argv", req.Argv, "exit", res.Exit, "took", time.Duration(res.TookNS).Round(time.Millisecond))
	writeJSON(w, res)
}

func (s *Server) start(w http.ResponseWriter, r *http.Request) {
	var req StartRequest
	if !readJSON(w, r, &req) {
		return
	}
	cmd, err := command(context.Background(), req.Argv, req.Env)
	if err != nil {
		http.Error(w, "agent: "+err.Error(), http.StatusBadRequest)
		return
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		http.Error(w, "agent: "+err.Error(), http.StatusInternalServerError)
		return
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		http.Error(w, "agent: start: "+err.Error(), http.StatusBadRequest)
		return
	}
	pw.Close()
	p := &proc{cmd: cmd, done: make(chan struct{})}
	s.mu.Lock()
	if s.procs == nil {
		s.procs = map[string]*proc{}
	}
	s.next++
	id := strconv.Itoa(s.next)
	s.procs[id] = p
	s.mu.Unlock()
	go func() {
		Stamp(pr, func(l Line) {
			p.mu.Lock()
			p.lines = append(p.lines, l)
			p.mu.Unlock()
		})
		pr.Close()
		err := cmd.Wait()
		p.mu.Lock()
		p.exit = 0
		if err != nil {
			p.exit = -1
			var exit *exec.ExitError
			if errors.As(err, &exit) && exit.ExitCode() >= 0 {
				p.exit = exit.ExitCode()
			}
		}
		p.mu.Unlock()
		close(p.done)
	}()
	s.logger().Info("started", "id", id, "argv", req.Argv, "pid", cmd.Process.Pid)
	writeJSON(w, map[string]string{"id": id})
}

// Stamp reads lines from r and hands each to add with the time it arrived.
func Stamp(r io.Reader, add func(Line)) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		text, err := br.ReadString('\n')
		if len(text) > 0 {
			if text[len(text)-1] == '\n' {
				text = text[:len(text)-1]
			}
			add(Line{At: time.Now().UnixNano(), Text: text})
		}
		if err != nil {
			return
		}
	}
}

func (s *Server) proc(w http.ResponseWriter, r *http.Request) *proc {
	s.mu.Lock()
	p := s.procs[r.PathValue("id")]
	s.mu.Unlock()
	if p == nil {
		http.Error(w, "agent: no such process", http.StatusNotFound)
	}
	return p
}

func (s *Server) output(w http.ResponseWriter, r *http.Request) {
	p := s.proc(w, r)
	if p == nil {
		return
	}
	from, _ := strconv.Atoi(r.URL.Query().Get("from"))
	var out ProcOutput
	select {
	case <-p.done:
		out.Exited = true
	default:
	}
	p.mu.Lock()
	if from < 0 || from > len(p.lines) {
		from = len(p.lines)
	}
	out.Lines = append([]Line(nil), p.lines[from:]...)
	out.Next = len(p.lines)
	out.Exit = p.exit
	p.mu.Unlock()
	writeJSON(w, out)
}

func (s *Server) signal(w http.ResponseWriter, r *http.Request) {
	p := s.proc(w, r)
	if p == nil {
		return
	}
	sig, err := strconv.Atoi(r.URL.Query().Get("sig"))
	if err != nil || sig <= 0 {
		http.Error(w, "agent: sig must be a signal number", http.StatusBadRequest)
		return
	}
	select {
	case <-p.done:
	default:
		// the whole process group: a shell's children too
		if err := syscall.Kill(-p.cmd.Process.Pid, syscall.Signal(sig)); err != nil && !errors.Is(err, syscall.ESRCH) {
			http.Error(w, "agent: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	writeJSON(w, map[string]bool{"ok": true})
}

func (s *Server) readFile(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Query().Get("path")
	off, _ := strconv.ParseInt(r.URL.Query().Get("offset"), 10, 64)
	f, err := os.Open(path)
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, os.ErrNotExist) {
			code = http.StatusNotFound
		}
		http.Error(w, "agent: "+err.Error(), code)
		return
	}
	defer f.Close()
	if off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			http.Error(w, "agent: "+err.Error(), http.StatusInternalServerError)
			return
		}
	}
	// sysfs and configfs files want one read of the whole value: read into
	// memory, then answer.
	data, err := io.ReadAll(io.LimitReader(f, 64<<20))
	if err != nil {
		http.Error(w, "agent: read "+path+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(data)
}

func (s *Server) writeFile(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Query().Get("path")
	data, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, "agent: "+err.Error(), http.StatusBadRequest)
		return
	}
	// An attribute (sysfs, configfs) takes one write of its value into the
	// existing file; anything else is created or replaced.
	flag := os.O_WRONLY
	if r.URL.Query().Get("create") == "1" {
		flag |= os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flag, 0o644)
	if err == nil {
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		s.logger().Info("write", "path", path, "err", err)
		http.Error(w, "agent: write "+path+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, map[string]bool{"ok": true})
}

func (s *Server) fs(w http.ResponseWriter, r *http.Request) {
	var req FSRequest
	if !readJSON(w, r, &req) {
		return
	}
	var err error
	switch req.Op {
	case "mkdir":
		err = os.Mkdir(req.Path, 0o755)
	case "mkdirall":
		err = os.MkdirAll(req.Path, 0o755)
	case "rmdir":
		err = syscall.Rmdir(req.Path)
	case "symlink":
		err = os.Symlink(req.Target, req.Path)
	case "remove":
		err = os.Remove(req.Path)
	default:
		http.Error(w, "agent: unknown fs op "+strconv.Quote(req.Op), http.StatusBadRequest)
		return
	}
	if err != nil {
		http.Error(w, "agent: "+req.Op+" "+req.Path+": "+err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, map[string]bool{"ok": true})
}
