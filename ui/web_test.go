package ui

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/crypto/bcrypt"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/appliance/pool/file"
	"github.com/sand-appliance/sand/events"
	"github.com/sand-appliance/sand/iscsi"
	"github.com/sand-appliance/sand/ui/cert"
)

// Hashing at bcrypt's real cost takes a good part of a second here; the
// tests hash at the lowest.
func init() { bcryptCost = bcrypt.MinCost }

const (
	webToken    = "web-test-token"
	webPassword = "correct horse battery"
)

// sessionDriver stands in for the target: it remembers applies and
// reports the sessions a test sets.
type sessionDriver struct {
	mu       sync.Mutex
	applies  int
	sessions []iscsi.Session
	down     error
}

func (d *sessionDriver) Apply(context.Context, iscsi.TargetGroup) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.applies++
	return nil
}

func (d *sessionDriver) Sessions(context.Context) ([]iscsi.Session, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sessions, d.down
}
func (d *sessionDriver) Stop(context.Context) error { return nil }
func (d *sessionDriver) FirstLUN() int              { return 1 }

// clock is a settable time for sessions and login limits.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type webFixture struct {
	t      *testing.T
	engine *gin.Engine
	box    *appliance.Box
	cfg    appliance.Config
	pool   *file.Pool
	driver *sessionDriver
	clock  *clock
	certs  *cert.Store
	// cookie is the session cookie after login; csrf its token.
	cookie *http.Cookie
	csrf   string
}

func newWebFixture(t *testing.T, mod ...func(*Options)) *webFixture {
	t.Helper()
	dir := t.TempDir()
	cfg := appliance.DefaultConfig()
	cfg.Name = "san1"
	cfg.Portal = "10.0.0.50"
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Pool = appliance.PoolConfig{Kind: "file", Dir: filepath.Join(dir, "pool")}
	cfg.Target.Driver = "tgt"
	p, err := file.New(cfg.Pool.Dir, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	d := &sessionDriver{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	box := appliance.NewBox(cfg, p, d, log)
	if err := box.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := filepath.Join(dir, "first-password")
	os.WriteFile(first, []byte(webPassword+"\n"), 0o600)
	admin, err := OpenAccount(cfg.AdminPasswordPath(), "", first)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	certs, err := cert.Open(cert.Options{
		Box:   cert.Files{Cert: filepath.Join(dir, "tls", "cert.pem"), Key: filepath.Join(dir, "tls", "key.pem")},
		BoxID: webBoxID, Log: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Token: webToken, Logger: log, Admin: admin, Volumes: p.List, Now: clk.now, TLS: certs}
	for _, m := range mod {
		m(&opts)
	}
	h, err := New(box, opts)
	if err != nil {
		t.Fatal(err)
	}
	return &webFixture{t: t, engine: h.(*gin.Engine), box: box, cfg: cfg, pool: p, driver: d, clock: clk, certs: certs}
}

// webBoxID is what the fixture box's certificate names.
var webBoxID = cert.Identity{Names: []string{"san1"}, Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.11")}}

// request is one HTTP request to the fixture.
type request struct {
	method, path string
	form         url.Values
	body         string
	header       map[string]string
	cookies      []*http.Cookie
	remote       string
}

func (f *webFixture) do(r request) *httptest.ResponseRecorder {
	var body io.Reader
	switch {
	case r.form != nil:
		body = strings.NewReader(r.form.Encode())
	case r.body != "":
		body = strings.NewReader(r.body)
	}
	req := httptest.NewRequest(r.method, r.path, body)
	if r.form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range r.header {
		req.Header.Set(k, v)
	}
	for _, c := range r.cookies {
		req.AddCookie(c)
	}
	if r.remote != "" {
		req.RemoteAddr = r.remote
	}
	rec := httptest.NewRecorder()
	f.engine.ServeHTTP(rec, req)
	return rec
}

// session makes a request as the logged-in browser: cookie, and for a
// form the csrf field.
func (f *webFixture) session(method, path string, form url.Values) *httptest.ResponseRecorder {
	f.t.Helper()
	if f.cookie == nil {
		f.login()
	}
	if form != nil && unsafeMethod(method) && !form.Has(csrfField) {
		form.Set(csrfField, f.csrf)
	}
	return f.do(request{method: method, path: path, form: form, cookies: []*http.Cookie{f.cookie}})
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// login logs in through the login form, as a browser does.
func (f *webFixture) login() {
	f.t.Helper()
	rec := f.do(request{method: "GET", path: "/ui/login"})
	if rec.Code != http.StatusOK {
		f.t.Fatalf("login page: %d %s", rec.Code, rec.Body)
	}
	m := csrfInput.FindStringSubmatch(rec.Body.String())
	if m == nil {
		f.t.Fatal("login page has no csrf field")
	}
	loginCookie := cookieNamed(rec, loginCookie)
	if loginCookie == nil {
		f.t.Fatal("login page set no login cookie")
	}
	rec = f.do(request{method: "POST", path: "/ui/login", cookies: []*http.Cookie{loginCookie},
		form: url.Values{"csrf": {m[1]}, "user": {AdminUser}, "password": {webPassword}, "next": {"/ui/luns"}}})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/luns" {
		f.t.Fatalf("login: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	f.cookie = cookieNamed(rec, sessionCookie)
	if f.cookie == nil {
		f.t.Fatal("login set no session cookie")
	}
	page := f.session("GET", "/ui/", nil)
	m = csrfInput.FindStringSubmatch(page.Body.String())
	if m == nil {
		f.t.Fatalf("home page has no csrf field: %d %s", page.Code, page.Body)
	}
	f.csrf = m[1]
}

func cookieNamed(rec *httptest.ResponseRecorder, name string) *http.Cookie {
	for _, c := range rec.Result().Cookies() {
		if c.Name == name && c.MaxAge >= 0 {
			return c
		}
	}
	return nil
}

// state is what a request may change: the registry file, the pool's
// volumes and the target.
func (f *webFixture) state() string {
	f.t.Helper()
	reg, _ := os.ReadFile(f.cfg.RegistryPath())
	vols, err := f.pool.List(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	s := string(reg)
	for _, v := range vols {
		s += "\nvolume " + v.Name
	}
	f.driver.mu.Lock()
	defer f.driver.mu.Unlock()
	return s + "\napplies " + strconv.Itoa(f.driver.applies)
}

// concrete fills a route's parameters.
func concrete(path string) string {
	path = strings.ReplaceAll(path, ":name", "vm01")
	return strings.ReplaceAll(path, "*file", "style.css")
}

// public are the routes that answer without a session or a token.
var public = map[string]bool{"GET /healthz": true, "GET /ui/login": true, "POST /ui/login": true}

// TestEveryRouteRefusesStrangers lists the routes from the router and tries
// each without credentials, with a wrong token and with a made-up session:
// every page and every API route is refused and nothing changes.
func TestEveryRouteRefusesStrangers(t *testing.T) {
	f := newWebFixture(t)
	f.box.CreateGroup(context.Background(), appliance.InitiatorGroup{Name: "vm01"})
	l, err := f.box.CreateLUN(context.Background(), appliance.LUNRequest{Name: "vm01", Size: 1 << 20, Group: "vm01"})
	if err != nil {
		t.Fatal(err)
	}
	before := f.state()
	routes := f.engine.Routes()
	pages, apis, mutating := 0, 0, 0
	for _, r := range routes {
		key := r.Method + " " + r.Path
		if public[key] {
			continue
		}
		switch {
		case strings.HasPrefix(r.Path, "/api/"), r.Path == "/metrics":
			apis++
		default:
			pages++
		}
		if unsafeMethod(r.Method) {
			mutating++
		}
		path := concrete(r.Path)
		for _, who := range []struct {
			name string
			req  request
		}{
			{"nobody", request{}},
			{"wrong token", request{header: map[string]string{"Authorization": "Bearer nope"}}},
			{"made-up session", request{cookies: []*http.Cookie{{Name: sessionCookie, Value: randomToken()}}}},
		} {
			req := who.req
			req.method, req.path = r.Method, path
			req.form = url.Values{"name": {"x"}, "size": {"1"}, "size_unit": {"M"}, "csrf": {"guess"}, "confirm": {"vm01"}}
			rec := f.do(req)
			if !refused(rec) {
				t.Errorf("%s %s as %s: %d %s", r.Method, path, who.name, rec.Code, rec.Body)
			}
			if strings.Contains(rec.Body.String(), l.Serial) || strings.Contains(rec.Body.String(), l.Target) {
				t.Errorf("%s %s as %s leaks data: %s", r.Method, path, who.name, rec.Body)
			}
		}
	}
	if pages < 20 || apis < 20 || mutating < 20 {
		t.Errorf("found only %d pages, %d API routes, %d mutating routes", pages, apis, mutating)
	}
	if after := f.state(); after != before {
		t.Errorf("refused requests changed the box:\nbefore %s\nafter %s", before, after)
	}
	// The public routes are what they say.
	if rec := f.do(request{method: "GET", path: "/healthz"}); rec.Code != http.StatusOK {
		t.Errorf("healthz: %d", rec.Code)
	}
}

// refused: 401/403, or a redirect to the login page.
func refused(rec *httptest.ResponseRecorder) bool {
	switch rec.Code {
	case http.StatusUnauthorized, http.StatusForbidden:
		return true
	case http.StatusSeeOther, http.StatusFound:
		return strings.HasPrefix(rec.Header().Get("Location"), "/ui/login")
	}
	return false
}

// TestChangesNeedCSRF: a logged-in browser's change without the session's
// CSRF token, with a wrong one, or from another site is refused on every
// mutating route, pages and API alike.
func TestChangesNeedCSRF(t *testing.T) {
	f := newWebFixture(t)
	f.login()
	f.box.CreateGroup(context.Background(), appliance.InitiatorGroup{Name: "vm01"})
	f.box.CreateLUN(context.Background(), appliance.LUNRequest{Name: "vm01", Size: 1 << 20, Group: "vm01"})
	before := f.state()
	n := 0
	for _, r := range f.engine.Routes() {
		if !unsafeMethod(r.Method) || public[r.Method+" "+r.Path] {
			continue
		}
		n++
		path := concrete(r.Path)
		api := strings.HasPrefix(path, "/api/")
		form := url.Values{"name": {"x"}, "size": {"2"}, "size_unit": {"M"}, "confirm": {"vm01"}, "add": {"iqn.2026-11.org.example:x"}}
		for _, tt := range []struct {
			name   string
			token  string
			header map[string]string
		}{
			{"no token", "", nil},
			{"wrong token", "wrong", nil},
			{"other session's token", randomToken(), nil},
			{"cross-site", f.csrf, map[string]string{"Sec-Fetch-Site": "cross-site"}},
			{"other origin", f.csrf, map[string]string{"Origin": "http://evil.example"}},
		} {
			req := request{method: r.Method, path: path, cookies: []*http.Cookie{f.cookie}, header: map[string]string{}}
			for k, v := range tt.header {
				req.header[k] = v
			}
			if api {
				req.body = `{"name":"x","size":"1M"}`
				if tt.token != "" {
					req.header[csrfHeader] = tt.token
				}
			} else {
				req.form = url.Values{}
				for k, v := range form {
					req.form[k] = v
				}
				if tt.token != "" {
					req.form.Set(csrfField, tt.token)
				}
			}
			if rec := f.do(req); rec.Code != http.StatusForbidden {
				t.Errorf("%s %s with %s: %d %s", r.Method, path, tt.name, rec.Code, rec.Body)
			}
		}
	}
	if n < 20 {
		t.Errorf("found only %d mutating routes", n)
	}
	if after := f.state(); after != before {
		t.Errorf("refused changes changed the box:\nbefore %s\nafter %s", before, after)
	}
	// The same session with its token gets through, on both doors.
	rec := f.do(request{method: "POST", path: "/api/v1/luns", body: `{"name":"vm02","size":"1M","group":"vm01"}`,
		cookies: []*http.Cookie{f.cookie}, header: map[string]string{csrfHeader: f.csrf, "Sec-Fetch-Site": "same-origin"}})
	if rec.Code != http.StatusCreated {
		t.Errorf("API create with session and CSRF token: %d %s", rec.Code, rec.Body)
	}
	rec = f.session("POST", "/ui/luns", url.Values{"name": {"vm03"}, "size": {"1"}, "size_unit": {"M"}, "group": {"vm01"}})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/luns/vm03" {
		t.Errorf("form create with CSRF token: %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
	// Reading through the API needs no CSRF token.
	if rec := f.do(request{method: "GET", path: "/api/v1/luns", cookies: []*http.Cookie{f.cookie}}); rec.Code != http.StatusOK {
		t.Errorf("API read with session: %d %s", rec.Code, rec.Body)
	}
}

func TestLoginSessionAndLogout(t *testing.T) {
	f := newWebFixture(t)
	// A page without a session sends the browser to the login page and
	// back after it.
	rec := f.do(request{method: "GET", path: "/ui/luns"})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/login?next=%2Fui%2Fluns" {
		t.Fatalf("page without session: %d %v", rec.Code, rec.Header())
	}
	f.login()
	c := f.cookie
	// sand answers over HTTPS only: every cookie is Secure, even on a
	// request that (in this test) did not come over TLS.
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || !c.Secure || c.Path != "/" {
		t.Errorf("session cookie: %+v", c)
	}
	if rec := f.session("GET", "/ui/luns", nil); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "There are no LUNs yet") {
		t.Errorf("LUN page with session: %d %s", rec.Code, rec.Body)
	}
	// Over TLS the cookie is Secure, and the answer carries HSTS.
	req := httptest.NewRequest("GET", "https://san1/ui/login", nil)
	rec = httptest.NewRecorder()
	f.engine.ServeHTTP(rec, req)
	if lc := cookieNamed(rec, loginCookie); lc == nil || !lc.Secure || !lc.HttpOnly {
		t.Errorf("login cookie over TLS: %+v", lc)
	}
	if h := rec.Header().Get("Strict-Transport-Security"); h != "max-age=31536000" {
		t.Errorf("HSTS over TLS: %q", h)
	}
	// Logging out ends the session on the server.
	rec = f.session("POST", "/ui/logout", url.Values{})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/login" {
		t.Errorf("logout: %d %v", rec.Code, rec.Header())
	}
	if rec := f.do(request{method: "GET", path: "/ui/luns", cookies: []*http.Cookie{c}}); !refused(rec) {
		t.Errorf("page after logout: %d", rec.Code)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/luns", cookies: []*http.Cookie{c}}); rec.Code != http.StatusUnauthorized {
		t.Errorf("API after logout: %d", rec.Code)
	}
}

func TestSessionExpires(t *testing.T) {
	f := newWebFixture(t)
	f.login()
	f.clock.add(20 * time.Minute)
	if rec := f.session("GET", "/ui/luns", nil); rec.Code != http.StatusOK {
		t.Fatalf("page after 20 min: %d", rec.Code)
	}
	// The home page's polling does not keep an idle session alive.
	for range 5 {
		f.clock.add(10 * time.Minute)
		f.session("GET", "/ui/fragments/pair", nil)
	}
	if rec := f.session("GET", "/ui/luns", nil); !refused(rec) {
		t.Errorf("page after 50 idle minutes: %d", rec.Code)
	}
	if rec := f.session("GET", "/ui/fragments/pair", nil); rec.Code != http.StatusUnauthorized {
		t.Errorf("fragment after expiry: %d", rec.Code)
	}
}

// loginAttempt posts the login form from addr.
func (f *webFixture) loginAttempt(addr, password string) *httptest.ResponseRecorder {
	f.t.Helper()
	page := f.do(request{method: "GET", path: "/ui/login", remote: addr})
	form := url.Values{"user": {AdminUser}, "password": {password}}
	if m := csrfInput.FindStringSubmatch(page.Body.String()); m != nil {
		form.Set("csrf", m[1])
	}
	return f.do(request{method: "POST", path: "/ui/login", remote: addr, cookies: []*http.Cookie{cookieNamed(page, loginCookie)}, form: form})
}

func TestLoginRefusesForgedForms(t *testing.T) {
	f := newWebFixture(t)
	page := f.do(request{method: "GET", path: "/ui/login"})
	token := csrfInput.FindStringSubmatch(page.Body.String())[1]
	lc := cookieNamed(page, loginCookie)
	for _, tt := range []struct {
		name    string
		cookies []*http.Cookie
		form    url.Values
		header  map[string]string
	}{
		{"no cookie", nil, url.Values{"csrf": {token}}, nil},
		{"no token", []*http.Cookie{lc}, url.Values{}, nil},
		{"other token", []*http.Cookie{lc}, url.Values{"csrf": {randomToken()}}, nil},
		{"cross-site", []*http.Cookie{lc}, url.Values{"csrf": {token}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
	} {
		tt.form.Set("user", AdminUser)
		tt.form.Set("password", webPassword)
		rec := f.do(request{method: "POST", path: "/ui/login", cookies: tt.cookies, form: tt.form, header: tt.header})
		if rec.Code != http.StatusForbidden || cookieNamed(rec, sessionCookie) != nil {
			t.Errorf("%s: %d %v", tt.name, rec.Code, rec.Header())
		}
	}
	// Without an account nobody logs in, and the page says what to do.
	nf := newWebFixture(t, func(o *Options) { o.Admin = nil })
	rec := nf.do(request{method: "GET", path: "/ui/login"})
	if !strings.Contains(rec.Body.String(), "admin_password_file") {
		t.Errorf("login page without account: %s", rec.Body)
	}
	if rec := nf.loginAttempt("192.0.2.1:1", webPassword); cookieNamed(rec, sessionCookie) != nil {
		t.Error("logged in without an account")
	}
}

// fieldError extracts the message shown under a form field.
func fieldMessage(body, form, field string) string {
	m := regexp.MustCompile(`(?s)<p class="field-error" id="` + form + `-` + field + `-error">(.*?)</p>`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(strings.TrimPrefix(m[1], `<span class="sr-only">Error: </span>`))
}

// TestBadLUNFormShowsMessageAndChangesNothing: each mistake is shown next
// to its field, in words, the input is kept, and the box is unchanged.
func TestBadLUNFormShowsMessageAndChangesNothing(t *testing.T) {
	f := newWebFixture(t)
	f.box.CreateGroup(context.Background(), appliance.InitiatorGroup{Name: "xen"})
	f.box.CreateLUN(context.Background(), appliance.LUNRequest{Name: "vm01", Size: 16 << 20, Group: "xen"})
	tests := []struct {
		name, lun, size, unit, group string
		field, msg                   string
	}{
		{"empty name", "", "1", "G", "xen", "name", "LUN name is empty."},
		{"space and capitals", "VM 02", "1", "G", "xen", "name", "may hold only lower-case letters"},
		{"dot dot", "a..b", "1", "G", "xen", "name", `contains ".."`},
		{"taken", "vm01", "1", "M", "xen", "name", `LUN "vm01" already exists`},
		{"no size", "vm02", "", "G", "xen", "size", "Enter a size"},
		{"size not a number", "vm02", "lots", "G", "xen", "size", `"lots" is not a number`},
		{"negative", "vm02", "-1", "G", "xen", "size", "not a number"},
		{"zero", "vm02", "0", "G", "xen", "size", "Size must be larger than 0."},
		{"odd bytes", "vm02", "0.0001", "M", "xen", "size", "not a multiple of the 512-byte block size"},
		{"bad unit", "vm02", "1", "X", "xen", "size", "Pick a unit"},
		{"too large", "vm02", "5", "T", "xen", "size", "free in the pool"},
		{"unknown group", "vm02", "1", "M", "nope", "group", `Initiator group "nope" does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.state()
			rec := f.session("POST", "/ui/luns", url.Values{"name": {tt.lun}, "size": {tt.size}, "size_unit": {tt.unit}, "group": {tt.group}})
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d, want the form again with 200", rec.Code)
			}
			body := rec.Body.String()
			if got := fieldMessage(body, "create", tt.field); !strings.Contains(got, tt.msg) {
				t.Errorf("message next to %s is %q, want it to say %q", tt.field, got, tt.msg)
			}
			if !regexp.MustCompile(`id="create-` + tt.field + `"[^>]*aria-invalid="true"`).MatchString(body) {
				t.Errorf("field %s is not marked invalid", tt.field)
			}
			if !strings.Contains(body, `role="alert"`) {
				t.Error("no error summary")
			}
			if strings.Contains(body, "invalid request:") {
				t.Errorf("message shows the error kind: %s", body)
			}
			if tt.lun != "" && !strings.Contains(body, `value="`+html.EscapeString(tt.lun)+`"`) {
				t.Errorf("the name %q was not kept in the form", tt.lun)
			}
			if after := f.state(); after != before {
				t.Errorf("state changed:\nbefore %s\nafter %s", before, after)
			}
		})
	}
}

// TestLUNPagesDriveTheBox walks what an admin does: create, see, grow,
// move, delete, through the forms.
func TestLUNPagesDriveTheBox(t *testing.T) {
	f := newWebFixture(t)
	rec := f.session("POST", "/ui/groups", url.Values{"name": {"xen"}, "initiators": {"iqn.2026-11.org.example:dom0-a\n\n iqn.2026-11.org.example:dom0-b \n"}})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/groups/xen" {
		t.Fatalf("create group: %d %s", rec.Code, rec.Body)
	}
	if g, err := f.box.Group("xen"); err != nil || len(g.Initiators) != 2 {
		t.Fatalf("group: %+v %v", g, err)
	}
	rec = f.session("GET", "/ui/luns/new", nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `<option value="xen" selected>`) {
		t.Errorf("new LUN form does not offer the only group: %s", rec.Body)
	}
	rec = f.session("POST", "/ui/luns", url.Values{"name": {"vm01"}, "size": {"64"}, "size_unit": {"M"}, "group": {"xen"}})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/luns/vm01" {
		t.Fatalf("create LUN: %d %s", rec.Code, rec.Body)
	}
	l, err := f.box.LUN("vm01")
	if err != nil || l.Size != 64<<20 || l.Group != "xen" {
		t.Fatalf("LUN: %+v %v", l, err)
	}
	body := f.session("GET", "/ui/luns/vm01", nil).Body.String()
	for _, want := range []string{
		"LUN vm01 created (64 MiB)",
		"iscsiadm -m discovery -t sendtargets -p 10.0.0.50:3260",
		"iscsiadm -m node -T " + l.Target + " -p 10.0.0.50:3260 --login",
		"disk = [ &#39;vdev=xvda, access=rw, script=block-iscsi, target=iqn=" + l.Target + ",portal=10.0.0.50:3260&#39; ]",
		`data-copy="attach-iscsiadm"`, l.Serial,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("LUN page lacks %q", want)
		}
	}
	if strings.Contains(f.session("GET", "/ui/luns/vm01", nil).Body.String(), "created (64 MiB)") {
		t.Error("the flash message showed twice")
	}
	table := f.session("GET", "/ui/luns", nil).Body.String()
	if !strings.Contains(table, `<tr data-lun="vm01">`) || !strings.Contains(table, l.Target) {
		t.Errorf("LUN table: %s", table)
	}
	// Grow, then a refused shrink that shows its message on the grow form.
	if rec := f.session("POST", "/ui/luns/vm01/grow", url.Values{"size": {"128"}, "size_unit": {"M"}}); rec.Code != http.StatusSeeOther {
		t.Fatalf("grow: %d %s", rec.Code, rec.Body)
	}
	if l, _ := f.box.LUN("vm01"); l.Size != 128<<20 {
		t.Errorf("size after grow: %d", l.Size)
	}
	rec = f.session("POST", "/ui/luns/vm01/grow", url.Values{"size": {"32"}, "size_unit": {"M"}})
	if got := fieldMessage(rec.Body.String(), "grow", "size"); rec.Code != http.StatusOK || !strings.Contains(got, "shrinking to 32M is refused") {
		t.Errorf("shrink: %d %q", rec.Code, got)
	}
	// Move out of the group and back.
	if rec := f.session("POST", "/ui/luns/vm01/group", url.Values{"group": {""}}); rec.Code != http.StatusSeeOther {
		t.Errorf("ungroup: %d %s", rec.Code, rec.Body)
	}
	if l, _ := f.box.LUN("vm01"); l.Group != "" {
		t.Errorf("group after ungroup: %q", l.Group)
	}
	f.session("POST", "/ui/luns/vm01/group", url.Values{"group": {"xen"}})
	// Deleting a LUN with an initiator connected asks for its name.
	f.driver.mu.Lock()
	f.driver.sessions = []iscsi.Session{{Target: l.Target, Initiator: "iqn.2026-11.org.example:dom0-a", Address: "10.0.0.7"}}
	f.driver.mu.Unlock()
	page := f.session("GET", "/ui/luns/vm01/delete", nil).Body.String()
	if !strings.Contains(page, "1 initiator connected now") || !strings.Contains(page, "iqn.2026-11.org.example:dom0-a") || !strings.Contains(page, "Type <strong>vm01</strong> to confirm") {
		t.Errorf("delete page does not warn: %s", page)
	}
	rec = f.session("POST", "/ui/luns/vm01/delete", url.Values{})
	if got := fieldMessage(rec.Body.String(), "delete", "confirm"); rec.Code != http.StatusOK || got == "" {
		t.Errorf("delete without confirmation: %d %q", rec.Code, got)
	}
	if _, err := f.box.LUN("vm01"); err != nil {
		t.Fatal("LUN deleted without confirmation")
	}
	rec = f.session("POST", "/ui/luns/vm01/delete", url.Values{"confirm": {"vm01"}})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/luns" {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body)
	}
	if _, err := f.box.LUN("vm01"); err == nil {
		t.Error("LUN still there after delete")
	}
	// The events page tells the story, newest first, each kind with its
	// label on a badge of its tone.
	page = f.session("GET", "/ui/events", nil).Body.String()
	order := []string{`badge warn">LUN deleted<`, `badge plain">LUN changed<`, `badge plain">LUN created<`, `badge plain">Group created<`}
	last := -1
	for _, e := range order {
		i := strings.Index(page, e)
		if i < 0 || i < last {
			t.Errorf("events page: %q missing or out of order", e)
		}
		last = i
	}
}

func TestGroupPagesDriveTheBox(t *testing.T) {
	f := newWebFixture(t)
	f.session("POST", "/ui/groups", url.Values{"name": {"xen"}})
	const iqn = "iqn.2026-11.org.example:dom0-a"
	if rec := f.session("POST", "/ui/groups/xen/initiators", url.Values{"add": {iqn}}); rec.Code != http.StatusSeeOther {
		t.Fatalf("add: %d %s", rec.Code, rec.Body)
	}
	rec := f.session("POST", "/ui/groups/xen/initiators", url.Values{"add": {"iqn.bad"}})
	if got := fieldMessage(rec.Body.String(), "add", "add"); !strings.Contains(got, "iqn.bad") {
		t.Errorf("bad IQN message: %q", got)
	}
	rec = f.session("POST", "/ui/groups/xen/chap", url.Values{"chap_user": {"xen"}, "chap_secret": {"short"}})
	if got := fieldMessage(rec.Body.String(), "chap", "chap"); !strings.Contains(got, "12 to 16") {
		t.Errorf("short secret message: %q", got)
	}
	if rec := f.session("POST", "/ui/groups/xen/chap", url.Values{"chap_user": {"xen"}, "chap_secret": {"0123456789abcd"}}); rec.Code != http.StatusSeeOther {
		t.Fatalf("set CHAP: %d %s", rec.Code, rec.Body)
	}
	if g, _ := f.box.Group("xen"); g.CHAP == nil || g.CHAP.User != "xen" || len(g.Initiators) != 1 {
		t.Errorf("group after CHAP: %+v", g)
	}
	page := f.session("GET", "/ui/groups/xen", nil).Body.String()
	if strings.Contains(page, "0123456789abcd") {
		t.Error("the group page shows the CHAP secret")
	}
	if rec := f.session("POST", "/ui/groups/xen/chap", url.Values{"action": {"off"}}); rec.Code != http.StatusSeeOther {
		t.Errorf("CHAP off: %d %s", rec.Code, rec.Body)
	}
	if rec := f.session("POST", "/ui/groups/xen/initiators/remove", url.Values{"remove": {iqn}}); rec.Code != http.StatusSeeOther {
		t.Errorf("remove: %d %s", rec.Code, rec.Body)
	}
	if g, _ := f.box.Group("xen"); g.CHAP != nil || len(g.Initiators) != 0 {
		t.Errorf("group after CHAP off and remove: %+v", g)
	}
	f.box.CreateLUN(context.Background(), appliance.LUNRequest{Name: "vm01", Size: 1 << 20, Group: "xen"})
	rec = f.session("POST", "/ui/groups/xen/delete", url.Values{})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "used by LUN vm01") {
		t.Errorf("delete group in use: %d %s", rec.Code, rec.Body)
	}
	f.box.DeleteLUN(context.Background(), "vm01")
	if rec := f.session("POST", "/ui/groups/xen/delete", url.Values{}); rec.Code != http.StatusSeeOther {
		t.Errorf("delete group: %d %s", rec.Code, rec.Body)
	}
}

// fakePair is a pair as the failover layer would report it.
type fakePair struct {
	state  PairState
	called []string
}

func (p *fakePair) State(context.Context) PairState { return p.state }
func (p *fakePair) Switchover(context.Context) error {
	p.called = append(p.called, "switchover")
	return nil
}
func (p *fakePair) Standby(_ context.Context, box string) error {
	p.called = append(p.called, "standby "+box)
	return nil
}
func (p *fakePair) Resume(_ context.Context, box string) error {
	p.called = append(p.called, "resume "+box)
	return nil
}

func TestHomeShowsAStandaloneBoxAsSuch(t *testing.T) {
	f := newWebFixture(t)
	body := f.session("GET", "/ui/", nil).Body.String()
	for _, want := range []string{
		"san1", "standalone", "Peer box", "Floating address (VIP)", "Replication (DRBD)", "Witness",
		"This box is standalone: switchover, standby and resume need a peer",
		`data-refresh="/ui/fragments/pair"`, "0 sessions",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("home page lacks %q", want)
		}
	}
	if n := strings.Count(body, "not configured"); n < 4 {
		t.Errorf("home page says 'not configured' %d times, want peer, VIP, DRBD and witness", n)
	}
	if n := regexp.MustCompile(`<button type="submit" disabled`).FindAllString(body, -1); len(n) != 3 {
		t.Errorf("%d disabled pair actions, want 3", len(n))
	}
	if n := strings.Count(body, "This box is standalone: switchover"); n != 1 {
		t.Errorf("the standalone reason shows %d times, want once", n)
	}
	// A pair action on a standalone box is refused with the reason.
	rec := f.session("POST", "/ui/pair/switchover", url.Values{})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "This box is standalone") {
		t.Errorf("switchover on a standalone box: %d %s", rec.Code, rec.Body)
	}
	rec = f.do(request{method: "POST", path: "/api/v1/pair/switchover", header: map[string]string{"Authorization": "Bearer " + webToken}})
	if rec.Code != http.StatusConflict {
		t.Errorf("API switchover on a standalone box: %d %s", rec.Code, rec.Body)
	}
	var pv PairView
	rec = f.do(request{method: "GET", path: "/api/v1/pair", header: map[string]string{"Authorization": "Bearer " + webToken}})
	if err := json.Unmarshal(rec.Body.Bytes(), &pv); err != nil || !pv.Standalone || len(pv.Boxes) != 1 || pv.Boxes[0].Role != RoleStandalone || pv.DRBD != nil {
		t.Errorf("API pair: %s %v", rec.Body, err)
	}
	// The target down is shown as such.
	f.driver.mu.Lock()
	f.driver.down = io.ErrUnexpectedEOF
	f.driver.mu.Unlock()
	frag := f.session("GET", "/ui/fragments/pair", nil)
	if frag.Code != http.StatusOK || !strings.Contains(frag.Body.String(), "not answering") || strings.Contains(frag.Body.String(), "<html") {
		t.Errorf("fragment with the target down: %d %s", frag.Code, frag.Body)
	}
}

func TestHomeShowsThePair(t *testing.T) {
	p := &fakePair{state: PairState{
		Boxes: []PairBox{
			{Name: "san1", Address: "10.0.0.11", Role: RolePrimary, Local: true},
			{Name: "san2", Address: "10.0.0.12", Role: RoleSecondary},
		},
		VIP:             &VIPState{Address: "10.0.0.50/24", Holder: "san1"},
		DRBD:            &DRBDState{Resource: "sand", Connection: "SyncSource", LocalRole: "Primary", PeerRole: "Secondary", LocalDisk: "UpToDate", PeerDisk: "Inconsistent", Protocol: "C", Syncing: true, SyncPercent: 42.5, SyncLeft: 3 * time.Minute},
		Witness:         &WitnessState{Name: "dom0-a", Address: "10.0.0.5", Reachable: true},
		Failovers:       2,
		WhyNoSwitchover: "The peer's disk is Inconsistent: wait for the resync to finish.",
	}}
	f := newWebFixture(t, func(o *Options) { o.Pair = p })
	body := f.session("GET", "/ui/", nil).Body.String()
	for _, want := range []string{
		"san2", "primary", "secondary", "held by san1", "10.0.0.50/24", "SyncSource", "protocol C",
		`<progress id="sync-progress" max="100" value="42.5">`, "Resync 42.5%, about 3 min left", "dom0-a", "reachable",
		"The peer&#39;s disk is Inconsistent",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("home page lacks %q", want)
		}
	}
	if strings.Contains(body, "standalone") {
		t.Error("a pair shown as standalone")
	}
	if rec := f.session("POST", "/ui/pair/standby", url.Values{"box": {"san2"}}); rec.Code != http.StatusSeeOther {
		t.Errorf("standby: %d %s", rec.Code, rec.Body)
	}
	rec := f.do(request{method: "POST", path: "/api/v1/pair/resume", body: `{"box":"san2"}`, header: map[string]string{"Authorization": "Bearer " + webToken}})
	if rec.Code != http.StatusOK {
		t.Errorf("API resume: %d %s", rec.Code, rec.Body)
	}
	if strings.Join(p.called, ",") != "standby san2,resume san2" {
		t.Errorf("pair calls: %v", p.called)
	}
	m := f.do(request{method: "GET", path: "/metrics", header: map[string]string{"Authorization": "Bearer " + webToken}}).Body.String()
	for _, want := range []string{
		`sand_box_role{box="san2",role="secondary"} 1`, `sand_drbd_connection_state{resource="sand",state="SyncSource"} 1`,
		`sand_drbd_disk_state{disk="peer",resource="sand",state="Inconsistent"} 1`, `sand_drbd_sync_progress_ratio{resource="sand"} 0.425`,
		`sand_drbd_sync_remaining_seconds{resource="sand"} 180`, `sand_failovers_total 2`, `sand_vip_held{address="10.0.0.50/24",box="san1"} 1`,
		`sand_witness_reachable{witness="dom0-a"} 1`, `sand_pair_configured 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestMetricsAndEventsAPI(t *testing.T) {
	f := newWebFixture(t)
	ctx := context.Background()
	f.box.CreateGroup(ctx, appliance.InitiatorGroup{Name: "xen"})
	l, _ := f.box.CreateLUN(ctx, appliance.LUNRequest{Name: "vm01", Size: 8 << 20, Group: "xen"})
	f.driver.mu.Lock()
	f.driver.sessions = []iscsi.Session{{Target: l.Target, Initiator: "iqn.2026-11.org.example:dom0-a"}}
	f.driver.mu.Unlock()
	auth := map[string]string{"Authorization": "Bearer " + webToken}
	rec := f.do(request{method: "GET", path: "/metrics", header: auth})
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: %d %v", rec.Code, rec.Header())
	}
	m := rec.Body.String()
	for _, want := range []string{
		`sand_box_info{box="san1",driver="tgt",pool="file"} 1`, `sand_box_role{box="san1",role="standalone"} 1`,
		"sand_pair_configured 0", "sand_failovers_total 0", "sand_target_up 1", "sand_target_sessions 1", "sand_luns 1",
		`sand_lun_size_bytes{lun="vm01",target="` + l.Target + `"} 8.388608e+06`, `sand_lun_sessions{lun="vm01"} 1`,
		`sand_lun_used_bytes{lun="vm01"}`, "sand_pool_size_bytes 1.073741824e+09", "sand_pool_provisioned_bytes 8.388608e+06",
		"sand_registry_generation 2", "go_goroutines", "# TYPE sand_failovers_total counter",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, "sand_drbd") {
		t.Error("a standalone box reports DRBD metrics")
	}
	rec = f.do(request{method: "GET", path: "/api/v1/events?limit=1", header: auth})
	var list []events.Event
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list) != 1 || list[0].Kind != events.LUNCreated {
		t.Errorf("events: %s %v", rec.Body, err)
	}
	if rec := f.do(request{method: "GET", path: "/api/v1/events?limit=x", header: auth}); rec.Code != http.StatusBadRequest {
		t.Errorf("bad limit: %d", rec.Code)
	}
	// LUNs over the API carry their use and sessions.
	rec = f.do(request{method: "GET", path: "/api/v1/luns/vm01", header: auth})
	var v LUNView
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v.Sessions == nil || *v.Sessions != 1 || v.Used == nil {
		t.Errorf("LUN view: %s %v", rec.Body, err)
	}
	// API errors name the field.
	rec = f.do(request{method: "POST", path: "/api/v1/luns", body: `{"name":"vm02","size":"5T"}`, header: auth})
	var e Error
	if json.Unmarshal(rec.Body.Bytes(), &e); rec.Code != http.StatusUnprocessableEntity || e.Field != "size" {
		t.Errorf("API error: %d %s", rec.Code, rec.Body)
	}
}

func TestPagesAreProtectedAndStatic(t *testing.T) {
	f := newWebFixture(t)
	rec := f.session("GET", "/ui/", nil)
	csp := rec.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("page headers: %v", rec.Header())
	}
	if strings.Contains(rec.Body.String(), "<script>") || strings.Contains(rec.Body.String(), " style=") {
		t.Error("a page has inline script or style attributes, which the CSP blocks")
	}
	asset := regexp.MustCompile(`href="(/ui/static/style.css\?v=[0-9a-f]+)"`).FindStringSubmatch(rec.Body.String())
	if asset == nil {
		t.Fatal("no versioned stylesheet link")
	}
	css := f.session("GET", asset[1], nil)
	if css.Code != http.StatusOK || !strings.HasPrefix(css.Header().Get("Content-Type"), "text/css") {
		t.Errorf("stylesheet: %d %v", css.Code, css.Header())
	}
	// The login page carries its style inline, with the page's nonce.
	login := f.do(request{method: "GET", path: "/ui/login"})
	nonce := regexp.MustCompile(`'nonce-([^']+)'`).FindStringSubmatch(login.Header().Get("Content-Security-Policy"))
	if nonce == nil || !strings.Contains(login.Body.String(), `<style nonce="`+nonce[1]+`">`) {
		t.Errorf("login page style: %v", login.Header())
	}
	if rec := f.session("GET", "/ui/luns/nope", nil); rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), "does not exist") {
		t.Errorf("unknown LUN: %d", rec.Code)
	}
	if rec := f.session("GET", "/ui/nope", nil); rec.Code != http.StatusNotFound {
		t.Errorf("unknown page: %d", rec.Code)
	}
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/ui/login", "/api/v1/luns", "/ui/\\evil"} {
		if got := safeNext(next); got != "/ui/" {
			t.Errorf("safeNext(%q) = %q", next, got)
		}
	}
}

func TestPasswordChange(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "admin-password")
	first := filepath.Join(dir, "first")
	os.WriteFile(first, []byte("first password 1\n"), 0o600)
	a, err := OpenAccount(state, "", first)
	if err != nil || a == nil || !a.Changeable() || !a.Check(AdminUser, "first password 1") {
		t.Fatalf("first password: %v %v", a, err)
	}
	if data, _ := os.ReadFile(state); !strings.HasPrefix(string(data), "$2") {
		t.Errorf("stored hash %q", data)
	}
	if err := a.Change("wrong", "another password"); errorField(err) != "current" {
		t.Errorf("change with the wrong current password: %v", err)
	}
	if err := a.Change("first password 1", "short"); errorField(err) != "new" {
		t.Errorf("change to a short password: %v", err)
	}
	if err := a.Change("first password 1", "second password 2"); err != nil {
		t.Fatal(err)
	}
	// The file is not read again: the stored hash wins.
	b, err := OpenAccount(state, "", first)
	if err != nil || !b.Check(AdminUser, "second password 2") || b.Check(AdminUser, "first password 1") || b.Check("root", "second password 2") {
		t.Errorf("reopened account: %v", err)
	}
	// A hash in sand.yaml wins and cannot be changed; htpasswd's $2y$ works.
	hash, _ := bcrypt.GenerateFromPassword([]byte("from the config"), bcrypt.MinCost)
	y := "$2y$" + string(hash[4:])
	c, err := OpenAccount(state, y, first)
	if err != nil || c.Changeable() || !c.Check(AdminUser, "from the config") {
		t.Errorf("config hash: %v", err)
	}
	if _, err := OpenAccount(state, "not a hash", ""); err == nil {
		t.Error("a bad hash was accepted")
	}
	if a, err := OpenAccount(filepath.Join(dir, "none"), "", ""); a != nil || err != nil {
		t.Errorf("no password configured: %v %v", a, err)
	}
	os.WriteFile(first, []byte("short\n"), 0o600)
	if _, err := OpenAccount(filepath.Join(dir, "other"), "", first); err == nil || !strings.Contains(err.Error(), "at least 10") {
		t.Errorf("short first password: %v", err)
	}
	// Through the page.
	f := newWebFixture(t)
	rec := f.session("POST", "/ui/account/password", url.Values{"current": {webPassword}, "new": {"a new password"}, "confirm": {"another"}})
	if got := fieldMessage(rec.Body.String(), "password", "confirm"); !strings.Contains(got, "differ") {
		t.Errorf("mismatch: %q", got)
	}
	rec = f.session("POST", "/ui/account/password", url.Values{"current": {webPassword}, "new": {"a new password"}, "confirm": {"a new password"}})
	if rec.Code != http.StatusSeeOther {
		t.Errorf("change: %d %s", rec.Code, rec.Body)
	}
	if rec := f.loginAttempt("192.0.2.1:1", webPassword); rec.Code != http.StatusOK {
		t.Errorf("login with the old password: %d", rec.Code)
	}
	if rec := f.loginAttempt("192.0.2.1:1", "a new password"); rec.Code != http.StatusSeeOther {
		t.Errorf("login with the new password: %d", rec.Code)
	}
	// With the hash fixed by sand.yaml the page says where to change it.
	fixed := newWebFixture(t, func(o *Options) { o.Admin = c })
	fixed.cookie = cookieNamed(fixed.loginAttempt("192.0.2.1:1", "from the config"), sessionCookie)
	if fixed.cookie == nil {
		t.Fatal("no login with the config's password")
	}
	rec = fixed.do(request{method: "GET", path: "/ui/account", cookies: []*http.Cookie{fixed.cookie}})
	if !strings.Contains(rec.Body.String(), "admin_password_hash") || strings.Contains(rec.Body.String(), `name="new"`) {
		t.Error("account page does not say the password is fixed by sand.yaml")
	}
}

// On a box that is not serving (the secondary of a pair) a change is
// refused with where to send it, on the form and in the API.
func TestSecondaryRefusesChangesClearly(t *testing.T) {
	f := newWebFixture(t)
	f.login()
	if err := f.box.Deactivate(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := f.state()
	rec := f.session("POST", "/ui/luns", url.Values{"name": {"vm01"}, "size": {"1"}, "size_unit": {"M"}})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "send changes to the primary (the VIP)") {
		t.Errorf("form on a secondary: %d %s", rec.Code, rec.Body)
	}
	rec = f.do(request{method: "POST", path: "/api/v1/luns", body: `{"name":"vm01","size":"1M"}`, header: map[string]string{"Authorization": "Bearer " + webToken}})
	if rec.Code != http.StatusConflict {
		t.Errorf("API on a secondary: %d %s", rec.Code, rec.Body)
	}
	if after := f.state(); after != before {
		t.Errorf("state changed on a secondary:\nbefore %s\nafter %s", before, after)
	}
}
