//go:build netns

package netns

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gin-gonic/gin"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/appliance/pool/file"
	"github.com/sand-appliance/sand/iscsi"
	"github.com/sand-appliance/sand/tests/netlab"
	"github.com/sand-appliance/sand/ui"
)

// screenshotDir is where TestWebUI leaves its screenshots, relative to this
// package (tests/artifacts is ignored by git).
const screenshotDir = "../artifacts/ui"

// TestWebUI drives the web UI in Debian's Chromium, running headless in an
// admin workstation namespace, against a real sand serve with real tgtd:
// log in, create an initiator group, try a bad LUN form, create a LUN, see
// it in the table with its attach lines, grow it, watch the home page
// refresh itself, and delete the LUN with initiators connected and then
// without. After each change a real initiator checks what the target
// exports. Any console error in the browser fails the test; screenshots at
// 1280 px and 800 px go to tests/artifacts/ui/.
func TestWebUI(t *testing.T) {
	netlab.Require(t, append(slices.Clone(netlab.Tools), "chromium")...)
	start := time.Now()
	lab := netlab.New(t, "10.214.0")
	srv := lab.AddHost("san1", 11)
	admin := lab.AddHost("admin", 100)
	bin := netlab.BuildSand(t)
	box := netlab.NewSandBox(t, srv, bin)
	const password = "web ui test password"
	pwFile := filepath.Join(t.TempDir(), "first-admin-password")
	os.WriteFile(pwFile, []byte(password+"\n"), 0o600)
	appendConfig(t, box.Config, "admin_password_file: "+pwFile+"\n")
	box.Start(admin)
	portal := srv.IP + ":3260"
	base := box.APIURL()
	dom := netlab.Initiator{T: t, Host: admin, IQN: dom0}
	shots, err := filepath.Abs(screenshotDir)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(shots, 0o755)

	b := startBrowser(t, admin, box.SPKIHashes()...)
	t.Logf("sand and the browser up in %v", time.Since(start).Round(time.Millisecond))

	// Every page but the login page sends a stranger to the login page.
	b.do(chromedp.Navigate(base+"/ui/luns"), chromedp.WaitVisible(chromedp.ID("login-password")))
	if loc := b.location(); !strings.HasPrefix(loc, base+"/ui/login?next=") {
		t.Errorf("a page without a session went to %s", loc)
	}
	b.shot(shots, "login", 1280)
	b.do(chromedp.SendKeys(chromedp.ID("login-password"), "wrong password\n"), chromedp.WaitVisible(chromedp.ID("login-problem")))
	if msg := b.text("#login-problem"); !strings.Contains(msg, "Wrong user name or password") {
		t.Errorf("wrong password says %q", msg)
	}
	b.do(chromedp.SendKeys(chromedp.ID("login-password"), password+"\n"), chromedp.WaitVisible(chromedp.CSS(`a[href="/ui/luns/new"]`)))
	if loc := b.location(); loc != base+"/ui/luns" {
		t.Errorf("after login the browser is at %s, want back at /ui/luns", loc)
	}
	b.checkLabels()

	// An initiator group with the dom0's IQN.
	b.do(chromedp.Navigate(base+"/ui/groups"),
		chromedp.SendKeys(chromedp.ID("create-name"), "xen-cluster"),
		chromedp.SendKeys(chromedp.ID("create-initiators"), dom0),
		chromedp.Click(chromedp.CSS(`form[action="/ui/groups"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("add-add")))
	if txt := b.text(".initiators"); !strings.Contains(txt, dom0) {
		t.Errorf("the group page lists %q, want %s", txt, dom0)
	}
	b.checkLabels()

	// A bad name is refused next to the field, and nothing is created.
	b.do(chromedp.Navigate(base+"/ui/luns/new"), chromedp.WaitVisible(chromedp.ID("create-name")))
	b.shot(shots, "create-form-empty", 1280)
	b.do(chromedp.SendKeys(chromedp.ID("create-name"), "VM 01"),
		chromedp.SendKeys(chromedp.ID("create-size"), "64"),
		chromedp.SetValue(chromedp.ID("create-size-unit"), "M"),
		chromedp.Click(chromedp.CSS(`form[action="/ui/luns"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.ID("create-name-error")))
	if msg := b.text("#create-name-error"); !strings.Contains(msg, "may hold only lower-case letters") {
		t.Errorf("bad name message: %q", msg)
	}
	if focused := b.eval(`document.activeElement.id`); focused != "create-name" {
		t.Errorf("focus is on %q after the error, want the name field", focused)
	}
	b.shot(shots, "create-form-error", 1280)
	if luns := listLUNs(t, box, admin); len(luns) != 0 {
		t.Fatalf("a refused form created LUNs: %+v", luns)
	}
	// iscsi-ls fails outright when the portal has no target at all.
	if found, _ := dom.Discover(portal); len(found) != 0 {
		t.Errorf("after a refused form the target exports %q", found)
	}

	// The LUN itself.
	b.do(chromedp.Clear(chromedp.ID("create-name")),
		chromedp.SendKeys(chromedp.ID("create-name"), "vm01"),
		chromedp.SetValue(chromedp.ID("create-group"), "xen-cluster"))
	if v := b.eval(`document.getElementById("create-size").value + " " + document.getElementById("create-size-unit").value`); v != "64 M" {
		t.Errorf("the form did not keep the size: %q", v)
	}
	b.shot(shots, "create-form", 1280)
	b.shot(shots, "create-form", 800)
	b.do(chromedp.Click(chromedp.CSS(`form[action="/ui/luns"] button[type=submit]`)), chromedp.WaitVisible(chromedp.ID("attach-iscsiadm")))
	l := box.LUN(admin, "vm01")
	if l.Size != 64*mib || l.Group != "xen-cluster" {
		t.Fatalf("LUN after the form: %+v", l)
	}
	if flash := b.text(".flash"); !strings.Contains(flash, "LUN vm01 created (64 MiB)") {
		t.Errorf("flash: %q", flash)
	}
	attach := b.text("#attach-iscsiadm")
	for _, want := range []string{"iscsiadm -m discovery -t sendtargets -p " + portal, "iscsiadm -m node -T " + l.Target + " -p " + portal + " --login"} {
		if !strings.Contains(attach, want) {
			t.Errorf("attach lines %q lack %q", attach, want)
		}
	}
	if xen := b.text("#attach-xen"); !strings.Contains(xen, "script=block-iscsi, target=iqn="+l.Target+",portal="+portal) {
		t.Errorf("Xen line: %q", xen)
	}
	// The page is served over plain HTTP to a lab address, where the
	// Clipboard API is off: the copy button falls back and says so.
	b.do(chromedp.Click(chromedp.CSS(`button[data-copy="attach-xen"]`)))
	b.poll(`document.getElementById("copy-status").textContent !== ""`)
	t.Logf("copy button: %s", b.text("#copy-status"))
	b.checkLabels()
	b.shot(shots, "lun", 1280)
	b.shot(shots, "lun", 800)
	found, err := dom.Discover(portal)
	if err != nil || !slices.Contains(found, "Target:"+l.Target) {
		t.Fatalf("the target does not export the new LUN: %q %v", found, err)
	}
	if size, err := dom.Capacity(portal, l.Target, l.Number); err != nil || size != 64*mib {
		t.Errorf("the initiator sees %d bytes (%v), want %d", size, err, 64*mib)
	}

	// The table.
	b.do(chromedp.Navigate(base+"/ui/luns"), chromedp.WaitVisible(chromedp.CSS(`tr[data-lun="vm01"]`)))
	row := b.text(`tr[data-lun="vm01"]`)
	for _, want := range []string{"vm01", "64 MiB", "xen-cluster", l.Target, l.Serial} {
		if !strings.Contains(row, want) {
			t.Errorf("table row %q lacks %q", row, want)
		}
	}
	b.shot(shots, "luns", 1280)
	b.shot(shots, "luns", 800)

	// Grow, and the initiator sees the new size.
	b.do(chromedp.Navigate(base+"/ui/luns/vm01"), chromedp.WaitVisible(chromedp.ID("grow-size")),
		chromedp.Clear(chromedp.ID("grow-size")), chromedp.SendKeys(chromedp.ID("grow-size"), "128"),
		chromedp.SetValue(chromedp.ID("grow-size-unit"), "M"),
		chromedp.Click(chromedp.CSS(`form[action="/ui/luns/vm01/grow"] button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(".flash")))
	if flash := b.text(".flash"); !strings.Contains(flash, "LUN vm01 is now 128 MiB") {
		t.Errorf("grow flash: %q", flash)
	}
	if size, err := dom.Capacity(portal, l.Target, l.Number); err != nil || size != 128*mib {
		t.Errorf("after the grow the initiator sees %d bytes (%v), want %d", size, err, 128*mib)
	}

	// The home page refreshes itself: a session that an initiator opens
	// shows up without a reload.
	b.do(chromedp.Navigate(base+"/ui/"), chromedp.WaitVisible(chromedp.ID("pair")))
	b.eval(`window.sandNoReload = "still here"; ""`)
	if txt := b.text(`section[aria-labelledby="fact-target"]`); !strings.Contains(txt, "0 sessions") {
		t.Errorf("target card before the session: %q", txt)
	}
	holder := holdSession(t, admin, portal, l.Target, l.Number)
	b.poll(`document.querySelector("#pair").textContent.includes("1 session from 1 initiator")`)
	if v := b.eval(`window.sandNoReload || "reloaded"`); v != "still here" {
		t.Errorf("the home page reloaded to refresh (%q)", v)
	}
	for _, want := range []string{"standalone", "not configured", "LUN created", "xen-cluster"} {
		if txt := b.text("#pair"); !strings.Contains(txt, want) {
			t.Errorf("home page lacks %q", want)
		}
	}
	b.shot(shots, "home", 1280)
	b.shot(shots, "home", 800)

	// Delete with an initiator connected: the page names the LUN and the
	// initiator, and wants the name typed.
	b.do(chromedp.Navigate(base+"/ui/luns/vm01"), chromedp.WaitVisible(chromedp.CSS(`a[href="/ui/luns/vm01/delete"]`)),
		chromedp.Click(chromedp.CSS(`a[href="/ui/luns/vm01/delete"]`)), chromedp.WaitVisible(chromedp.ID("delete-confirm")))
	warning := b.text("form .problem")
	if !strings.Contains(warning, "1 initiator connected now") || !strings.Contains(warning, dom0) {
		t.Errorf("delete warning: %q", warning)
	}
	if h1 := b.text("h1"); !strings.Contains(h1, "Delete LUN vm01?") {
		t.Errorf("delete page title %q", h1)
	}
	b.shot(shots, "delete-connected", 1280)
	b.do(chromedp.Click(chromedp.CSS(`form[action="/ui/luns/vm01/delete"] button[type=submit]`)), chromedp.WaitVisible(chromedp.ID("delete-confirm-error")))
	if _, err := box.CLI(admin, "lun", "show", "vm01"); err != nil {
		t.Fatalf("the LUN went without the typed confirmation: %v", err)
	}
	// The initiator logs out; now a click deletes it.
	if err := holder.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	netlab.WaitFor(t, 30*time.Second, "the initiator's session to end", func() error {
		if n := sessions(t, box, admin); n != 0 {
			return fmt.Errorf("%d sessions", n)
		}
		return nil
	})
	b.do(chromedp.Navigate(base+"/ui/luns/vm01/delete"), chromedp.WaitVisible(chromedp.CSS(`form[action="/ui/luns/vm01/delete"] button[type=submit]`)))
	if b.eval(`document.getElementById("delete-confirm") ? "asks" : "no"`) != "no" {
		t.Error("the delete page still asks for the name with no initiator connected")
	}
	b.do(chromedp.Click(chromedp.CSS(`form[action="/ui/luns/vm01/delete"] button[type=submit]`)), chromedp.WaitVisible(chromedp.CSS(".flash")))
	if flash := b.text(".flash"); !strings.Contains(flash, "LUN vm01 deleted") {
		t.Errorf("delete flash: %q", flash)
	}
	if b.eval(`document.querySelector('tr[data-lun="vm01"]') ? "there" : "gone"`) != "gone" {
		t.Error("the table still lists vm01")
	}
	if luns := listLUNs(t, box, admin); len(luns) != 0 {
		t.Errorf("LUNs after the delete: %+v", luns)
	}
	if found, _ := dom.Discover(portal); slices.Contains(found, "Target:"+l.Target) {
		t.Errorf("after the delete the target exports %q", found)
	}

	// The events page tells the story, newest first.
	b.do(chromedp.Navigate(base+"/ui/events"), chromedp.WaitVisible(chromedp.CSS("table.events")))
	events := b.text("table.events tbody")
	last := -1
	for _, e := range []string{"LUN deleted", "LUN changed", "LUN created", "Group created"} {
		i := strings.Index(events, e)
		if i < 0 || i < last {
			t.Errorf("events page: %q missing or out of order in %q", e, events)
		}
		last = i
	}
	b.shot(shots, "events", 1280)

	// The certificate page shows what the browser was pinned to: the
	// box's certificate, by the fingerprint of the file sand made.
	b.do(chromedp.Navigate(base+"/ui/tls"), chromedp.WaitVisible(chromedp.ID("box-fingerprint")))
	if got, want := b.text("#box-fingerprint"), box.Fingerprint(base); got != want {
		t.Errorf("certificate page shows %q, want %q", got, want)
	}
	b.checkLabels()
	b.shot(shots, "tls", 1280)

	// Log out: the session is gone.
	b.do(chromedp.Click(chromedp.CSS(`form[action="/ui/logout"] button`)), chromedp.WaitVisible(chromedp.ID("login-password")))
	b.do(chromedp.Navigate(base+"/ui/luns"), chromedp.WaitVisible(chromedp.ID("login-password")))

	b.checkConsole()
	t.Logf("browser test took %v; screenshots in %s", time.Since(start).Round(time.Millisecond), shots)
}

// appendConfig adds YAML lines to a box's sand.yaml.
func appendConfig(t *testing.T, path, yaml string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(yaml); err != nil {
		t.Fatal(err)
	}
}

func listLUNs(t *testing.T, box *netlab.SandBox, in *netlab.Host) []json.RawMessage {
	t.Helper()
	var luns []json.RawMessage
	if err := json.Unmarshal([]byte(box.MustCLI(in, "lun", "list", "-o", "json")), &luns); err != nil {
		t.Fatal(err)
	}
	return luns
}

func sessions(t *testing.T, box *netlab.SandBox, in *netlab.Host) int {
	t.Helper()
	var st appliance.Status
	if err := json.Unmarshal([]byte(box.MustCLI(in, "status", "-o", "json")), &st); err != nil {
		t.Fatal(err)
	}
	return st.Sessions
}

// holdSession keeps an iSCSI session open to a LUN as the dom0: qemu-io
// logs in and sleeps. The lab ends it by PID if the test does not.
func holdSession(t *testing.T, in *netlab.Host, portal, iqn string, lun int) *netlab.Proc {
	t.Helper()
	opts := fmt.Sprintf("driver=iscsi,transport=tcp,portal=%s,target=%s,lun=%d,initiator-name=%s", portal, iqn, lun, dom0)
	return in.Start("qemu-io", "--image-opts", "-r", "-c", "sleep 600000", opts)
}

// browser is headless Chromium in a lab host, driven over the DevTools
// pipe, with every console message it printed.
type browser struct {
	t       *testing.T
	ctx     context.Context
	mu      sync.Mutex
	console []string
	errors  []string
}

// startBrowser runs Debian's Chromium inside the host's network namespace
// (`ip netns exec`), so it reaches sand as an admin workstation on the lab
// network does, and nothing else. chromedp talks to it over the pipe that
// the namespace does not cut; it makes a new empty user data directory and
// ends the browser and its children by PID when the test ends.
// startBrowser starts Chromium in a host; it trusts the certificates
// with these SPKI hashes (netlab.SandBox.SPKIHashes) and no other
// self-signed one.
func startBrowser(t *testing.T, in *netlab.Host, spki ...string) *browser {
	t.Helper()
	ipPath, err := exec.LookPath("ip")
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath("/usr/bin/chromium"),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(spki, ",")),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			cmd.Args = append([]string{"ip", "netns", "exec", in.NS}, cmd.Args...)
			cmd.Path = ipPath
			if cmd.SysProcAttr == nil {
				cmd.SysProcAttr = &syscall.SysProcAttr{}
			}
			cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
		}),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: ctx}
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	t.Logf("chromium started in %v", time.Since(start).Round(time.Millisecond))
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			line := fmt.Sprintf("%s %s: %s", m.Type, m.URL, m)
			b.mu.Lock()
			b.console = append(b.console, line)
			if m.Type == chromedp.ConsoleError || m.Type == "assert" || m.IsException() {
				b.errors = append(b.errors, line)
			}
			b.mu.Unlock()
		}
	}()
	// The check can fail: an error logged on purpose is caught, then
	// forgotten.
	const probe = "sand-test-console-probe"
	b.eval(`console.error("` + probe + `"); ""`)
	netlab.WaitFor(t, 10*time.Second, "the console probe to be caught as an error", func() error {
		b.mu.Lock()
		defer b.mu.Unlock()
		if len(b.errors) == 1 && strings.Contains(b.errors[0], probe) {
			b.errors = nil
			return nil
		}
		return fmt.Errorf("errors caught: %q", b.errors)
	})
	return b
}

// do runs actions, each step limited to 30 s, failing the test on error.
func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.failPage("browser: %v", err)
	}
}

// failPage fails the test with what the page shows now.
func (b *browser) failPage(format string, args ...any) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	body, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	b.t.Fatalf(format+"\nat %s the page says:\n%s", append(args, loc, body)...)
}

func (b *browser) text(css string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
	if err != nil {
		b.failPage("read %s: %v", css, err)
	}
	return s
}

func (b *browser) eval(js string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		b.failPage("evaluate %s: %v", js, err)
	}
	return s
}

func (b *browser) location() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.t.Fatal(err)
	}
	return loc
}

// poll waits until a JavaScript condition holds in the page.
func (b *browser) poll(cond string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(100*time.Millisecond))); err != nil {
		b.failPage("wait for %s: %v", cond, err)
	}
}

// shot saves a full-page PNG at the given viewport width.
func (b *browser) shot(dir, name string, width int64) {
	b.t.Helper()
	b.do(chromedp.EmulateViewport(width, 900))
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.png", name, width))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.do(chromedp.EmulateViewport(1280, 900))
}

// checkLabels fails the test for a form control without a label: screen
// readers announce a control by its label.
func (b *browser) checkLabels() {
	b.t.Helper()
	unlabelled := b.eval(`Array.from(document.querySelectorAll("input:not([type=hidden]), select, textarea"))
		.filter(e => !e.labels || e.labels.length === 0).map(e => e.name || e.id).join(", ")`)
	if unlabelled != "" {
		b.t.Errorf("%s: controls without a label: %s", b.location(), unlabelled)
	}
}

// checkConsole fails the test on any console error or uncaught exception
// the browser reported. A marker logged last shows that every earlier
// message has arrived.
func (b *browser) checkConsole() {
	b.t.Helper()
	const marker = "sand-test-console-end"
	b.eval(`console.log("` + marker + `"); ""`)
	netlab.WaitFor(b.t, 10*time.Second, "the console marker", func() error {
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, line := range b.console {
			if strings.Contains(line, marker) {
				return nil
			}
		}
		return fmt.Errorf("%d messages, no marker", len(b.console))
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errors {
		b.t.Errorf("browser console: %s", e)
	}
	if len(b.errors) > 0 {
		b.t.Logf("all console messages:\n%s", strings.Join(b.console, "\n"))
	}
}

// TestUISecurity runs a real sand serve (real tgtd, bcrypt at its real
// cost) and checks what issue 15 asks of the API: a CHAP account a real
// initiator logs in with, a hostile CHAP user refused; no CHAP secret in
// any GET answer of the API or the UI (routes listed from the router); a
// monitoring token that reads /metrics and changes nothing; 200
// wrong logins from 40 addresses at once mostly refused at once with 429
// while /healthz keeps answering and the admin, from another host, logs
// in; a password change ends the admin's other session.
func TestUISecurity(t *testing.T) {
	netlab.Require(t, append(slices.Clone(netlab.Tools), "curl")...)
	lab := netlab.New(t, "10.218.0")
	srv := lab.AddHost("san1", 11)
	admin := lab.AddHost("admin", 100)
	attacker := lab.AddHost("attacker", 101)
	bin := netlab.BuildSand(t)
	box := netlab.NewSandBox(t, srv, bin)
	const password = "security test password"
	dir := t.TempDir()
	writeFile := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const monitor = "monitor-token-0123456789"
	appendConfig(t, box.Config, "admin_password_file: "+writeFile("first-admin-password", password+"\n")+"\n"+
		"monitor_token_file: "+writeFile("monitor-token", monitor+"\n")+"\n")
	box.Start(admin)
	portal := srv.IP + ":3260"
	base := box.APIURL()
	// Every curl trusts the box's certificate and nothing else.
	t.Setenv("CURL_CA_BUNDLE", box.CABundle())
	tokenData, err := os.ReadFile(box.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(tokenData))

	// CHAP, set through the CLI; a real initiator logs in with it.
	const user, secret, mutualSecret = "xen-cluster.1", "chap-Secret-0001", "mutual-Secret-02"
	box.MustCLI(admin, "group", "create", "xen", dom0)
	box.MustCLI(admin, "group", "chap", "xen", "--user", user, "--secret-file", writeFile("chap", secret+"\n"),
		"--mutual-user", "san", "--mutual-secret-file", writeFile("mutual", mutualSecret+"\n"))
	box.MustCLI(admin, "lun", "create", "vm01", "--size", "16M", "--group", "xen")
	l := box.LUN(admin, "vm01")
	dom := netlab.Initiator{T: t, Host: admin, IQN: dom0}
	withCHAP := func(s string) string {
		return fmt.Sprintf("iscsi://%s%%%s@%s/%s/%d", user, s, portal, l.Target, l.Number)
	}
	if out, err := dom.Run("iscsi-readcapacity16", "-i", dom0, withCHAP(secret)); err != nil || !strings.Contains(out, "Total size:16777216") {
		t.Errorf("the initiator with the CHAP secret: %v %s", err, out)
	}
	if out, err := dom.Run("iscsi-readcapacity16", "-i", dom0, withCHAP("wrong-Secret-001")); err == nil {
		t.Errorf("the initiator logged in with a wrong CHAP secret: %s", out)
	}
	// A hostile CHAP user is refused, saying why, and changes nothing.
	before := box.MustCLI(admin, "group", "show", "xen", "-o", "json")
	out, err := box.CLI(admin, "group", "chap", "xen", "--user", "x;touch${IFS}/tmp/pwned", "--secret-file", writeFile("chap2", "0123456789abcd\n"))
	if err == nil || !strings.Contains(out, "may hold only letters, digits and . - _ : @") {
		t.Errorf("hostile CHAP user: %v %s", err, out)
	}
	if after := box.MustCLI(admin, "group", "show", "xen", "-o", "json"); after != before {
		t.Errorf("a refused CHAP user changed the group:\n%s\n%s", before, after)
	}

	// Every GET route, with the API token, the monitoring token and a
	// browser's session.
	jar := filepath.Join(dir, "jar")
	if code := curlLogin(t, admin, base, jar, password); code != "303" {
		t.Fatalf("login with curl: %s", code)
	}
	reads := 0
	for _, path := range getRoutes(t) {
		reads++
		for _, who := range [][]string{{"-H", "Authorization: Bearer " + token}, {"-H", "Authorization: Bearer " + monitor}, {"-b", jar}} {
			body, err := admin.Run(context.Background(), "curl", append([]string{"-sS", "--max-time", "20", base + path}, who...)...)
			if err != nil {
				t.Errorf("GET %s: %v", path, err)
			}
			for _, s := range []string{secret, mutualSecret} {
				if strings.Contains(body, s) {
					t.Errorf("GET %s (%s) shows a CHAP secret:\n%s", path, who[0], body)
				}
			}
		}
	}
	if reads < 15 {
		t.Errorf("only %d GET routes", reads)
	}
	// The monitoring token reads /metrics and changes nothing.
	asMonitor := func(args ...string) string {
		out, err := admin.Run(context.Background(), "curl", append([]string{"-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}",
			"-H", "Authorization: Bearer " + monitor}, args...)...)
		if err != nil {
			t.Errorf("curl %v: %v", args, err)
		}
		return strings.TrimSpace(out)
	}
	if code := asMonitor(base + "/metrics"); code != "200" {
		t.Errorf("GET /metrics with the monitoring token: %s", code)
	}
	if code := asMonitor("-X", "DELETE", base+"/api/v1/luns/vm01"); code != "403" {
		t.Errorf("DELETE a LUN with the monitoring token: %s", code)
	}
	if code := asMonitor("-d", `{"name":"vm02","size":"1M"}`, base+"/api/v1/luns"); code != "403" {
		t.Errorf("create a LUN with the monitoring token: %s", code)
	}
	if luns := listLUNs(t, box, admin); len(luns) != 1 {
		t.Errorf("LUNs after the monitoring token's tries: %d", len(luns))
	}

	// 200 wrong logins at once from 40 addresses, bcrypt at its real cost.
	const addrs, attempts = 40, 200
	for i := range addrs {
		attacker.MustRun(context.Background(), "ip", "addr", "add", fmt.Sprintf("10.218.0.%d/24", 150+i), "dev", "eth0")
	}
	page, err := attacker.Run(context.Background(), "curl", "-sS", "-c", filepath.Join(dir, "attacker-jar"), base+"/ui/login")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if err != nil || m == nil {
		t.Fatalf("login page for the attacker: %v %s", err, page)
	}
	// One curl runs every attempt at once (a process each would measure
	// process starts, not sand).
	args := []string{"--no-progress-meter", "--parallel", "--parallel-immediate", "--parallel-max", strconv.Itoa(attempts)}
	for i := range attempts {
		if i > 0 {
			args = append(args, "--next")
		}
		args = append(args, "-sS", "--max-time", "30", "-o", "/dev/null", "-w", "%{http_code} %{time_total}\n",
			"--interface", fmt.Sprintf("10.218.0.%d", 150+i%addrs), "-b", "sand_login="+m[1],
			"-d", "csrf="+m[1]+"&user=admin&password=guess", base+"/ui/login")
	}
	var stormOut string
	stormDone := make(chan struct{})
	go func() {
		defer close(stormDone)
		stormOut, _ = attacker.Run(context.Background(), "curl", args...)
	}()
	// Meanwhile /healthz answers, and the admin logs in from its own host.
	var slowest time.Duration
	polls := 0
	health := make(chan struct{})
	go func() {
		defer close(health)
		for {
			select {
			case <-stormDone:
				return
			default:
			}
			out, err := admin.Run(context.Background(), "curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{time_total}", base+"/healthz")
			if secs, perr := strconv.ParseFloat(strings.TrimSpace(out), 64); err == nil && perr == nil {
				slowest = max(slowest, time.Duration(secs*float64(time.Second)))
				polls++
			}
		}
	}()
	adminJar := filepath.Join(dir, "admin-jar")
	var seen []string
	loggedIn := time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Second) {
		if seen = append(seen, curlLogin(t, admin, base, adminJar, password)); seen[len(seen)-1] == "303" {
			break
		}
	}
	if seen[len(seen)-1] != "303" {
		t.Errorf("the admin's login during the storm: %v", seen)
	}
	t.Logf("the admin logged in after %v (answers %v)", time.Since(loggedIn).Round(time.Millisecond), seen)
	<-stormDone
	<-health
	refused, checked := 0, 0
	var slowestRefusal time.Duration
	lines := regexp.MustCompile(`(?m)^\d{3} [0-9.]+$`).FindAllString(stormOut, -1)
	if len(lines) != attempts {
		t.Fatalf("the storm's curl printed %d results, want %d:\n%s", len(lines), attempts, stormOut)
	}
	for _, line := range lines {
		var code int
		var secs float64
		if _, err := fmt.Sscanf(line, "%d %g", &code, &secs); err != nil {
			t.Fatalf("storm result %q: %v", line, err)
		}
		switch code {
		case 429:
			refused++
			slowestRefusal = max(slowestRefusal, time.Duration(secs*float64(time.Second)))
		case 200:
			checked++
		default:
			t.Errorf("storm attempt answered %d", code)
		}
	}
	t.Logf("storm: %d refused (the slowest in %v), %d passwords checked; /healthz polled %d times, slowest %v",
		refused, slowestRefusal.Round(time.Millisecond), checked, polls, slowest.Round(time.Millisecond))
	if slowestRefusal > 1500*time.Millisecond {
		t.Errorf("a refusal took %v", slowestRefusal)
	}
	if refused < attempts/2 {
		t.Errorf("only %d of %d wrong logins refused at once", refused, attempts)
	}
	if slowest > 2*time.Second {
		t.Errorf("/healthz took %v during the storm", slowest)
	}

	// A password change from one session ends the other (jar's, from
	// before the storm).
	acct, err := admin.Run(context.Background(), "curl", "-sS", "-b", adminJar, base+"/ui/account")
	m = regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(acct)
	if err != nil || m == nil {
		t.Fatalf("account page: %v %s", err, acct)
	}
	out, err = admin.Run(context.Background(), "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-b", adminJar,
		"-d", "csrf="+m[1]+"&current="+strings.ReplaceAll(password, " ", "+")+"&new=another+admin+password&confirm=another+admin+password",
		base+"/ui/account/password")
	if err != nil || strings.TrimSpace(out) != "303" {
		t.Fatalf("password change: %v %s", err, out)
	}
	status := func(jar string) string {
		out, _ := admin.Run(context.Background(), "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-b", jar, base+"/ui/luns")
		return strings.TrimSpace(out)
	}
	if got := status(jar); got != "303" {
		t.Errorf("the other session after the password change: %s, want a redirect to the login page", got)
	}
	if got := status(adminJar); got != "200" {
		t.Errorf("the session that changed the password: %s", got)
	}
}

// curlLogin logs in through the login form with curl, keeping cookies in
// jar, and returns the form's HTTP status (303 on success).
func curlLogin(t *testing.T, in *netlab.Host, base, jar, password string) string {
	t.Helper()
	page, err := in.Run(context.Background(), "curl", "-sS", "--max-time", "20", "-c", jar, "-b", jar, base+"/ui/login")
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if err != nil || m == nil {
		t.Fatalf("login page: %v %s", err, page)
	}
	out, err := in.Run(context.Background(), "curl", "-sS", "--max-time", "20", "-c", jar, "-b", jar, "-o", "/dev/null", "-w", "%{http_code}",
		"-d", "csrf="+m[1]+"&user=admin&password="+strings.ReplaceAll(password, " ", "+"), base+"/ui/login")
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	return strings.TrimSpace(out)
}

// getRoutes lists the GET routes of sand's router (an engine built in
// the test over a throwaway box), with the parameters filled for the
// test's LUN vm01 and group xen.
func getRoutes(t *testing.T) []string {
	t.Helper()
	dir := t.TempDir()
	cfg := appliance.DefaultConfig()
	cfg.Portal, cfg.StateDir = "10.0.0.50", filepath.Join(dir, "state")
	cfg.Pool = appliance.PoolConfig{Kind: "file", Dir: filepath.Join(dir, "pool")}
	p, err := file.New(cfg.Pool.Dir, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	box := appliance.NewBox(cfg, p, noTarget{}, log)
	if err := box.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	h, err := ui.New(box, ui.Options{Token: "routes-only", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, r := range h.(*gin.Engine).Routes() {
		if r.Method != "GET" {
			continue
		}
		path := r.Path
		if strings.HasPrefix(path, "/api/v1/initiator-groups/") || strings.HasPrefix(path, "/ui/groups/") {
			path = strings.ReplaceAll(path, ":name", "xen")
		}
		path = strings.ReplaceAll(path, ":name", "vm01")
		paths = append(paths, strings.ReplaceAll(path, "*file", "style.css"))
	}
	return paths
}

// noTarget stands in for the target of the router-only box.
type noTarget struct{}

func (noTarget) Apply(context.Context, iscsi.TargetGroup) error    { return nil }
func (noTarget) Sessions(context.Context) ([]iscsi.Session, error) { return nil, nil }
func (noTarget) Stop(context.Context) error                        { return nil }
func (noTarget) FirstLUN() int                                     { return 0 }
