package app

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"sselab/app/metrics"
	"sselab/app/sse"
	"sselab/app/sse/ssetest"
)

// testSite is an Echo with the server's error handler, stream middleware
// and request logger, and routes that fail in the ways handlers do.
func testSite(t *testing.T) (*echo.Echo, *bytes.Buffer) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := metrics.New()
	e := echo.New()
	e.HTTPErrorHandler = errorHandler(log, m, func(c echo.Context) error { return c.String(404, "no\n") })
	streams := newStreams(10, m, log)
	e.GET("/stream-fails", func(c echo.Context) error {
		s, err := sse.Open(c.Response())
		if err != nil {
			return err
		}
		s.Send(sse.Event{Data: "first"})
		return errors.New("boom after the start")
	}, streams.middleware)
	e.GET("/unavailable", func(c echo.Context) error {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "the message broker is unavailable").
			WithInternal(fmt.Errorf("dial tcp 127.0.0.1:6379: connection refused"))
	}, requestLogger(log, m))
	e.GET("/bad", func(c echo.Context) error {
		return echo.NewHTTPError(http.StatusBadRequest, "count must be an integer")
	}, requestLogger(log, m))
	return e, &logs
}

func fetch(e *echo.Echo, path string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	e.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
	return w
}

// A stream handler that fails after the stream started leaves the stream
// as it is, and the failure is logged once, with its cause.
func TestStreamFailureAfterStart(t *testing.T) {
	e, logs := testSite(t)
	w := fetch(e, "/stream-fails")
	if w.Code != http.StatusOK || w.Body.String() != sse.Opening+"data: first\n\n" {
		t.Errorf("got %d %q, want the stream as it was sent, nothing appended", w.Code, w.Body.String())
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), `err="boom after the start"`) {
		t.Errorf("logs: got %q, want one line with the cause", logs.String())
	}
}

// An error with an internal cause is answered with its public reason and
// logged once with the cause; a 4xx logs one line and no false alarm.
func TestErrorsLoggedOnceWithCause(t *testing.T) {
	e, logs := testSite(t)
	w := fetch(e, "/unavailable")
	if w.Code != http.StatusServiceUnavailable || w.Body.String() != "the message broker is unavailable\n" {
		t.Errorf("got %d %q", w.Code, w.Body.String())
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), "connection refused") || !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("logs: got %q, want one WARN line with the cause", logs.String())
	}
	logs.Reset()
	w = fetch(e, "/bad")
	if w.Code != http.StatusBadRequest {
		t.Errorf("got %d", w.Code)
	}
	if n := strings.Count(logs.String(), "\n"); n != 1 || strings.Contains(logs.String(), "after the response started") {
		t.Errorf("logs: got %q, want one line", logs.String())
	}
}

// Open streams are charged by what each costs over its protocol: with
// room for three HTTP/2 streams and one HTTP/1.1 stream, a fourth HTTP/2
// stream is refused as rule 7 says, the HTTP/1.1 one is not, and a stream
// that ends gives its room back.
func TestStreamBudgetByProtocol(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	streams := newStreams(100, metrics.New(), log)
	h2 := streamCost(&http.Request{ProtoMajor: 2})
	h1 := streamCost(&http.Request{ProtoMajor: 1})
	streams.budget = 3*h2 + h1
	release := make(chan struct{})
	e := echo.New()
	e.GET("/s", func(c echo.Context) error {
		if _, err := sse.Open(c.Response()); err != nil {
			return err
		}
		<-release
		return nil
	}, streams.middleware)
	open := func(major int) (*ssetest.Recorder, chan struct{}) {
		req := httptest.NewRequest(http.MethodGet, "/s", nil)
		req.ProtoMajor, req.Proto = major, fmt.Sprintf("HTTP/%d.0", major)
		w := ssetest.NewRecorder()
		done := make(chan struct{})
		go func() { defer close(done); e.ServeHTTP(w, req) }()
		return w, done
	}
	opened := func(w *ssetest.Recorder) bool { return strings.HasPrefix(w.Flushed(), sse.Opening) }
	var held []chan struct{}
	for range 3 {
		w, done := open(2)
		for !opened(w) {
			runtime.Gosched()
		}
		held = append(held, done)
	}
	w, done := open(2)
	<-done // refused: the response ends at once
	if !strings.Contains(w.All(), "the open streams use the memory the server gives them") || !strings.Contains(w.All(), "retry: ") {
		t.Errorf("a fourth HTTP/2 stream: %q, want rule 7's refusal naming the memory", w.All())
	}
	w1, _ := open(1)
	for !opened(w1) && !strings.Contains(w1.All(), "retry") {
		runtime.Gosched()
	}
	if !opened(w1) {
		t.Errorf("an HTTP/1.1 stream, which fits: %q", w1.All())
	}
	close(release)
	for _, d := range held {
		<-d
	}
	if c := streams.cost.Load(); c > h1 {
		t.Errorf("after the streams ended, %d bytes still charged", c)
	}
}
