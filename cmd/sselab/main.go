// Command sselab serves the sselab site and runs its command-line clients.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"sselab/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	code, print := app.ExitStatus(err)
	if print {
		fmt.Fprintln(os.Stderr, "sselab:", err)
	}
	stop()
	os.Exit(code)
}
