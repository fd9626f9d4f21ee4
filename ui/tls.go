package ui

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/ui/cert"
)

// TLS is the API's certificates: what they are, and replacing one without
// a restart (cert.Store).
type TLS interface {
	View() cert.View
	Replace(scope string, certPEM, keyPEM []byte) (cert.View, error)
}

// hstsMaxAge is a year: browsers that once reached sand over HTTPS with
// a certificate they trust (an admin's own) never try plain HTTP again.
// Browsers ignore the header over a certificate they only accepted by an
// exception, so a self-signed box stays reachable.
const hstsMaxAge = 365 * 24 * 60 * 60

// hsts sets Strict-Transport-Security on every answer over TLS.
func hsts(c *gin.Context) {
	if c.Request.TLS != nil {
		c.Header("Strict-Transport-Security", fmt.Sprintf("max-age=%d", hstsMaxAge))
	}
	c.Next()
}

// TLSRequest is the body of POST /api/v1/tls: a certificate (with any
// intermediates after it) and its private key, both PEM, for this box's
// own addresses (scope "box", the default) or the pair's VIP ("pair").
type TLSRequest struct {
	Scope string `json:"scope"`
	Cert  string `json:"cert"`
	Key   string `json:"key"`
}

// tlsError turns a refused certificate into the box's error kinds (for
// the HTTP status), worded once.
func tlsError(err error) error {
	for _, k := range []struct{ from, to error }{{cert.ErrInvalid, appliance.ErrInvalid}, {cert.ErrNotServing, appliance.ErrNotServing}} {
		if errors.Is(err, k.from) {
			return fmt.Errorf("%w: %s", k.to, strings.TrimPrefix(err.Error(), k.from.Error()+": "))
		}
	}
	return err
}

func (a *api) tlsView(c *gin.Context) {
	if a.tls == nil {
		fail(c, http.StatusNotFound, "this server keeps no certificate")
		return
	}
	c.JSON(http.StatusOK, a.tls.View())
}

func (a *api) tlsReplace(c *gin.Context) {
	var req TLSRequest
	if !decode(c, &req) {
		return
	}
	v, err := a.doReplaceTLS(req)
	if err != nil {
		failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

// doReplaceTLS checks and installs a certificate.
func (a *api) doReplaceTLS(req TLSRequest) (cert.View, error) {
	if a.tls == nil {
		return cert.View{}, fmt.Errorf("%w: this server keeps no certificate", appliance.ErrInvalid)
	}
	if strings.TrimSpace(req.Cert) == "" || strings.TrimSpace(req.Key) == "" {
		return cert.View{}, fmt.Errorf("%w: give both the certificate and its private key, PEM", appliance.ErrInvalid)
	}
	v, err := a.tls.Replace(req.Scope, []byte(req.Cert), []byte(req.Key))
	return v, tlsError(err)
}

// The web UI's certificate page.

type tlsData struct {
	View   cert.View
	Paired bool
}

func (w *web) tlsData() tlsData {
	d := tlsData{Paired: w.pair != nil}
	if w.tls != nil {
		d.View = w.tls.View()
	}
	return d
}

func (w *web) tlsPage(c *gin.Context) {
	w.render(c, http.StatusOK, "tls", w.newPage(c, "Certificate", "", w.tlsData()))
}

// tlsUpload installs a certificate from the form: pasted PEM, or files.
func (w *web) tlsUpload(c *gin.Context) {
	f := newForm("tls")
	f.Values["scope"] = c.PostForm("scope")
	req := TLSRequest{Scope: c.PostForm("scope"), Cert: c.PostForm("cert"), Key: c.PostForm("key")}
	var err error
	if req.Cert, err = formFile(c, "cert_file", req.Cert); err == nil {
		req.Key, err = formFile(c, "key_file", req.Key)
	}
	var v cert.View
	if err == nil {
		v, err = w.doReplaceTLS(req)
	}
	if err != nil {
		f.fail(err)
		w.render(c, formStatus(err), "tls", w.newPage(c, "Certificate", "", w.tlsData(), f))
		return
	}
	fp := v.Box.Fingerprint
	if req.Scope == cert.ScopePair && v.Pair != nil {
		fp = v.Pair.Fingerprint
	}
	w.done(c, "/ui/tls", "Certificate replaced: new connections get it now (fingerprint "+fp+"). Your browser may ask you to accept it.")
}

// formFile is the text of an uploaded file field, or text when none was
// sent.
func formFile(c *gin.Context, field, text string) (string, error) {
	fh, err := c.FormFile(field)
	if errors.Is(err, http.ErrMissingFile) || errors.Is(err, http.ErrNotMultipart) || err == nil && fh.Size == 0 {
		return text, nil
	}
	if err != nil {
		return "", fmt.Errorf("%w: read the uploaded %s: %v", appliance.ErrInvalid, field, err)
	}
	return readFormFile(fh)
}

func readFormFile(fh *multipart.FileHeader) (string, error) {
	f, err := fh.Open()
	if err != nil {
		return "", fmt.Errorf("%w: read the uploaded %s: %v", appliance.ErrInvalid, fh.Filename, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBody))
	if err != nil {
		return "", fmt.Errorf("%w: read the uploaded %s: %v", appliance.ErrInvalid, fh.Filename, err)
	}
	return string(data), nil
}

// Redirect is the plain-HTTP port's whole handler: every request, whatever
// its method, path or headers, gets a permanent redirect (308, which keeps
// the method) to the same path on the HTTPS port, with an empty body. It
// reads nothing else of the request: no API, no UI, no token or cookie is
// looked at. A request that carried a token is logged (at most once a
// minute): the token crossed the network in clear.
func Redirect(httpsPort string, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var lastWarn atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			now := time.Now().Unix()
			if last := lastWarn.Load(); now-last >= 60 && lastWarn.CompareAndSwap(last, now) {
				log.Warn("a plain-HTTP request carried a token: it crossed the network in clear and was not looked at; use https:// and rotate the token if the network is not yours",
					"from", r.RemoteAddr)
			}
		}
		h := w.Header()
		h.Set("Location", "https://"+net.JoinHostPort(redirectHost(r), httpsPort)+redirectPath(r))
		h.Set("Content-Length", "0")
		h.Set("Connection", "close")
		w.WriteHeader(http.StatusPermanentRedirect)
	})
}

// redirectHost is the host the client asked for, when it is a plain name
// or address, else the address the request arrived at.
func redirectHost(r *http.Request) string {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if a, err := netip.ParseAddr(host); err == nil && a.Zone() == "" {
		return a.String()
	}
	if validHostName(host) {
		return strings.ToLower(host)
	}
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if h, _, err := net.SplitHostPort(la.String()); err == nil {
			return h
		}
	}
	return "localhost"
}

// validHostName reports whether s is a DNS name: labels of letters,
// digits and hyphens.
func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, ch := range label {
			if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-') {
				return false
			}
		}
	}
	return true
}

// redirectPath is the request's path and query, or / when it has none
// (OPTIONS *, an absolute URL without a path).
func redirectPath(r *http.Request) string {
	p := r.URL.EscapedPath()
	if !strings.HasPrefix(p, "/") {
		p = "/"
	}
	if r.URL.RawQuery != "" {
		p += "?" + r.URL.RawQuery
	}
	return p
}

// NewRedirectServer is the plain-HTTP server of Redirect, with short
// limits: it answers from the request line and headers alone.
func NewRedirectServer(httpsPort string, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:           Redirect(httpsPort, log),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       10 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          httpErrorLog(log.With("component", "http-redirect")),
	}
}

// httpErrorLog is net/http's error log into slog: warnings, but for failed
// TLS handshakes, which are debug. A client that trusts sand by a pinned
// fingerprint (the CLI, the lab) fetches the certificate first and stops
// that handshake itself, and scanners do the like: neither is sand's
// problem, and at WARN they would flood the journal.
func httpErrorLog(log *slog.Logger) *stdlog.Logger {
	return stdlog.New(levelWriter{log}, "", 0)
}

type levelWriter struct{ log *slog.Logger }

func (w levelWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	level := slog.LevelWarn
	if strings.HasPrefix(msg, "http: TLS handshake error") {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, msg)
	return len(p), nil
}
