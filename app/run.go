// Package app is the composition root: configuration, the Echo server, the
// route list, and Run, which starts and stops everything.
package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"sselab/app/hub"
	"sselab/app/hub/redisbroker"
	"sselab/app/metrics"
)

// shutdownTimeout bounds a graceful shutdown; the contract promises exit
// within 5 seconds of SIGINT or SIGTERM.
const shutdownTimeout = 4 * time.Second

// memoryLimit is the Go runtime's soft memory limit unless GOMEMLIMIT
// says otherwise.
const memoryLimit = 448 << 20

// streamGrace is how long a stream has, after shutdown begins, to take
// its last bytes; a write still blocked then fails.
const streamGrace = time.Second

// usage lists serve and the commands the demos bring.
func usage(demos []Demo) string {
	u := "usage:\n  sselab [serve] [flags]  serve the site (sselab serve -h lists the flags)\n"
	for _, c := range commands(demos) {
		u += "  sselab " + c.Name + " " + c.Usage + "\n"
	}
	return u
}

// commands are the subcommands of every demo.
func commands(demos []Demo) []Command {
	var cs []Command
	for _, d := range demos {
		cs = append(cs, d.Commands...)
	}
	return cs
}

// quiet treats -h as success: the usage was printed.
func quiet(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// ExitStatus is the process's exit status for Run's error: 0 for nil, what
// a command asked for (an error with an ExitCode method, such as doctor's
// 1 and 2), else 1. print says whether the error has something to say.
func ExitStatus(err error) (code int, print bool) {
	var e interface {
		error
		ExitCode() int
	}
	switch {
	case err == nil:
		return 0, false
	case errors.As(err, &e):
		return e.ExitCode(), errors.Unwrap(e) != nil
	}
	return 1, true
}

// Run runs one sselab command until ctx ends. main only calls this, so
// tests run the real program in-process.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	demos := Demos()
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage(demos))
		return nil
	}
	for _, c := range commands(demos) {
		if c.Name == cmd {
			return quiet(c.Run(ctx, args, stdout, stderr))
		}
	}
	fmt.Fprint(stderr, usage(demos))
	return fmt.Errorf("unknown command %q", cmd)
}

// maxHeaderBytes bounds a request's line and headers together (HTTP/1.1:
// 431 past it, plus the 4 KiB of slack net/http allows; HTTP/2: the
// SETTINGS_MAX_HEADER_LIST_SIZE advertised, counted decoded, 431 past
// it). The 1 MB default let 60 connections of tiny header lines hold
// 731 MB, and a stream keeps its request's headers for its whole life.
const maxHeaderBytes = 16 << 10

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
	logger := slog.New(newRateLimited(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}), maxLogLines))
	if getenv("GOMEMLIMIT") == "" {
		// The garbage collector works harder as the heap nears this, so
		// that garbage never takes the process past the 512 MiB the
		// contract promises; GOMEMLIMIT sets another.
		debug.SetMemoryLimit(memoryLimit)
	}

	m := metrics.New()
	broker, err := newBroker(ctx, cfg, m, logger)
	if err != nil {
		return err
	}
	defer broker.Close()
	key, err := sessionKey(ctx, cfg, broker)
	if err != nil {
		return err
	}

	var tc *tls.Config
	var cert []byte
	var tlsAbout string
	if cfg.TLS {
		if tc, tlsAbout, err = tlsConfig(cfg); err != nil {
			return err
		}
		cert = tc.Certificates[0].Certificate[0]
	}

	stopping, stop := context.WithCancelCause(context.Background())
	defer stop(nil)
	streams := newStreams(cfg.MaxStreams, m, logger)
	site := NewServer(Deps{Config: cfg, Logger: logger, Metrics: m, Broker: broker, SessionKey: key,
		Streams: streams, Cert: cert})

	tcp, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	ln := floodListener{tcp}
	maxConns := cfg.MaxConns
	var nofile syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile) == nil && nofile.Cur < uint64(maxConns)+256 {
		maxConns = max(1, int(nofile.Cur)-256) // descriptors for Redis, files, the listener
		logger.Warn("-max-conns lowered to fit the descriptor limit", "max-conns", maxConns, "RLIMIT_NOFILE", nofile.Cur)
	}
	limit := newConns(maxConns)
	srv := &http.Server{
		Handler:     site,
		ConnState:   limit.state,
		ConnContext: withFloodConn,
		// No WriteTimeout: it would cut every stream off after that time.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		// Every request's context derives from this one, and Shutdown
		// cancels it with ErrShutdown once the listeners are closed
		// (RegisterOnShutdown): every stream loop returns, sends its
		// parting retry:, its response is finished rather than reset, its
		// connection goes idle and Shutdown completes. It costs nothing per
		// request, unlike a context derived for each stream.
		BaseContext: func(net.Listener) context.Context { return stopping },
	}
	srv.RegisterOnShutdown(func() {
		stop(errShutdown)
		// A write blocked on a client that stopped reading would hold its
		// stream, and Shutdown, for ever: it fails after this grace.
		streams.Cut(time.Now().Add(streamGrace))
	})

	if cfg.Pprof != "" {
		_, stopPprof, err := servePprof(cfg.Pprof, logger)
		if err != nil {
			return err
		}
		defer stopPprof()
	}

	srv.Protocols = protocols(cfg)
	scheme := "http"
	if cfg.TLS {
		srv.TLSConfig, scheme = tc, "https"
		fmt.Fprintf(stdout, "TLS: %s\n", tlsAbout)
	}
	fmt.Fprintf(stdout, "sselab listening on %s://%s\n", scheme, ln.Addr())
	errc := make(chan error, 1)
	go func() {
		if cfg.TLS {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down: ending open streams")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// Streams were cut already; what is left is connections that did
		// not go idle in time. Closing them is still a clean exit.
		logger.Warn("shutdown: closing the connections left", "err", err)
		srv.Close()
	}
	<-errc // Serve has returned ErrServerClosed
	logger.Info("stopped")
	return nil
}

// newBroker is the in-memory broker, or Redis when a URL is given.
func newBroker(ctx context.Context, cfg Config, m *metrics.Metrics, logger *slog.Logger) (hub.Broker, error) {
	opts := BrokerOptions(cfg, m, Demos())
	if cfg.RedisURL == "" {
		return hub.NewMemory(opts), nil
	}
	return redisbroker.New(ctx, cfg.RedisURL, opts, logger)
}

// BrokerOptions are the hub's options for a configuration: its bounds,
// and what the demos register with it.
func BrokerOptions(cfg Config, o hub.Observer, demos []Demo) hub.Options {
	opts := hub.Options{
		History:      cfg.History,
		HistoryBytes: cfg.HistoryBytes,
		ChannelBytes: cfg.ChannelBytes,
		MaxChannels:  cfg.MaxChannels,
		IdleTTL:      cfg.ChannelTTL,
		StoreBytes:   cfg.RedisMemory,
		Queue:        cfg.Queue,
		Funcs:        map[string]hub.Func{},
		Observer:     o,
	}
	for _, d := range demos {
		maps.Copy(opts.Funcs, d.Funcs)
		opts.State = append(opts.State, d.State...)
	}
	return opts
}

// sessionKey is the key that signs session cookies: derived from
// -session-key, else shared by every instance through Redis, else random.
func sessionKey(ctx context.Context, cfg Config, b hub.Broker) (hub.Keys, error) {
	if cfg.SessionKey != "" {
		sum := sha256.Sum256([]byte(cfg.SessionKey))
		return hub.StaticKeys(sum[:]), nil
	}
	if s, ok := b.(hub.SecretSharer); ok {
		return s.SharedSecret(ctx, "session-key")
	}
	key := make([]byte, 32)
	rand.Read(key)
	return hub.StaticKeys(key), nil
}

// servePprof serves the runtime profiles on their own listener, apart from
// the site, so that they are never exposed where the site is.
func servePprof(addr string, logger *slog.Logger) (bound string, stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("-pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	logger.Info("pprof listening", "addr", "http://"+ln.Addr().String()+"/debug/pprof/")
	return ln.Addr().String(), func() { srv.Close() }, nil
}
