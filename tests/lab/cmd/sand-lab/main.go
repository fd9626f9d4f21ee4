// Command sand-lab runs the VM lab (package lab): two appliance boxes
// under QEMU in a network namespace of their own. It is a program of its
// own, not a command of sand, so the appliance binary links no lab or
// image-building code (sand/deps_test.go checks that).
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sand-appliance/sand/tests/lab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env carries what every command needs: its output streams and the log level.
type env struct {
	stdout, stderr io.Writer
	logLevel       string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "sand-lab",
		Short: "Run the VM lab: two appliance boxes under QEMU in a private network namespace",
		Long: "The lab boots two sand appliances (san1, san2) from the image mkimage.sh builds, under QEMU (TCG),\n" +
			"on a front network (portal, VIP, UI/API, client; 10.99.0.0/24) and a replication network\n" +
			"(DRBD; 10.98.0.0/24), both inside the network namespace NAME, with a client namespace\n" +
			"NAME-client holding the initiator tools. Needs root and " + lab.HostPackages + ".",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	root.PersistentFlags().StringVar(&e.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.AddCommand(upCmd(e), downCmd(e), statusCmd(e))
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "sand-lab:", err)
		return 1
	}
	return 0
}

func (e *env) logger() *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(e.logLevel)); err != nil {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level}))
}
