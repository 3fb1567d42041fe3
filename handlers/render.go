// Package handlers holds the thin Echo adapters of every demo: they parse
// the request, call the core packages under app/, and render a view or
// write a stream. One file per demo.
package handlers

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"sselab/app/metrics"
	"sselab/app/sse"
)

// render writes a templ component with status, buffered so that a template
// error becomes a 500 instead of half a page.
func render(c echo.Context, status int, t templ.Component) error {
	buf := templ.GetBuffer()
	defer templ.ReleaseBuffer(buf)
	if err := t.Render(c.Request().Context(), buf); err != nil {
		return err
	}
	return c.HTMLBlob(status, buf.Bytes())
}

// badRequest is a 400 whose plain-text body names what was wrong.
func badRequest(format string, args ...any) error {
	return echo.NewHTTPError(http.StatusBadRequest, fmt.Sprintf(format, args...))
}

// stream is an open event stream that counts what it sends in /metrics.
type stream struct {
	*sse.Stream
	sent prometheus.Counter
}

// openStream sends the stream headers at once, before any event exists.
func openStream(c echo.Context, m *metrics.Metrics) (*stream, error) {
	s, err := sse.Open(c.Response())
	if err != nil {
		return nil, err
	}
	return &stream{Stream: s, sent: m.EventsSent.WithLabelValues(c.Path())}, nil
}

func (s *stream) send(ev sse.Event) error {
	if err := s.Send(ev); err != nil {
		return err
	}
	s.sent.Inc()
	return nil
}

// durationParam reads a query duration such as 250ms within [lo, hi].
func durationParam(c echo.Context, name string, def, lo, hi time.Duration) (time.Duration, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		return 0, badRequest("%s must be a duration from %v to %v, such as 250ms; got %q", name, lo, hi, v)
	}
	return d, nil
}

// intParam reads a query integer within [lo, hi].
func intParam(c echo.Context, name string, def, lo, hi int) (int, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, badRequest("%s must be an integer from %d to %d; got %q", name, lo, hi, v)
	}
	return n, nil
}

// lastEventID is the id a reconnecting client resumes from: the
// Last-Event-ID header that EventSource sends, or the lastEventId query
// parameter, so curl and devtools can try replay by hand.
func lastEventID(c echo.Context) string {
	if id := c.Request().Header.Get("Last-Event-ID"); id != "" {
		return id
	}
	return c.QueryParam("lastEventId")
}
