// Package cli holds the command-line tools of the Tornado eventsource seed:
// `sselab client` listens to a token, `sselab request` posts an action.
// They speak to any sselab over HTTP and read streams with the project's
// own parser.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

	"sselab/app/sse"
	"sselab/app/tokens"
)

// target holds the flags both tools share.
type target struct {
	host, port string
	connect    time.Duration
}

func (t *target) flags(fs *flag.FlagSet) {
	fs.StringVar(&t.host, "H", "localhost", "server host")
	fs.StringVar(&t.port, "P", "8080", "server port")
	fs.DurationVar(&t.connect, "connect-timeout", 5*time.Second, "give up connecting after this long")
}

func (t *target) url(token, action string) string {
	return "http://" + net.JoinHostPort(t.host, t.port) + "/tokens/" + token + "/" + action
}

func (t *target) client() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: t.connect}).DialContext,
			ResponseHeaderTimeout: 2 * t.connect,
			DisableCompression:    true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// reason makes a transport error one readable line.
func reason(err error) string {
	var dns *net.DNSError
	var op *net.OpError
	switch {
	case errors.As(err, &dns):
		return "unknown host " + dns.Name
	case errors.As(err, &op) && op.Op == "dial":
		return "cannot connect to " + op.Addr.String() + ": " + op.Err.Error()
	}
	return err.Error()
}

// serverError is a refusal, with the server's plain-text reason.
func serverError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	msg := strings.TrimSpace(string(b))
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return fmt.Errorf("%s: %s", resp.Status, msg)
}

func parseArgs(fs *flag.FlagSet, args []string, min, max int, usage string) error {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n", usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if n := fs.NArg(); n < min || n > max {
		fs.Usage()
		return fmt.Errorf("usage: %s", usage)
	}
	return tokens.ValidToken(fs.Arg(0))
}

// Client follows /tokens/TOKEN/poll: it prints each event as
// "<type>: <data>", reconnects after the retry delay with Last-Event-ID
// (honouring retry: from the server, but never sooner than MinRetry, and
// backing off with a random spread after failures; see reconnectDelay),
// and returns nil after a close event.
// A first connection that fails, and any 4xx, end it with the reason;
// after that, failed reconnects are retried, up to -give-up of them.
func Client(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var t target
	fs := flag.NewFlagSet("sselab client", flag.ContinueOnError)
	fs.SetOutput(stderr)
	t.flags(fs)
	retryMS := fs.Int("r", 3000, "reconnection delay in milliseconds, until the server sends retry:")
	debug := fs.Bool("d", false, "show the raw lines of the stream on stderr")
	giveUp := fs.Int("give-up", 0, "give up after this many failed reconnects in a row (0: never, as the seed)")
	if err := parseArgs(fs, args, 1, 1, "sselab client [-H host] [-P port] [-r retry_ms] [-d] [-give-up N] TOKEN"); err != nil {
		return err
	}
	if *retryMS < 0 {
		return errors.New("-r must be a non-negative number of milliseconds")
	}
	f := &follower{
		url: t.url(fs.Arg(0), "poll"), httpc: t.client(), retry: time.Duration(*retryMS) * time.Millisecond,
		debug: *debug, stdout: stdout, stderr: stderr, rand: rand.Float64,
	}
	return f.follow(ctx, *giveUp)
}

// MinRetry is the shortest wait before a reconnect, whatever retry: the
// server (or anyone who posts retry to the token) sends: Firefox keeps
// the same floor. MaxBackoff bounds the back-off after failures.
const (
	MinRetry   = 500 * time.Millisecond
	MaxBackoff = time.Minute
)

// reconnectDelay is how long to wait before the next connection: the
// retry delay, at least MinRetry, after a stream that ended; after
// failures in a row, that doubled per failure up to MaxBackoff, spread
// ±30 % at random (r in [0, 1)), so that the clients of a server that went
// away do not all come back in the same instant.
func reconnectDelay(retry time.Duration, failures int, r float64) time.Duration {
	d := max(retry, MinRetry)
	if failures == 0 {
		return d
	}
	for i := 1; i < failures && d < MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, max(MaxBackoff, retry))
	return time.Duration(float64(d) * (0.7 + 0.6*r))
}

// follow reads connection after connection until a close event, a
// refusal, the first connection failing, giveUp failed reconnects in a
// row (0: never), or ctx ends.
func (f *follower) follow(ctx context.Context, giveUp int) error {
	connected, failures := false, 0
	for {
		done, err := f.once(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case done:
			return err
		case err == nil:
			connected, failures = true, 0
		case !connected:
			return err
		default:
			failures++
			if giveUp > 0 && failures >= giveUp {
				return fmt.Errorf("gave up after %d failed reconnects: %w", failures, err)
			}
		}
		wait := reconnectDelay(f.retry, failures, f.rand())
		if err != nil {
			fmt.Fprintf(f.stderr, "sselab client: %v; reconnecting in %v\n", err, wait.Round(time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// follower follows one token's stream across reconnects: last and retry
// carry over from one connection to the next, as EventSource's do.
type follower struct {
	url            string
	httpc          *http.Client
	last           string        // the last event id seen
	retry          time.Duration // the reconnection delay, as the server last set it
	debug          bool
	stdout, stderr io.Writer
	rand           func() float64 // in [0, 1): the back-off's spread
}

// once reads one connection. done means stop for good (a close event, a
// 204, or a refusal that retrying cannot fix); err without done means the
// connection failed and may be retried.
func (f *follower) once(ctx context.Context) (done bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return true, err
	}
	req.Header.Set("Accept", "text/event-stream")
	if f.last != "" {
		req.Header.Set("Last-Event-ID", f.last)
	}
	resp, err := f.httpc.Do(req)
	if err != nil {
		return false, errors.New(reason(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNoContent:
		return true, nil // the server has nothing more: stop, as EventSource does
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return true, serverError(resp)
	case resp.StatusCode != http.StatusOK:
		return false, serverError(resp)
	case !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"):
		return true, fmt.Errorf("the server answered %q, not text/event-stream", resp.Header.Get("Content-Type"))
	}
	var body io.Reader = resp.Body
	if f.debug {
		body = io.TeeReader(resp.Body, f.stderr)
	}
	p := sse.NewParser(body)
	for {
		ev, err := p.Next()
		if d, ok := p.Retry(); ok {
			f.retry = d
		}
		if err != nil {
			return false, nil // the stream ended: reconnect
		}
		f.last = p.LastEventID()
		typ := ev.Type
		if typ == "" {
			typ = "message"
		}
		fmt.Fprintf(f.stdout, "%s: %s\n", typ, ev.Data)
		if typ == tokens.Close {
			return true, nil
		}
	}
}

// Request posts ACTION with DATA to TOKEN, prints the answer, and returns
// the server's reason when it refuses.
func Request(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var t target
	fs := flag.NewFlagSet("sselab request", flag.ContinueOnError)
	fs.SetOutput(stderr)
	t.flags(fs)
	jsonData := fs.Bool("j", false, "DATA is JSON: checked before it is sent, and sent as application/json")
	timeout := fs.Duration("timeout", 10*time.Second, "give up on the whole request after this long")
	if err := parseArgs(fs, args, 2, 3, "sselab request [-H host] [-P port] [-j] TOKEN ACTION [DATA]"); err != nil {
		return err
	}
	data := fs.Arg(2)
	contentType := "text/plain; charset=utf-8"
	if *jsonData {
		if _, err := (tokens.JSON{}).Value("", data); err != nil {
			return err
		}
		contentType = "application/json"
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url(fs.Arg(0), fs.Arg(1)), strings.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := t.client().Do(req)
	if err != nil {
		return errors.New(reason(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return serverError(resp)
	}
	_, err = io.Copy(stdout, resp.Body)
	return err
}
