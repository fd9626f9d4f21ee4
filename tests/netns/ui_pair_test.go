//go:build netns

package netns

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sand-appliance/sand/tests/netlab"
)

// TestWebUIFollowsFailover watches the home page of the secondary's UI in
// a real browser while the primary's sand is killed: the page must show
// the VIP moving to the other box within a few seconds, without a reload.
func TestWebUIFollowsFailover(t *testing.T) {
	netlab.Require(t, append(slices.Clone(netlab.Tools), "chromium", "nft")...)
	const password = "pair ui test password"
	pwFile := filepath.Join(t.TempDir(), "first-admin-password")
	os.WriteFile(pwFile, []byte(password+"\n"), 0o600)
	r := newPairRigWith(t, "admin_password_file: "+pwFile+"\n")
	old, next := r.primary()
	base := next.APIURL()

	b := startBrowser(t, r.client, next.SPKIHashes()...)
	b.do(chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.ID("login-password")))
	b.do(chromedp.SendKeys(chromedp.ID("login-password"), password+"\n"), chromedp.WaitVisible(chromedp.ID("pair")))
	if txt := b.text("#pair"); !strings.Contains(txt, "held by "+old.Host.Name) {
		t.Fatalf("home page of %s does not show %s holding the VIP:\n%s", next.Host.Name, old.Host.Name, txt)
	}
	b.eval(`window.sandNoReload = "still here"; ""`)

	fault := time.Now()
	if err := old.Proc.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	b.poll(`document.querySelector("#pair").textContent.includes("held by ` + next.Host.Name + `")`)
	shown := time.Since(fault)
	if v := b.eval(`window.sandNoReload || "reloaded"`); v != "still here" {
		t.Errorf("the home page reloaded to refresh (%q)", v)
	}
	txt := b.text("#pair")
	for _, want := range []string{next.Host.Name, old.Host.Name, "witness"} {
		if !strings.Contains(txt, want) {
			t.Errorf("home page after the failover lacks %q:\n%s", want, txt)
		}
	}
	t.Logf("UI: %s's home page showed the VIP on %s %v after %s's sand was killed", next.Host.Name, next.Host.Name, shown.Round(time.Millisecond), old.Host.Name)
	shots, _ := filepath.Abs(screenshotDir)
	os.MkdirAll(shots, 0o755)
	b.shot(shots, "home-after-failover", 1280)
	b.checkConsole()
}
