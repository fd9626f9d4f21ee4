package ui

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLoginBackoffPerAddress: each address gets a few free attempts, then
// waits longer after each failure; its waits never touch another address,
// however many addresses fail.
func TestLoginBackoffPerAddress(t *testing.T) {
	f := newWebFixture(t)
	const attacker, admin = "192.0.2.7:40000", "192.0.2.8:40000"
	for i := range loginFreeAttempts + 1 {
		rec := f.loginAttempt(attacker, "guess")
		if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "Wrong user name or password") || cookieNamed(rec, sessionCookie) != nil {
			t.Fatalf("failure %d: %d %s", i+1, rec.Code, rec.Body)
		}
	}
	// Now even the right password waits a second...
	rec := f.loginAttempt(attacker, webPassword)
	if rec.Code != http.StatusTooManyRequests || cookieNamed(rec, sessionCookie) != nil || rec.Header().Get("Retry-After") != "2" {
		t.Fatalf("attempt during the backoff: %d %v", rec.Code, rec.Header())
	}
	if !strings.Contains(rec.Body.String(), "Too many failed logins from your address: wait 1 seconds") {
		t.Errorf("backoff message: %s", rec.Body)
	}
	// ...but another address does not.
	if rec := f.loginAttempt(admin, webPassword); rec.Code != http.StatusSeeOther {
		t.Errorf("login from another address: %d", rec.Code)
	}
	// Each failure doubles the wait.
	for i, wait := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second} {
		f.clock.add(wait)
		if rec := f.loginAttempt(attacker, "guess"); rec.Code != http.StatusOK {
			t.Fatalf("attempt %d after waiting %v: %d", i, wait, rec.Code)
		}
		if rec := f.loginAttempt(attacker, "guess"); rec.Code != http.StatusTooManyRequests {
			t.Fatalf("attempt %d without waiting: %d", i, rec.Code)
		}
	}
	if rec := f.loginAttempt(attacker, webPassword); rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "9" {
		t.Errorf("attempt during an 8 s backoff: %d %v", rec.Code, rec.Header())
	}
	// The wait is capped, and a success clears the address.
	if got := loginBackoff(100); got != loginMaxBackoff {
		t.Errorf("backoff after 100 failures: %v", got)
	}
	f.clock.add(8 * time.Second)
	if rec := f.loginAttempt(attacker, webPassword); rec.Code != http.StatusSeeOther {
		t.Fatalf("login after the backoff: %d", rec.Code)
	}
	for range loginFreeAttempts {
		f.loginAttempt(attacker, "guess")
	}
	if rec := f.loginAttempt(attacker, webPassword); rec.Code != http.StatusSeeOther {
		t.Errorf("a success did not clear the address's failures: %d", rec.Code)
	}
	// An IPv6 client is one /64.
	for i := range loginFreeAttempts + 1 {
		f.loginAttempt(fmt.Sprintf("[2001:db8:1:2::%x]:1", i+1), "guess")
	}
	if rec := f.loginAttempt("[2001:db8:1:2::ffff]:1", webPassword); rec.Code != http.StatusTooManyRequests {
		t.Errorf("another address of the same /64 during its backoff: %d", rec.Code)
	}
	// No global lockout: failures from many addresses leave the admin's
	// login alone.
	for i := range 100 {
		for range loginFreeAttempts + 2 {
			f.loginAttempt(fmt.Sprintf("198.51.100.%d:1", i), "guess")
		}
	}
	if rec := f.loginAttempt("203.0.113.1:1", webPassword); rec.Code != http.StatusSeeOther {
		t.Errorf("login after 500 failures from 100 other addresses: %d", rec.Code)
	}
	// After loginForget an address starts afresh.
	f.clock.add(loginForget)
	if rec := f.loginAttempt("198.51.100.1:1", webPassword); rec.Code != http.StatusSeeOther {
		t.Errorf("login long after the failures: %d", rec.Code)
	}
}

func TestLoginLimiterTableIsBounded(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	l := newLoginLimiter(func() time.Time { return now })
	for i := range maxTrackedAddrs + 100 {
		now = now.Add(time.Millisecond)
		if at, _ := l.begin(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)); at == nil {
			t.Fatalf("first attempt of address %d refused", i)
		}
	}
	if n := len(l.byAddr); n > maxTrackedAddrs {
		t.Errorf("the limiter tracks %d addresses", n)
	}
}

// slowCompare stands in for bcrypt: it takes a while and records how many
// checks run at once.
type slowCompare struct {
	running, most, calls atomic.Int32
	took                 time.Duration
}

func (s *slowCompare) compare(hash, password []byte) error {
	n := s.running.Add(1)
	defer s.running.Add(-1)
	s.calls.Add(1)
	for {
		m := s.most.Load()
		if n <= m || s.most.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(s.took)
	if string(password) == webPassword {
		return nil
	}
	return fmt.Errorf("wrong password")
}

// loginStorm sends n wrong logins at once, from addr(i), and returns their
// statuses and how long each took.
func loginStorm(f *webFixture, n int, addr func(i int) string) (codes []int, took []time.Duration, retryAfter []string) {
	codes, took, retryAfter = make([]int, n), make([]time.Duration, n), make([]string, n)
	pages := make([]*httptest.ResponseRecorder, n)
	for i := range n {
		pages[i] = f.do(request{method: "GET", path: "/ui/login", remote: addr(i)})
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			form := url.Values{"user": {AdminUser}, "password": {"guess"}, "csrf": {csrfInput.FindStringSubmatch(pages[i].Body.String())[1]}}
			<-start
			t0 := time.Now()
			rec := f.do(request{method: "POST", path: "/ui/login", remote: addr(i), cookies: []*http.Cookie{cookieNamed(pages[i], loginCookie)}, form: form})
			codes[i], took[i], retryAfter[i] = rec.Code, time.Since(t0), rec.Header().Get("Retry-After")
		})
	}
	close(start)
	wg.Wait()
	return codes, took, retryAfter
}

// TestParallelLoginsHashOneAtATime: 200 wrong logins at once, from one
// address and then from 200, never hash more than maxHashing passwords at
// once (bcrypt must leave the failover loop a core); most are refused at
// once with 429 and Retry-After, and the admin logs in from another
// address meanwhile.
func TestParallelLoginsHashOneAtATime(t *testing.T) {
	slow := &slowCompare{took: 50 * time.Millisecond}
	f := newWebFixture(t, func(o *Options) { o.Admin.compare = slow.compare })
	check := func(name string, codes []int, took []time.Duration, retryAfter []string, minRefused int) {
		t.Helper()
		refused, wrong := 0, 0
		for i, code := range codes {
			switch code {
			case http.StatusTooManyRequests:
				refused++
				if retryAfter[i] == "" {
					t.Errorf("%s: a 429 without Retry-After", name)
				}
				if took[i] > hashWait/2 {
					t.Errorf("%s: a refusal took %v", name, took[i])
				}
			case http.StatusOK:
				wrong++
			default:
				t.Errorf("%s: status %d", name, code)
			}
		}
		if refused < minRefused {
			t.Errorf("%s: only %d of %d refused at once", name, refused, len(codes))
		}
		if most := slow.most.Load(); most > maxHashing {
			t.Errorf("%s: %d passwords hashed at once, want at most %d", name, most, maxHashing)
		}
		t.Logf("%s: %d refused, %d checked; at most %d hashed at once", name, refused, wrong, slow.most.Load())
	}

	// One address: only its free attempts and one more reach the hasher;
	// the admin, from another address, logs in during the storm.
	adminDone := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		for deadline := time.Now().Add(5 * time.Second); slow.running.Load() == 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		adminDone <- f.loginAttempt("192.0.2.200:1", webPassword)
	}()
	codes, took, retryAfter := loginStorm(f, 200, func(int) string { return "192.0.2.7:40000" })
	check("one address", codes, took, retryAfter, 200-loginFreeAttempts-1)
	if rec := <-adminDone; rec.Code != http.StatusSeeOther || cookieNamed(rec, sessionCookie) == nil {
		t.Errorf("admin login during the storm: %d %s", rec.Code, rec.Body)
	}

	// 200 addresses: the per-address limits do not apply, the hasher's
	// queue does.
	codes, took, retryAfter = loginStorm(f, 200, func(i int) string { return fmt.Sprintf("198.51.100.%d:1", i) })
	check("200 addresses", codes, took, retryAfter, 150)
	// A busy refusal does not count against the address.
	busy := 0
	for i, code := range codes {
		if code == http.StatusTooManyRequests {
			busy = i
			break
		}
	}
	for range loginFreeAttempts {
		if rec := f.loginAttempt(fmt.Sprintf("198.51.100.%d:1", busy), "guess"); rec.Code != http.StatusOK {
			t.Errorf("an address refused as busy was charged for it: %d", rec.Code)
		}
	}
}

// TestPasswordChangeEndsOtherSessions: the session that changed the
// password goes on, every other one (browser or API cookie) ends.
func TestPasswordChangeEndsOtherSessions(t *testing.T) {
	f := newWebFixture(t)
	f.login()
	other := cookieNamed(f.loginAttempt("192.0.2.9:1", webPassword), sessionCookie)
	if other == nil {
		t.Fatal("second login failed")
	}
	if rec := f.do(request{method: "GET", path: "/ui/luns", cookies: []*http.Cookie{other}}); rec.Code != http.StatusOK {
		t.Fatalf("second session before the change: %d", rec.Code)
	}
	// A refused change ends nothing.
	f.session("POST", "/ui/account/password", url.Values{"current": {"wrong password"}, "new": {"a new password"}, "confirm": {"a new password"}})
	if rec := f.do(request{method: "GET", path: "/ui/luns", cookies: []*http.Cookie{other}}); rec.Code != http.StatusOK {
		t.Fatalf("a refused change ended the other session: %d", rec.Code)
	}
	rec := f.session("POST", "/ui/account/password", url.Values{"current": {webPassword}, "new": {"a new password"}, "confirm": {"a new password"}})
	if rec.Code != http.StatusSeeOther {
		t.Fatalf("change: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do(request{method: "GET", path: "/ui/luns", cookies: []*http.Cookie{other}}); !refused(rec) {
		t.Errorf("the other session's page after the change: %d", rec.Code)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/luns", cookies: []*http.Cookie{other}}); rec.Code != http.StatusUnauthorized {
		t.Errorf("the other session's API call after the change: %d", rec.Code)
	}
	page := f.session("GET", "/ui/account", nil)
	if page.Code != http.StatusOK || !strings.Contains(page.Body.String(), "Every other session is logged out") {
		t.Errorf("the changing session after the change: %d %s", page.Code, page.Body)
	}
	// The API token is not a session: it still works.
	if rec := f.do(request{method: "GET", path: "/api/v1/luns", header: map[string]string{"Authorization": "Bearer " + webToken}}); rec.Code != http.StatusOK {
		t.Errorf("API token after the change: %d", rec.Code)
	}
}
