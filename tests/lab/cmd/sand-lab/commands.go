package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sand-appliance/sand/appliance"
	"github.com/sand-appliance/sand/tests/lab"
)

// labFlags are the flags every command shares.
type labFlags struct {
	name, repo, dir string
}

func (f *labFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.name, "name", lab.DefaultName, "lab name: its namespaces are NAME and NAME-client")
	cmd.Flags().StringVar(&f.repo, "repo", "", "sand repository (default: found from the working directory)")
	cmd.Flags().StringVar(&f.dir, "dir", "", "lab state directory (default REPO/out/lab/NAME)")
}

func (f *labFlags) stateDir() (string, error) {
	if f.dir != "" {
		return filepath.Abs(f.dir)
	}
	repo := f.repo
	if repo == "" {
		r, err := lab.FindRepo("")
		if err != nil {
			return "", fmt.Errorf("%w (or give --dir)", err)
		}
		repo = r
	}
	return filepath.Join(repo, "out", "lab", f.name), nil
}

func upCmd(e *env) *cobra.Command {
	f := &labFlags{}
	var image, boot, pair, diskSize, token string
	var memory int
	var bootTimeout time.Duration
	var uiForward string
	var dom0 bool
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Build the image if needed, boot san1 and san2, wait for their APIs, then keep the lab running",
		Long: "Boots the lab and stays in the foreground as the parent of the QEMUs. Ctrl-C (or SIGTERM)\n" +
			"takes the lab down; so does `sand-lab down` from another shell.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			size, err := appliance.ParseSize(diskSize)
			if err != nil {
				return fmt.Errorf("--disk-size: %w", err)
			}
			dir := ""
			if f.dir != "" {
				if dir, err = filepath.Abs(f.dir); err != nil {
					return err
				}
			}
			o := lab.Options{
				Name: f.name, Repo: f.repo, Dir: dir, Image: lab.ImagePolicy(image), Boot: lab.BootMode(boot), Pair: pair, MemoryMiB: memory,
				DiskSize: size, Token: token, BootTimeout: bootTimeout, Logger: e.logger(), Dom0: dom0,
			}
			switch o.Image {
			case lab.ImageAuto, lab.ImageKeep, lab.ImageRebuild:
			default:
				return fmt.Errorf("--image %q: use auto, keep or rebuild", image)
			}
			start := time.Now()
			l, err := lab.Up(ctx, o)
			if err != nil {
				return fmt.Errorf("bring the lab up: %w", err)
			}
			fmt.Fprintf(e.stdout, "lab %s is up after %.1f s\n", l.Name, time.Since(start).Seconds())
			printLab(ctx, e.stdout, l)
			fctx, stopForward := context.WithCancel(ctx)
			forwarding := startUIForward(fctx, e.stdout, l, uiForward)
			defer func() { stopForward(); forwarding.Wait() }()
			fmt.Fprintf(e.stdout, "\nCtrl-C here or `sand-lab down --name %s` from another shell takes it down.\n", l.Name)
			return l.Supervise(ctx)
		},
	}
	f.add(cmd)
	cmd.Flags().StringVar(&image, "image", string(lab.ImageAuto), "build the image: auto (when missing or sand changed), keep (only when missing), rebuild")
	cmd.Flags().StringVar(&boot, "boot", string(lab.BootKernel), "how the boxes boot: kernel (kernel + initramfs, settings on the command line) or disk (the disk image through UEFI and systemd-boot, settings on SANDCFG)")
	cmd.Flags().StringVar(&pair, "pair", "", "drbd: boot the boxes as a DRBD pair (node setting pair=drbd; the pool on /dev/drbd0); default standalone boxes")
	cmd.Flags().IntVar(&memory, "memory", 1024, "memory of each box in MiB (the system runs from RAM)")
	cmd.Flags().StringVar(&diskSize, "disk-size", "1G", "size of each box's sparse data disk")
	cmd.Flags().StringVar(&token, "token", "", "API token of the boxes (default: random, kept in the lab state)")
	cmd.Flags().DurationVar(&bootTimeout, "boot-timeout", 5*time.Minute, "how long to wait for each box's API")
	cmd.Flags().StringVar(&uiForward, "ui-forward", defaultUIForward, "make the web UI reachable from this machine's browser on this loopback address (the VIP's in a pair); empty for none")
	cmd.Flags().BoolVar(&dom0, "dom0", false, "also boot a Xen dom0 (Xen 4.17, open-iscsi, block-iscsi, a PV domU image) on the front network, built by tests/lab/xen/mkdom0.sh")
	return cmd
}

func downCmd(e *env) *cobra.Command {
	f := &labFlags{}
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop the lab's QEMUs, delete its namespaces, taps and files, and check nothing is left",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := f.stateDir()
			if err != nil {
				return err
			}
			l, err := lab.Open(dir, e.logger())
			if err != nil {
				return err
			}
			if err := l.Down(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "lab %s is down: no QEMU, namespace, tap or file of it is left\n", l.Name)
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

// boxStatus is one box as `sand-lab status` reports it.
type boxStatus struct {
	Name     string            `json:"name"`
	PID      int               `json:"pid"`
	API      string            `json:"api"`
	Healthy  bool              `json:"healthy"`
	Status   *appliance.Status `json:"status,omitempty"`
	Problem  string            `json:"problem,omitempty"`
	Console  string            `json:"console"`
	FrontIP  string            `json:"front_ip"`
	ReplIP   string            `json:"repl_ip"`
	Cmdline  string            `json:"cmdline"`
	ClientNS string            `json:"client_namespace"`
}

func statusCmd(e *env) *cobra.Command {
	f := &labFlags{}
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the lab's boxes: QEMU, API health, role, portal; exit 1 unless every box answers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output %q is unknown: use text or json", output)
			}
			dir, err := f.stateDir()
			if err != nil {
				return err
			}
			l, err := lab.Open(dir, e.logger())
			if err != nil {
				return err
			}
			boxes := labStatus(cmd.Context(), l)
			if output == "json" {
				enc := json.NewEncoder(e.stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(boxes); err != nil {
					return err
				}
			} else {
				printLab(cmd.Context(), e.stdout, l)
			}
			var bad []string
			for _, b := range boxes {
				if !b.Healthy {
					bad = append(bad, b.Name)
				}
			}
			if len(bad) > 0 {
				return fmt.Errorf("lab %s: %s not answering", l.Name, strings.Join(bad, ", "))
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func labStatus(ctx context.Context, l *lab.Lab) []boxStatus {
	var out []boxStatus
	for _, name := range l.Names() {
		b := l.Box(name)
		s := boxStatus{Name: name, PID: b.PID(), API: b.APIURL(), Console: b.ConsolePath(),
			FrontIP: b.FrontIP(), ReplIP: b.ReplIP(), Cmdline: b.Cmdline(), ClientNS: l.ClientNS}
		if s.PID == 0 {
			s.Problem = "QEMU is not running"
			out = append(out, s)
			continue
		}
		if err := healthz(ctx, b.HTTPClient(5*time.Second), b.APIURL()); err != nil {
			s.Problem = err.Error()
			out = append(out, s)
			continue
		}
		s.Healthy = true
		st, err := b.API().Status(ctx)
		if err != nil {
			s.Problem = "status: " + err.Error()
		} else {
			s.Status = &st
		}
		out = append(out, s)
	}
	return out
}

func healthz(ctx context.Context, hc *http.Client, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("API not answering: %w", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New("API /healthz: " + resp.Status)
	}
	return nil
}

// printLab tells a person where everything is and how to reach it.
func printLab(ctx context.Context, w io.Writer, l *lab.Lab) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BOX\tQEMU\tUI/API\tISCSI PORTAL\tROLE\tREPLICATION\tCONSOLE LOG")
	for _, s := range labStatus(ctx, l) {
		pid, portal, role := "stopped", "-", "-"
		if s.PID != 0 {
			pid = fmt.Sprintf("pid %d", s.PID)
		}
		if s.Status != nil {
			portal, role = s.Status.Portal, s.Status.Role
		} else if s.Problem != "" {
			role = "(" + s.Problem + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, pid, s.API, portal, role, s.ReplIP, s.Console)
	}
	tw.Flush()
	first := l.Box(l.Names()[0])
	portal := first.FrontIP()
	if l.Pair != "" {
		portal = lab.VIP().String()
		fmt.Fprintf(w, "\niSCSI portal of the pair (the VIP, on the primary): %s:3260\n", portal)
	} else {
		fmt.Fprintf(w, "\nVIP of the pair (reserved): %s\n", lab.VIP())
	}
	fmt.Fprintf(w, "API token: %s\n", l.Token)
	printTLS(w, l)
	fmt.Fprintf(w, "client namespace %s (%s, initiator tools), e.g.:\n", l.ClientNS, lab.ClientIP())
	fmt.Fprintf(w, "  ip netns exec %s %s status --api %s --token %s --trust-fingerprint %s\n", l.ClientNS, applianceBinary(), first.APIURL(), l.Token, first.Fingerprint())
	fmt.Fprintf(w, "  ip netns exec %s iscsi-ls -s -i iqn.2026-11.org.example:lab-client iscsi://%s/\n", l.ClientNS, portal)
	fmt.Fprintf(w, "lab namespace %s (%s on the front bridge; bridges front and repl, taps, QEMUs)\n", l.NS, lab.FrontHost())
	if d := l.Dom0(); d != nil {
		state := "stopped"
		if pid := d.PID(); pid != 0 {
			state = fmt.Sprintf("pid %d", pid)
		}
		fmt.Fprintf(w, "dom0 (Xen 4.17, QEMU %s): %s, initiator %s, console %s\n", state, d.FrontIP(), d.IQN(), d.ConsolePath())
		fmt.Fprintf(w, "  its agent runs commands by argv: POST http://%s:7999/v1/run {\"argv\": [\"xl\", \"list\"]} with the API token as bearer token\n", d.FrontIP())
		fmt.Fprintf(w, "  the domU image: %s/vmlinux.gz and initrd.img (xl create with the disk line of sand lun show)\n", lab.Dom0DomU)
	}
}

// applianceBinary names the sand binary for the example command: bin/sand
// beside bin/sand-lab when make built both, else sand from PATH.
func applianceBinary() string {
	self, err := os.Executable()
	if err == nil {
		bin := filepath.Join(filepath.Dir(self), "sand")
		if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
			return bin
		}
	}
	return "sand"
}
