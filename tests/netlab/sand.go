package netlab

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// BuildSand builds the sand binary into the test's temporary directory and
// returns its path (the Go build cache makes repeated builds cheap).
func BuildSand(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sand")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/sand-appliance/sand/sand")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build sand: %v: %s", err, out)
	}
	return bin
}
