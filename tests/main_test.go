// Package tests holds the end-to-end tests: they boot the real server (in
// process through app.Run, or the built binary) on port 0 and drive it with
// real clients: an HTTP stream reader, headless Chromium, redis-server.
package tests

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"sselab/app"
	"sselab/app/sse"
)

var binDir string

func TestMain(m *testing.M) {
	// Most of these tests wait (on browsers, timers, other processes)
	// rather than compute: four at a time, not GOMAXPROCS (two here), keeps
	// go test ./... well within its 10 minutes. -parallel still overrides.
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		flag.Set("test.parallel", "4")
	}
	dir, err := os.MkdirTemp("", "sselab-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	closeBrowsers()
	os.RemoveAll(dir)
	os.Exit(code)
}

// skipShort skips an end-to-end test under -short: the quick inner loop
// is the unit tests beside the code; `go test ./...` and CI run these.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: boots the real server or an external program; skipped under -short")
	}
}

// requireTool finds an external program: the environment variable, else
// PATH. Missing, it skips the test, or fails it under SSELAB_REQUIRE_ALL=1.
func requireTool(t *testing.T, env string, names ...string) string {
	t.Helper()
	skipShort(t)
	if p := os.Getenv(env); p != "" {
		return p
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found on PATH (or set %s)", names[0], env)
	if os.Getenv("SSELAB_REQUIRE_ALL") == "1" {
		t.Fatalf("%s, and SSELAB_REQUIRE_ALL=1", msg)
	}
	t.Skip(msg + "; install it to run this test")
	return ""
}

// server is a running sselab.
type server struct {
	URL  string
	stop context.CancelFunc
	done chan error
}

var listening = regexp.MustCompile(`listening on (https?://\S+)`)

// addrWriter passes the first "listening on" URL to a channel.
type addrWriter struct {
	once sync.Once
	url  chan string
	mu   sync.Mutex
	buf  strings.Builder
}

func (w *addrWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	if m := listening.FindStringSubmatch(w.buf.String()); m != nil {
		w.once.Do(func() { w.url <- m[1] })
	}
	return len(b), nil
}

// startServer runs `sselab serve -addr 127.0.0.1:0 args...` in process and
// stops it when the test ends, failing the test if it did not stop cleanly.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	return startServerEnv(t, nil, args...)
}

// startServerAt runs the server on a given address, such as the one a
// stopped server had.
func startServerAt(t *testing.T, addr string, args ...string) *server {
	t.Helper()
	return startServerEnv(t, nil, append(args, "-addr", addr)...)
}

func startServerEnv(t *testing.T, env map[string]string, args ...string) *server {
	t.Helper()
	skipShort(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := &addrWriter{url: make(chan string, 1)}
	s := &server{stop: cancel, done: make(chan error, 1)}
	getenv := func(k string) string { return env[k] }
	go func() {
		s.done <- app.Run(ctx, append([]string{"serve", "-addr", "127.0.0.1:0"}, args...), getenv, out, io.Discard)
	}()
	select {
	case s.URL = <-out.url:
	case err := <-s.done:
		cancel()
		t.Fatalf("sselab stopped at start: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("sselab did not start listening within 10s")
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stopping sselab: %v", err)
		}
	})
	return s
}

// Stop shuts the server down and returns Run's result; it can be called
// more than once.
func (s *server) Stop() error {
	s.stop()
	select {
	case err, ok := <-s.done:
		if ok {
			close(s.done)
		}
		return err
	case <-time.After(10 * time.Second):
		return errors.New("Run did not return within 10s of the stop")
	}
}

// plainClient never asks for or undoes compression, so a test sees the
// Content-Encoding the server really sent.
// It does not follow redirects either: tests check the 303s themselves.
var plainClient = &http.Client{
	Transport:     &http.Transport{DisableCompression: true},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// follow reads a stream as EventSource does: when the response ends it
// reconnects with Last-Event-ID, so a dropped subscriber catches up. Events
// arrive on the channel until the test ends.
func follow(t *testing.T, url string) <-chan sse.Event {
	t.Helper()
	out := make(chan sse.Event, 1024)
	ctx := t.Context()
	go func() {
		last := ""
		for ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if last != "" {
				req.Header.Set("Last-Event-ID", last)
			}
			resp, err := plainClient.Do(req)
			if err != nil {
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond): // the reconnection delay
				}
				continue
			}
			p := sse.NewParser(resp.Body)
			for {
				ev, err := p.Next()
				if err != nil {
					break
				}
				last = ev.ID
				select {
				case out <- ev:
				case <-ctx.Done():
				}
			}
			resp.Body.Close()
		}
	}()
	return out
}

// openStream GETs url with the given headers and returns the response and
// a parser over its body. The stream ends with the test.
func openStream(t *testing.T, url string, header ...string) (*http.Response, *sse.Parser) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := plainClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	return resp, sse.NewParser(resp.Body)
}

// next reads the next event, failing the test after a deadline.
func next(t *testing.T, p *sse.Parser, within time.Duration) sse.Event {
	t.Helper()
	type result struct {
		ev  sse.Event
		err error
	}
	ch := make(chan result, 1)
	go func() {
		ev, err := p.Next()
		ch <- result{ev, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("reading an event: %v", r.err)
		}
		return r.ev
	case <-time.After(within):
		t.Fatalf("no event within %v", within)
		return sse.Event{}
	}
}

// do sends a request and returns status and body.
func do(t *testing.T, method, url, body string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// metric reads one sample of /metrics, summing every series whose line
// starts with prefix.
func metric(t *testing.T, base, prefix string) float64 {
	t.Helper()
	return metricOf(t, plainClient, base, prefix)
}

// metricOf is metric through client (an HTTP/2 one, for a -tls server).
func metricOf(t *testing.T, client *http.Client, base, prefix string) float64 {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/metrics", nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, prefix) {
			var v float64
			fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v)
			sum += v
		}
	}
	return sum
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for the condition
	}
}

// buildBinary builds cmd/sselab once per test run.
var buildOnce = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(binDir, "sselab")
	out, err := exec.Command("go", "build", "-o", bin, "sselab/cmd/sselab").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func binary(t *testing.T) string {
	t.Helper()
	skipShort(t)
	bin, err := buildOnce()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// freePort is a loopback port nothing listens on just now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}
