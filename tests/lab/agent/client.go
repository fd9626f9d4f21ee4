package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Client calls an agent.
type Client struct {
	URL   string // http://ADDR:7999
	Token string
	HTTP  *http.Client
}

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.URL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("agent %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("agent %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("agent %s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
	}
	if out == nil {
		return nil
	}
	if b, ok := out.(*[]byte); ok {
		*b = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("agent %s %s: %w", method, path, err)
	}
	return nil
}

func (c *Client) post(ctx context.Context, path string, in, out any) error {
	data, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, path, bytes.NewReader(data), out)
}

// Exec runs a program to its end and returns how it ended; the error is
// only about reaching the agent.
func (c *Client) Exec(ctx context.Context, req RunRequest) (RunResult, error) {
	if req.TimeoutMS == 0 {
		if dl, ok := ctx.Deadline(); ok {
			req.TimeoutMS = max(1, time.Until(dl).Milliseconds())
		}
	}
	var res RunResult
	err := c.post(ctx, "/v1/run", req, &res)
	return res, err
}

// Run runs argv and returns its standard output; a program that fails
// (start error, exit status not 0) is an error that carries its argv and
// standard error.
func (c *Client) Run(ctx context.Context, argv ...string) (string, error) {
	res, err := c.Exec(ctx, RunRequest{Argv: argv})
	if err != nil {
		return "", err
	}
	return string(res.Stdout), res.Error(argv)
}

// Error is nil when the program exited 0, else it names the program and
// says how it ended.
func (r RunResult) Error(argv []string) error {
	if r.Exit == 0 && r.Err == "" {
		return nil
	}
	msg := fmt.Sprintf("exit status %d", r.Exit)
	if r.Err != "" {
		msg = r.Err
	}
	out := strings.TrimSpace(string(r.Stderr))
	if out == "" {
		out = strings.TrimSpace(string(r.Stdout))
	}
	if len(out) > 2000 {
		out = "..." + out[len(out)-2000:]
	}
	return fmt.Errorf("%s: %s: %s", strings.Join(argv, " "), msg, out)
}

// Proc is a program the agent runs in the background.
type Proc struct {
	c    *Client
	ID   string
	Argv []string
}

// Start starts argv in the background (in a process group of its own).
func (c *Client) Start(ctx context.Context, argv ...string) (*Proc, error) {
	var out struct{ ID string }
	if err := c.post(ctx, "/v1/start", StartRequest{Argv: argv}, &out); err != nil {
		return nil, err
	}
	return &Proc{c: c, ID: out.ID, Argv: argv}, nil
}

// Output returns the lines the program printed from line from on.
func (p *Proc) Output(ctx context.Context, from int) (ProcOutput, error) {
	var out ProcOutput
	err := p.c.do(ctx, http.MethodGet, "/v1/proc/"+p.ID+"?from="+strconv.Itoa(from), nil, &out)
	return out, err
}

// Signal sends sig to the program's process group.
func (p *Proc) Signal(ctx context.Context, sig syscall.Signal) error {
	return p.c.post(ctx, "/v1/proc/"+p.ID+"/signal?sig="+strconv.Itoa(int(sig)), struct{}{}, nil)
}

// ReadFile reads a file from offset on.
func (c *Client) ReadFile(ctx context.Context, path string, offset int64) ([]byte, error) {
	var data []byte
	err := c.do(ctx, http.MethodGet, "/v1/file?path="+url.QueryEscape(path)+"&offset="+strconv.FormatInt(offset, 10), nil, &data)
	return data, err
}

// WriteAttr writes value into an existing file in one write, as sysfs and
// configfs attributes want.
func (c *Client) WriteAttr(ctx context.Context, path, value string) error {
	return c.do(ctx, http.MethodPut, "/v1/file?path="+url.QueryEscape(path), strings.NewReader(value), nil)
}

// WriteFile creates or replaces a file.
func (c *Client) WriteFile(ctx context.Context, path string, data []byte) error {
	return c.do(ctx, http.MethodPut, "/v1/file?create=1&path="+url.QueryEscape(path), bytes.NewReader(data), nil)
}

// FS changes the file tree (see FSRequest).
func (c *Client) FS(ctx context.Context, op, path, target string) error {
	return c.post(ctx, "/v1/fs", FSRequest{Op: op, Path: path, Target: target}, nil)
}

// Clock returns the agent's clock and when the question was sent and the
// answer came back, by the caller's clock.
func (c *Client) Clock(ctx context.Context) (agentTime, sent, recv time.Time, err error) {
	var out struct {
		UnixNano int64 `json:"unix_nano"`
	}
	sent = time.Now()
	err = c.do(ctx, http.MethodGet, "/v1/clock", nil, &out)
	recv = time.Now()
	return time.Unix(0, out.UnixNano), sent, recv, err
}
