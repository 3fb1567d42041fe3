// Package app is the composition root: configuration, the Echo server, the
// route list, and Run, which starts and stops everything.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"sselab/app/metrics"
	"sselab/app/timefeed"
)

// ShutdownTimeout bounds a graceful shutdown; the contract promises exit
// within 5 seconds of SIGINT or SIGTERM.
const ShutdownTimeout = 4 * time.Second

const usage = `usage:
  sselab [serve] [flags]        serve the site (sselab serve -h lists the flags)
`

// Run runs one sselab command until ctx ends. main only calls this, so
// tests run the real program in-process.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseServe(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	level := slog.LevelInfo
	if cfg.Debug {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	stopping, stop := context.WithCancel(context.Background())
	defer stop()
	e := NewServer(Deps{Config: cfg, Logger: logger, Metrics: metrics.New(), Feed: new(timefeed.Feed), Stopping: stopping})

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler: e,
		// No WriteTimeout: it would cut every stream off after that time.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	// Shutdown closes the listeners, then calls this: every stream ends and
	// its response is finished, so its connection goes idle and closes.
	srv.RegisterOnShutdown(stop)

	fmt.Fprintf(stdout, "sselab listening on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: ending open streams")
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	<-errc // Serve has returned ErrServerClosed
	logger.Info("stopped")
	return nil
}
