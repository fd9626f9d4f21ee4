package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestHelp checks each command answers --help with its flags (the flags
// `sand lab` had before the lab became a program of its own).
func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		flags []string
	}{
		{"root", []string{"--help"}, []string{"up", "down", "status", "--log-level"}},
		{"up", []string{"up", "--help"}, []string{"--name", "--repo", "--dir", "--image", "--boot", "--pair", "--memory", "--disk-size", "--token", "--boot-timeout", "--log-level"}},
		{"down", []string{"down", "--help"}, []string{"--name", "--repo", "--dir"}},
		{"status", []string{"status", "--help"}, []string{"--name", "--repo", "--dir", "--output"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tc.args, &stdout, &stderr); code != 0 {
				t.Fatalf("sand-lab %s: exit %d: %s", strings.Join(tc.args, " "), code, stderr.String())
			}
			for _, f := range tc.flags {
				if !strings.Contains(stdout.String(), f) {
					t.Errorf("sand-lab %s does not mention %s:\n%s", strings.Join(tc.args, " "), f, stdout.String())
				}
			}
		})
	}
}

func TestBadArguments(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"status output", []string{"status", "--output", "yaml", "--dir", "/nonexistent"}, `--output "yaml" is unknown`},
		{"up image", []string{"up", "--image", "sometimes"}, `--image "sometimes"`},
		{"up disk size", []string{"up", "--disk-size", "big"}, "--disk-size"},
		{"extra argument", []string{"down", "now"}, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tc.args, &stdout, &stderr); code != 1 {
				t.Fatalf("sand-lab %s: exit %d, want 1", strings.Join(tc.args, " "), code)
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("sand-lab %s: stderr %q does not say %q", strings.Join(tc.args, " "), stderr.String(), tc.want)
			}
		})
	}
}
