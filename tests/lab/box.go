package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sand-appliance/sand/ui/client"
)

// Box is one appliance VM of the lab.
type Box struct {
	lab  *Lab
	idx  int
	Name string

	mu      sync.Mutex
	cmd     *exec.Cmd     // the QEMU this process started, if any
	exited  chan struct{} // closed when cmd has been reaped
	started time.Time
	boot    time.Duration // from QEMU start to the API answering, last boot
}

func (b *Box) state() BoxState {
	b.lab.mu.Lock()
	defer b.lab.mu.Unlock()
	return b.lab.Boxes[b.idx]
}

func (b *Box) setPID(pid int, start uint64) error {
	b.lab.mu.Lock()
	b.lab.Boxes[b.idx].PID = pid
	b.lab.Boxes[b.idx].StartTime = start
	b.lab.mu.Unlock()
	return b.lab.save()
}

// FrontIP is the box's address on the front network.
func (b *Box) FrontIP() string { return b.state().FrontIP }

// ReplIP is the box's address on the replication network.
func (b *Box) ReplIP() string { return b.state().ReplIP }

// UIURL is the box's web UI on the front network (user admin, the lab's
// token as password).
func (b *Box) UIURL() string { return b.APIURL() + "/ui/" }

// APIURL is the box's API base URL on the front network.
func (b *Box) APIURL() string {
	return "https://" + net.JoinHostPort(b.FrontIP(), strconv.Itoa(APIPort))
}

// PID of the box's QEMU, 0 when it is not running.
func (b *Box) PID() int {
	s := b.state()
	if s.PID != 0 && ourQEMU(b.lab.Name, s) {
		return s.PID
	}
	return 0
}

// API is a client of the box's API, connecting from the lab namespace and
// trusting the certificate the box reported (tls.go).
func (b *Box) API() *client.Client {
	c := client.New(b.APIURL(), b.lab.Token)
	c.HTTP = b.HTTPClient(30 * time.Second)
	return c
}

// qemuName is what -name says, so Down can tell our QEMU from a process
// that reused its PID.
func qemuName(lab, box string) string { return lab + "-" + box }

// Settings are the box's node settings (key=value, the keys of the
// image's node.conf), all of them in node.conf: on the SANDCFG partition
// when the lab boots the disk image, on the box's config disk when it
// boots the kernel (cfgdisk.go), which also gets the settings that are no
// secret on the kernel command line as sand.KEY=VALUE.
func (b *Box) Settings() []string {
	s := b.state()
	set := []string{
		"name=" + s.Name,
		"addr=" + s.FrontIP + "/24", "front_if=" + s.FrontMAC,
		"repl=" + s.ReplIP + "/24", "repl_if=" + s.ReplMAC,
		"vip=" + VIP().String() + "/24",
		"disk=/dev/disk/by-id/virtio-sand-data",
		"token=" + b.lab.Token,
		// the web UI's first admin password: the token too, in a lab
		"admin_password=" + b.lab.Token,
	}
	for _, o := range b.lab.Boxes {
		if o.Name != s.Name {
			set = append(set, "peer="+o.FrontIP, "peer_repl="+o.ReplIP)
			if b.lab.Pair != "" {
				set = append(set, "pair="+b.lab.Pair, "peer_name="+o.Name, "serf_key="+b.lab.SerfKey, "pair_key="+b.lab.PairKey,
					"drbd_secret="+drbdSecret(b.lab.SerfKey),
					"witness="+FrontHost().String()+":7946", "witness_name="+witnessName)
			}
			break
		}
	}
	return set
}

// Cmdline is the kernel command line the box boots with when the lab boots
// the kernel directly: it names the config disk (sand.cfg) and carries the
// node settings that are no secret. A box booted from the disk image gets
// the command line of the image's boot entry instead.
func (b *Box) Cmdline() string {
	args := append([]string{"console=ttyS0,115200", "panic=-1"}, b.lab.KernelArgs...)
	// the journal on the console log, for people reading a failed run
	args = append(args, "systemd.journald.forward_to_console=1", "systemd.show_status=0")
	args = append(args, "sand.cfg=LABEL="+cfgLabel)
	for _, kv := range b.Settings() {
		if onCmdline(kv) {
			args = append(args, "sand."+kv)
		}
	}
	return strings.Join(args, " ")
}

func (b *Box) qemuArgs() []string {
	s := b.state()
	args := []string{
		"netns", "exec", b.lab.NS, "qemu-system-x86_64",
		"-name", qemuName(b.lab.Name, s.Name),
		// KVM exists on these machines but hangs at "Booting from ROM".
		"-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", strconv.Itoa(b.lab.Memory),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "file:" + s.Console,
		"-qmp", "unix:" + s.QMP + ",server=on,wait=off",
	}
	if b.lab.Boot == BootDisk {
		// UEFI firmware, then systemd-boot from the image's ESP, as on a
		// real server booting the stick.
		args = append(args, "-machine", "q35",
			"-drive", "if=pflash,format=raw,readonly=on,file="+b.lab.Firmware,
			"-drive", "if=pflash,format=raw,file="+s.FirmwareVars,
			"-drive", "file="+s.BootDisk+",if=none,id=boot,format=raw,cache=writeback",
			"-device", "virtio-blk-pci,drive=boot,bootindex=0")
	} else {
		args = append(args, "-kernel", b.lab.Kernel, "-initrd", b.lab.Initrd, "-append", b.Cmdline(),
			"-drive", "file="+b.cfgDisk()+",if=none,id=cfg,format=raw",
			"-device", "virtio-blk-pci,drive=cfg,serial=sand-cfg")
	}
	return append(args,
		"-drive", "file="+s.Disk+",if=none,id=data,format=raw,cache=writeback,discard=unmap",
		"-device", "virtio-blk-pci,drive=data,serial=sand-data",
		"-netdev", "tap,id=front,ifname="+s.FrontTap+",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=front,mac="+s.FrontMAC,
		"-netdev", "tap,id=repl,ifname="+s.ReplTap+",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=repl,mac="+s.ReplMAC,
		"-device", "virtio-serial-pci",
		"-chardev", "file,id=report,path="+s.Report,
		"-device", "virtserialport,chardev=report,name=org.sand-appliance.report",
		"-device", "virtio-rng-pci",
	)
}

// Start boots the box (again, after Kill) with its data disk as it is. QEMU
// is a child of this process (no -daemonize), so this process reaps it.
func (b *Box) Start(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if pid := b.PID(); pid != 0 {
		return fmt.Errorf("start %s: its QEMU (pid %d) is running", b.Name, pid)
	}
	s := b.state()
	for _, f := range []string{s.Console, s.Report, s.QMP} {
		os.Remove(f)
	}
	if b.lab.Boot != BootDisk {
		if err := b.makeConfigDisk(ctx); err != nil {
			return fmt.Errorf("start %s: %w", b.Name, err)
		}
	}
	logf, err := os.OpenFile(s.QEMULog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", b.Name, err)
	}
	cmd := exec.Command("ip", b.qemuArgs()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Not in our process group: a Ctrl-C at the terminal reaches sand-lab
	// up, which takes the lab down in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start QEMU of %s: %w", b.Name, err)
	}
	logf.Close()
	b.cmd = cmd
	b.exited = make(chan struct{})
	b.started = time.Now()
	exited := b.exited
	go func() {
		cmd.Wait()
		close(exited)
	}()
	// ip netns exec execs QEMU: the PID is QEMU's. Record it with its start
	// time once the exec has happened.
	var start uint64
	for i := 0; i < 100; i++ {
		if st, comm, err := procStat(cmd.Process.Pid); err == nil && comm != "ip" {
			start = st
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := b.setPID(cmd.Process.Pid, start); err != nil {
		return err
	}
	b.lab.log.Info("box booting", "box", b.Name, "pid", cmd.Process.Pid, "front", s.FrontIP, "repl", s.ReplIP)
	return nil
}

// Exited reports whether the QEMU this process started has ended.
func (b *Box) Exited() bool {
	b.mu.Lock()
	ch := b.exited
	b.mu.Unlock()
	if ch == nil {
		return b.PID() == 0
	}
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Kill ends the box's QEMU with SIGKILL, as a power cut would, and waits
// until it is gone.
func (b *Box) Kill() error {
	s := b.state()
	if s.PID == 0 || !ourQEMU(b.lab.Name, s) {
		return fmt.Errorf("kill %s: no QEMU of it is running", b.Name)
	}
	if err := syscall.Kill(s.PID, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill QEMU of %s (pid %d): %w", b.Name, s.PID, err)
	}
	if err := b.waitGone(10 * time.Second); err != nil {
		return err
	}
	b.lab.log.Info("box killed", "box", b.Name, "pid", s.PID)
	return b.setPID(0, 0)
}

func (b *Box) waitGone(timeout time.Duration) error {
	s := b.state()
	b.mu.Lock()
	ch := b.exited
	b.mu.Unlock()
	deadline := time.After(timeout)
	if ch != nil {
		select {
		case <-ch:
			return nil
		case <-deadline:
			return fmt.Errorf("QEMU of %s (pid %d) still running %v after SIGKILL", b.Name, s.PID, timeout)
		}
	}
	// Not our child: poll. A zombie (no parent reaps it) is gone for us.
	for {
		if !ourQEMU(b.lab.Name, s) {
			return nil
		}
		select {
		case <-deadline:
			return fmt.Errorf("QEMU of %s (pid %d) still running %v after SIGKILL", b.Name, s.PID, timeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Pause stops the box's virtual CPUs (QMP stop): the box freezes with its
// network links up, as a hung machine would.
func (b *Box) Pause(ctx context.Context) error { return b.qmp(ctx, "stop") }

// Resume lets a paused box run on (QMP cont).
func (b *Box) Resume(ctx context.Context) error { return b.qmp(ctx, "cont") }

// WaitReady waits until the box has reported its API certificate's
// fingerprint and its API answers GET /healthz over the front network with
// that certificate, and returns how long the box took from the start of
// its QEMU. It fails early, with the end of the console log, if QEMU exits.
func (b *Box) WaitReady(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := b.APIURL() + "/healthz"
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := b.HTTPClient(3 * time.Second).Do(req)
		if err == nil && b.Fingerprint() == "" {
			resp.Body.Close()
			resp, err = nil, errors.New("the box has not reported its certificate's fingerprint yet")
		}
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				b.mu.Lock()
				took := time.Since(b.started)
				b.boot = took
				b.mu.Unlock()
				b.lab.log.Info("box ready", "box", b.Name, "api", b.APIURL(), "boot", took.Round(100*time.Millisecond))
				return took, nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		last = err
		if b.Exited() {
			return 0, fmt.Errorf("box %s: QEMU exited while booting; console ends:\n%s", b.Name, b.ConsoleTail(40))
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("box %s: waited %v for its API at %s: %v; console ends:\n%s", b.Name, timeout, url, last, b.ConsoleTail(40))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// BootTime is how long the box's last boot took, from the start of its
// QEMU to its API answering (0 until WaitReady saw it answer).
func (b *Box) BootTime() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.boot
}

// ConsoleTail returns the last n lines of the box's console log.
func (b *Box) ConsoleTail(n int) string {
	data, err := os.ReadFile(b.state().Console)
	if err != nil {
		return "(no console log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ConsolePath is the file QEMU writes the box's serial console to.
func (b *Box) ConsolePath() string { return b.state().Console }

// Report is what the box's sand-report unit says once sand is up: the
// kernel modules it loaded, the data disk, the pool.
type Report struct {
	Name            string            `json:"name"`
	UptimeSeconds   float64           `json:"uptime_s"`
	Kernel          string            `json:"kernel"`
	Sand            string            `json:"sand"`
	Modules         map[string]string `json:"modules"`
	DRBDVersion     string            `json:"drbd_version"`
	Disk            ReportDisk        `json:"disk"`
	PoolDevice      string            `json:"pool_device"`
	PoolSize        int64             `json:"pool_size"`
	StateDirMounted bool              `json:"state_dir_mounted"`
	ConfigDevice    string            `json:"config_device"`
	LVMFilter       string            `json:"lvm_filter"`
	// KernelArgs is the kernel command line without the node settings
	// (sand.*) but with sand.cfg.
	KernelArgs string   `json:"kernel_args"`
	Addresses  []string `json:"addresses"`
	// TLSFingerprint is the fingerprint of the API's certificate
	// (sand tls fingerprint /etc/sand/tls/cert.pem).
	TLSFingerprint string `json:"tls_fingerprint"`
}

// MissingArgs are the image's own kernel arguments (image/cmdline) that
// the box did not boot with.
func (r Report) MissingArgs(image []string) []string {
	have := map[string]bool{}
	for _, a := range strings.Fields(r.KernelArgs) {
		have[a] = true
	}
	var missing []string
	for _, a := range image {
		if !have[a] {
			missing = append(missing, a)
		}
	}
	return missing
}

// ReportDisk is the data disk as the box sees it.
type ReportDisk struct {
	Setting string `json:"setting"`
	Device  string `json:"device"`
	Size    int64  `json:"size"`
}

// Report waits for the box's report (written once per boot, out through a
// virtio port into a file on the host).
func (b *Box) Report(ctx context.Context) (Report, error) {
	path := b.state().Report
	for {
		data, err := os.ReadFile(path)
		if err == nil {
			if line, _, ok := bytes.Cut(data, []byte("\n")); ok {
				var r Report
				if err := json.Unmarshal(line, &r); err != nil {
					return r, fmt.Errorf("parse report of %s: %w: %q", b.Name, err, line)
				}
				return r, nil
			}
		}
		select {
		case <-ctx.Done():
			return Report{}, fmt.Errorf("box %s wrote no report to %s: %w; console ends:\n%s", b.Name, path, ctx.Err(), b.ConsoleTail(30))
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// qmp runs one QMP command on the box's QEMU.
func (b *Box) qmp(ctx context.Context, command string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", b.state().QMP)
	if err != nil {
		return fmt.Errorf("QMP %s on %s: %w", command, b.Name, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(10 * time.Second))
	}
	r := bufio.NewReader(conn)
	if _, err := r.ReadBytes('\n'); err != nil { // greeting
		return fmt.Errorf("QMP greeting of %s: %w", b.Name, err)
	}
	for _, c := range []string{"qmp_capabilities", command} {
		if _, err := fmt.Fprintf(conn, "{\"execute\":%q}\n", c); err != nil {
			return fmt.Errorf("QMP %s on %s: %w", c, b.Name, err)
		}
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				return fmt.Errorf("QMP %s on %s: %w", c, b.Name, err)
			}
			var m map[string]json.RawMessage
			if json.Unmarshal(line, &m) != nil {
				continue
			}
			if e, ok := m["error"]; ok {
				return fmt.Errorf("QMP %s on %s: %s", c, b.Name, e)
			}
			if _, ok := m["return"]; ok {
				break
			}
		}
	}
	b.lab.log.Info("QMP", "box", b.Name, "command", command)
	return nil
}

// procStat returns field 22 (start time) and the command name of a
// process.
func procStat(pid int) (uint64, string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", err
	}
	s := string(data)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return 0, "", fmt.Errorf("parse /proc/%d/stat", pid)
	}
	comm := s[open+1 : closing]
	fields := strings.Fields(s[closing+1:])
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, "", fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(fields))
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return 0, comm, errors.New("process has exited")
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	return start, comm, err
}

// ourQEMU reports whether the box's recorded PID is still its QEMU: alive,
// started at the recorded time, with the lab's -name on its command line.
func ourQEMU(lab string, s BoxState) bool {
	if s.PID <= 0 {
		return false
	}
	start, _, err := procStat(s.PID)
	if err != nil || (s.StartTime != 0 && start != s.StartTime) {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", s.PID))
	if err != nil {
		return false
	}
	return bytes.Contains(cmdline, []byte("\x00"+qemuName(lab, s.Name)+"\x00"))
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
