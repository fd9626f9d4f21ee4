package lab

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The hooked initramfs is the hook's cpio archive, padded to 512 bytes,
// then the image's initramfs unchanged; cpio reads the hook's files and
// the unit's enabling link from it.
func TestHookInitrd(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("needs cpio")
	}
	dir := t.TempDir()
	agentBin := filepath.Join(dir, "agent")
	image := filepath.Join(dir, "initrd.img")
	out := filepath.Join(dir, "hooked.img")
	if err := os.WriteFile(agentBin, []byte("AGENT"), 0o755); err != nil {
		t.Fatal(err)
	}
	imageData := []byte("\x28\xb5\x2f\xfdIMAGE")
	if err := os.WriteFile(image, imageData, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := hookInitrd(agentBin, image, out); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	head := len(data) - len(imageData)
	if head%512 != 0 || !bytes.Equal(data[head:], imageData) {
		t.Fatalf("the image does not follow the hook at a 512-byte boundary (hook %d bytes)", head)
	}
	cmd := exec.Command("cpio", "-itv", "--quiet")
	cmd.Stdin = bytes.NewReader(data[:head])
	list, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio -t: %v", err)
	}
	for _, want := range []string{
		"usr/lib/sand-lab/sand-lab-agent",
		"etc/systemd/system/sand-lab-agent.service",
		"etc/systemd/system/multi-user.target.wants/sand-lab-agent.service -> ../sand-lab-agent.service",
	} {
		if !strings.Contains(string(list), want) {
			t.Errorf("the hook lacks %s:\n%s", want, list)
		}
	}
	if !strings.Contains(string(list), "-rwxr-xr-x") {
		t.Errorf("the agent is not executable:\n%s", list)
	}
}
