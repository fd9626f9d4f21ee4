// Package ui serves sand's REST API (/api/v1), the web UI (/ui/) and
// /metrics from one gin engine. Every change goes through one action
// function (doCreateLUN, doUpdateGroup...) whichever door it came in by:
// the API decodes JSON into the request type and the web UI decodes a form
// into the same type, so validation, the box call and the error wording
// are shared.
//
// Auth: API calls carry the API token (Authorization: Bearer) or the
// session cookie of a logged-in browser; a browser's changes also need the
// session's CSRF token (X-CSRF-Token header or the csrf form field) and
// must pass net/http's CrossOriginProtection. Nothing but /healthz and the
// login page answers without one of them.
package ui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/appliance/pool"
	"github.com/sand-appliance/sand/drbd"
	"github.com/sand-appliance/sand/iscsi"
)

// maxBody bounds request bodies; the largest legitimate one is an imported
// ietd.conf.
const maxBody = 1 << 20

// Options configure the server.
type Options struct {
	// Token authorises API calls (Authorization: Bearer TOKEN). It must
	// not be empty: sand never serves anonymous writes.
	Token string
	// MonitorToken, when set, authorises GET /metrics and the API's read
	// routes (monitorRoutes) and nothing else: for monitoring systems,
	// which should not hold the API token.
	MonitorToken string
	Logger       *slog.Logger
	// Admin is the web UI's admin account (see OpenAccount); nil refuses
	// every login and the login page says how to set a password.
	Admin *Account
	// TLS shows and replaces the API's certificates (GET and POST
	// /api/v1/tls, the UI's certificate page); nil answers that there is
	// none.
	TLS TLS
	// Pair reports and drives the pair; nil on a standalone box.
	Pair Pair
	// Volumes lists the pool's volumes, for the space each thin LUN uses;
	// nil leaves it out.
	Volumes func(ctx context.Context) ([]pool.Volume, error)
	// Now is the clock of sessions and login limits; nil is time.Now.
	Now func() time.Time
}

// New returns the HTTP handler for a box: a *gin.Engine, so tests can list
// its routes.
func New(box *appliance.Box, opts Options) (http.Handler, error) {
	if opts.Token == "" {
		return nil, errors.New("serve API: no API token configured: set api_token or api_token_file in sand.yaml")
	}
	if m := opts.MonitorToken; m != "" {
		switch {
		case len(m) < appliance.MinMonitorTokenLen:
			return nil, fmt.Errorf("serve API: the monitoring token (monitor_token or monitor_token_file) is %d characters long: use at least %d random ones, e.g. from openssl rand -hex 24", len(m), appliance.MinMonitorTokenLen)
		case m == opts.Token:
			return nil, errors.New("serve API: the monitoring token (monitor_token or monitor_token_file) is the API token: give monitoring a token of its own (it may only read)")
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	// The client address is the peer's: sand sits behind no proxy it
	// could trust, and the login limits count per address.
	if err := r.SetTrustedProxies(nil); err != nil {
		return nil, fmt.Errorf("serve API: %w", err)
	}
	r.Use(gin.Recovery(), hsts, requestLog(opts.Logger), limitBody)
	r.HandleMethodNotAllowed = true
	r.NoRoute(func(c *gin.Context) {
		if isUIPath(c.Request.URL.Path) {
			notFoundPage(c)
			return
		}
		fail(c, http.StatusNotFound, "no such route: %s %s", c.Request.Method, c.Request.URL.Path)
	})
	r.NoMethod(func(c *gin.Context) {
		fail(c, http.StatusMethodNotAllowed, "method %s is not allowed on %s", c.Request.Method, c.Request.URL.Path)
	})
	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })

	a := &api{box: box, pair: opts.Pair, volumes: opts.Volumes, tls: opts.TLS}
	au := newAuth(opts)
	v1 := r.Group("/api/v1", au.api)
	v1.GET("/status", a.status)
	v1.GET("/target", a.target)
	v1.GET("/sessions", a.sessions)
	v1.GET("/luns", a.listLUNs)
	v1.POST("/luns", a.createLUN)
	v1.GET("/luns/:name", a.getLUN)
	v1.PATCH("/luns/:name", a.updateLUN)
	v1.DELETE("/luns/:name", a.deleteLUN)
	v1.GET("/initiator-groups", a.listGroups)
	v1.POST("/initiator-groups", a.createGroup)
	v1.GET("/initiator-groups/:name", a.getGroup)
	v1.PATCH("/initiator-groups/:name", a.updateGroup)
	v1.DELETE("/initiator-groups/:name", a.deleteGroup)
	v1.POST("/import", a.importIETD)
	v1.GET("/events", a.events)
	v1.GET("/pair", a.pairState)
	v1.POST("/pair/switchover", a.switchover)
	v1.POST("/pair/standby", a.standby)
	v1.POST("/pair/resume", a.resume)
	v1.POST("/pair/fence-peer", a.fencePeer)
	v1.POST("/pair/split-brain", a.splitBrain)
	v1.GET("/tls", a.tlsView)
	v1.POST("/tls", a.tlsReplace)
	r.GET("/metrics", au.api, metricsHandler(a))

	w, err := newWeb(a, au, opts)
	if err != nil {
		return nil, err
	}
	w.routes(r)
	return r, nil
}

type api struct {
	box     *appliance.Box
	pair    Pair
	volumes func(ctx context.Context) ([]pool.Volume, error)
	tls     TLS
}

// LUNView is a LUN as the API shows it: the registry entry, its size in
// words, what it uses and who is connected, and how to attach it.
type LUNView struct {
	appliance.LUN
	SizeHuman string `json:"size_human"`
	// Used is the space the LUN takes in the pool (less than Size while
	// thin); absent when the pool cannot say.
	Used *int64 `json:"used,omitempty"`
	// Sessions counts the initiators logged in to the LUN's target; absent
	// when the target cannot be asked.
	Sessions *int             `json:"sessions,omitempty"`
	Attach   appliance.Attach `json:"attach"`
}

// views describes LUNs, asking the pool and the target once for all.
func (a *api) views(ctx context.Context, luns ...appliance.LUN) []LUNView {
	var used map[string]int64
	if a.volumes != nil {
		if vols, err := a.volumes(ctx); err == nil {
			used = map[string]int64{}
			for _, v := range vols {
				used[v.Name] = v.Used
			}
		}
	}
	var perTarget map[string]int
	if sess, err := a.box.Sessions(ctx); err == nil {
		perTarget = map[string]int{}
		for _, s := range sess {
			perTarget[s.Target]++
		}
	}
	views := make([]LUNView, 0, len(luns))
	for _, l := range luns {
		v := LUNView{LUN: l, SizeHuman: appliance.FormatSize(l.Size), Attach: a.box.AttachFor(l)}
		if u, ok := used[l.Name]; ok && l.Path == "" {
			v.Used = &u
		}
		if perTarget != nil {
			n := perTarget[l.Target]
			v.Sessions = &n
		}
		views = append(views, v)
	}
	return views
}

func (a *api) view(ctx context.Context, l appliance.LUN) LUNView { return a.views(ctx, l)[0] }

func (a *api) status(c *gin.Context) { c.JSON(http.StatusOK, a.box.Status(c.Request.Context())) }

// target shows the rendered ietd.conf, CHAP secrets redacted.
func (a *api) target(c *gin.Context) {
	conf, err := a.box.TargetConfig()
	if err != nil {
		failErr(c, err)
		return
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", redactIETD(conf))
}

// redactIETD replaces the secret of every IncomingUser and OutgoingUser
// line (KEYWORD USER SECRET) with appliance.RedactedSecret.
func redactIETD(conf []byte) []byte {
	lines := strings.SplitAfter(string(conf), "\n")
	for i, line := range lines {
		f := strings.Fields(line)
		if len(f) < 3 || !strings.EqualFold(f[0], "IncomingUser") && !strings.EqualFold(f[0], "OutgoingUser") {
			continue
		}
		indent := line[:len(line)-len(strings.TrimLeft(line, " \t"))]
		eol := line[len(strings.TrimRight(line, " \t\r\n")):]
		lines[i] = indent + f[0] + " " + f[1] + " " + appliance.RedactedSecret + eol
	}
	return []byte(strings.Join(lines, ""))
}

func (a *api) sessions(c *gin.Context) {
	s, err := a.box.Sessions(c.Request.Context())
	if err != nil {
		failErr(c, err)
		return
	}
	if s == nil {
		s = []iscsi.Session{}
	}
	c.JSON(http.StatusOK, s)
}

func (a *api) listLUNs(c *gin.Context) {
	c.JSON(http.StatusOK, a.views(c.Request.Context(), a.box.LUNs()...))
}

// Size accepts a JSON number of bytes or a string such as "20G".
type Size int64

func (s *Size) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		n, err := appliance.ParseSize(str)
		*s = Size(n)
		return err
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("size must be a number of bytes or a string such as \"20G\"")
	}
	i, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil {
		return fmt.Errorf("size %s is not a whole number of bytes", n)
	}
	*s = Size(i)
	return nil
}

// CreateLUNRequest is the body of POST /luns.
type CreateLUNRequest struct {
	Name   string `json:"name"`
	Size   Size   `json:"size"`
	Group  string `json:"group"`
	Target string `json:"target"`
}

func (a *api) createLUN(c *gin.Context) {
	var req CreateLUNRequest
	if !decode(c, &req) {
		return
	}
	v, err := a.doCreateLUN(c.Request.Context(), req)
	if err != nil {
		failErr(c, err)
		return
	}
	c.Header("Location", "/api/v1/luns/"+v.Name)
	c.JSON(http.StatusCreated, v)
}

// doCreateLUN creates a LUN; errors name the field they concern.
func (a *api) doCreateLUN(ctx context.Context, req CreateLUNRequest) (LUNView, error) {
	l, err := a.box.CreateLUN(ctx, appliance.LUNRequest{
		Name: req.Name, Size: int64(req.Size), Group: req.Group, Target: req.Target,
	})
	if err != nil {
		return LUNView{}, onField(createLUNField(req, err), err)
	}
	return a.view(ctx, l), nil
}

// createLUNField says which field of a refused create is wrong.
func createLUNField(req CreateLUNRequest, err error) string {
	switch {
	case errors.Is(err, appliance.ErrNoSpace):
		return "size"
	case errors.Is(err, appliance.ErrNotFound):
		return "group"
	case errors.Is(err, appliance.ErrExists):
		return "name"
	case !errors.Is(err, appliance.ErrInvalid):
		return ""
	case appliance.ValidateName("LUN", req.Name) != nil:
		return "name"
	case appliance.CheckSize(int64(req.Size)) != nil:
		return "size"
	case req.Target != "" && appliance.ValidateName("target", req.Target) != nil:
		return "target"
	}
	return ""
}

func (a *api) getLUN(c *gin.Context) {
	l, err := a.box.LUN(c.Param("name"))
	if err != nil {
		failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, a.view(c.Request.Context(), l))
}

// UpdateLUNRequest is the body of PATCH /luns/{name}.
type UpdateLUNRequest struct {
	Size  *Size   `json:"size"`
	Group *string `json:"group"`
}

func (a *api) updateLUN(c *gin.Context) {
	var req UpdateLUNRequest
	if !decode(c, &req) {
		return
	}
	v, err := a.doUpdateLUN(c.Request.Context(), c.Param("name"), req)
	if err != nil {
		failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, v)
}

// doUpdateLUN grows a LUN or moves it to another group.
func (a *api) doUpdateLUN(ctx context.Context, name string, req UpdateLUNRequest) (LUNView, error) {
	if req.Size == nil && req.Group == nil {
		return LUNView{}, fmt.Errorf("%w: nothing to change: give size (to grow the LUN) or group", appliance.ErrInvalid)
	}
	u := appliance.LUNUpdate{Group: req.Group}
	if req.Size != nil {
		n := int64(*req.Size)
		u.Size = &n
	}
	l, err := a.box.UpdateLUN(ctx, name, u)
	if err != nil {
		field := ""
		switch {
		case errors.Is(err, appliance.ErrNoSpace), errors.Is(err, appliance.ErrInvalid) && req.Size != nil:
			field = "size"
		case errors.Is(err, appliance.ErrNotFound) && req.Group != nil && strings.Contains(err.Error(), "initiator group"):
			field = "group"
		}
		return LUNView{}, onField(field, err)
	}
	return a.view(ctx, l), nil
}

func (a *api) deleteLUN(c *gin.Context) {
	if err := a.doDeleteLUN(c.Request.Context(), c.Param("name")); err != nil {
		failErr(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// doDeleteLUN deletes a LUN and its volume.
func (a *api) doDeleteLUN(ctx context.Context, name string) error {
	return a.box.DeleteLUN(ctx, name)
}

// listGroups shows every group, CHAP secrets redacted: secrets are
// write-only, shown once in the answer to the change that set them.
func (a *api) listGroups(c *gin.Context) {
	groups := []appliance.InitiatorGroup{}
	for _, g := range a.box.Groups() {
		groups = append(groups, g.Redacted())
	}
	c.JSON(http.StatusOK, groups)
}

func (a *api) createGroup(c *gin.Context) {
	var g appliance.InitiatorGroup
	if !decode(c, &g) {
		return
	}
	g, err := a.doCreateGroup(c.Request.Context(), g)
	if err != nil {
		failErr(c, err)
		return
	}
	c.Header("Location", "/api/v1/initiator-groups/"+g.Name)
	c.JSON(http.StatusCreated, g)
}

// doCreateGroup creates an initiator group.
func (a *api) doCreateGroup(ctx context.Context, g appliance.InitiatorGroup) (appliance.InitiatorGroup, error) {
	if g.Initiators == nil {
		g.Initiators = []string{}
	}
	created, err := a.box.CreateGroup(ctx, g)
	if err != nil {
		field := ""
		switch {
		case errors.Is(err, appliance.ErrExists), appliance.ValidateName("initiator group", g.Name) != nil:
			field = "name"
		case errors.Is(err, appliance.ErrInvalid) && g.CHAP == nil && g.MutualCHAP == nil:
			field = "initiators"
		}
		return appliance.InitiatorGroup{}, onField(field, err)
	}
	return created, nil
}

func (a *api) getGroup(c *gin.Context) {
	g, err := a.box.Group(c.Param("name"))
	if err != nil {
		failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, g.Redacted())
}

func (a *api) updateGroup(c *gin.Context) {
	var u appliance.GroupUpdate
	if !decode(c, &u) {
		return
	}
	g, err := a.doUpdateGroup(c.Request.Context(), c.Param("name"), u)
	if err != nil {
		failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, shownOnce(g, u))
}

// shownOnce is a changed group as its change's answer shows it: the
// secrets the change set, the others redacted.
func shownOnce(g appliance.InitiatorGroup, u appliance.GroupUpdate) appliance.InitiatorGroup {
	r := g.Redacted()
	if u.CHAP != nil && g.CHAP != nil {
		chap := *g.CHAP
		r.CHAP = &chap
	}
	if u.MutualCHAP != nil && g.MutualCHAP != nil {
		chap := *g.MutualCHAP
		r.MutualCHAP = &chap
	}
	return r
}

// doUpdateGroup adds or removes initiators and sets CHAP.
func (a *api) doUpdateGroup(ctx context.Context, name string, u appliance.GroupUpdate) (appliance.InitiatorGroup, error) {
	g, err := a.box.UpdateGroup(ctx, name, u)
	if err != nil {
		return appliance.InitiatorGroup{}, onField(updateGroupField(u, err), err)
	}
	return g, nil
}

// updateGroupField says which field of a refused group change is wrong.
func updateGroupField(u appliance.GroupUpdate, err error) string {
	msg := err.Error()
	switch {
	case errors.Is(err, appliance.ErrExists) && len(u.Add) > 0:
		return "add"
	case errors.Is(err, appliance.ErrNotFound) && len(u.Remove) > 0 && !strings.Contains(msg, "does not exist"):
		return "remove"
	case !errors.Is(err, appliance.ErrInvalid):
		return ""
	}
	for _, iqn := range u.Add {
		if iscsi.ValidateIQN(iqn) != nil {
			return "add"
		}
	}
	switch {
	case u.MutualCHAP != nil && strings.Contains(msg, "mutual"):
		return "mutual_chap"
	case u.CHAP != nil:
		return "chap"
	case u.MutualCHAP != nil:
		return "mutual_chap"
	}
	return ""
}

func (a *api) deleteGroup(c *gin.Context) {
	if err := a.doDeleteGroup(c.Request.Context(), c.Param("name")); err != nil {
		failErr(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// doDeleteGroup deletes an initiator group no LUN uses.
func (a *api) doDeleteGroup(ctx context.Context, name string) error {
	return a.box.DeleteGroup(ctx, name)
}

// ImportView is one LUN an import made (or, in a dry run, would make):
// the LUN as the API shows it, and the path its data was copied from.
type ImportView struct {
	LUNView
	CopiedFrom string `json:"copied_from,omitempty"`
}

// importIETD takes an ietd.conf as the request body; ?group= names the
// initiator group of the new LUNs, ?dry_run=true only reports, and each
// ?copy_from=PATH names a Path= of the file whose data is copied into its
// new LUN (appliance.ImportRequest). A copy lasts as long as the data
// takes: once the body is read, the server's time limits are lifted for
// this request, and the copy stops (changing nothing) if the client goes
// away.
func (a *api) importIETD(c *gin.Context) {
	data, err := io.ReadAll(c.Request.Body)
	if err != nil {
		failBody(c, err)
		return
	}
	req := appliance.ImportRequest{
		Conf: data, Group: c.Query("group"), DryRun: c.Query("dry_run") == "true",
		CopyFrom: c.QueryArray("copy_from"),
	}
	if len(req.CopyFrom) > 0 && !req.DryRun {
		// Without this a copy longer than the write limit would finish
		// and commit, and its client would get no answer.
		rc := http.NewResponseController(c.Writer)
		if err := errors.Join(rc.SetReadDeadline(time.Time{}), rc.SetWriteDeadline(time.Time{})); err != nil && !errors.Is(err, http.ErrNotSupported) {
			failErr(c, fmt.Errorf("lift the time limits for a copy: %w", err))
			return
		}
	}
	items, err := a.box.Import(c.Request.Context(), req)
	if err != nil {
		failErr(c, err)
		return
	}
	luns := make([]appliance.LUN, len(items))
	for i, it := range items {
		luns[i] = it.LUN
	}
	views := make([]ImportView, len(items))
	for i, v := range a.views(c.Request.Context(), luns...) {
		views[i] = ImportView{LUNView: v, CopiedFrom: items[i].CopiedFrom}
	}
	status := http.StatusCreated
	if req.DryRun {
		status = http.StatusOK
	}
	c.JSON(status, views)
}

// decode reads one JSON object into v, refusing unknown fields and trailing
// data, and answers 400 itself when it cannot.
func decode(c *gin.Context, v any) bool {
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		failBody(c, err)
		return false
	}
	if dec.More() {
		fail(c, http.StatusBadRequest, "request body holds more than one JSON value: send one object")
		return false
	}
	return true
}

func failBody(c *gin.Context, err error) {
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		fail(c, http.StatusRequestEntityTooLarge, "request body is larger than %d bytes", tooBig.Limit)
	case errors.Is(err, io.EOF):
		fail(c, http.StatusBadRequest, "request body is empty: send a JSON object")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		fail(c, http.StatusBadRequest, "request body is not valid JSON: %v", err)
	case errors.As(err, &typ):
		c.AbortWithStatusJSON(http.StatusBadRequest, Error{
			Error: fmt.Sprintf("field %q must be a %s, not a JSON %s", typ.Field, typ.Type, typ.Value), Field: typ.Field,
		})
	default:
		fail(c, http.StatusBadRequest, "bad request body: %v", strings.TrimPrefix(err.Error(), "json: "))
	}
}

// failErr answers an error with the status of its kind, naming the field
// it concerns when known.
func failErr(c *gin.Context, err error) {
	c.AbortWithStatusJSON(statusOf(err), Error{Error: err.Error(), Field: errorField(err)})
}

// Error is the body of every failed request.
type Error struct {
	Error string `json:"error"`
	// Field names the request field the error concerns, when it is one.
	Field string `json:"field,omitempty"`
}

func fail(c *gin.Context, status int, format string, args ...any) {
	c.AbortWithStatusJSON(status, Error{Error: fmt.Sprintf(format, args...)})
}

func limitBody(c *gin.Context) {
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBody)
	}
	c.Next()
}

// requestLog logs each request through slog instead of gin's own logger.
func requestLog(log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		level := slog.LevelDebug
		if c.Request.Method != http.MethodGet {
			level = slog.LevelInfo
		}
		if c.Writer.Status() >= 500 {
			level = slog.LevelError
		}
		log.Log(c.Request.Context(), level, "api", "method", c.Request.Method, "path", c.Request.URL.Path,
			"status", c.Writer.Status(), "took", time.Since(start))
	}
}

// events lists what happened, newest first; ?limit=N keeps the N newest.
func (a *api) events(c *gin.Context) {
	events := a.box.Events().List()
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			fail(c, http.StatusBadRequest, "limit %q is not a count: give a whole number, e.g. limit=50", s)
			return
		}
		events = events[:min(n, len(events))]
	}
	c.JSON(http.StatusOK, events)
}

// PairView is GET /api/v1/pair: the pair, or a standalone box.
type PairView struct {
	Standalone bool `json:"standalone"`
	// Clock is this box's time when it answered: compare the boxes'
	// clocks, and place events log times on an outside clock.
	Clock time.Time `json:"clock"`
	PairState
}

// pairView is the pair as the API, the home page and /metrics show it.
func (a *api) pairView(ctx context.Context) PairView {
	if a.pair == nil {
		return PairView{Standalone: true, Clock: time.Now(), PairState: standalonePair(a.box.Status(ctx).Name, a.box.Portal())}
	}
	return PairView{Clock: time.Now(), PairState: a.pair.State(ctx)}
}

func (a *api) pairState(c *gin.Context) { c.JSON(http.StatusOK, a.pairView(c.Request.Context())) }

// PairActionRequest is the body of POST /pair/standby and /pair/resume.
type PairActionRequest struct {
	Box string `json:"box"`
}

func (a *api) switchover(c *gin.Context) {
	if err := a.doPairAction(c.Request.Context(), "switchover", ""); err != nil {
		failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, a.pairView(c.Request.Context()))
}

func (a *api) standby(c *gin.Context) { a.pairActionWithBox(c, "standby") }
func (a *api) resume(c *gin.Context)  { a.pairActionWithBox(c, "resume") }

func (a *api) pairActionWithBox(c *gin.Context, action string) {
	var req PairActionRequest
	if !decode(c, &req) {
		return
	}
	if err := a.doPairAction(c.Request.Context(), action, req.Box); err != nil {
		failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, a.pairView(c.Request.Context()))
}

// doPairAction runs switchover, standby or resume on the pair.
func (a *api) doPairAction(ctx context.Context, action, box string) error {
	if a.pair == nil {
		return errStandalone
	}
	if action != "switchover" && box == "" {
		return onField("box", fmt.Errorf("%w: name the box to %s", appliance.ErrInvalid, action))
	}
	var err error
	switch action {
	case "switchover":
		err = a.pair.Switchover(ctx)
	case "standby":
		err = a.pair.Standby(ctx, box)
	case "resume":
		err = a.pair.Resume(ctx, box)
	default:
		return fmt.Errorf("%w: unknown pair action %q", appliance.ErrInvalid, action)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	return nil
}

// Fencer is implemented by a pair on DRBD storage; DRBD's handlers (sand
// fence-peer, sand split-brain) reach it through these routes.
type Fencer interface {
	FencePeer(ctx context.Context) (drbd.FenceOutcome, error)
	SplitBrain(ctx context.Context) error
}

// FenceAnswer is the body answering POST /pair/fence-peer.
type FenceAnswer struct {
	Outcome drbd.FenceOutcome `json:"outcome"`
}

func (a *api) fencer(c *gin.Context) (Fencer, bool) {
	f, ok := a.pair.(Fencer)
	if a.pair == nil || !ok {
		failErr(c, fmt.Errorf("%w: this box has no DRBD pair to fence", appliance.ErrInvalid))
		return nil, false
	}
	return f, true
}

func (a *api) fencePeer(c *gin.Context) {
	f, ok := a.fencer(c)
	if !ok {
		return
	}
	outcome, err := f.FencePeer(c.Request.Context())
	if err != nil {
		failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, FenceAnswer{Outcome: outcome})
}

func (a *api) splitBrain(c *gin.Context) {
	f, ok := a.fencer(c)
	if !ok {
		return
	}
	if err := f.SplitBrain(c.Request.Context()); err != nil {
		failErr(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
