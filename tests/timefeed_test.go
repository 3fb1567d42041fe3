package tests

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestTimeFeedShortResponses(t *testing.T) {
	s := startServer(t, "-retry", "250ms")
	_, p := openStream(t, s.URL+"/time/sendTime")
	if _, err := p.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("feed off: got %v, want a response that ends with no event", err)
	}
	if d, ok := p.Retry(); !ok || d != 250*time.Millisecond {
		t.Errorf("retry: got %v %v, want 250ms", d, ok)
	}
	do(t, http.MethodPost, s.URL+"/time/timeSwitch", "")
	// Polling, as the browser does: each request is one event, then the end.
	for i := 0; i < 3; i++ {
		_, p := openStream(t, s.URL+"/time/sendTime")
		ev := next(t, p, 5*time.Second)
		if ev.Type != "time" {
			t.Errorf("got type %q, want time", ev.Type)
		}
		if _, err := p.Next(); !errors.Is(err, io.EOF) {
			t.Fatalf("after one event: got %v, want the end", err)
		}
	}
}

func TestTimeFeedToggleReachesOpenStream(t *testing.T) {
	s := startServer(t)
	_, p := openStream(t, s.URL+"/time/sendTime?mode=stream&interval=100ms")
	do(t, http.MethodPost, s.URL+"/time/timeSwitch", "")
	for i := 0; i < 3; i++ {
		if ev := next(t, p, 5*time.Second); ev.Type != "time" {
			t.Fatalf("got %+v, want time events", ev)
		}
	}
}

func TestTimeFeedTypeSwitch(t *testing.T) {
	s := startServer(t)
	code, _, body := do(t, http.MethodPost, s.URL+"/time/typeSwitch", "")
	if code != http.StatusOK || !strings.HasPrefix(body, "Type Switched") {
		t.Fatalf("typeSwitch: %d %q", code, body)
	}
	for _, path := range []string{"/time/sendTime", "/time/sendTime?mode=stream"} {
		code, h, _ := do(t, http.MethodGet, s.URL+path, "")
		if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
			t.Errorf("%s: got %d %q, want 200 text/plain", path, code, h.Get("Content-Type"))
		}
	}
	do(t, http.MethodPost, s.URL+"/time/typeSwitch", "")
	_, h, _ := do(t, http.MethodGet, s.URL+"/time/sendTime", "")
	if !strings.HasPrefix(h.Get("Content-Type"), "text/event-stream") {
		t.Errorf("switched back: got %q", h.Get("Content-Type"))
	}
}

// The CherryPy lesson as a learner sees it, in each engine and protocol:
// with the feed on, short responses become polling through EventSource's
// reconnects; the content-type switch closes the EventSource, and no
// request follows. -retry is above Firefox's 500 ms floor, so every engine
// reconnects at the server's pace.
func TestEnginesTimeFeed(t *testing.T) {
	inEachEngineAndProtocol(t, []string{"-retry", "600ms"}, func(t *testing.T, b *tab, s *server) {
		b.Go(s.URL + "/time/")
		b.Click("toggle-feed")
		b.Until(5*time.Second, "the page shows the feed on", `document.querySelector("[data-testid=feed-state]").textContent === "on"`)
		b.Until(20*time.Second, "time events across three reconnects",
			`Number(document.querySelector("[data-testid=connect-count]").textContent) >= 3 &&
			 Number(document.querySelector("[data-testid=event-count]").textContent) >= 3`)
		b.Click("toggle-type")
		b.Until(10*time.Second, "readyState CLOSED after the content-type switch",
			`document.querySelector("[data-testid=ready-state]").textContent === "CLOSED"`)
		const route = `sselab_http_requests_total{code="200",route="/time/sendTime"}`
		before := b.Metric(route)
		// The claim is that nothing happens, so the test watches time pass:
		// five retry periods.
		time.Sleep(3 * time.Second)
		if after := b.Metric(route); after != before {
			t.Errorf("%s: sendTime requests went from %v to %v after the EventSource closed", b.engine, before, after)
		}
		if got := b.Text("ready-state"); got != "CLOSED" {
			t.Errorf("%s: readyState %s, want CLOSED", b.engine, got)
		}
	})
}
