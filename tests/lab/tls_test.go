package lab

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestForward: the forwarder carries bytes both ways to what it dials,
// and stops (every goroutine joined) when its context ends; it listens on
// loopback only.
func TestForward(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := forward(ctx, ln, func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", echo.Addr().String())
	})
	c, err := net.Dial("tcp", f.Addr.String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "hello through the lab\n")
	buf := make([]byte, 22)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello through the lab\n" {
		t.Errorf("read back %q: %v", buf, err)
	}
	cancel()
	done := make(chan struct{})
	go func() { f.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the forwarder did not stop with its context")
	}
	if _, err := c.Read(buf); err == nil {
		t.Error("a carried connection outlived the forwarder")
	}
	l := &Lab{}
	if _, err := l.Forward(context.Background(), "0.0.0.0:0", "10.99.0.10:7443"); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Errorf("forward on every address: %v", err)
	}
}
