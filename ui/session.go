package ui

import (
	"crypto/rand"
	"encoding/base64"
	"slices"
	"sync"
	"time"
)

// Session lifetimes: a session ends after idleTimeout without a page
// view (the home page's polling does not count) or sessionMaxAge after
// the login, whichever comes first.
const (
	idleTimeout   = 30 * time.Minute
	sessionMaxAge = 12 * time.Hour
	maxSessions   = 64
)

// session is one logged-in browser. The cookie carries only its random ID;
// everything else stays on the server, so logging out ends it for good.
type session struct {
	id      string
	csrf    string
	user    string
	created time.Time
	seen    time.Time
	// flash is a one-time message for the next page, e.g. "LUN vm01
	// created".
	flash string
}

// sessions keeps the logged-in browsers in memory: a restart of sand logs
// everyone out.
type sessions struct {
	mu   sync.Mutex
	now  func() time.Time
	byID map[string]*session
}

func newSessions(now func() time.Time) *sessions {
	return &sessions{now: now, byID: map[string]*session{}}
}

// randomToken returns 256 random bits, URL-safe.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session for user, evicting the oldest beyond
// maxSessions.
func (s *sessions) create(user string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.expireLocked(now)
	if len(s.byID) >= maxSessions {
		all := make([]*session, 0, len(s.byID))
		for _, x := range s.byID {
			all = append(all, x)
		}
		slices.SortFunc(all, func(a, b *session) int { return a.seen.Compare(b.seen) })
		for _, x := range all[:len(all)-maxSessions+1] {
			delete(s.byID, x.id)
		}
	}
	sess := &session{id: randomToken(), csrf: randomToken(), user: user, created: now, seen: now}
	s.byID[sess.id] = sess
	c := *sess
	return &c
}

// get returns a copy of a live session; touch marks it as used now.
func (s *sessions) get(id string, touch bool) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[id]
	if !ok {
		return session{}, false
	}
	now := s.now()
	if now.Sub(sess.seen) > idleTimeout || now.Sub(sess.created) > sessionMaxAge {
		delete(s.byID, id)
		return session{}, false
	}
	if touch {
		sess.seen = now
	}
	return *sess, true
}

// setFlash leaves a message for the session's next page.
func (s *sessions) setFlash(id, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sess, ok := s.byID[id]; ok {
		sess.flash = msg
	}
}

// takeFlash returns and clears the session's message.
func (s *sessions) takeFlash(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.byID[id]
	if !ok {
		return ""
	}
	msg := sess.flash
	sess.flash = ""
	return msg
}

func (s *sessions) delete(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, id)
}

func (s *sessions) expireLocked(now time.Time) {
	for id, sess := range s.byID {
		if now.Sub(sess.seen) > idleTimeout || now.Sub(sess.created) > sessionMaxAge {
			delete(s.byID, id)
		}
	}
}

// Login rate limits: each client address may fail loginFailuresPerAddr
// times within loginWindow, and all clients together loginFailuresTotal
// times; beyond that logins are refused until the oldest failure leaves
// the window. bcrypt makes each guess slow too.
const (
	loginWindow          = 5 * time.Minute
	loginFailuresPerAddr = 5
	loginFailuresTotal   = 30
	maxTrackedAddrs      = 4096
)

// loginLimiter counts failed logins per client address and in total.
type loginLimiter struct {
	mu     sync.Mutex
	now    func() time.Time
	byAddr map[string][]time.Time
	all    []time.Time
}

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{now: now, byAddr: map[string][]time.Time{}}
}

// allow reports whether addr may try to log in now, and if not, how long
// it must wait.
func (l *loginLimiter) allow(addr string) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.pruneLocked(now)
	if f := l.byAddr[addr]; len(f) >= loginFailuresPerAddr {
		return false, f[len(f)-loginFailuresPerAddr].Add(loginWindow).Sub(now)
	}
	if len(l.all) >= loginFailuresTotal {
		return false, l.all[len(l.all)-loginFailuresTotal].Add(loginWindow).Sub(now)
	}
	return true, 0
}

// failed records a failed login from addr.
func (l *loginLimiter) failed(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.pruneLocked(now)
	if _, ok := l.byAddr[addr]; !ok && len(l.byAddr) >= maxTrackedAddrs {
		// Too many addresses to track one by one: the total limit still
		// holds.
		l.all = append(l.all, now)
		return
	}
	l.byAddr[addr] = append(l.byAddr[addr], now)
	l.all = append(l.all, now)
}

// succeeded forgets addr's failures.
func (l *loginLimiter) succeeded(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.byAddr, addr)
}

func (l *loginLimiter) pruneLocked(now time.Time) {
	fresh := func(ts []time.Time) []time.Time {
		i := 0
		for i < len(ts) && now.Sub(ts[i]) >= loginWindow {
			i++
		}
		return ts[i:]
	}
	l.all = fresh(l.all)
	for addr, ts := range l.byAddr {
		if ts = fresh(ts); len(ts) == 0 {
			delete(l.byAddr, addr)
		} else {
			l.byAddr[addr] = ts
		}
	}
}
