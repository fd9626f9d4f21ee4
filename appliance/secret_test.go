package appliance

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		// chmod: the umask must not decide what the test checks.
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "s3cret-token\n", 0o600)
	readOnly := write("read-only", "  s3cret  \r\n", 0o400)
	link := filepath.Join(dir, "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	worldTarget := write("world-target", "x\n", 0o644)
	linkToOpen := filepath.Join(dir, "link-to-open")
	if err := os.Symlink(worldTarget, linkToOpen); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := write("big", strings.Repeat("x", 64<<10+1), 0o600)

	tests := []struct {
		name    string
		path    string
		want    string
		wantErr []string // substrings, all of them
		mode    bool     // the error wraps ErrSecretFileOpen
	}{
		{name: "owner only", path: good, want: "s3cret-token"},
		{name: "owner read-only, white space trimmed", path: readOnly, want: "s3cret"},
		{name: "a link to a good file", path: link, want: "s3cret-token"},
		{name: "world readable", path: write("world", "x\n", 0o644), wantErr: []string{"mode 0644", "its group and every user", "chmod 600 " + filepath.Join(dir, "world")}, mode: true},
		{name: "group readable", path: write("group", "x\n", 0o640), wantErr: []string{"mode 0640", "its group may", "chmod 600"}, mode: true},
		{name: "other writable only", path: write("other-w", "x\n", 0o602), wantErr: []string{"mode 0602", "every user may", "chmod 600"}, mode: true},
		{name: "a link to a world readable file: the file is checked", path: linkToOpen, wantErr: []string{"mode 0644", "chmod 600 " + linkToOpen}, mode: true},
		{name: "a FIFO is refused without blocking", path: fifo, wantErr: []string{"not a regular file"}},
		{name: "a directory", path: dir, wantErr: []string{"not a regular file"}},
		{name: "empty", path: write("empty", " \n", 0o600), wantErr: []string{"is empty"}},
		{name: "too big", path: big, wantErr: []string{"over 64 KiB"}},
		{name: "missing", path: filepath.Join(dir, "none"), wantErr: []string{"no such file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan struct{})
			var got string
			var err error
			go func() {
				defer close(done)
				got, err = ReadSecretFile(tt.path)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("ReadSecretFile(%s) blocked", tt.path)
			}
			if tt.wantErr == nil {
				if err != nil || got != tt.want {
					t.Fatalf("ReadSecretFile = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ReadSecretFile = %q, want an error", got)
			}
			for _, s := range tt.wantErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if errors.Is(err, ErrSecretFileOpen) != tt.mode {
				t.Errorf("errors.Is(%v, ErrSecretFileOpen) = %v, want %v", err, !tt.mode, tt.mode)
			}
			if got != "" {
				t.Errorf("a refused file gave %q", got)
			}
		})
	}
}

// Every secret of the node config is read through the check.
func TestConfigSecretsChecked(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "token")
	if err := os.WriteFile(open, []byte("0123456789abcdef0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	c.APITokenFile, c.MonitorTokenFile = open, open
	if _, err := c.Token(); !errors.Is(err, ErrSecretFileOpen) {
		t.Errorf("Token() with a world-readable api_token_file: %v, want ErrSecretFileOpen", err)
	}
	if _, err := c.Monitor(); !errors.Is(err, ErrSecretFileOpen) {
		t.Errorf("Monitor() with a world-readable monitor_token_file: %v, want ErrSecretFileOpen", err)
	}
	if err := os.Chmod(open, 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := c.Token(); err != nil || tok != "0123456789abcdef0123" {
		t.Errorf("Token() after chmod 600: %q, %v", tok, err)
	}
}
