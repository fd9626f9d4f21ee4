package ui

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/events"
	"github.com/sand-appliance/sand/iscsi"
	"github.com/sand-appliance/sand/ui/cert"
)

// The pages are html/template files and the assets plain CSS and
// JavaScript, embedded in the binary: no build step, nothing fetched from
// elsewhere.
//
//go:embed templates static
var content embed.FS

// Pages of the web UI, by template file (templates/NAME.html).
var pageNames = []string{
	"login", "home", "luns", "lun_new", "lun", "lun_delete", "groups", "group", "group_delete",
	"events", "account", "message", "tls",
}

// web serves the pages under /ui/. It reads through the same api as the
// REST API and changes things only through the api's do* actions.
type web struct {
	*api
	auth   *auth
	pages  map[string]*template.Template
	static fs.FS
	// assets maps an asset name to its URL with a content hash, so a new
	// sand binary's CSS is never mixed with a cached old one.
	assets map[string]string
	css    template.CSS
	now    func() time.Time
	// name is the box's name, for every page's title.
	name string
}

func newWeb(a *api, au *auth, opts Options) (*web, error) {
	static, err := fs.Sub(content, "static")
	if err != nil {
		return nil, err
	}
	w := &web{
		api: a, auth: au, pages: map[string]*template.Template{}, static: static, assets: map[string]string{}, now: opts.Now,
		name: a.box.Status(context.Background()).Name,
	}
	for _, name := range []string{"style.css", "app.js"} {
		data, err := fs.ReadFile(static, name)
		if err != nil {
			return nil, fmt.Errorf("read UI asset %s: %w", name, err)
		}
		sum := sha256.Sum256(data)
		w.assets[name] = "/ui/static/" + name + "?v=" + hex.EncodeToString(sum[:6])
		if name == "style.css" {
			w.css = template.CSS(data)
		}
	}
	funcs := template.FuncMap{
		"asset":    func(name string) string { return w.assets[name] },
		"size":     humanSize,
		"exact":    appliance.FormatSize,
		"percent":  percent,
		"when":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"iso":      func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"ago":      func(t time.Time) string { return ago(w.now().Sub(t)) },
		"duration": roundDuration,
		"kind":     events.Kind.Label,
		"severity": events.Kind.Tone,
		"roleText": roleText,
		"plural":   plural,
		"join":     strings.Join,
		"deref":    func(p *int64) int64 { return *p },
		"derefInt": func(p *int) int { return *p },
		"args":     func(f *form, name string) fieldArgs { return fieldArgs{F: f, Name: name} },
		"certArgs": func(id string, in cert.Info) certArgs { return certArgs{ID: id, Info: in} },
		"sizeField": func(f *form, label, hint string) sizeArgs {
			return sizeArgs{F: f, Label: label, Hint: hint}
		},
	}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(content,
			"templates/layout.html", "templates/partials.html", "templates/pair.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse UI template %s: %w", name, err)
		}
		w.pages[name] = t
	}
	return w, nil
}

// fieldArgs and sizeArgs carry a form and a field into the partials.
type fieldArgs struct {
	F    *form
	Name string
}

// certArgs carry a certificate into the cert partial.
type certArgs struct {
	ID   string
	Info cert.Info
}

type sizeArgs struct {
	F           *form
	Label, Hint string
}

// isUIPath reports whether a path belongs to the web UI.
func isUIPath(p string) bool { return p == "/" || p == "/ui" || strings.HasPrefix(p, "/ui/") }

// routes adds the web UI to the engine. Only the login page answers
// without a session.
func (w *web) routes(r *gin.Engine) {
	r.GET("/ui/login", w.loginPage)
	r.POST("/ui/login", w.loginSubmit)

	ui := r.Group("", w.requireSession)
	ui.GET("/", func(c *gin.Context) { c.Redirect(http.StatusSeeOther, "/ui/") })
	ui.GET("/ui/static/*file", w.asset)
	ui.POST("/ui/logout", w.logout)
	ui.GET("/ui/", w.home)
	ui.GET("/ui/fragments/pair", w.pairFragment)
	ui.GET("/ui/luns", w.lunList)
	ui.GET("/ui/luns/new", w.lunNew)
	ui.POST("/ui/luns", w.lunCreate)
	ui.GET("/ui/luns/:name", w.lunPage)
	ui.POST("/ui/luns/:name/grow", w.lunGrow)
	ui.POST("/ui/luns/:name/group", w.lunSetGroup)
	ui.GET("/ui/luns/:name/delete", w.lunDeletePage)
	ui.POST("/ui/luns/:name/delete", w.lunDelete)
	ui.GET("/ui/groups", w.groupList)
	ui.POST("/ui/groups", w.groupCreate)
	ui.GET("/ui/groups/:name", w.groupPage)
	ui.POST("/ui/groups/:name/initiators", w.groupAddInitiator)
	ui.POST("/ui/groups/:name/initiators/remove", w.groupRemoveInitiator)
	ui.POST("/ui/groups/:name/chap", w.groupCHAP)
	ui.GET("/ui/groups/:name/delete", w.groupDeletePage)
	ui.POST("/ui/groups/:name/delete", w.groupDelete)
	ui.GET("/ui/events", w.eventsPage)
	ui.POST("/ui/pair/switchover", w.pairAction("switchover"))
	ui.POST("/ui/pair/standby", w.pairAction("standby"))
	ui.POST("/ui/pair/resume", w.pairAction("resume"))
	ui.GET("/ui/account", w.accountPage)
	ui.POST("/ui/account/password", w.changePassword)
	ui.GET("/ui/tls", w.tlsPage)
	ui.POST("/ui/tls", w.tlsUpload)
}

// requireSession lets only logged-in browsers through; their changes must
// carry the session's CSRF token in the csrf form field and come from this
// origin.
func (w *web) requireSession(c *gin.Context) {
	get := !unsafeMethod(c.Request.Method)
	fragment := strings.HasPrefix(c.Request.URL.Path, "/ui/fragments/")
	// Polling and assets do not count as activity, so an open home page
	// does not keep a session alive forever.
	touch := get && !fragment && !strings.HasPrefix(c.Request.URL.Path, "/ui/static/")
	sess, ok := w.auth.session(c, touch)
	if !ok {
		if get && !fragment {
			c.Redirect(http.StatusSeeOther, "/ui/login?next="+url.QueryEscape(c.Request.URL.RequestURI()))
			c.Abort()
			return
		}
		w.message(c, http.StatusUnauthorized, "Log in first", "Your session has ended or you are not logged in.", "/ui/login", "Log in")
		c.Abort()
		return
	}
	if !get {
		if err := w.auth.checkCSRF(c.Request, sess, c.PostForm(csrfField)); err != nil {
			w.message(c, http.StatusForbidden, "Request refused", sentence(err.Error()), "/ui/", "Back to the overview")
			c.Abort()
			return
		}
	}
	c.Set("session", sess)
	c.Next()
}

func sessionOf(c *gin.Context) session {
	s, _ := c.Get("session")
	sess, _ := s.(session)
	return sess
}

// form is the state of one form on a page: what was entered and what is
// wrong with it.
type form struct {
	ID     string
	Values map[string]string
	// Errors are messages by field name.
	Errors map[string]string
	// Error is a message that concerns no one field.
	Error string
}

func newForm(id string) *form {
	return &form{ID: id, Values: map[string]string{}, Errors: map[string]string{}}
}

// fail records err on the form, next to its field when it has one.
func (f *form) fail(err error) {
	msg := humanError(err)
	if field := errorField(err); field != "" {
		f.Errors[field] = msg
		return
	}
	f.Error = msg
}

// Failed reports whether the form has errors.
func (f *form) Failed() bool { return f.Error != "" || len(f.Errors) > 0 }

// page is what every template gets.
type page struct {
	Title string
	// Nav marks the current section: home, luns, groups, events.
	Nav   string
	Box   string
	User  string
	CSRF  string
	Flash string
	Nonce string
	CSS   template.CSS
	Data  any
	forms map[string]*form
}

// Form returns the named form's state, empty when it was not submitted.
func (p *page) Form(id string) *form {
	if f, ok := p.forms[id]; ok {
		return f
	}
	return newForm(id)
}

func (w *web) newPage(c *gin.Context, title, nav string, data any, forms ...*form) *page {
	sess := sessionOf(c)
	p := &page{
		Title: title, Nav: nav, Box: w.name, User: sess.user,
		CSRF: sess.csrf, Data: data, forms: map[string]*form{},
	}
	if sess.id != "" {
		p.Flash = w.auth.sessions.takeFlash(sess.id)
	}
	for _, f := range forms {
		p.forms[f.ID] = f
	}
	return p
}

// render writes a page with the headers every page gets: a strict content
// security policy (no inline script; inline style only with the page's
// nonce), no caching (pages show the SAN's configuration), no framing.
func (w *web) render(c *gin.Context, status int, name string, p *page) {
	w.renderTemplate(c, status, name, "layout", p)
}

func (w *web) renderTemplate(c *gin.Context, status int, name, entry string, p *page) {
	p.Nonce = randomToken()
	if p.Box == "" {
		p.Box = w.name
	}
	var buf bytes.Buffer
	if err := w.pages[name].ExecuteTemplate(&buf, entry, p); err != nil {
		w.auth.log.Error("render page", "page", name, "err", err)
		c.String(http.StatusInternalServerError, "sand could not draw this page: %v\n", err)
		return
	}
	h := c.Writer.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'nonce-"+p.Nonce+"'; "+
		"img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// message shows a page with one message and a way on.
func (w *web) message(c *gin.Context, status int, title, text, link, linkText string) {
	p := &page{Title: title, Data: struct{ Text, Link, LinkText string }{text, link, linkText}, forms: map[string]*form{}}
	if sess, ok := w.auth.session(c, false); ok {
		p.User, p.CSRF = sess.user, sess.csrf
	}
	w.render(c, status, "message", p)
}

// notFoundPage answers an unknown /ui/ path.
func notFoundPage(c *gin.Context) {
	c.Data(http.StatusNotFound, "text/html; charset=utf-8",
		[]byte("<!doctype html><title>Not found · sand</title><link rel=\"icon\" href=\"data:,\"><p>There is no such page. <a href=\"/ui/\">Go to the overview</a>.</p>\n"))
}

// formStatus is the status of a form shown again with its errors. A
// mistake in a form answers 200: browsers report a 4xx document as a
// failed load (a console error), and the page itself says what is wrong.
// Failures of the box itself answer 500.
func formStatus(err error) int {
	if s := statusOf(err); s >= 500 {
		return s
	}
	return http.StatusOK
}

// done ends a successful change: a message for the next page, then a
// redirect to it (post/redirect/get, so a reload does not repeat it).
func (w *web) done(c *gin.Context, to, flash string) {
	w.auth.sessions.setFlash(sessionOf(c).id, flash)
	c.Redirect(http.StatusSeeOther, to)
}

func (w *web) asset(c *gin.Context) {
	name := strings.TrimPrefix(path.Clean(c.Param("file")), "/")
	data, err := fs.ReadFile(w.static, name)
	if err != nil {
		notFoundPage(c)
		return
	}
	c.Header("Cache-Control", "private, max-age=86400")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Data(http.StatusOK, mime.TypeByExtension(path.Ext(name)), data)
}

// Login and logout.

type loginData struct {
	Next     string
	Disabled bool
}

func (w *web) loginPage(c *gin.Context) {
	if _, ok := w.auth.session(c, false); ok {
		c.Redirect(http.StatusSeeOther, safeNext(c.Query("next")))
		return
	}
	w.showLogin(c, http.StatusOK, newForm("login"), c.Query("next"))
}

func (w *web) showLogin(c *gin.Context, status int, f *form, next string) {
	// The login form has no session to hang its CSRF token on: the token
	// goes in a cookie and in the form, and the two must match (double
	// submit), besides the cross-origin check.
	token := randomToken()
	w.auth.setCookie(c, loginCookie, token, "/ui/login", 3600)
	p := &page{Title: "Log in", CSRF: token, CSS: w.css, Data: loginData{Next: safeNext(next), Disabled: w.auth.account == nil}, forms: map[string]*form{"login": f}}
	w.renderTemplate(c, status, "login", "login", p)
}

func (w *web) loginSubmit(c *gin.Context) {
	f := newForm("login")
	f.Values["user"] = c.PostForm("user")
	next := c.PostForm("next")
	cookie, _ := c.Cookie(loginCookie)
	token := c.PostForm(csrfField)
	if w.auth.cop.Check(c.Request) != nil || cookie == "" || token == "" || !equalTokens(cookie, token) {
		f.Error = "The login form was out of date or came from another site. Try again."
		w.showLogin(c, http.StatusForbidden, f, next)
		return
	}
	sess, err := w.auth.login(c.Request.Context(), c.ClientIP(), c.PostForm("user"), c.PostForm("password"))
	if err != nil {
		f.Error = sentence(err.Error())
		status := http.StatusOK
		if rl := (*rateLimitError)(nil); errors.As(err, &rl) {
			status = http.StatusTooManyRequests
			c.Header("Retry-After", fmt.Sprint(int(rl.wait.Seconds())+1))
		}
		w.showLogin(c, status, f, next)
		return
	}
	// A new session ID at every login: a cookie planted before the login
	// is worth nothing after it.
	if old, err := c.Cookie(sessionCookie); err == nil {
		w.auth.sessions.delete(old)
	}
	w.auth.setCookie(c, sessionCookie, sess.id, "/", 0)
	w.auth.setCookie(c, loginCookie, "", "/ui/login", -1)
	c.Redirect(http.StatusSeeOther, safeNext(next))
}

func equalTokens(a, b string) bool {
	return len(a) == len(b) && subtleEqual(a, b)
}

// safeNext keeps a post-login redirect on this site's UI.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") ||
		strings.HasPrefix(next, "/ui/login") || strings.HasPrefix(next, "/ui/fragments/") {
		return "/ui/"
	}
	return next
}

func (w *web) logout(c *gin.Context) {
	w.auth.sessions.delete(sessionOf(c).id)
	w.auth.setCookie(c, sessionCookie, "", "/", -1)
	c.Redirect(http.StatusSeeOther, "/ui/login")
}

// The home page: the pair at a glance.

// pairData is the view-model of the pair panel, filled from what the box
// and the failover layer know; parts that are not configured say so.
type pairData struct {
	Standalone bool
	Status     appliance.Status
	State      PairState
	Target     targetData
	Pool       poolData
	Recent     []events.Event
	Updated    time.Time
}

type targetData struct {
	Up       bool
	Error    string
	Sessions int
	// Initiators counts distinct initiators logged in.
	Initiators int
}

type poolData struct {
	Kind                    string
	Known                   bool
	Size, Provisioned, Used int64
	Free                    int64
	UsedPct, ProvisionedPct float64
	Overcommitted           bool
}

func (w *web) pairData(c *gin.Context) pairData {
	ctx := c.Request.Context()
	st := w.box.Status(ctx)
	d := pairData{Status: st, Updated: w.now()}
	if w.pair == nil {
		d.Standalone = true
		d.State = standalonePair(st.Name, st.Portal)
	} else {
		d.State = w.pair.State(ctx)
	}
	if sess, err := w.box.Sessions(ctx); err != nil {
		d.Target.Error = sentence(err.Error())
	} else {
		d.Target.Up = true
		d.Target.Sessions = len(sess)
		seen := map[string]bool{}
		for _, s := range sess {
			seen[s.Initiator] = true
		}
		d.Target.Initiators = len(seen)
	}
	cp := st.Capacity
	d.Pool = poolData{Kind: st.Pool, Known: cp.Size > 0, Size: cp.Size, Provisioned: cp.Provisioned, Used: cp.Used}
	if cp.Size > 0 {
		d.Pool.Free = max(cp.Size-cp.Used, 0)
		d.Pool.UsedPct = min(percent(cp.Used, cp.Size), 100)
		d.Pool.ProvisionedPct = min(percent(cp.Provisioned, cp.Size), 100)
		d.Pool.Overcommitted = cp.Provisioned > cp.Size
	}
	recent := w.box.Events().List()
	d.Recent = recent[:min(5, len(recent))]
	return d
}

func (w *web) home(c *gin.Context) {
	w.render(c, http.StatusOK, "home", w.newPage(c, "Overview", "home", w.pairData(c)))
}

// pairFragment is the pair panel alone, for the home page to refresh
// itself without a reload.
func (w *web) pairFragment(c *gin.Context) {
	p := &page{Data: w.pairData(c), forms: map[string]*form{}}
	w.renderTemplate(c, http.StatusOK, "home", "pair", p)
}

func (w *web) pairAction(action string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := w.doPairAction(c.Request.Context(), action, c.PostForm("box")); err != nil {
			f := newForm("pair")
			f.Error = humanError(err)
			w.render(c, formStatus(err), "home", w.newPage(c, "Overview", "home", w.pairData(c), f))
			return
		}
		w.done(c, "/ui/", "The "+action+" has started: the panel below follows it.")
	}
}

// LUNs.

type lunListData struct {
	LUNs []LUNView
}

func (w *web) lunList(c *gin.Context) {
	d := lunListData{LUNs: w.views(c.Request.Context(), w.box.LUNs()...)}
	w.render(c, http.StatusOK, "luns", w.newPage(c, "LUNs", "luns", d))
}

type lunNewData struct {
	Groups []appliance.InitiatorGroup
	Free   int64
	Units  []string
}

var sizeUnits = []string{"M", "G", "T"}

func (w *web) lunNewData(c *gin.Context) lunNewData {
	st := w.box.Status(c.Request.Context())
	return lunNewData{Groups: w.box.Groups(), Free: max(st.Capacity.Size-st.Capacity.Provisioned, 0), Units: sizeUnits}
}

func (w *web) lunNew(c *gin.Context) {
	f := newForm("create")
	f.Values["size_unit"] = "G"
	if g := w.box.Groups(); len(g) == 1 {
		f.Values["group"] = g[0].Name
	}
	w.render(c, http.StatusOK, "lun_new", w.newPage(c, "New LUN", "luns", w.lunNewData(c), f))
}

// formSize reads a size given as a number and a unit select.
func formSize(c *gin.Context, f *form) (Size, error) {
	n, unit := strings.TrimSpace(c.PostForm("size")), c.PostForm("size_unit")
	f.Values["size"], f.Values["size_unit"] = n, unit
	if !slices.Contains(sizeUnits, unit) {
		return 0, onField("size", fmt.Errorf("%w: pick a unit: MiB, GiB or TiB", appliance.ErrInvalid))
	}
	if n == "" {
		return 0, onField("size", fmt.Errorf("%w: enter a size, e.g. 20 GiB", appliance.ErrInvalid))
	}
	size, err := appliance.ParseSize(n + unit)
	if err != nil {
		return 0, onField("size", fmt.Errorf("%w: %q is not a number: enter a size such as 20 or 1.5", appliance.ErrInvalid, n))
	}
	return Size(size), nil
}

func (w *web) lunCreate(c *gin.Context) {
	f := newForm("create")
	f.Values["name"] = strings.TrimSpace(c.PostForm("name"))
	f.Values["group"] = c.PostForm("group")
	size, err := formSize(c, f)
	if err == nil {
		var v LUNView
		v, err = w.doCreateLUN(c.Request.Context(), CreateLUNRequest{Name: f.Values["name"], Size: size, Group: f.Values["group"]})
		if err == nil {
			w.done(c, "/ui/luns/"+url.PathEscape(v.Name), fmt.Sprintf("LUN %s created (%s). Attach it from a dom0 with the lines below.", v.Name, humanSize(v.Size)))
			return
		}
	}
	f.fail(err)
	w.render(c, formStatus(err), "lun_new", w.newPage(c, "New LUN", "luns", w.lunNewData(c), f))
}

type lunData struct {
	LUN       LUNView
	Groups    []appliance.InitiatorGroup
	Sessions  []iscsi.Session
	SessError string
	Units     []string
	Free      int64
}

func (w *web) lunData(c *gin.Context, name string) (lunData, bool) {
	l, err := w.box.LUN(name)
	if err != nil {
		w.message(c, statusOf(err), "No such LUN", humanError(err), "/ui/luns", "Back to the LUNs")
		return lunData{}, false
	}
	ctx := c.Request.Context()
	d := lunData{LUN: w.view(ctx, l), Groups: w.box.Groups(), Units: sizeUnits}
	st := w.box.Status(ctx)
	d.Free = max(st.Capacity.Size-st.Capacity.Provisioned, 0)
	sess, err := w.box.Sessions(ctx)
	if err != nil {
		d.SessError = sentence(err.Error())
	}
	for _, s := range sess {
		if s.Target == l.Target {
			d.Sessions = append(d.Sessions, s)
		}
	}
	return d, true
}

// lunForms are the forms of the LUN page, pre-filled from the LUN.
func lunForms(l LUNView, failed ...*form) []*form {
	grow := newForm("grow")
	grow.Values["size"], grow.Values["size_unit"] = splitSize(l.Size)
	group := newForm("group")
	group.Values["group"] = l.Group
	forms := []*form{grow, group}
	for _, f := range failed {
		for i := range forms {
			if forms[i].ID == f.ID {
				forms[i] = f
			}
		}
	}
	return forms
}

func (w *web) lunPage(c *gin.Context) {
	d, ok := w.lunData(c, c.Param("name"))
	if !ok {
		return
	}
	w.render(c, http.StatusOK, "lun", w.newPage(c, "LUN "+d.LUN.Name, "luns", d, lunForms(d.LUN)...))
}

func (w *web) lunGrow(c *gin.Context) {
	name := c.Param("name")
	f := newForm("grow")
	size, err := formSize(c, f)
	if err == nil {
		var v LUNView
		if v, err = w.doUpdateLUN(c.Request.Context(), name, UpdateLUNRequest{Size: &size}); err == nil {
			w.done(c, "/ui/luns/"+url.PathEscape(name), fmt.Sprintf("LUN %s is now %s. Initiators see the new size at their next rescan (iscsiadm -m session --rescan).", name, humanSize(v.Size)))
			return
		}
	}
	w.lunFailed(c, name, f, err)
}

func (w *web) lunSetGroup(c *gin.Context) {
	name := c.Param("name")
	f := newForm("group")
	group := c.PostForm("group")
	f.Values["group"] = group
	v, err := w.doUpdateLUN(c.Request.Context(), name, UpdateLUNRequest{Group: &group})
	if err == nil {
		msg := fmt.Sprintf("LUN %s is now in initiator group %s.", name, v.Group)
		if v.Group == "" {
			msg = fmt.Sprintf("LUN %s is in no initiator group now: no initiator can log in to it.", name)
		}
		w.done(c, "/ui/luns/"+url.PathEscape(name), msg)
		return
	}
	w.lunFailed(c, name, f, err)
}

// lunFailed shows the LUN page again with a failed form's errors.
func (w *web) lunFailed(c *gin.Context, name string, f *form, err error) {
	f.fail(err)
	d, ok := w.lunData(c, name)
	if !ok {
		return
	}
	w.render(c, formStatus(err), "lun", w.newPage(c, "LUN "+name, "luns", d, lunForms(d.LUN, f)...))
}

func (w *web) lunDeletePage(c *gin.Context) {
	d, ok := w.lunData(c, c.Param("name"))
	if !ok {
		return
	}
	w.render(c, http.StatusOK, "lun_delete", w.newPage(c, "Delete LUN "+d.LUN.Name, "luns", d))
}

func (w *web) lunDelete(c *gin.Context) {
	name := c.Param("name")
	d, ok := w.lunData(c, name)
	if !ok {
		return
	}
	f := newForm("delete")
	// With initiators connected the admin types the name, so a LUN in use
	// is not deleted by a slip of the mouse.
	if len(d.Sessions) > 0 && strings.TrimSpace(c.PostForm("confirm")) != name {
		f.Errors["confirm"] = fmt.Sprintf("Type %s to confirm: initiators are connected to this LUN.", name)
		w.render(c, http.StatusOK, "lun_delete", w.newPage(c, "Delete LUN "+name, "luns", d, f))
		return
	}
	if err := w.doDeleteLUN(c.Request.Context(), name); err != nil {
		f.fail(err)
		w.render(c, formStatus(err), "lun_delete", w.newPage(c, "Delete LUN "+name, "luns", d, f))
		return
	}
	w.done(c, "/ui/luns", fmt.Sprintf("LUN %s deleted, and its data with it.", name))
}

// Initiator groups.

type groupRow struct {
	appliance.InitiatorGroup
	LUNs []string
}

func (w *web) groupRows() []groupRow {
	uses := map[string][]string{}
	for _, l := range w.box.LUNs() {
		if l.Group != "" {
			uses[l.Group] = append(uses[l.Group], l.Name)
		}
	}
	var rows []groupRow
	for _, g := range w.box.Groups() {
		rows = append(rows, groupRow{InitiatorGroup: g.Redacted(), LUNs: uses[g.Name]})
	}
	return rows
}

func (w *web) groupList(c *gin.Context) {
	w.render(c, http.StatusOK, "groups", w.newPage(c, "Initiator groups", "groups", w.groupRows()))
}

// lines splits a textarea into its non-blank lines.
func lines(s string) []string {
	var out []string
	for l := range strings.Lines(s) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func (w *web) groupCreate(c *gin.Context) {
	f := newForm("create")
	f.Values["name"] = strings.TrimSpace(c.PostForm("name"))
	f.Values["initiators"] = c.PostForm("initiators")
	g, err := w.doCreateGroup(c.Request.Context(), appliance.InitiatorGroup{Name: f.Values["name"], Initiators: lines(f.Values["initiators"])})
	if err != nil {
		f.fail(err)
		w.render(c, formStatus(err), "groups", w.newPage(c, "Initiator groups", "groups", w.groupRows(), f))
		return
	}
	w.done(c, "/ui/groups/"+url.PathEscape(g.Name), fmt.Sprintf("Initiator group %s created with %s.", g.Name, plural(len(g.Initiators), "initiator")))
}

func (w *web) groupRow(c *gin.Context, name string) (groupRow, bool) {
	for _, r := range w.groupRows() {
		if r.Name == name {
			return r, true
		}
	}
	w.message(c, http.StatusNotFound, "No such initiator group", sentence(fmt.Sprintf("initiator group %q does not exist", name)), "/ui/groups", "Back to the groups")
	return groupRow{}, false
}

// groupForms are the forms of the group page, pre-filled from the group.
func groupForms(g groupRow, failed ...*form) []*form {
	chap := newForm("chap")
	if g.CHAP != nil {
		chap.Values["chap_user"] = g.CHAP.User
	}
	if g.MutualCHAP != nil {
		chap.Values["mutual_chap_user"] = g.MutualCHAP.User
	}
	forms := []*form{newForm("add"), chap, newForm("remove")}
	for _, f := range failed {
		for i := range forms {
			if forms[i].ID == f.ID {
				forms[i] = f
			}
		}
	}
	return forms
}

func (w *web) groupPage(c *gin.Context) {
	g, ok := w.groupRow(c, c.Param("name"))
	if !ok {
		return
	}
	w.render(c, http.StatusOK, "group", w.newPage(c, "Initiator group "+g.Name, "groups", g, groupForms(g)...))
}

// groupUpdate runs one change of a group from its page.
func (w *web) groupUpdate(c *gin.Context, f *form, u appliance.GroupUpdate, flash string) {
	name := c.Param("name")
	if _, err := w.doUpdateGroup(c.Request.Context(), name, u); err != nil {
		f.fail(err)
		g, ok := w.groupRow(c, name)
		if !ok {
			return
		}
		w.render(c, formStatus(err), "group", w.newPage(c, "Initiator group "+name, "groups", g, groupForms(g, f)...))
		return
	}
	w.done(c, "/ui/groups/"+url.PathEscape(name), flash)
}

func (w *web) groupAddInitiator(c *gin.Context) {
	f := newForm("add")
	iqn := strings.TrimSpace(c.PostForm("add"))
	f.Values["add"] = iqn
	if iqn == "" {
		f.Errors["add"] = "Enter the initiator's IQN, e.g. iqn.1994-05.com.redhat:dom0-a (cat /etc/iscsi/initiatorname.iscsi on the dom0)."
		g, ok := w.groupRow(c, c.Param("name"))
		if ok {
			w.render(c, http.StatusOK, "group", w.newPage(c, "Initiator group "+g.Name, "groups", g, groupForms(g, f)...))
		}
		return
	}
	w.groupUpdate(c, f, appliance.GroupUpdate{Add: []string{iqn}}, fmt.Sprintf("%s added: it can log in to the group's LUNs now.", iqn))
}

func (w *web) groupRemoveInitiator(c *gin.Context) {
	iqn := c.PostForm("remove")
	w.groupUpdate(c, newForm("remove"), appliance.GroupUpdate{Remove: []string{iqn}},
		fmt.Sprintf("%s removed: it can no longer log in to the group's LUNs (sessions open now stay until they log out).", iqn))
}

func (w *web) groupCHAP(c *gin.Context) {
	f := newForm("chap")
	for _, k := range []string{"chap_user", "mutual_chap_user"} {
		f.Values[k] = strings.TrimSpace(c.PostForm(k))
	}
	u := appliance.GroupUpdate{CHAP: &iscsi.CHAP{}, MutualCHAP: &iscsi.CHAP{}}
	flash := "CHAP is off for this group: initiators log in without a secret."
	if c.PostForm("action") != "off" {
		u.CHAP = &iscsi.CHAP{User: f.Values["chap_user"], Secret: c.PostForm("chap_secret")}
		flash = "CHAP is on: update the initiators' settings too (the LUN pages show the iscsiadm lines)."
		if f.Values["mutual_chap_user"] != "" || c.PostForm("mutual_chap_secret") != "" {
			u.MutualCHAP = &iscsi.CHAP{User: f.Values["mutual_chap_user"], Secret: c.PostForm("mutual_chap_secret")}
			flash = "CHAP and mutual CHAP are on: update the initiators' settings too."
		}
		if u.CHAP.User == "" && u.CHAP.Secret == "" {
			f.Errors["chap"] = "Enter a CHAP user and secret, or turn CHAP off."
			g, ok := w.groupRow(c, c.Param("name"))
			if ok {
				w.render(c, http.StatusOK, "group", w.newPage(c, "Initiator group "+g.Name, "groups", g, groupForms(g, f)...))
			}
			return
		}
	}
	w.groupUpdate(c, f, u, flash)
}

func (w *web) groupDeletePage(c *gin.Context) {
	g, ok := w.groupRow(c, c.Param("name"))
	if !ok {
		return
	}
	w.render(c, http.StatusOK, "group_delete", w.newPage(c, "Delete initiator group "+g.Name, "groups", g))
}

func (w *web) groupDelete(c *gin.Context) {
	name := c.Param("name")
	if err := w.doDeleteGroup(c.Request.Context(), name); err != nil {
		g, ok := w.groupRow(c, name)
		if !ok {
			return
		}
		f := newForm("delete")
		f.fail(err)
		w.render(c, formStatus(err), "group_delete", w.newPage(c, "Delete initiator group "+name, "groups", g, f))
		return
	}
	w.done(c, "/ui/groups", fmt.Sprintf("Initiator group %s deleted.", name))
}

// Events.

func (w *web) eventsPage(c *gin.Context) {
	w.render(c, http.StatusOK, "events", w.newPage(c, "Events", "events", w.box.Events().List()))
}

// Account.

type accountData struct {
	User       string
	Changeable bool
}

func (w *web) accountData() accountData {
	return accountData{User: AdminUser, Changeable: w.auth.account != nil && w.auth.account.Changeable()}
}

func (w *web) accountPage(c *gin.Context) {
	w.render(c, http.StatusOK, "account", w.newPage(c, "Account", "", w.accountData()))
}

func (w *web) changePassword(c *gin.Context) {
	f := newForm("password")
	var err error
	if c.PostForm("new") != c.PostForm("confirm") {
		err = onField("confirm", fmt.Errorf("%w: the two new passwords differ: type the same one twice", appliance.ErrInvalid))
	} else {
		err = w.auth.changePassword(c.Request.Context(), sessionOf(c), c.PostForm("current"), c.PostForm("new"))
	}
	if err != nil {
		f.fail(err)
		w.render(c, formStatus(err), "account", w.newPage(c, "Account", "", w.accountData(), f))
		return
	}
	w.done(c, "/ui/account", "Password changed. Every other session is logged out.")
}

// Formatting helpers for the templates.

// humanSize prints bytes in binary units with up to one decimal, as an
// admin reads them: 64 MiB, 1.5 GiB.
func humanSize(n int64) string {
	units := []string{"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"}
	f := float64(n)
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	switch {
	case i == 0:
		return fmt.Sprintf("%d bytes", n)
	case f == float64(int64(f)):
		return fmt.Sprintf("%d %s", int64(f), units[i])
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

// splitSize gives a size as a number and one of sizeUnits for the size
// inputs, exact when it can be.
func splitSize(n int64) (string, string) {
	for _, u := range []struct {
		unit string
		mult int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}} {
		if n >= u.mult && n%u.mult == 0 {
			return fmt.Sprint(n / u.mult), u.unit
		}
	}
	return fmt.Sprintf("%.2f", float64(n)/(1<<20)), "M"
}

func percent(part, whole int64) float64 {
	if whole <= 0 {
		return 0
	}
	return float64(part) * 100 / float64(whole)
}

// ago words a past duration: "just now", "5 min ago".
func ago(d time.Duration) string {
	switch {
	case d < 10*time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// roundDuration words a time left: "about 3 min".
func roundDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "unknown"
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("about %d min", int(d.Round(time.Minute).Minutes()))
	}
	return fmt.Sprintf("about %d h %d min", int(d.Hours()), int(d.Minutes())%60)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// roleText words a role for the box cards.
func roleText(role string) string {
	switch role {
	case RolePrimary:
		return "Primary: serves the LUNs"
	case RoleSecondary:
		return "Secondary: ready to take over"
	case RoleStandby:
		return "Standby: out of the pair for maintenance"
	case RoleDown:
		return "Down: not answering"
	case RoleStandalone:
		return "Standalone: serves the LUNs, no peer"
	}
	return role
}
