package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sand-appliance/sand/tests/lab/agent"
)

// The lab's dom0 (Options.Dom0): a third kind of box on the front network,
// a Xen 4.17 hypervisor with Debian's kernel as a PV dom0, as a sand
// customer runs it: open-iscsi (the kernel initiator), Xen's toolstack with
// its block-iscsi hotplug script, LVM, fio, and a small PV domU image to
// start with xl. tests/lab/xen/mkdom0.sh builds it into out/dom0; the lab
// rebuilds it when the script, its inputs or the agent change.
//
// The lab drives the dom0 through its agent (package agent) on
// 10.99.0.20:7999, never through its console.
const (
	Dom0Octet = 20
	// Dom0IQN is the dom0's initiator name (its own: not the client
	// namespace's).
	Dom0IQN = "iqn.2026-11.org.sand-appliance.lab:dom0"
	// dom0Name names its QEMU (-name LAB-dom0) and its files.
	dom0Name = "dom0"
	// Dom0DomU is where the dom0 keeps the domU's kernel and initramfs.
	Dom0DomU = "/usr/lib/sand-lab/domu"
	// Dom0Logs is where the dom0 keeps its stamped logs (kern.log,
	// iscsid.log: each line "UNIXNANO text", the dom0's clock).
	Dom0Logs = "/var/log/sand-lab"
)

// Dom0State is the dom0 as the lab records it.
type Dom0State struct {
	FrontIP   string `json:"front_ip"`
	FrontMAC  string `json:"front_mac"`
	FrontTap  string `json:"front_tap"`
	IQN       string `json:"iqn"`
	Xen       string `json:"xen"`
	Kernel    string `json:"kernel"`
	Initrd    string `json:"initrd"`
	Memory    int    `json:"memory_mib"`
	Dom0Mem   int    `json:"dom0_memory_mib"`
	Console   string `json:"console"`
	QEMULog   string `json:"qemu_log"`
	QMP       string `json:"qmp"`
	PID       int    `json:"pid,omitempty"`
	StartTime uint64 `json:"start_time,omitempty"`
}

// Dom0 is the lab's dom0 VM.
type Dom0 struct {
	lab *Lab

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	started time.Time
	boot    time.Duration
}

// Dom0 returns the lab's dom0, nil if the lab has none.
func (l *Lab) Dom0() *Dom0 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.State.Dom0 == nil {
		return nil
	}
	if l.dom0 == nil {
		l.dom0 = &Dom0{lab: l}
	}
	return l.dom0
}

func (d *Dom0) state() Dom0State {
	d.lab.mu.Lock()
	defer d.lab.mu.Unlock()
	return *d.lab.State.Dom0
}

// asBox is the dom0's record in the shape ourQEMU checks.
func (s Dom0State) asBox() BoxState {
	return BoxState{Name: dom0Name, PID: s.PID, StartTime: s.StartTime}
}

// FrontIP is the dom0's address on the front network.
func (d *Dom0) FrontIP() string { return d.state().FrontIP }

// IQN is the dom0's initiator name.
func (d *Dom0) IQN() string { return d.state().IQN }

// ConsolePath is the file QEMU writes the serial console to (Xen's and the
// dom0 kernel's messages, dom0-init's progress).
func (d *Dom0) ConsolePath() string { return d.state().Console }

// ConsoleTail returns the last n lines of the console.
func (d *Dom0) ConsoleTail(n int) string {
	data, err := os.ReadFile(d.state().Console)
	if err != nil {
		return "(no console log: " + err.Error() + ")"
	}
	return tail(string(data), n)
}

// PID of the dom0's QEMU, 0 when it is not running.
func (d *Dom0) PID() int {
	s := d.state()
	if s.PID != 0 && ourQEMU(d.lab.Name, s.asBox()) {
		return s.PID
	}
	return 0
}

// BootTime is how long the last boot took, from QEMU's start to the agent
// answering.
func (d *Dom0) BootTime() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.boot
}

// Agent is a client of the dom0's agent, connecting from the lab
// namespace.
func (d *Dom0) Agent() *agent.Client {
	return &agent.Client{
		URL:   "http://" + net.JoinHostPort(d.FrontIP(), strconv.Itoa(agent.Port)),
		Token: d.lab.Token,
		HTTP:  d.lab.Host().HTTPClient(30 * time.Minute),
	}
}

// Run runs a program in the dom0 and returns its standard output.
func (d *Dom0) Run(ctx context.Context, argv ...string) (string, error) {
	return d.Agent().Run(ctx, argv...)
}

// Shell runs one line with the dom0's /bin/sh, as a dom0 admin who pasted
// it would: for the lines sand prints for an admin's shell, never for
// lines the lab builds itself (those run by argv).
func (d *Dom0) Shell(ctx context.Context, line string) (string, error) {
	return d.Agent().Run(ctx, "/bin/sh", "-c", line)
}

// Cmdline is the dom0 kernel's command line: its console, a RAM root file
// system, and its settings for dom0-init.
func (d *Dom0) Cmdline() string {
	s := d.state()
	return strings.Join([]string{
		"console=hvc0", "earlyprintk=xen", "rootfstype=ramfs", "loglevel=4",
		"sandlab.addr=" + s.FrontIP + "/24", "sandlab.mac=" + s.FrontMAC,
		"sandlab.iqn=" + s.IQN, "sandlab.token=" + d.lab.Token,
	}, " ")
}

// XenCmdline is the hypervisor's: the dom0's memory and one vCPU, its
// console on the serial port, and no reboot on a crash (the lab sees the
// console instead).
func (d *Dom0) XenCmdline() string {
	s := d.state()
	return fmt.Sprintf("dom0_mem=%dM,max:%dM dom0_max_vcpus=1 console=com1 com1=115200,8n1 noreboot loglvl=warning guest_loglvl=warning", s.Dom0Mem, s.Dom0Mem)
}

func (d *Dom0) qemuArgs() []string {
	s := d.state()
	// QEMU's multiboot modules are comma-separated, each a file and its
	// command line; a comma inside one is doubled.
	esc := func(v string) string { return strings.ReplaceAll(v, ",", ",,") }
	modules := esc(s.Kernel) + " " + esc(d.Cmdline()) + "," + esc(s.Initrd)
	return []string{
		"netns", "exec", d.lab.NS, "qemu-system-x86_64",
		"-name", qemuName(d.lab.Name, dom0Name),
		// qemu64: the CPU the Xen probe under TCG passed with
		"-accel", "tcg", "-cpu", "qemu64", "-smp", "1", "-m", strconv.Itoa(s.Memory),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "file:" + s.Console,
		"-qmp", "unix:" + s.QMP + ",server=on,wait=off",
		"-kernel", s.Xen, "-append", d.XenCmdline(), "-initrd", modules,
		"-netdev", "tap,id=front,ifname=" + s.FrontTap + ",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=front,mac=" + s.FrontMAC,
		"-device", "virtio-rng-pci",
	}
}

// Start boots the dom0. QEMU is a child of this process.
func (d *Dom0) Start(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if pid := d.PID(); pid != 0 {
		return fmt.Errorf("start the dom0: its QEMU (pid %d) is running", pid)
	}
	s := d.state()
	for _, f := range []string{s.Console, s.QMP} {
		os.Remove(f)
	}
	if err := os.MkdirAll(filepath.Dir(s.Console), 0o755); err != nil {
		return fmt.Errorf("start the dom0: %w", err)
	}
	logf, err := os.OpenFile(s.QEMULog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start the dom0: %w", err)
	}
	cmd := exec.Command("ip", d.qemuArgs()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start QEMU of the dom0: %w", err)
	}
	logf.Close()
	d.cmd, d.exited, d.started = cmd, make(chan struct{}), time.Now()
	exited := d.exited
	go func() {
		cmd.Wait()
		close(exited)
	}()
	var start uint64
	for i := 0; i < 100; i++ {
		if st, comm, err := procStat(cmd.Process.Pid); err == nil && comm != "ip" {
			start = st
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	d.lab.mu.Lock()
	d.lab.State.Dom0.PID, d.lab.State.Dom0.StartTime = cmd.Process.Pid, start
	d.lab.mu.Unlock()
	if err := d.lab.save(); err != nil {
		return err
	}
	d.lab.log.Info("dom0 booting", "pid", cmd.Process.Pid, "front", s.FrontIP, "iqn", s.IQN)
	return nil
}

// Exited reports whether the dom0's QEMU started by this process ended.
func (d *Dom0) Exited() bool {
	d.mu.Lock()
	ch := d.exited
	d.mu.Unlock()
	if ch == nil {
		return d.PID() == 0
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// WaitReady waits until the dom0's agent answers (dom0-init starts it
// last, after the toolstack and iscsid) and returns how long the dom0 took
// from the start of its QEMU.
func (d *Dom0) WaitReady(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	a := d.Agent()
	a.HTTP = d.lab.Host().HTTPClient(3 * time.Second)
	var last error
	for {
		_, _, _, err := a.Clock(ctx)
		if err == nil {
			d.mu.Lock()
			took := time.Since(d.started)
			d.boot = took
			d.mu.Unlock()
			d.lab.log.Info("dom0 ready", "agent", a.URL, "boot", took.Round(100*time.Millisecond))
			return took, nil
		}
		last = err
		if d.Exited() {
			return 0, fmt.Errorf("dom0: QEMU exited while booting; console ends:\n%s", d.ConsoleTail(40))
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("dom0: waited %v for its agent: %v; console ends:\n%s", timeout, last, d.ConsoleTail(40))
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Kill ends the dom0's QEMU with SIGKILL and waits until it is gone.
func (d *Dom0) Kill() error {
	s := d.state()
	if !ourQEMU(d.lab.Name, s.asBox()) {
		return nil
	}
	if err := syscall.Kill(s.PID, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return fmt.Errorf("kill QEMU of the dom0 (pid %d): %w", s.PID, err)
	}
	d.mu.Lock()
	ch := d.exited
	d.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ch != nil {
			select {
			case <-ch:
				return nil
			default:
			}
		} else if !ourQEMU(d.lab.Name, s.asBox()) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("QEMU of the dom0 (pid %d) still running 10 s after SIGKILL", s.PID)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// newDom0State places the dom0 on the front network and in the lab
// directory.
func newDom0State(dir string, img dom0Image, iqn string) *Dom0State {
	d := filepath.Join(dir, dom0Name)
	return &Dom0State{
		FrontIP:  fmt.Sprintf("%s.%d", FrontPrefix, Dom0Octet),
		FrontMAC: fmt.Sprintf("52:54:00:99:00:%02x", Dom0Octet),
		FrontTap: dom0Name + "-front",
		IQN:      iqn,
		Xen:      img.Xen, Kernel: img.Kernel, Initrd: img.Initrd,
		// Xen and the domU live in what the dom0 does not take; the dom0's
		// root file system lives in its RAM.
		Memory: 1024, Dom0Mem: 640,
		Console: filepath.Join(d, "console.log"), QEMULog: filepath.Join(d, "qemu.log"),
		QMP: filepath.Join(d, "qmp.sock"),
	}
}

// dom0Image is what mkdom0.sh builds.
type dom0Image struct {
	Xen, Kernel, Initrd string
}

// ensureDom0Image returns the dom0 image, building it with mkdom0.sh when
// it is missing or (unless the policy is ImageKeep) when its inputs
// changed.
func ensureDom0Image(ctx context.Context, o Options) (dom0Image, error) {
	out := filepath.Join(o.Repo, "out", "dom0")
	img := dom0Image{Xen: filepath.Join(out, "xen.elf"), Kernel: filepath.Join(out, "vmlinuz"), Initrd: filepath.Join(out, "dom0.cpio")}
	have := exists(img.Xen) && exists(img.Kernel) && exists(img.Initrd)
	if have && o.Image == ImageKeep {
		return img, nil
	}
	bin, sum, err := buildAgent(ctx, o.Repo)
	if err != nil {
		if have {
			o.Logger.Warn("cannot build the lab agent; booting the dom0 image as it is", "err", err)
			return img, nil
		}
		return img, err
	}
	inputs, err := dom0Inputs(o.Repo, sum)
	if err != nil {
		return img, err
	}
	old, _ := os.ReadFile(filepath.Join(out, inputsFile))
	if have && o.Image == ImageAuto && strings.TrimSpace(string(old)) == inputs {
		o.Logger.Info("dom0 image is current", "dir", out)
		return img, nil
	}
	o.Logger.Info("building the dom0 image (tests/lab/xen/mkdom0.sh)", "out", out)
	cmd := exec.CommandContext(ctx, filepath.Join(o.Repo, "tests", "lab", "xen", "mkdom0.sh"), "--agent", bin, "--out", out)
	cmd.Dir = o.Repo
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	if err := cmd.Run(); err != nil {
		return img, fmt.Errorf("build the dom0 image: mkdom0.sh: %w:\n%s", err, tail(buf.String(), 30))
	}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		o.Logger.Info("mkdom0: " + strings.TrimSpace(strings.TrimPrefix(line, "mkdom0: ")))
	}
	if err := os.WriteFile(filepath.Join(out, inputsFile), []byte(inputs+"\n"), 0o644); err != nil {
		return img, fmt.Errorf("build the dom0 image: %w", err)
	}
	return img, nil
}

// dom0Inputs sums what the dom0 image is made of besides its Debian
// packages: the agent binary and every file under tests/lab/xen.
func dom0Inputs(repo, agentSum string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "agent %s\n", agentSum)
	dir := filepath.Join(repo, "tests", "lab", "xen")
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repo, path)
		fmt.Fprintf(h, "%s %v %d\n", rel, info.Mode(), len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("sum the dom0 image's inputs: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// buildAgent builds sand-lab-agent static into out/build and returns its
// path and sha256.
func buildAgent(ctx context.Context, repo string) (string, string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = "/usr/local/go/bin/go"
		if !exists(gobin) {
			return "", "", fmt.Errorf("build the lab agent: no go command")
		}
	}
	bin := filepath.Join(repo, "out", "build", "sand-lab-agent")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", "", fmt.Errorf("build the lab agent: %w", err)
	}
	cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, "./tests/lab/cmd/sand-lab-agent")
	cmd.Dir = repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("build the lab agent: %w: %s", err, bytes.TrimSpace(out))
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", "", fmt.Errorf("build the lab agent: %w", err)
	}
	sum := sha256.Sum256(data)
	return bin, hex.EncodeToString(sum[:]), nil
}
