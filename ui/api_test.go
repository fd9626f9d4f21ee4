package ui

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/google/go-cmp/cmp"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/appliance/pool/file"
	"github.com/sand-appliance/sand/iscsi"
)

const token = "test-token"

// nullDriver stands in for the target at the driver boundary; these tests
// are about the HTTP layer.
type nullDriver struct{ applies int }

func (d *nullDriver) Apply(context.Context, iscsi.TargetGroup) error    { d.applies++; return nil }
func (d *nullDriver) Sessions(context.Context) ([]iscsi.Session, error) { return nil, nil }
func (d *nullDriver) Stop(context.Context) error                        { return nil }
func (d *nullDriver) FirstLUN() int                                     { return 0 }

type apiFixture struct {
	h      http.Handler
	cfg    appliance.Config
	pool   *file.Pool
	driver *nullDriver
}

func newAPI(t *testing.T) apiFixture {
	t.Helper()
	dir := t.TempDir()
	cfg := appliance.DefaultConfig()
	cfg.Portal = "10.0.0.50"
	cfg.StateDir = filepath.Join(dir, "state")
	cfg.Pool = appliance.PoolConfig{Kind: "file", Dir: filepath.Join(dir, "pool")}
	p, err := file.New(cfg.Pool.Dir, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	d := &nullDriver{}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	box := appliance.NewBox(cfg, p, d, log)
	if err := box.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h, err := New(box, Options{Token: token, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	return apiFixture{h: h, cfg: cfg, pool: p, driver: d}
}

func (f apiFixture) do(method, path, body string, auth bool) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if auth {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func TestNewRefusesEmptyToken(t *testing.T) {
	if _, err := New(nil, Options{}); err == nil {
		t.Fatal("serving an API without a token was allowed")
	}
}

func TestCreateLUNAnswersWithAttachLines(t *testing.T) {
	f := newAPI(t)
	if rec := f.do("POST", "/api/v1/initiator-groups", `{"name":"xen","initiators":["iqn.2026-11.org.example:dom0-a"]}`, true); rec.Code != http.StatusCreated {
		t.Fatalf("create group: %d %s", rec.Code, rec.Body)
	}
	rec := f.do("POST", "/api/v1/luns", `{"name":"vm01","size":"20M","group":"xen"}`, true)
	if rec.Code != http.StatusCreated {
		t.Fatalf("create LUN: %d %s", rec.Code, rec.Body)
	}
	var l LUNView
	if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil {
		t.Fatal(err)
	}
	iqn := "iqn.2026-11.org.sand-appliance:vm01"
	if l.Target != iqn || l.Number != 0 || l.Size != 20<<20 || l.Attach.Portal != "10.0.0.50:3260" || l.Serial == "" || l.NAA == "" {
		t.Errorf("answer: %+v", l)
	}
	wantISCSI := []string{
		"iscsiadm -m discovery -t sendtargets -p 10.0.0.50:3260",
		"iscsiadm -m node -T " + iqn + " -p 10.0.0.50:3260 --login",
	}
	if diff := cmp.Diff(wantISCSI, l.Attach.Iscsiadm); diff != "" {
		t.Errorf("iscsiadm lines (-want +got):\n%s", diff)
	}
	if want := "disk = [ 'vdev=xvda, access=rw, script=block-iscsi, target=iqn=" + iqn + ",portal=10.0.0.50:3260' ]"; l.Attach.XenDisk != want {
		t.Errorf("xen line %q, want %q", l.Attach.XenDisk, want)
	}
	if got := rec.Header().Get("Location"); got != "/api/v1/luns/vm01" {
		t.Errorf("Location %q", got)
	}
	rec = f.do("PATCH", "/api/v1/luns/vm01", `{"size":41943040}`, true)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"size":41943040`) {
		t.Errorf("grow: %d %s", rec.Code, rec.Body)
	}
	rec = f.do("GET", "/api/v1/target", "", true)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "Target "+iqn) {
		t.Errorf("target: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do("DELETE", "/api/v1/luns/vm01", "", true); rec.Code != http.StatusNoContent {
		t.Errorf("delete: %d %s", rec.Code, rec.Body)
	}
	if rec := f.do("GET", "/api/v1/luns/vm01", "", true); rec.Code != http.StatusNotFound {
		t.Errorf("get deleted: %d %s", rec.Code, rec.Body)
	}
}

// Every API route refuses a request without the token, or with a wrong one.
func TestEveryAPIRouteNeedsTheToken(t *testing.T) {
	f := newAPI(t)
	routes := f.h.(*gin.Engine).Routes()
	n := 0
	for _, r := range routes {
		if !strings.HasPrefix(r.Path, "/api/") {
			continue
		}
		n++
		path := strings.ReplaceAll(r.Path, ":name", "x")
		for _, hdr := range []string{"", "Bearer wrong", "Basic " + token, token} {
			req := httptest.NewRequest(r.Method, path, strings.NewReader(`{"name":"x","size":"1M"}`))
			if hdr != "" {
				req.Header.Set("Authorization", hdr)
			}
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, req)
			if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), `"error"`) {
				t.Errorf("%s %s with %q: %d %s", r.Method, path, hdr, rec.Code, rec.Body)
			}
		}
	}
	if n < 14 {
		t.Errorf("found only %d API routes", n)
	}
	if f.driver.applies != 1 {
		t.Errorf("unauthorised requests reached the target: %d applies", f.driver.applies)
	}
}

func TestBadRequestsAnswerClearlyAndChangeNothing(t *testing.T) {
	f := newAPI(t)
	f.do("POST", "/api/v1/initiator-groups", `{"name":"xen"}`, true)
	f.do("POST", "/api/v1/luns", `{"name":"vm01","size":"16M","group":"xen"}`, true)
	tests := []struct {
		name, method, path, body string
		status                   int
		msg                      string
	}{
		{"malformed JSON", "POST", "/api/v1/luns", `{"name":"vm02",`, 400, "not valid JSON"},
		{"not JSON", "POST", "/api/v1/luns", `name=vm02`, 400, "not valid JSON"},
		{"empty body", "POST", "/api/v1/luns", ``, 400, "empty"},
		{"two objects", "POST", "/api/v1/luns", `{"name":"a","size":"1M"}{"name":"b","size":"1M"}`, 400, "more than one"},
		{"unknown field", "POST", "/api/v1/luns", `{"name":"vm02","size":"1M","colour":"red"}`, 400, "colour"},
		{"size not a size", "POST", "/api/v1/luns", `{"name":"vm02","size":"big"}`, 400, "not a size"},
		{"size negative", "POST", "/api/v1/luns", `{"name":"vm02","size":-1048576}`, 400, "larger than 0"},
		{"size fraction", "POST", "/api/v1/luns", `{"name":"vm02","size":1.5}`, 400, "whole number"},
		{"size bool", "POST", "/api/v1/luns", `{"name":"vm02","size":true}`, 400, "size"},
		{"name number", "POST", "/api/v1/luns", `{"name":7,"size":"1M"}`, 400, "name"},
		{"too large for pool", "POST", "/api/v1/luns", `{"name":"vm02","size":"10T"}`, 422, "free in the pool"},
		{"bad name", "POST", "/api/v1/luns", `{"name":"../etc","size":"1M"}`, 400, ".."},
		{"shell name", "POST", "/api/v1/luns", `{"name":"a;reboot","size":"1M"}`, 400, "lower-case"},
		{"duplicate", "POST", "/api/v1/luns", `{"name":"vm01","size":"1M"}`, 409, "already exists"},
		{"unknown group", "POST", "/api/v1/luns", `{"name":"vm02","size":"1M","group":"nope"}`, 404, "does not exist"},
		{"huge body", "POST", "/api/v1/luns", `{"name":"` + strings.Repeat("a", 2<<20) + `"}`, 413, "larger than"},
		{"shrink", "PATCH", "/api/v1/luns/vm01", `{"size":"8M"}`, 400, "shrinking"},
		{"patch nothing", "PATCH", "/api/v1/luns/vm01", `{}`, 400, "nothing to change"},
		{"patch missing", "PATCH", "/api/v1/luns/nope", `{"size":"32M"}`, 404, "does not exist"},
		{"delete missing", "DELETE", "/api/v1/luns/nope", ``, 404, "does not exist"},
		{"bad iqn", "POST", "/api/v1/initiator-groups", `{"name":"g","initiators":["iqn.2026-13.x:y"]}`, 400, "malformed"},
		{"chap too short", "PATCH", "/api/v1/initiator-groups/xen", `{"chap":{"User":"u","Secret":"short"}}`, 400, "12 to 16"},
		{"group in use", "DELETE", "/api/v1/initiator-groups/xen", ``, 409, "used by LUN"},
		{"bad ietd.conf", "POST", "/api/v1/import?group=xen", "Target iqn.bad\n", 400, "line 1"},
		{"wrong method", "PUT", "/api/v1/luns", `{}`, 405, "not allowed"},
		{"no such route", "GET", "/api/v1/nope", ``, 404, "no such route"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.state(t)
			rec := f.do(tt.method, tt.path, tt.body, true)
			if rec.Code != tt.status {
				t.Errorf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			var e Error
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || !strings.Contains(e.Error, tt.msg) {
				t.Errorf("body %s does not say %q", rec.Body, tt.msg)
			}
			if diff := cmp.Diff(before, f.state(t)); diff != "" {
				t.Errorf("state changed (-before +after):\n%s", diff)
			}
		})
	}
}

// state is what a request may change: registry file, pool, target applies.
func (f apiFixture) state(t *testing.T) []string {
	reg, _ := os.ReadFile(f.cfg.RegistryPath())
	vols, err := f.pool.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s := []string{string(reg)}
	for _, v := range vols {
		s = append(s, v.Name)
	}
	return s
}

// FuzzCreateLUN: no body can crash the API or get a 5xx; whatever it
// accepts is a LUN the registry holds.
func FuzzCreateLUN(f *testing.F) {
	for _, s := range []string{`{"name":"vm01","size":"16M"}`, `{"name":"a","size":512}`, `{`, `[]`, `{"size":"1e3G"}`, `{"name":"x","size":"0.5k"}`} {
		f.Add(s)
	}
	fx := newAPI(&testing.T{})
	f.Fuzz(func(t *testing.T, body string) {
		rec := fx.do("POST", "/api/v1/luns", body, true)
		if rec.Code >= 500 {
			t.Fatalf("body %q: %d %s", body, rec.Code, rec.Body)
		}
		if rec.Code == http.StatusCreated {
			var l LUNView
			if err := json.Unmarshal(rec.Body.Bytes(), &l); err != nil {
				t.Fatal(err)
			}
			if got := fx.do("DELETE", "/api/v1/luns/"+l.Name, "", true); got.Code != http.StatusNoContent {
				t.Fatalf("accepted LUN %q cannot be deleted: %d %s", l.Name, got.Code, got.Body)
			}
		}
	})
}
