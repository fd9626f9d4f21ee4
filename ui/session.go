package ui

import (
	"crypto/rand"
	"encoding/base64"
	"net/netip"
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

// endOthers ends every session but keep (e.g. the one that changed the
// password) and returns how many it ended.
func (s *sessions) endOthers(keep string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id := range s.byID {
		if id != keep {
			delete(s.byID, id)
			n++
		}
	}
	return n
}

// Login limits, per client address (an IPv6 client by its /64, which one
// host usually holds whole). Each attempt counts when it begins, before
// its password is hashed: the first loginFreeAttempts cost nothing, each
// one after them makes the address wait before its next attempt, 1 s
// doubling up to loginMaxBackoff. A successful login clears the address;
// loginForget after its last attempt an address starts afresh. There is
// no limit across addresses, so failures from elsewhere never lock the
// admin out; bcrypt's cost and the one-at-a-time hashing (hasher) bound
// what guessing from many addresses can do.
const (
	loginFreeAttempts = 3
	loginMaxBackoff   = 5 * time.Minute
	loginForget       = 15 * time.Minute
	maxTrackedAddrs   = 4096
)

// loginBackoff is the wait after an address's nth attempt in a row.
func loginBackoff(n int) time.Duration {
	if n <= loginFreeAttempts {
		return 0
	}
	shift := n - loginFreeAttempts - 1
	if shift >= 9 { // 2^9 s is past the cap
		return loginMaxBackoff
	}
	return min(time.Second<<shift, loginMaxBackoff)
}

// loginLimiter keeps each address's attempts since its last success.
type loginLimiter struct {
	mu     sync.Mutex
	now    func() time.Time
	byAddr map[string]*addrAttempts
}

type addrAttempts struct {
	n    int       // attempts since the last success
	next time.Time // no attempt before this
	last time.Time // the latest attempt
}

func newLoginLimiter(now func() time.Time) *loginLimiter {
	return &loginLimiter{now: now, byAddr: map[string]*addrAttempts{}}
}

// limitKey is what the limits count by: the address, or an IPv6
// address's /64.
func limitKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// attempt is one login attempt, counted at begin.
type attempt struct {
	l        *loginLimiter
	key      string
	n        int
	prevNext time.Time
}

// begin counts an attempt from addr, or says how long addr must wait.
func (l *loginLimiter) begin(addr string) (*attempt, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	key := limitKey(addr)
	a := l.byAddr[key]
	if a != nil && now.Sub(a.last) >= loginForget {
		a = nil
		delete(l.byAddr, key)
	}
	if a != nil && now.Before(a.next) {
		return nil, a.next.Sub(now)
	}
	if a == nil {
		l.makeRoomLocked(now)
		a = &addrAttempts{}
		l.byAddr[key] = a
	}
	at := &attempt{l: l, key: key, prevNext: a.next}
	a.n++
	a.last = now
	a.next = now.Add(loginBackoff(a.n))
	at.n = a.n
	return at, 0
}

// succeeded clears the attempt's address.
func (at *attempt) succeeded() {
	at.l.mu.Lock()
	defer at.l.mu.Unlock()
	delete(at.l.byAddr, at.key)
}

// undo takes back an attempt that never reached the password check (the
// box was too busy to hash it).
func (at *attempt) undo() {
	at.l.mu.Lock()
	defer at.l.mu.Unlock()
	a := at.l.byAddr[at.key]
	if a == nil || a.n == 0 {
		return
	}
	a.n--
	if a.n == at.n-1 {
		a.next = at.prevNext
	}
}

// makeRoomLocked keeps the table under maxTrackedAddrs: forgotten
// addresses go first, then the one whose latest attempt is oldest.
func (l *loginLimiter) makeRoomLocked(now time.Time) {
	if len(l.byAddr) < maxTrackedAddrs {
		return
	}
	oldest, oldestKey := now, ""
	for k, a := range l.byAddr {
		if now.Sub(a.last) >= loginForget {
			delete(l.byAddr, k)
			continue
		}
		if a.last.Before(oldest) || oldestKey == "" {
			oldest, oldestKey = a.last, k
		}
	}
	if len(l.byAddr) >= maxTrackedAddrs {
		delete(l.byAddr, oldestKey)
	}
}
