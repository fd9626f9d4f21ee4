package ui

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/iscsi"
)

const (
	monitorToken = "monitor-token-0123456789"
	chapSecret   = "chap-Secret-0001"
	mutualSecret = "mutual-Secret-02"
)

// secretFixture is a box with a CHAP group and a LUN in it, a monitoring
// token and a logged-in browser.
func secretFixture(t *testing.T) *webFixture {
	t.Helper()
	f := newWebFixture(t, func(o *Options) { o.MonitorToken = monitorToken })
	rec := f.do(request{method: "POST", path: "/api/v1/initiator-groups", header: map[string]string{"Authorization": "Bearer " + webToken},
		body: `{"name":"vm01","initiators":["iqn.2026-11.org.example:dom0-a"],"chap":{"user":"xen","secret":"` + chapSecret + `"},"mutual_chap":{"user":"san","secret":"` + mutualSecret + `"}}`})
	if rec.Code != http.StatusCreated {
		t.Fatalf("create group: %d %s", rec.Code, rec.Body)
	}
	// The answer to the create shows the secrets it set, once.
	var g appliance.InitiatorGroup
	if err := json.Unmarshal(rec.Body.Bytes(), &g); err != nil || g.CHAP == nil || g.CHAP.Secret != chapSecret || g.MutualCHAP == nil || g.MutualCHAP.Secret != mutualSecret {
		t.Errorf("the create's answer does not show the secrets it set: %s", rec.Body)
	}
	if _, err := f.box.CreateLUN(context.Background(), appliance.LUNRequest{Name: "vm01", Size: 1 << 20, Group: "vm01"}); err != nil {
		t.Fatal(err)
	}
	f.driver.mu.Lock()
	f.driver.sessions = []iscsi.Session{{Target: "iqn.2026-11.org.sand-appliance:vm01", Initiator: "iqn.2026-11.org.example:dom0-a", Address: "10.0.0.9:50000"}}
	f.driver.mu.Unlock()
	f.login()
	return f
}

// TestNoSecretInAnyRead reads every GET route of the router, API and
// pages, with the API token, the monitoring token and a browser session:
// no answer holds a CHAP secret. Only the change that sets a secret shows
// it.
func TestNoSecretInAnyRead(t *testing.T) {
	f := secretFixture(t)
	reads := 0
	for _, r := range f.engine.Routes() {
		if r.Method != http.MethodGet {
			continue
		}
		reads++
		path := concrete(r.Path)
		for _, who := range []struct {
			name string
			req  request
		}{
			{"API token", request{header: map[string]string{"Authorization": "Bearer " + webToken}}},
			{"monitoring token", request{header: map[string]string{"Authorization": "Bearer " + monitorToken}}},
			{"session", request{cookies: []*http.Cookie{f.cookie}}},
		} {
			req := who.req
			req.method, req.path = r.Method, path
			rec := f.do(req)
			for _, s := range []string{chapSecret, mutualSecret} {
				if strings.Contains(rec.Body.String(), s) {
					t.Errorf("GET %s as %s (%d) shows a CHAP secret:\n%s", path, who.name, rec.Code, rec.Body)
				}
			}
		}
	}
	if reads < 15 {
		t.Errorf("found only %d GET routes", reads)
	}
	auth := map[string]string{"Authorization": "Bearer " + webToken}
	// Reads say CHAP is set, and by whom, without the secret.
	var g appliance.InitiatorGroup
	rec := f.do(request{method: "GET", path: "/api/v1/initiator-groups/vm01", header: auth})
	if err := json.Unmarshal(rec.Body.Bytes(), &g); err != nil || g.CHAP == nil || g.CHAP.User != "xen" || g.CHAP.Secret != appliance.RedactedSecret || g.MutualCHAP == nil || g.MutualCHAP.User != "san" {
		t.Errorf("group read: %s", rec.Body)
	}
	conf := f.do(request{method: "GET", path: "/api/v1/target", header: auth}).Body.String()
	if !strings.Contains(conf, "IncomingUser xen "+appliance.RedactedSecret+"\n") || !strings.Contains(conf, "OutgoingUser san "+appliance.RedactedSecret+"\n") {
		t.Errorf("target configuration:\n%s", conf)
	}
	var l LUNView
	json.Unmarshal(f.do(request{method: "GET", path: "/api/v1/luns/vm01", header: auth}).Body.Bytes(), &l)
	if !strings.Contains(strings.Join(l.Attach.Iscsiadm, "\n"), `-v "$CHAP_SECRET"`) || !strings.Contains(l.Attach.Note, "CHAP_SECRET") {
		t.Errorf("attach lines of a CHAP LUN: %+v", l.Attach)
	}
	// A group read and sent back does not set the placeholder as the
	// secret: the change is refused and says why.
	before := f.state()
	rec = f.do(request{method: "PATCH", path: "/api/v1/initiator-groups/vm01", header: auth, body: `{"chap":{"User":"xen","Secret":"` + appliance.RedactedSecret + `"}}`})
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "placeholder") || !strings.Contains(rec.Body.String(), `"field":"chap"`) {
		t.Errorf("placeholder sent back: %d %s", rec.Code, rec.Body)
	}
	if f.state() != before {
		t.Error("a refused change changed the box")
	}
	// An update shows the secrets it sets and no other.
	rec = f.do(request{method: "PATCH", path: "/api/v1/initiator-groups/vm01", header: auth, body: `{"add":["iqn.2026-11.org.example:dom0-b"]}`})
	if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), chapSecret) || strings.Contains(rec.Body.String(), mutualSecret) {
		t.Errorf("an update that sets no secret shows one: %d %s", rec.Code, rec.Body)
	}
	rec = f.do(request{method: "PATCH", path: "/api/v1/initiator-groups/vm01", header: auth, body: `{"mutual_chap":{"user":"san","secret":"mutual-Secret-03"}}`})
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "mutual-Secret-03") || strings.Contains(rec.Body.String(), chapSecret) {
		t.Errorf("an update of the mutual secret: %d %s", rec.Code, rec.Body)
	}
	// Hostile CHAP users are refused and change nothing.
	before = f.state()
	for _, user := range []string{"a;reboot", "$(id)", "u'x", "a b", "x\ny"} {
		body, _ := json.Marshal(map[string]any{"chap": map[string]string{"user": user, "secret": "0123456789abcd"}})
		rec := f.do(request{method: "PATCH", path: "/api/v1/initiator-groups/vm01", header: auth, body: string(body)})
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), `"field":"chap"`) {
			t.Errorf("CHAP user %q: %d %s", user, rec.Code, rec.Body)
		}
	}
	if f.state() != before {
		t.Error("refused CHAP users changed the box")
	}
}

func TestRedactIETD(t *testing.T) {
	in := "# sand\nTarget iqn.2026-11.org.example:a\n\tIncomingUser xen s3cret-secret1\n\tOutgoingUser  san   s3cret-secret2\r\n\tLun 0 Path=/x,Type=fileio\nincominguser u s3cret-secret3"
	want := "# sand\nTarget iqn.2026-11.org.example:a\n\tIncomingUser xen ********\n\tOutgoingUser san ********\r\n\tLun 0 Path=/x,Type=fileio\nincominguser u ********"
	if got := string(redactIETD([]byte(in))); got != want {
		t.Errorf("redactIETD:\n%q\nwant\n%q", got, want)
	}
}

// TestMonitorToken: the monitoring token reads /metrics and the API's read
// routes and nothing else; every other route refuses it, and nothing
// changes.
func TestMonitorToken(t *testing.T) {
	f := secretFixture(t)
	before := f.state()
	monitor := map[string]string{"Authorization": "Bearer " + monitorToken}
	granted := 0
	for _, r := range f.engine.Routes() {
		key := r.Method + " " + r.Path
		if public[key] {
			continue
		}
		path := concrete(r.Path)
		rec := f.do(request{method: r.Method, path: path, header: monitor, body: `{"name":"x","size":"1M"}`})
		switch {
		case monitorRoutes[key]:
			granted++
			if rec.Code != http.StatusOK {
				t.Errorf("%s with the monitoring token: %d %s", key, rec.Code, rec.Body)
			}
		case strings.HasPrefix(r.Path, "/api/"):
			if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "only reads") {
				t.Errorf("%s with the monitoring token: %d %s", key, rec.Code, rec.Body)
			}
		default: // pages need a session
			if !refused(rec) {
				t.Errorf("%s with the monitoring token: %d", key, rec.Code)
			}
		}
		if r.Method != http.MethodGet && monitorRoutes[key] {
			t.Errorf("monitoring may reach %s, which is not a read", key)
		}
	}
	if granted != len(monitorRoutes) {
		t.Errorf("%d of the %d monitoring routes exist", granted, len(monitorRoutes))
	}
	if after := f.state(); after != before {
		t.Errorf("the monitoring token changed the box:\nbefore %s\nafter %s", before, after)
	}
	if rec := f.do(request{method: "HEAD", path: "/metrics", header: monitor}); rec.Code != http.StatusOK && rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("HEAD /metrics: %d", rec.Code)
	}
	// Without a monitoring token configured, its value is just a wrong
	// token.
	plain := newWebFixture(t)
	if rec := plain.do(request{method: "GET", path: "/metrics", header: monitor}); rec.Code != http.StatusUnauthorized {
		t.Errorf("metrics with an unconfigured monitoring token: %d", rec.Code)
	}
	// A short token, or the API token again, is refused at start.
	for _, tt := range []struct{ token, msg string }{{"short", "at least 16"}, {"api-token-0123456789", "a token of its own"}} {
		_, err := New(plain.box, Options{Token: "api-token-0123456789", MonitorToken: tt.token})
		if err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("monitoring token %q: %v", tt.token, err)
		}
	}
}
