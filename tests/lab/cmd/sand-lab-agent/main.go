// Command sand-lab-agent is the lab's agent inside its VMs (package
// tests/lab/agent), and the small tools the lab's guests run:
//
//	sand-lab-agent serve --listen ADDR --token-arg KEY   the agent (token from KEY=VALUE on /proc/cmdline,
//	                     [--token-file FILE]             or from FILE: on a box, sand's API token file)
//	sand-lab-agent stamp                                 copy stdin to stdout, each line prefixed with the Unix time in ns
//	sand-lab-agent write-files --dir D [--size N] [--pause D] [--salt S]   a guest's fsync workload
//	sand-lab-agent sum-files --dir D                     sha256 of every file in D
//
// It is built static (CGO_ENABLED=0) into the lab's dom0 and domU images
// and into the lab's hook for boxes; the product image never has it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/sand-appliance/sand/tests/lab/agent"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: sand-lab-agent serve|stamp|write-files|sum-files [flags]")
		return 2
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	var err error
	switch args[0] {
	case "serve":
		listen := fs.String("listen", fmt.Sprintf(":%d", agent.Port), "address to listen on")
		tokenArg := fs.String("token-arg", "sandlab.token", "kernel command line key whose value is the token")
		tokenFile := fs.String("token-file", "", "file holding the token, read instead of the command line (a box keeps its secrets off it)")
		if fs.Parse(args[1:]) != nil {
			return 2
		}
		err = serve(ctx, *listen, *tokenArg, *tokenFile, stderr)
	case "stamp":
		agent.Stamp(stdin, func(l agent.Line) { fmt.Fprintf(stdout, "%d %s\n", l.At, l.Text) })
	case "write-files":
		dir := fs.String("dir", "", "directory to write into")
		size := fs.Int("size", 16<<10, "bytes per file")
		pause := fs.Duration("pause", 50*time.Millisecond, "pause after each file")
		salt := fs.Uint64("salt", 1, "seed of the files' data")
		if fs.Parse(args[1:]) != nil {
			return 2
		}
		err = agent.WriteFiles(ctx, *dir, *size, *pause, *salt, stdout)
	case "sum-files":
		dir := fs.String("dir", "", "directory to read")
		if fs.Parse(args[1:]) != nil {
			return 2
		}
		err = agent.SumFiles(*dir, stdout)
	default:
		fmt.Fprintf(stderr, "sand-lab-agent: unknown command %q\n", args[0])
		return 2
	}
	if err != nil {
		fmt.Fprintln(stderr, "sand-lab-agent:", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, listen, tokenArg, tokenFile string, stderr io.Writer) error {
	token, err := agentToken(tokenArg, tokenFile)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	s := &agent.Server{Token: token, Log: log}
	srv := &http.Server{Addr: listen, Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	log.Info("agent listening", "addr", listen)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// agentToken is the token from file, or else from KEY=VALUE on the kernel
// command line.
func agentToken(arg, file string) (string, error) {
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("read the token: %w", err)
		}
		if token := strings.TrimSpace(string(data)); token != "" {
			return token, nil
		}
		return "", fmt.Errorf("%s is empty: refusing to serve without a token", file)
	}
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return "", err
	}
	token := ""
	for _, f := range strings.Fields(string(cmdline)) {
		if v, ok := strings.CutPrefix(f, arg+"="); ok {
			token = v
		}
	}
	if token == "" {
		return "", fmt.Errorf("no %s= on the kernel command line: refusing to serve without a token", arg)
	}
	return token, nil
}
