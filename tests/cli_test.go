package tests

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"sselab/app/hub/redistest"
)

// syncBuffer is a buffer a process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// hostPort splits a server URL into the -H and -P flags of the tools.
func hostPort(t *testing.T, base string) []string {
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return []string{"-H", u.Hostname(), "-P", u.Port()}
}

// request runs `sselab request` and returns its exit code and output.
func request(t *testing.T, base string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(binary(t), append(append([]string{"request"}, hostPort(t, base)...), args...)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), out.String(), errb.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, out.String(), errb.String()
}

// client starts `sselab client`; wait returns its exit error.
func client(t *testing.T, base string, args ...string) (stdout, stderr *syncBuffer, wait func(time.Duration) error) {
	t.Helper()
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, binary(t), append(append([]string{"client"}, hostPort(t, base)...), args...)...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(cancel)
	return stdout, stderr, func(within time.Duration) error {
		select {
		case err := <-done:
			return err
		case <-time.After(within):
			t.Fatalf("sselab client still running after %v; stdout %q stderr %q", within, stdout.String(), stderr.String())
			return nil
		}
	}
}

func TestClientPrintsEventsAndExitsAfterClose(t *testing.T) {
	s := startServer(t, "-i")
	out, errOut, wait := client(t, s.URL, "-d", "tok")
	eventually(t, 10*time.Second, "the client listens", func() bool { return listeners(t, s.URL) == 1 })

	code, stdout, stderr := request(t, s.URL, "tok", "ping", "42")
	if code != 0 || stdout != "1 listener reached\n" {
		t.Fatalf("request ping: exit %d, %q %q", code, stdout, stderr)
	}
	request(t, s.URL, "tok", "close")
	if err := wait(10 * time.Second); err != nil {
		t.Fatalf("client: %v, want exit 0; stderr %q", err, errOut.String())
	}
	if got := out.String(); got != "ping: 42\nclose: \n" {
		t.Errorf("client printed %q, want ping: 42 then close", got)
	}
	// -d shows the raw lines, ids included (-i), on stderr.
	if raw := errOut.String(); !strings.Contains(raw, "event: ping\nid: ") || !strings.Contains(raw, "data: 42\n") {
		t.Errorf("raw lines on stderr: %q", raw)
	}
}

func TestRequestExitCodesAndMessages(t *testing.T) {
	s := startServer(t, "-j")
	for _, tt := range []struct {
		name   string
		base   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{"json accepted", s.URL, []string{"tok", "ping", `{"n": 1}`}, 0, "0 listeners reached\n", ""},
		{"json refused by the server", s.URL, []string{"tok", "ping", `{n: 1}`}, 1, "", "400 Bad Request: data must be valid JSON: invalid character 'n'"},
		{"json refused before sending", s.URL, []string{"-j", "tok", "ping", `nope`}, 1, "", "data must be valid JSON"},
		{"unknown action", s.URL, []string{"tok", "explode"}, 1, "", `404 Not Found: unknown action "explode"; the actions are ping, close, retry`},
		{"bad retry", s.URL, []string{"tok", "retry", "-1"}, 1, "", "400 Bad Request: retry data must be a whole number of milliseconds from 0 to 600000"},
		{"bad token", s.URL, []string{"a b", "ping"}, 1, "", "token must be 1 to 64 characters"},
		{"missing action", s.URL, []string{"tok"}, 1, "", "usage: sselab request"},
		{"refused connection", "http://127.0.0.1:1", []string{"tok", "ping", "1"}, 1, "", "cannot connect to 127.0.0.1:1"},
		{"unknown host", "http://no-such-host.invalid:8080", []string{"tok", "ping", "1"}, 1, "", "unknown host no-such-host.invalid"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := request(t, tt.base, tt.args...)
			if code != tt.code || stdout != tt.stdout || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("got exit %d stdout %q stderr %q; want exit %d stdout %q stderr containing %q",
					code, stdout, stderr, tt.code, tt.stdout, tt.stderr)
			}
			if tt.code != 0 && strings.Count(strings.TrimSpace(stderr), "\n") > 0 && tt.name != "missing action" {
				t.Errorf("want a one-line reason, got %q", stderr)
			}
		})
	}
}

func TestClientFailsFastAndGivesUp(t *testing.T) {
	// Nothing listens on port 1: the first connection fails, with a reason.
	_, errOut, wait := client(t, "http://127.0.0.1:1", "tok")
	if err := wait(10 * time.Second); err == nil || !strings.Contains(errOut.String(), "cannot connect to 127.0.0.1:1") {
		t.Errorf("refused connection: exit %v, stderr %q", err, errOut.String())
	}
	_, errOut, wait = client(t, "http://127.0.0.1:1", "bad token")
	if err := wait(10 * time.Second); err == nil || !strings.Contains(errOut.String(), "token must be") {
		t.Errorf("bad token: exit %v, stderr %q", err, errOut.String())
	}
	// Connected once, then the server goes away: -give-up 2 ends it.
	s := startServer(t)
	_, errOut, wait = client(t, s.URL, "-r", "50", "-give-up", "2", "tok")
	eventually(t, 10*time.Second, "the client listens", func() bool { return listeners(t, s.URL) == 1 })
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := wait(10 * time.Second); err == nil || !strings.Contains(errOut.String(), "gave up after 2 failed reconnects") {
		t.Errorf("give up: exit %v, stderr %q", err, errOut.String())
	}
}

// The client resumes with Last-Event-ID after the server restarts: an
// event published while it was away reaches it by replay. The history
// outlives the process because it is in Redis.
func TestClientResumesAfterServerRestart(t *testing.T) {
	rs := redistest.Start(t)
	a := startServer(t, "-redis", rs.URL, "-i")
	out, errOut, wait := client(t, a.URL, "-r", "2000", "tok")
	eventually(t, 10*time.Second, "the client listens", func() bool { return listeners(t, a.URL) == 1 })
	request(t, a.URL, "tok", "ping", "before")
	eventually(t, 10*time.Second, "the first ping printed", func() bool { return strings.Contains(out.String(), "ping: before") })

	addr := strings.TrimPrefix(a.URL, "http://")
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	b := startServerAt(t, addr, "-redis", rs.URL, "-i")
	// Published while the client waits out its 2s retry delay.
	if code, _, stderr := request(t, b.URL, "tok", "ping", "while-away"); code != 0 {
		t.Fatalf("ping while the client is away: %s", stderr)
	}
	eventually(t, 15*time.Second, "the missed ping replayed", func() bool { return strings.Contains(out.String(), "ping: while-away") })
	request(t, b.URL, "tok", "close")
	if err := wait(10 * time.Second); err != nil {
		t.Fatalf("client: %v; stderr %q", err, errOut.String())
	}
	if got := out.String(); got != "ping: before\nping: while-away\nclose: \n" {
		t.Errorf("client printed %q", got)
	}
}

// -k sets the keepalive interval in milliseconds for token streams.
func TestKeepaliveAtK(t *testing.T) {
	s := startServer(t, "-k", "100")
	_, p := openStream(t, s.URL+"/tokens/tok/poll")
	comments := make(chan string, 16)
	p.OnComment = func(c string) { comments <- c }
	go p.Next()
	for i := -1; i < 3; i++ {
		select {
		case c := <-comments:
			want := "keepalive"
			if i < 0 {
				want = "open" // rule 1: the stream's first bytes, at once
			}
			if c != want {
				t.Errorf("comment %q, want %s", c, want)
			}
		case <-time.After(5 * time.Second): // the default interval (15s) would fail this
			t.Fatalf("%d keepalive comments within 5s at -k 100, want 3", i)
		}
	}
}

// `sselab client` honours rule 7 as a browser does: refused for capacity,
// it comes back after the retry it was given.
func TestClientComesBackAfterRefusal(t *testing.T) {
	s := startServer(t, "-max-streams", "1")
	holder, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(holder, http.MethodGet, s.URL+"/time/sendTime?mode=stream", nil)
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, errOut, wait := client(t, s.URL, "tok")
	eventually(t, 10*time.Second, "a refusal", func() bool {
		return metric(t, s.URL, `sselab_http_requests_total{code="200",route="/tokens/:token/poll"}`) >= 1 // refusals end at once
	})
	cancel()
	eventually(t, 15*time.Second, "the client back", func() bool { return listeners(t, s.URL) == 1 })
	request(t, s.URL, "tok", "ping", "back")
	request(t, s.URL, "tok", "close")
	if err := wait(10 * time.Second); err != nil {
		t.Fatalf("client: %v; stderr %q", err, errOut.String())
	}
	if !strings.Contains(out.String(), "ping: back\n") {
		t.Errorf("client printed %q, want the ping after it came back", out.String())
	}
}
