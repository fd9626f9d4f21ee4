//go:build netns

package netns

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/tests/netlab"
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
	base := "http://" + srv.IP + ":7480"
	dom := netlab.Initiator{T: t, Host: admin, IQN: dom0}
	shots, err := filepath.Abs(screenshotDir)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(shots, 0o755)

	b := startBrowser(t, admin)
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
func startBrowser(t *testing.T, in *netlab.Host) *browser {
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
