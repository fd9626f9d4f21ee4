// Package client is the Go client of sand's REST API, used by the sand CLI
// and the tests; it speaks exactly what ui serves.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/drbd"
	"github.com/sand-appliance/sand/events"
	"github.com/sand-appliance/sand/iscsi"
	"github.com/sand-appliance/sand/ui"
	"github.com/sand-appliance/sand/ui/cert"
)

// Client calls one sand daemon, over HTTPS only: it never sends the token
// in clear.
type Client struct {
	BaseURL string // e.g. https://10.0.0.11:7443
	Token   string
	HTTP    *http.Client
	// peer is the fingerprint of the certificate the last answer came
	// with.
	peer atomic.Value
}

// New returns a client with a sane timeout that trusts the system's CAs;
// NewTrusted pins a certificate or trusts other CAs.
func New(baseURL, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), Token: token, HTTP: &http.Client{Timeout: 2 * time.Minute}}
}

// PeerFingerprint is the fingerprint of the certificate the server showed
// last, "" before any answer.
func (c *Client) PeerFingerprint() string {
	s, _ := c.peer.Load().(string)
	return s
}

// APIError is an error answer from the daemon.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status) }

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	if !strings.HasPrefix(c.BaseURL, "https://") {
		return fmt.Errorf("refusing to call %s: the sand API answers over HTTPS only (https://HOST:7443), and the token must not cross the network in clear", c.BaseURL)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return fmt.Errorf("build request %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("call sand API: %w", err)
	}
	defer resp.Body.Close()
	if resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		c.peer.Store(cert.Fingerprint(resp.TLS.PeerCertificates[0].Raw))
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		var e ui.Error
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	switch out := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*out = data
		return nil
	default:
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
		return nil
	}
}

func (c *Client) doJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(data)
	}
	return c.do(ctx, method, path, body, "application/json", out)
}

func (c *Client) Status(ctx context.Context) (appliance.Status, error) {
	var s appliance.Status
	return s, c.doJSON(ctx, http.MethodGet, "/api/v1/status", nil, &s)
}

func (c *Client) TargetConfig(ctx context.Context) ([]byte, error) {
	var b []byte
	return b, c.do(ctx, http.MethodGet, "/api/v1/target", nil, "", &b)
}

func (c *Client) Sessions(ctx context.Context) ([]iscsi.Session, error) {
	var s []iscsi.Session
	return s, c.doJSON(ctx, http.MethodGet, "/api/v1/sessions", nil, &s)
}

func (c *Client) LUNs(ctx context.Context) ([]ui.LUNView, error) {
	var l []ui.LUNView
	return l, c.doJSON(ctx, http.MethodGet, "/api/v1/luns", nil, &l)
}

func (c *Client) LUN(ctx context.Context, name string) (ui.LUNView, error) {
	var l ui.LUNView
	return l, c.doJSON(ctx, http.MethodGet, "/api/v1/luns/"+url.PathEscape(name), nil, &l)
}

func (c *Client) CreateLUN(ctx context.Context, req ui.CreateLUNRequest) (ui.LUNView, error) {
	var l ui.LUNView
	return l, c.doJSON(ctx, http.MethodPost, "/api/v1/luns", req, &l)
}

func (c *Client) UpdateLUN(ctx context.Context, name string, req ui.UpdateLUNRequest) (ui.LUNView, error) {
	var l ui.LUNView
	return l, c.doJSON(ctx, http.MethodPatch, "/api/v1/luns/"+url.PathEscape(name), req, &l)
}

func (c *Client) DeleteLUN(ctx context.Context, name string) error {
	return c.doJSON(ctx, http.MethodDelete, "/api/v1/luns/"+url.PathEscape(name), nil, nil)
}

func (c *Client) Groups(ctx context.Context) ([]appliance.InitiatorGroup, error) {
	var g []appliance.InitiatorGroup
	return g, c.doJSON(ctx, http.MethodGet, "/api/v1/initiator-groups", nil, &g)
}

func (c *Client) Group(ctx context.Context, name string) (appliance.InitiatorGroup, error) {
	var g appliance.InitiatorGroup
	return g, c.doJSON(ctx, http.MethodGet, "/api/v1/initiator-groups/"+url.PathEscape(name), nil, &g)
}

func (c *Client) CreateGroup(ctx context.Context, g appliance.InitiatorGroup) (appliance.InitiatorGroup, error) {
	var out appliance.InitiatorGroup
	return out, c.doJSON(ctx, http.MethodPost, "/api/v1/initiator-groups", g, &out)
}

func (c *Client) UpdateGroup(ctx context.Context, name string, u appliance.GroupUpdate) (appliance.InitiatorGroup, error) {
	var out appliance.InitiatorGroup
	return out, c.doJSON(ctx, http.MethodPatch, "/api/v1/initiator-groups/"+url.PathEscape(name), u, &out)
}

func (c *Client) DeleteGroup(ctx context.Context, name string) error {
	return c.doJSON(ctx, http.MethodDelete, "/api/v1/initiator-groups/"+url.PathEscape(name), nil, nil)
}

// Import sends an ietd.conf to be turned into registry entries.
func (c *Client) Import(ctx context.Context, conf []byte, group string, dryRun bool) ([]ui.LUNView, error) {
	q := url.Values{}
	if group != "" {
		q.Set("group", group)
	}
	if dryRun {
		q.Set("dry_run", "true")
	}
	var l []ui.LUNView
	return l, c.do(ctx, http.MethodPost, "/api/v1/import?"+q.Encode(), bytes.NewReader(conf), "text/plain", &l)
}

// Pair reads the pair's state (or says the box is standalone).
func (c *Client) Pair(ctx context.Context) (ui.PairView, error) {
	var p ui.PairView
	return p, c.doJSON(ctx, http.MethodGet, "/api/v1/pair", nil, &p)
}

// Events lists what happened, newest first.
func (c *Client) Events(ctx context.Context) ([]events.Event, error) {
	var e []events.Event
	return e, c.doJSON(ctx, http.MethodGet, "/api/v1/events", nil, &e)
}

// PairAction runs switchover, standby or resume (box names the box for the
// latter two).
func (c *Client) PairAction(ctx context.Context, action, box string) (ui.PairView, error) {
	var p ui.PairView
	var body any
	if action != "switchover" {
		body = ui.PairActionRequest{Box: box}
	}
	return p, c.doJSON(ctx, http.MethodPost, "/api/v1/pair/"+url.PathEscape(action), body, &p)
}

// FencePeer asks the local daemon to fence the peer (DRBD's fence-peer
// handler). An answer it cannot read is an error: I/O stays frozen.
func (c *Client) FencePeer(ctx context.Context) (drbd.FenceOutcome, error) {
	var a ui.FenceAnswer
	if err := c.doJSON(ctx, http.MethodPost, "/api/v1/pair/fence-peer", nil, &a); err != nil {
		return drbd.FenceUnreachable, err
	}
	return a.Outcome, nil
}

// SplitBrain reports DRBD's split brain to the local daemon.
func (c *Client) SplitBrain(ctx context.Context) error {
	return c.doJSON(ctx, http.MethodPost, "/api/v1/pair/split-brain", nil, nil)
}

// TLS shows the box's and the pair's certificates.
func (c *Client) TLS(ctx context.Context) (cert.View, error) {
	var v cert.View
	return v, c.doJSON(ctx, http.MethodGet, "/api/v1/tls", nil, &v)
}

// ReplaceTLS puts a certificate and its key (PEM) in place of the box's
// (scope cert.ScopeBox) or the pair's (cert.ScopePair).
func (c *Client) ReplaceTLS(ctx context.Context, scope string, certPEM, keyPEM []byte) (cert.View, error) {
	var v cert.View
	return v, c.doJSON(ctx, http.MethodPost, "/api/v1/tls", ui.TLSRequest{Scope: scope, Cert: string(certPEM), Key: string(keyPEM)}, &v)
}
