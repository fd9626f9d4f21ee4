package ui

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sand-appliance/sand/appliance"
)

// Cookie names. The session cookie holds a random session ID and nothing
// else; the login cookie holds the login form's CSRF token (double submit,
// as there is no session yet).
const (
	sessionCookie = "sand_session"
	loginCookie   = "sand_login"
	csrfHeader    = "X-CSRF-Token"
	csrfField     = "csrf"
)

// auth decides who may do what: the API token for programs, a session
// cookie for browsers.
type auth struct {
	token []byte
	// monitor is the read-only token's header value; nil when none is
	// configured.
	monitor  []byte
	account  *Account
	hasher   *hasher
	sessions *sessions
	limiter  *loginLimiter
	cop      *http.CrossOriginProtection
	now      func() time.Time
	log      *slog.Logger
}

func newAuth(opts Options) *auth {
	au := &auth{
		token:    []byte("Bearer " + opts.Token),
		account:  opts.Admin,
		hasher:   newHasher(maxHashing, maxHashWaiting, hashWait),
		sessions: newSessions(opts.Now),
		limiter:  newLoginLimiter(opts.Now),
		cop:      http.NewCrossOriginProtection(),
		now:      opts.Now,
		log:      opts.Logger,
	}
	if opts.MonitorToken != "" {
		au.monitor = []byte("Bearer " + opts.MonitorToken)
	}
	return au
}

// monitorRoutes are what the monitoring token may reach, by method and
// route pattern: /metrics and the API's reads, none of which shows a
// secret (CHAP secrets are redacted on every read). A new route stays
// closed to monitoring until it is listed here.
var monitorRoutes = map[string]bool{
	"GET /metrics":                       true,
	"GET /api/v1/status":                 true,
	"GET /api/v1/target":                 true,
	"GET /api/v1/sessions":               true,
	"GET /api/v1/luns":                   true,
	"GET /api/v1/luns/:name":             true,
	"GET /api/v1/initiator-groups":       true,
	"GET /api/v1/initiator-groups/:name": true,
	"GET /api/v1/events":                 true,
	"GET /api/v1/pair":                   true,
	"GET /api/v1/tls":                    true,
}

// unsafeMethod reports whether a request may change something.
func unsafeMethod(m string) bool {
	return m != http.MethodGet && m != http.MethodHead && m != http.MethodOptions
}

// api guards /api/v1 and /metrics: the API token, or a browser session
// whose changes carry the session's CSRF token in X-CSRF-Token and pass the
// cross-origin check.
func (au *auth) api(c *gin.Context) {
	if h := c.GetHeader("Authorization"); h != "" {
		if subtle.ConstantTimeCompare([]byte(h), au.token) == 1 {
			c.Next()
			return
		}
		if au.monitor != nil && subtle.ConstantTimeCompare([]byte(h), au.monitor) == 1 {
			method := c.Request.Method
			if method == http.MethodHead {
				method = http.MethodGet
			}
			if !monitorRoutes[method+" "+c.FullPath()] {
				fail(c, http.StatusForbidden, "the monitoring token (monitor_token) only reads: GET /metrics and the API's read routes; %s %s needs the API token (api_token)", c.Request.Method, c.Request.URL.Path)
				return
			}
			c.Next()
			return
		}
	} else if sess, ok := au.session(c, false); ok {
		if unsafeMethod(c.Request.Method) {
			if err := au.checkCSRF(c.Request, sess, c.GetHeader(csrfHeader)); err != nil {
				fail(c, http.StatusForbidden, "%s", err)
				return
			}
		}
		c.Next()
		return
	}
	c.Header("WWW-Authenticate", `Bearer realm="sand"`)
	fail(c, http.StatusUnauthorized, "missing or wrong API token: send Authorization: Bearer <token> (the api_token in sand.yaml)")
}

// session returns the request's live session; touch counts the request as
// activity that keeps the session from idling out.
func (au *auth) session(c *gin.Context, touch bool) (session, bool) {
	id, err := c.Cookie(sessionCookie)
	if err != nil || id == "" {
		return session{}, false
	}
	return au.sessions.get(id, touch)
}

// Errors of the CSRF checks, worded for the page that shows them.
var (
	errCrossOrigin = errors.New("this request came from another site and was refused")
	errCSRF        = errors.New("the form's security token is missing or out of date: reload the page and try again")
)

// checkCSRF refuses a browser's change unless it comes from this origin
// (Sec-Fetch-Site / Origin, net/http's CrossOriginProtection) and carries
// the session's CSRF token.
func (au *auth) checkCSRF(r *http.Request, sess session, token string) error {
	if err := au.cop.Check(r); err != nil {
		return errCrossOrigin
	}
	if token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(sess.csrf)) != 1 {
		return errCSRF
	}
	return nil
}

// setCookie sets a Secure, HttpOnly, SameSite=Strict cookie (sand
// answers over HTTPS only, so a browser never sends it in clear); maxAge
// < 0 deletes it, 0 makes it last until the browser closes.
func (au *auth) setCookie(c *gin.Context, name, value, path string, maxAge int) {
	http.SetCookie(c.Writer, &http.Cookie{
		Name: name, Value: value, Path: path, MaxAge: maxAge,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode,
	})
}

// Hashing limits: bcrypt takes a core for tens of milliseconds (more on
// the appliance's small CPUs), and the failover loop and serf's probes
// (100 ms timeouts) must never wait for a core behind a crowd of logins.
// One password is hashed at a time; a few more checks may wait their turn
// for up to hashWait, and beyond them a check is refused at once.
const (
	maxHashing     = 1
	maxHashWaiting = 4
	hashWait       = 2 * time.Second
)

// hasher bounds concurrent password hashing.
type hasher struct {
	slots   chan struct{} // held while hashing
	tickets chan struct{} // held while hashing or waiting to
	wait    time.Duration
}

func newHasher(slots, waiting int, wait time.Duration) *hasher {
	return &hasher{slots: make(chan struct{}, slots), tickets: make(chan struct{}, slots+waiting), wait: wait}
}

// acquire takes a hashing slot, waiting its turn if few others wait; it
// reports false when the box is too busy. Call release when done.
func (h *hasher) acquire(ctx context.Context) bool {
	select {
	case h.tickets <- struct{}{}:
	default:
		return false
	}
	t := time.NewTimer(h.wait)
	defer t.Stop()
	select {
	case h.slots <- struct{}{}:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	<-h.tickets
	return false
}

func (h *hasher) release() {
	<-h.slots
	<-h.tickets
}

// errBusy refuses a password check while others fill the hasher.
var errBusy = &rateLimitError{wait: time.Second, busy: true}

// login checks a login attempt from addr: the attempt is counted first,
// then the password is hashed in its turn. It returns the new session, or
// an error to show.
func (au *auth) login(ctx context.Context, addr, user, password string) (*session, error) {
	if au.account == nil {
		return nil, errors.New("no admin password is set on this box: set admin_password_file (a first password) or admin_password_hash (bcrypt) in /etc/sand/sand.yaml and restart sand")
	}
	at, wait := au.limiter.begin(addr)
	if at == nil {
		return nil, &rateLimitError{wait: wait}
	}
	if !au.hasher.acquire(ctx) {
		at.undo()
		au.log.Warn("login refused: the box is busy checking other logins", "from", addr)
		return nil, errBusy
	}
	ok := au.account.Check(user, password)
	au.hasher.release()
	if !ok {
		au.log.Warn("failed login", "user", user, "from", addr)
		return nil, errors.New("wrong user name or password")
	}
	at.succeeded()
	au.log.Info("login", "user", user, "from", addr)
	return au.sessions.create(user), nil
}

// changePassword changes the admin password for sess, hashing in turn
// like a login, and ends every other session: whoever held the old
// password is logged out.
func (au *auth) changePassword(ctx context.Context, sess session, current, next string) error {
	if au.account == nil {
		return fmt.Errorf("%w: no admin account is configured", appliance.ErrInvalid)
	}
	if !au.hasher.acquire(ctx) {
		return fmt.Errorf("%w: sand is busy checking logins: try again in a moment", appliance.ErrInvalid)
	}
	err := au.account.Change(current, next)
	au.hasher.release()
	if err != nil {
		return err
	}
	n := au.sessions.endOthers(sess.id)
	au.log.Info("admin password changed; other sessions ended", "user", sess.user, "ended", n)
	return nil
}

// rateLimitError refuses a login while the limits hold, or while the box
// is busy hashing other logins' passwords.
type rateLimitError struct {
	wait time.Duration
	busy bool
}

func (e *rateLimitError) Error() string {
	if e.busy {
		return "sand is busy checking other logins: try again in a second"
	}
	secs := int(e.wait.Round(time.Second) / time.Second)
	return fmt.Sprintf("too many failed logins from your address: wait %d seconds and try again", max(secs, 1))
}

func subtleEqual(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
