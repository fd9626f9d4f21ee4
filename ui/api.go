// Package ui serves sand's REST API (/api/v1) and, later, the web UI, both
// from one gin engine so every client goes through the same code path.
package ui

import (
	"context"
	"crypto/subtle"
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
	"github.com/sand-appliance/sand/iscsi"
)

// maxBody bounds request bodies; the largest legitimate one is an imported
// ietd.conf.
const maxBody = 1 << 20

// Options configure the server.
type Options struct {
	// Token authorises API calls (Authorization: Bearer TOKEN). It must
	// not be empty: sand never serves anonymous writes.
	Token  string
	Logger *slog.Logger
}

// New returns the HTTP handler for a box.
func New(box *appliance.Box, opts Options) (http.Handler, error) {
	if opts.Token == "" {
		return nil, errors.New("serve API: no API token configured: set api_token or api_token_file in sand.yaml")
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery(), requestLog(opts.Logger), limitBody)
	r.HandleMethodNotAllowed = true
	r.NoRoute(func(c *gin.Context) {
		fail(c, http.StatusNotFound, "no such route: %s %s", c.Request.Method, c.Request.URL.Path)
	})
	r.NoMethod(func(c *gin.Context) {
		fail(c, http.StatusMethodNotAllowed, "method %s is not allowed on %s", c.Request.Method, c.Request.URL.Path)
	})
	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok\n") })

	a := &api{box: box}
	v1 := r.Group("/api/v1", requireToken(opts.Token))
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
	return r, nil
}

type api struct {
	box *appliance.Box
}

// LUNView is a LUN as the API shows it: the registry entry, its size in
// words, and how to attach it.
type LUNView struct {
	appliance.LUN
	SizeHuman string           `json:"size_human"`
	Attach    appliance.Attach `json:"attach"`
}

func (a *api) view(l appliance.LUN) LUNView {
	return LUNView{LUN: l, SizeHuman: appliance.FormatSize(l.Size), Attach: a.box.AttachFor(l)}
}

func (a *api) status(c *gin.Context) { c.JSON(http.StatusOK, a.box.Status(c.Request.Context())) }

func (a *api) target(c *gin.Context) {
	conf, err := a.box.TargetConfig()
	if err != nil {
		failErr(c, err)
		return
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", conf)
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
	views := []LUNView{}
	for _, l := range a.box.LUNs() {
		views = append(views, a.view(l))
	}
	c.JSON(http.StatusOK, views)
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
	l, err := a.box.CreateLUN(c.Request.Context(), appliance.LUNRequest{
		Name: req.Name, Size: int64(req.Size), Group: req.Group, Target: req.Target,
	})
	if err != nil {
		failErr(c, err)
		return
	}
	c.Header("Location", "/api/v1/luns/"+l.Name)
	c.JSON(http.StatusCreated, a.view(l))
}

func (a *api) getLUN(c *gin.Context) {
	l, err := a.box.LUN(c.Param("name"))
	if err != nil {
		failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, a.view(l))
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
	if req.Size == nil && req.Group == nil {
		fail(c, http.StatusBadRequest, "nothing to change: give size (to grow the LUN) or group")
		return
	}
	u := appliance.LUNUpdate{Group: req.Group}
	if req.Size != nil {
		n := int64(*req.Size)
		u.Size = &n
	}
	l, err := a.box.UpdateLUN(c.Request.Context(), c.Param("name"), u)
	if err != nil {
		failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, a.view(l))
}

func (a *api) deleteLUN(c *gin.Context) {
	if err := a.box.DeleteLUN(c.Request.Context(), c.Param("name")); err != nil {
		failErr(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (a *api) listGroups(c *gin.Context) {
	groups := a.box.Groups()
	if groups == nil {
		groups = []appliance.InitiatorGroup{}
	}
	c.JSON(http.StatusOK, groups)
}

func (a *api) createGroup(c *gin.Context) {
	var g appliance.InitiatorGroup
	if !decode(c, &g) {
		return
	}
	if g.Initiators == nil {
		g.Initiators = []string{}
	}
	g, err := a.box.CreateGroup(c.Request.Context(), g)
	if err != nil {
		failErr(c, err)
		return
	}
	c.Header("Location", "/api/v1/initiator-groups/"+g.Name)
	c.JSON(http.StatusCreated, g)
}

func (a *api) getGroup(c *gin.Context) {
	g, err := a.box.Group(c.Param("name"))
	if err != nil {
		failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, g)
}

func (a *api) updateGroup(c *gin.Context) {
	var u appliance.GroupUpdate
	if !decode(c, &u) {
		return
	}
	g, err := a.box.UpdateGroup(c.Request.Context(), c.Param("name"), u)
	if err != nil {
		failErr(c, err)
		return
	}
	c.JSON(http.StatusOK, g)
}

func (a *api) deleteGroup(c *gin.Context) {
	if err := a.box.DeleteGroup(c.Request.Context(), c.Param("name")); err != nil {
		failErr(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// importIETD takes an ietd.conf as the request body; ?group= names the
// initiator group for the imported LUNs and ?dry_run=true only reports.
func (a *api) importIETD(c *gin.Context) {
	data, err := io.ReadAll(c.Request.Body)
	if err != nil {
		failBody(c, err)
		return
	}
	dry := c.Query("dry_run") == "true"
	luns, err := a.box.Import(c.Request.Context(), data, c.Query("group"), dry)
	if err != nil {
		failErr(c, err)
		return
	}
	views := []LUNView{}
	for _, l := range luns {
		views = append(views, a.view(l))
	}
	status := http.StatusCreated
	if dry {
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
		fail(c, http.StatusBadRequest, "field %q must be a %s, not a JSON %s", typ.Field, typ.Type, typ.Value)
	default:
		fail(c, http.StatusBadRequest, "bad request body: %v", strings.TrimPrefix(err.Error(), "json: "))
	}
}

// failErr maps the box's error kinds to statuses.
func failErr(c *gin.Context, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, appliance.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, appliance.ErrNotFound):
		status = http.StatusNotFound
	case errors.Is(err, appliance.ErrExists), errors.Is(err, appliance.ErrInUse):
		status = http.StatusConflict
	case errors.Is(err, appliance.ErrNoSpace):
		status = http.StatusUnprocessableEntity
	case errors.Is(err, context.Canceled):
		status = 499
	}
	fail(c, status, "%s", err.Error())
}

// Error is the body of every failed request.
type Error struct {
	Error string `json:"error"`
}

func fail(c *gin.Context, status int, format string, args ...any) {
	c.AbortWithStatusJSON(status, Error{Error: fmt.Sprintf(format, args...)})
}

func requireToken(token string) gin.HandlerFunc {
	want := []byte("Bearer " + token)
	return func(c *gin.Context) {
		got := []byte(c.GetHeader("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			c.Header("WWW-Authenticate", `Bearer realm="sand"`)
			fail(c, http.StatusUnauthorized, "missing or wrong API token: send Authorization: Bearer <token> (the api_token in sand.yaml)")
			return
		}
		c.Next()
	}
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
