package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// appliancePkg is the appliance binary: what ships in the image.
const appliancePkg = "github.com/sand-appliance/sand/sand"

// badDeps are packages the appliance binary must not link, each with the
// packages under it, and the reason. Packages in a tests folder are refused
// by path (testPath).
var badDeps = map[string]string{
	"testing":                  "the product links no test code",
	"github.com/google/go-cmp": "go-cmp is for tests only",
}

// TestApplianceDeps fails when the appliance binary depends on test code: the
// lab, the test tiers' helpers (tests/...), the testing package or go-cmp. It
// is tailscale's deptest: a product binary that imports a test lab fails a
// unit test, not a review.
func TestApplianceDeps(t *testing.T) {
	gobin := goCommand(t)
	out, err := exec.Command(gobin, "list", "-deps", "-f", "{{.ImportPath}}", appliancePkg).Output()
	if err != nil {
		var stderr string
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			stderr = strings.TrimSpace(string(ee.Stderr))
		}
		t.Fatalf("go list -deps %s: %v: %s", appliancePkg, err, stderr)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatalf("go list -deps %s listed no packages", appliancePkg)
	}
	for _, dep := range deps {
		if reason := badDep(dep); reason != "" {
			t.Errorf("%s depends on %s: %s", appliancePkg, dep, reason)
		}
	}
}

// badDep says why the appliance binary must not depend on the package at
// path, or "" when it may.
func badDep(path string) string {
	for bad, reason := range badDeps {
		if path == bad || strings.HasPrefix(path, bad+"/") {
			return reason
		}
	}
	if testPath(path) {
		return "packages in a tests folder are test code (labs, test tiers, their helpers)"
	}
	return ""
}

// testPath reports whether an import path is a tests folder or under one.
func testPath(path string) bool {
	return strings.Contains(path, "/tests/") || strings.HasSuffix(path, "/tests")
}

func TestBadDep(t *testing.T) {
	for _, tc := range []struct {
		path string
		bad  bool
	}{
		{"github.com/sand-appliance/sand/tests/lab", true},
		{"github.com/sand-appliance/sand/tests", true},
		{"github.com/sand-appliance/sand/tests/lab/cmd/sand-lab", true},
		{"testing", true},
		{"testing/synctest", true},
		{"github.com/google/go-cmp/cmp", true},
		{"github.com/google/go-cmp/cmp/internal/diff", true},
		{"github.com/sand-appliance/sand/appliance", false},
		{"github.com/sand-appliance/sand/appliance/command", false},
		{"internal/testlog", false}, // os imports it
		{"github.com/sand-appliance/sand/testsuite", false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			if got := badDep(tc.path) != ""; got != tc.bad {
				t.Errorf("badDep(%q) = %q, want bad = %v", tc.path, badDep(tc.path), tc.bad)
			}
		})
	}
}

// goCommand finds the go command that runs this test: GOROOT's, else PATH's.
func goCommand(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	bin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("needs the go command: not in %s/bin nor on PATH", runtime.GOROOT())
		}
		t.Skipf("needs the go command: not in %s/bin nor on PATH", runtime.GOROOT())
	}
	return bin
}
