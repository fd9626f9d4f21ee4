package ui

import (
	"log/slog"
	"net/http"
	"time"
)

// Limits of the API and UI server. Requests are small JSON bodies and
// forms, but for an imported ietd.conf (up to maxBody); answers are small
// but for a LUN create or an import, which may wait for lvcreate and the
// target. The CLI gives up after 2 minutes, so the write limit is longer:
// a slow change still answers the client that waits for it.
const (
	// readHeaderTimeout bounds a client that sends its headers slowly.
	readHeaderTimeout = 10 * time.Second
	// readTimeout bounds the whole request, body included: maxBody at
	// 10 KB/s.
	readTimeout = 2 * time.Minute
	// writeTimeout bounds a handler and its answer.
	writeTimeout = 5 * time.Minute
	// connIdleTimeout closes keep-alive connections nobody uses.
	connIdleTimeout = 2 * time.Minute
	// maxHeaderBytes is far above a browser's cookies and a token.
	maxHeaderBytes = 64 << 10
)

// NewServer returns the HTTP server for handler (New's) with every
// timeout set, so slow or idle clients cannot hold connections forever;
// its errors go to log (nil discards them).
func NewServer(handler http.Handler, log *slog.Logger) *http.Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       connIdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          httpErrorLog(log.With("component", "http")),
	}
}
