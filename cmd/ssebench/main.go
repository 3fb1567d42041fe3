// Command ssebench is sselab's load benchmark. It opens N streams on
// loopback, publishes at a fixed rate, and measures fan-out latency,
// deliveries, server memory per stream and CPU per delivery, for sselab
// and, in the same invocation, for a minimal net/http broadcast server (the
// baseline), and prints sselab's figures as ratios to the baseline.
//
// It only ever targets loopback addresses, bounds every phase in time and
// count, and stops by itself.
//
//	go build -o /tmp/sselab ./cmd/sselab && go build -o /tmp/ssebench ./cmd/ssebench
//	/tmp/ssebench -sselab /tmp/sselab -n 10000 -rate 10 -duration 10s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

type config struct {
	n              int
	rate           float64
	duration       time.Duration
	payload        int
	sources        int
	dialers        int
	connectTimeout time.Duration
	drain          time.Duration
	streamPath     string
	publishPath    string
	form           string // post the event as this form field, not as the body
	redis          bool   // compare sselab in memory mode with sselab on a redis-server
	channels       int    // spread streams over this many token channels; 0: one
	restart        bool   // the restart scenario: streams move from instance A to B
	clients        bool   // with restart: once per client kind (clientKinds)
	instances      int    // with -redis: sselab instances on the one redis-server
	sselab         string
	url            string
	pid            int
	serverCPU      int
	loadCPU        int
	baseline       bool
	rounds         int
	json           bool
	timeout        time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ssebench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "baseline-server" {
		fs := flag.NewFlagSet("ssebench baseline-server", flag.ContinueOnError)
		addr := fs.String("addr", "127.0.0.1:0", "listen address (loopback)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return serveBaseline(ctx, *addr)
	}
	var cfg config
	fs := flag.NewFlagSet("ssebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&cfg.n, "n", 1000, "streams to open")
	fs.Float64Var(&cfg.rate, "rate", 10, "broadcasts per second (open loop)")
	fs.DurationVar(&cfg.duration, "duration", 10*time.Second, "how long to publish")
	fs.IntVar(&cfg.payload, "payload", 40, "bytes of event data")
	fs.IntVar(&cfg.sources, "sources", 32, "loopback source addresses 127.0.1.x to spread streams over")
	fs.IntVar(&cfg.dialers, "dialers", 256, "streams connecting at once")
	fs.DurationVar(&cfg.connectTimeout, "connect-timeout", 60*time.Second, "bound of the connect phase")
	fs.DurationVar(&cfg.drain, "drain", 10*time.Second, "bound of the wait for deliveries after the last publish")
	fs.StringVar(&cfg.streamPath, "stream-path", "/tokens/bench/poll", "stream to open")
	fs.StringVar(&cfg.publishPath, "publish-path", "/tokens/bench/ping", "where to POST events")
	fs.StringVar(&cfg.form, "form", "", "post each event as this form field (e.g. message, for /chat/post) instead of as the body")
	fs.StringVar(&cfg.sselab, "sselab", "", "sselab binary to start (pinned to -server-cpu)")
	fs.StringVar(&cfg.url, "url", "", "instead of -sselab: a running sselab, on loopback only")
	fs.IntVar(&cfg.pid, "pid", 0, "with -url: the server's PID, for memory and CPU figures")
	fs.IntVar(&cfg.serverCPU, "server-cpu", 0, "CPU the servers run on (taskset); -1: not pinned")
	fs.IntVar(&cfg.loadCPU, "load-cpu", 1, "CPU this tool runs on; -1: not pinned")
	fs.IntVar(&cfg.channels, "channels", 0, "spread the streams over K token channels bench-0..bench-K-1 (stream i on channel i mod K) and post each broadcast to every channel; needs -baseline=false or -redis")
	fs.BoolVar(&cfg.baseline, "baseline", true, "also measure the baseline, and print ratios")
	fs.BoolVar(&cfg.redis, "redis", false, "in place of the baseline, measure sselab in memory mode beside sselab -redis on a redis-server this tool starts (redis-server on PATH or SSELAB_REDIS_SERVER), both pinned to -server-cpu")
	fs.IntVar(&cfg.instances, "instances", 1, "with -redis: run this many sselab instances on the one redis-server, streams and posts dealt out between them in turn")
	fs.BoolVar(&cfg.restart, "restart", false, "the restart scenario: N streams on sselab A, posts to sselab B (both -redis on a redis-server this tool starts), SIGTERM to A a third of the way through; every client reconnects to B with its Last-Event-ID, after A's parting retry and, in a second run, after the same 3s for all; reports the time until all are back, the reconnect peak, events lost and duplicated")
	fs.BoolVar(&cfg.clients, "clients", false, "with -restart: a run per kind of client, each reconnecting by its own rules (EventSource, htmx 4's hx-sse, htmx 4 as if retry: came alone, Datastar with retry 'always' and by default), in place of the runs with and without the spread")
	fs.IntVar(&cfg.rounds, "rounds", 1, "rounds of baseline then sselab; the report takes each figure's median")
	fs.BoolVar(&cfg.json, "json", false, "print JSON")
	fs.DurationVar(&cfg.timeout, "timeout", 10*time.Minute, "stop everything after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.n < 1 || cfg.rate <= 0 || cfg.duration <= 0 || cfg.sources < 1 || cfg.sources > 254 || cfg.rounds < 1 {
		return errors.New("-n, -rate, -duration and -rounds must be positive; -sources 1..254")
	}
	if cfg.instances < 1 || cfg.instances > 1 && !cfg.redis {
		return errors.New("-instances: at least 1, and more than 1 only with -redis")
	}
	if (cfg.sselab == "") == (cfg.url == "") {
		return errors.New("give -sselab BINARY (started and measured here) or -url of a running sselab")
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	if cfg.loadCPU >= 0 {
		var set unix.CPUSet
		set.Set(cfg.loadCPU)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return fmt.Errorf("pinning to CPU %d: %w", cfg.loadCPU, err)
		}
		runtime.GOMAXPROCS(1)
	}

	if cfg.url != "" {
		if err := loopbackOnly(ctx, cfg.url); err != nil {
			return err
		}
	}
	if cfg.channels > 0 && cfg.baseline && !cfg.redis {
		return errors.New("-channels: the baseline serves one channel; give -baseline=false or -redis")
	}
	if (cfg.redis || cfg.restart) && cfg.url != "" {
		return errors.New("-redis and -restart start their own servers: give -sselab, not -url")
	}
	if cfg.clients && !cfg.restart {
		return errors.New("-clients is a way to run -restart: give both")
	}
	if cfg.restart {
		return runRestart(ctx, cfg, stdout)
	}
	var rounds [][2]result
	for i := 0; i < cfg.rounds; i++ {
		var pair [2]result
		if cfg.redis {
			var err error
			if pair, err = redisRound(ctx, cfg); err != nil {
				return err
			}
			rounds = append(rounds, pair)
			continue
		}
		if cfg.baseline {
			self, err := os.Executable()
			if err != nil {
				return err
			}
			p, err := start(ctx, cfg, "baseline", self, "baseline-server")
			if err != nil {
				return err
			}
			pair[0], err = runLoad(ctx, cfg, p.target)
			p.stop()
			if err != nil {
				return err
			}
		}
		// A fresh server every round, as for the baseline: memory figures
		// of a process that already grew for earlier rounds mean nothing.
		sut := target{name: "sselab", base: cfg.url, pid: cfg.pid}
		var p *proc
		if cfg.url == "" {
			var err error
			if p, err = start(ctx, cfg, "sselab", cfg.sselab, "serve", "-max-streams", strconv.Itoa(cfg.n+1000)); err != nil {
				return err
			}
			sut = p.target
		}
		var err error
		pair[1], err = runLoad(ctx, cfg, sut)
		if p != nil {
			p.stop()
		}
		if err != nil {
			return err
		}
		rounds = append(rounds, pair)
	}
	return report(stdout, cfg, rounds)
}

// streamOf is the stream path of stream i.
func (c config) streamOf(i int) string {
	if c.channels > 0 {
		return "/tokens/bench-" + strconv.Itoa(i%c.channels) + "/poll"
	}
	return c.streamPath
}

// publishPaths are where each broadcast is posted.
func (c config) publishPaths() []string {
	if c.channels == 0 {
		return []string{c.publishPath}
	}
	paths := make([]string, c.channels)
	for i := range paths {
		paths[i] = "/tokens/bench-" + strconv.Itoa(i) + "/ping"
	}
	return paths
}

// redisRound measures sselab in memory mode, then sselab -redis on a
// fresh redis-server, each a fresh process.
func redisRound(ctx context.Context, cfg config) ([2]result, error) {
	var pair [2]result
	maxStreams := strconv.Itoa(cfg.n + 1000)
	p, err := start(ctx, cfg, "sselab memory", cfg.sselab, "serve", "-max-streams", maxStreams)
	if err != nil {
		return pair, err
	}
	pair[0], err = runLoad(ctx, cfg, p.target)
	p.stop()
	if err != nil {
		return pair, err
	}
	rs, url, err := startRedis(cfg)
	if err != nil {
		return pair, err
	}
	defer rs.stop()
	var site target
	for i := range cfg.instances {
		if p, err = start(ctx, cfg, "sselab redis", cfg.sselab, "serve", "-max-streams", maxStreams, "-redis", url); err != nil {
			return pair, err
		}
		defer p.stop()
		if i == 0 {
			site = p.target
		} else {
			site.others = append(site.others, p.target)
		}
	}
	wctx, stopWatching := context.WithCancel(ctx)
	clients := watchClients(wctx, url)
	pair[1], err = runLoad(ctx, cfg, site)
	stopWatching()
	pair[1].RedisConns = clients.Most()
	return pair, err
}

// startRedis runs a redis-server without persistence on a free loopback
// port, pinned as the servers are.
func startRedis(cfg config) (*proc, string, error) {
	bin := os.Getenv("SSELAB_REDIS_SERVER")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("redis-server"); err != nil {
			return nil, "", errors.New("-redis: redis-server not found on PATH (or set SSELAB_REDIS_SERVER)")
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	argv := []string{bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no"}
	if cfg.serverCPU >= 0 {
		if tp, err := exec.LookPath("taskset"); err == nil {
			argv = append([]string{tp, "-c", strconv.Itoa(cfg.serverCPU)}, argv...)
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	p := &proc{target: target{name: "redis-server", pid: cmd.Process.Pid}, cmd: cmd}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			return p, "redis://127.0.0.1:" + port + "/0", nil
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, "", errors.New("redis-server did not listen within 10s")
		}
		time.Sleep(20 * time.Millisecond) // polling interval while it starts
	}
}

// loopbackOnly refuses any target outside 127.0.0.0/8 and ::1.
func loopbackOnly(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("-url %q: want http://127.0.0.1:PORT", raw)
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, u.Hostname())
	if err != nil {
		return fmt.Errorf("-url %q: %w", raw, err)
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return fmt.Errorf("-url %q resolves to %s: ssebench only loads loopback addresses (127.0.0.0/8, ::1)", raw, ip.IP)
		}
	}
	return nil
}

// proc is a server started by ssebench.
type proc struct {
	target
	cmd *exec.Cmd
}

// start runs a server on a free loopback port, pinned to the server CPU,
// and waits until it answers /healthz.
func start(ctx context.Context, cfg config, name, bin string, args ...string) (*proc, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	argv := append([]string{bin}, append(args, "-addr", addr)...)
	if cfg.serverCPU >= 0 {
		if tp, err := exec.LookPath("taskset"); err == nil {
			argv = append([]string{tp, "-c", strconv.Itoa(cfg.serverCPU)}, argv...)
		} else {
			return nil, errors.New("taskset not found: install util-linux, or give -server-cpu -1")
		}
	}
	cmd := exec.Command(argv[0], argv[1:]...) // taskset execs the server: same PID
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{target: target{name: name, base: "http://" + addr, pid: cmd.Process.Pid}, cmd: cmd}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(p.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			p.stop()
			return nil, fmt.Errorf("%s did not answer /healthz within 15s", name)
		}
		time.Sleep(50 * time.Millisecond) // polling interval while it starts
	}
}

func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}
