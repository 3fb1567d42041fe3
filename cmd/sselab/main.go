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
	defer stop()
	if err := app.Run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sselab:", err)
		os.Exit(1)
	}
}
