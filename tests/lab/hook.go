package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/sand-appliance/sand/tests/lab/agent"
)

// The lab's hook for boxes (Options.BoxAgent): the lab agent as a systemd
// unit, in a small uncompressed cpio archive that the lab puts in front of
// the image's initramfs. The kernel unpacks both into one root file system
// (as it does with early microcode), so the box runs the agent on port
// 7999 beside sand. The product image never has it: it exists only in the
// lab directory's copy of the initramfs, for benchmarks that must set up
// something by hand on a box (a hand-set LIO target as a baseline).

const hookUnit = `[Unit]
Description=sand lab agent (lab-only hook, not part of the appliance image)
After=network.target sand-node-setup.service

[Service]
ExecStart=/usr/lib/sand-lab/sand-lab-agent serve --token-file /etc/sand/api-token
Restart=always
RestartSec=2
`

// hookInitrd writes the image's initramfs with the hook in front of it
// into dst.
func hookInitrd(agentBin, image, dst string) error {
	bin, err := os.ReadFile(agentBin)
	if err != nil {
		return fmt.Errorf("the lab hook: %w", err)
	}
	var c cpioWriter
	for _, d := range []string{"usr", "usr/lib", "usr/lib/sand-lab", "etc", "etc/systemd", "etc/systemd/system", "etc/systemd/system/multi-user.target.wants"} {
		c.add(d, 0o40755, nil)
	}
	c.add("usr/lib/sand-lab/sand-lab-agent", 0o100755, bin)
	c.add("etc/systemd/system/sand-lab-agent.service", 0o100644, []byte(hookUnit))
	c.add("etc/systemd/system/multi-user.target.wants/sand-lab-agent.service", 0o120777, []byte("../sand-lab-agent.service"))
	c.trailer()
	// the next archive starts on a 512-byte boundary (the kernel skips
	// zeros between archives)
	for c.buf.Len()%512 != 0 {
		c.buf.WriteByte(0)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("the lab hook: %w", err)
	}
	in, err := os.Open(image)
	if err != nil {
		out.Close()
		return fmt.Errorf("the lab hook: %w", err)
	}
	defer in.Close()
	_, err = out.Write(c.buf.Bytes())
	if err == nil {
		_, err = io.Copy(out, in)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("the lab hook: write %s: %w", dst, err)
	}
	return nil
}

// cpioWriter writes a newc ("070701") archive, the format the kernel's
// initramfs unpacker reads.
type cpioWriter struct {
	buf bytes.Buffer
	ino int
}

func (c *cpioWriter) add(name string, mode int, data []byte) {
	c.ino++
	nlink := 1
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	fmt.Fprintf(&c.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, 0, 0, len(name)+1, 0)
	c.buf.WriteString(name)
	c.buf.WriteByte(0)
	c.pad()
	c.buf.Write(data)
	c.pad()
}

func (c *cpioWriter) pad() {
	for c.buf.Len()%4 != 0 {
		c.buf.WriteByte(0)
	}
}

func (c *cpioWriter) trailer() { c.add("TRAILER!!!", 0, nil) }

// setupHook builds the agent and the hooked initramfs in the lab directory
// and boots the boxes from it.
func (l *Lab) setupHook(ctx context.Context, repo string) error {
	bin, _, err := buildAgent(ctx, repo)
	if err != nil {
		return err
	}
	dst := filepath.Join(l.Dir, "initrd-hook.img")
	if err := hookInitrd(bin, l.Initrd, dst); err != nil {
		return err
	}
	l.Initrd = dst
	l.BoxAgent = true
	l.log.Info("boxes boot with the lab hook (agent on port 7999)", "initrd", dst)
	return l.save()
}

// Agent is a client of the box's lab agent; only a lab brought up with
// Options.BoxAgent has one.
func (b *Box) Agent() (*agent.Client, error) {
	if !b.lab.BoxAgent {
		return nil, fmt.Errorf("box %s has no lab agent: bring the lab up with Options.BoxAgent", b.Name)
	}
	return &agent.Client{
		URL:   "http://" + net.JoinHostPort(b.FrontIP(), strconv.Itoa(agent.Port)),
		Token: b.lab.Token,
		HTTP:  b.lab.Host().HTTPClient(10 * time.Minute),
	}, nil
}
