package app

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"sselab/app/metrics"
	"sselab/app/sse"
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
