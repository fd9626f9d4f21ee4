package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sand-appliance/sand/ui/cert"
	"github.com/sand-appliance/sand/ui/client"
)

// The lab trusts each box's API certificate by the fingerprint the box
// reports (sand-report, out through the virtio port: the box's own word,
// not the network's), and the pair's VIP certificate by what a box it
// trusts says over its API. Nothing skips verification.

// DialContext dials from inside the lab namespace.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return dialInNetns(ctx, nsPath(h.Name), network, addr)
}

// Fingerprint is the fingerprint of the box's API certificate as the box
// reported it this boot; "" until it has.
func (b *Box) Fingerprint() string {
	data, err := os.ReadFile(b.state().Report)
	if err != nil {
		return ""
	}
	line, _, ok := bytes.Cut(data, []byte("\n"))
	if !ok {
		return ""
	}
	var r Report
	if json.Unmarshal(line, &r) != nil {
		return ""
	}
	return r.TLSFingerprint
}

// Trust pins the box's certificate.
func (b *Box) Trust() client.Trust { return client.Trust{Fingerprints: []string{b.Fingerprint()}} }

// HTTPClient is an HTTP client of the box's API from the lab namespace,
// trusting the box's certificate only, following no redirect.
func (b *Box) HTTPClient(timeout time.Duration) *http.Client {
	return pinnedClient(b.lab.Host(), timeout, b.Fingerprint())
}

func pinnedClient(from *Host, timeout time.Duration, fps ...string) *http.Client {
	var pins []string
	for _, fp := range fps {
		if fp != "" {
			pins = append(pins, fp)
		}
	}
	if len(pins) == 0 {
		// No fingerprint yet: a client that refuses every server.
		pins = []string{cert.Fingerprint(nil)}
	}
	tr, err := client.Trust{Fingerprints: pins}.Transport(from.DialContext)
	if err != nil {
		panic(err) // the fingerprints are sand's own
	}
	tr.MaxIdleConnsPerHost = 2
	tr.IdleConnTimeout = 30 * time.Second
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// VIPURL is the pair's API through the VIP.
func VIPURL() string { return "https://" + net.JoinHostPort(VIP().String(), strconv.Itoa(APIPort)) }

// vipFingerprintFile keeps the pair's certificate's fingerprint once
// learned: the certificate lives on the replicated volume, so it outlives
// the boxes' reboots.
const vipFingerprintFile = "vip-fingerprint"

// VIPFingerprint is the fingerprint of the pair's certificate (served on
// the VIP), as the serving box says over its API (trusted by the box's
// reported fingerprint). It waits up to timeout for a box to serve.
func (l *Lab) VIPFingerprint(ctx context.Context, timeout time.Duration) (string, error) {
	path := filepath.Join(l.Dir, vipFingerprintFile)
	if data, err := os.ReadFile(path); err == nil {
		if fp, err := cert.ParseFingerprint(strings.TrimSpace(string(data))); err == nil {
			return fp, nil
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error = errors.New("no box answered")
	for {
		for _, n := range l.Names() {
			v, err := l.Box(n).API().TLS(ctx)
			if err != nil {
				last = fmt.Errorf("%s: %w", n, err)
				continue
			}
			if v.Pair != nil {
				if err := os.WriteFile(path, []byte(v.Pair.Fingerprint+"\n"), 0o644); err != nil {
					return "", err
				}
				return v.Pair.Fingerprint, nil
			}
			last = fmt.Errorf("%s does not serve the pair's certificate (not primary)", n)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("the pair's VIP certificate: waited %v for a primary: %v", timeout, last)
		case <-time.After(time.Second):
		}
	}
}

// VIPAPI is a client of the pair's API through the VIP, trusting the
// pair's certificate. Each call connects afresh, as the sand CLI does: a
// kept-alive connection to the old primary gets a RST once the VIP moves.
func (l *Lab) VIPAPI(ctx context.Context, timeout time.Duration) (*client.Client, error) {
	fp, err := l.VIPFingerprint(ctx, 5*time.Minute)
	if err != nil {
		return nil, err
	}
	c := client.New(VIPURL(), l.Token)
	c.HTTP = pinnedClient(l.Host(), timeout, fp)
	c.HTTP.Transport.(*http.Transport).DisableKeepAlives = true
	return c, nil
}

// Forward listens on listen, an address of this machine's loopback (e.g.
// 127.0.0.1:7443), and carries every TCP connection to target inside the
// lab namespace (the VIP's HTTPS port), so a browser on this machine
// reaches the web UI. The TLS is end to end: the browser sees the box's
// certificate. It stops when ctx ends; Wait on the returned forwarder
// joins its goroutines.
func (l *Lab) Forward(ctx context.Context, listen, target string) (*Forwarder, error) {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("forward %s: %w", listen, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("forward %s: listen on a loopback address only (127.0.0.1:PORT): the lab is for this machine", listen)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("forward the web UI: %w", err)
	}
	h := l.Host()
	return forward(ctx, ln, func(ctx context.Context) (net.Conn, error) { return h.DialContext(ctx, "tcp", target) }), nil
}

// Forwarder carries connections from a listener to a dialed target.
type Forwarder struct {
	Addr net.Addr
	wg   sync.WaitGroup
}

// Wait returns once the forwarder has stopped and every connection it
// carried is closed.
func (f *Forwarder) Wait() { f.wg.Wait() }

func forward(ctx context.Context, ln net.Listener, dial func(context.Context) (net.Conn, error)) *Forwarder {
	f := &Forwarder{Addr: ln.Addr()}
	ctx, cancel := context.WithCancel(ctx)
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		<-ctx.Done()
		ln.Close()
	}()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer cancel()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				defer in.Close()
				dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
				out, err := dial(dctx)
				dcancel()
				if err != nil {
					return
				}
				defer out.Close()
				// Either side ending (or the forwarder stopping) ends both.
				done := make(chan struct{}, 2)
				go func() { io.Copy(out, in); done <- struct{}{} }()
				go func() { io.Copy(in, out); done <- struct{}{} }()
				select {
				case <-done:
				case <-ctx.Done():
				}
				in.Close()
				out.Close()
				<-done
				<-done
			}()
		}
	}()
	return f
}
