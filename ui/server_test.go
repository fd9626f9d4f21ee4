package ui

import (
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServerLimits: NewServer sets every timeout; through a real server a
// large ietd.conf is read whole, a larger body and an oversized header are
// refused.
func TestServerLimits(t *testing.T) {
	f := newWebFixture(t)
	srv := NewServer(f.engine, nil)
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout < time.Minute || srv.WriteTimeout < 2*time.Minute || srv.IdleTimeout <= 0 ||
		srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 1<<20 || srv.ErrorLog == nil {
		t.Errorf("server limits: %+v", srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	base := "http://" + ln.Addr().String()
	post := func(body string, header map[string]string) (*http.Response, string) {
		req, _ := http.NewRequest("POST", base+"/api/v1/import?dry_run=true", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+webToken)
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e Error
		json.NewDecoder(resp.Body).Decode(&e)
		return resp, e.Error
	}
	// Almost maxBody of comments, then a target at the very end: the error
	// names its line, so the whole body was read.
	pad := strings.Repeat("# "+strings.Repeat("x", 77)+"\n", (maxBody-4096)/80)
	resp, msg := post(pad+"Target iqn.2026-11.org.example:last\n", nil)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(msg, "iqn.2026-11.org.example:last") {
		t.Errorf("import of %d bytes: %d %s", len(pad), resp.StatusCode, msg)
	}
	resp, msg = post(pad+pad, nil)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("import of %d bytes: %d %s", 2*len(pad), resp.StatusCode, msg)
	}
	if resp, _ := post("", map[string]string{"X-Big": strings.Repeat("h", 2*maxHeaderBytes)}); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("oversized header: %d", resp.StatusCode)
	}
}
