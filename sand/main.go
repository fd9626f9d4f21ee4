// Command sand is the appliance's one binary: the daemon (sand serve), the
// admin CLI over the REST API, the witness and DRBD's handlers. It is
// wiring only: the code lives in the packages it calls.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
