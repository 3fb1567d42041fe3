package tests

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"sselab/app/sse"
)

func TestMaxStreams(t *testing.T) {
	s := startServer(t, "-max-streams", "2")
	openStream(t, s.URL+"/time/sendTime?mode=stream")
	openStream(t, s.URL+"/time/sendTime?mode=stream")
	// Rule 7: a refusal EventSource recovers from, not a 503.
	code, h, body := do(t, http.MethodGet, s.URL+"/eventsource/event_sender", "")
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/event-stream") ||
		h.Get("Retry-After") == "" || !strings.Contains(body, ": too many open streams") || !strings.Contains(body, "\nretry: ") {
		t.Errorf("third stream: got %d %q Retry-After %q %q, want 200 text/event-stream with Retry-After, a reason and retry:",
			code, h.Get("Content-Type"), h.Get("Retry-After"), body)
	}
	if code, _, _ := do(t, http.MethodGet, s.URL+"/healthz", ""); code != http.StatusOK {
		t.Errorf("healthz while streams are full: %d", code)
	}
}

// Shutdown in process: Run returns nil, and every open stream ends with a
// properly terminated response (a clean EOF, not a reset). Streams that
// send no retry: of their own (the generator, with its own loop, and the
// connections stream, on sse.Loop) get rule 8's, spread over 1-5 s.
func TestShutdownEndsStreams(t *testing.T) {
	s := startServer(t)
	_, feed := openStream(t, s.URL+"/time/sendTime?mode=stream")
	_, gen := openStream(t, s.URL+"/eventsource/event_sender?interval=10s")
	next(t, gen, 5*time.Second) // event 0
	_, conns := openStream(t, s.URL+"/connections/stream")
	next(t, conns, 5*time.Second) // its one event
	start := time.Now()
	if err := s.Stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("shutdown took %v, want under 5s", took)
	}
	for name, p := range map[string]*sse.Parser{"time feed": feed, "generator": gen, "connections": conns} {
		if _, err := p.Next(); !errors.Is(err, io.EOF) {
			t.Errorf("%s: got %v, want a clean end", name, err)
		}
		if name == "time feed" {
			continue // it sends -retry with its events
		}
		if r, ok := p.Retry(); !ok || r < time.Second || r > 5*time.Second {
			t.Errorf("%s: retry %v (sent %v), want one of 1-5 s", name, r, ok)
		}
	}
}

// The built binary on SIGTERM and SIGINT: stops accepting, ends open
// streams cleanly and exits 0 within 5 seconds.
func TestSignalsStopTheBinary(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			url, cmd := startBinary(t)
			_, p := openStream(t, url+"/time/sendTime?mode=stream")
			stopWithin(t, cmd, sig, 5*time.Second)
			if _, err := p.Next(); !errors.Is(err, io.EOF) {
				t.Errorf("open stream: got %v, want a clean end", err)
			}
			if _, err := plainClient.Get(url + "/healthz"); err == nil {
				t.Error("still accepting connections after exit")
			}
		})
	}
}
