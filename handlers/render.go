// Package handlers holds the thin Echo adapters of every demo: they parse
// the request, call the core packages under app/, and render a view or
// write a stream. One file per demo.
package handlers

import (
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

// sendCounted sends ev and counts it in sselab_events_sent_total.
func (s *stream) sendCounted(ev sse.Event) error {
	if err := s.Send(ev); err != nil {
		return err
	}
	s.sent.Inc()
	return nil
}
