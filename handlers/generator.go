package handlers

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"sselab/app/metrics"
	"sselab/app/sse"
	"sselab/assets"
	"sselab/views"
)

// Generator serves the Pylons finite-generator demo under /eventsource/:
// count events, interval apart, then the response ends.
type Generator struct {
	m *metrics.Metrics
}

// NewGenerator returns the generator handlers.
func NewGenerator(m *metrics.Metrics) *Generator { return &Generator{m: m} }

// Page serves the page that loads /eventsource/js.
func (h *Generator) Page(c echo.Context) error {
	return render(c, http.StatusOK, views.GeneratorPage())
}

// JS serves the page's script, as the seed served its own.
func (h *Generator) JS(c echo.Context) error {
	b, err := assets.FS.ReadFile("generator.js")
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, "text/javascript; charset=utf-8", b)
}

// Send is the generator. With resume=1 each event carries its index as id,
// a reconnect continues after Last-Event-ID, and when nothing is left the
// answer is 204, which stops the browser for good. With buffered=1 the
// response goes through a writer that ignores Flush, as the seed's
// buffering middleware did, so every event arrives at once at the end.
func (h *Generator) Send(c echo.Context) error {
	count, err := intParam(c, "count", 10, 1, 1000)
	if err != nil {
		return err
	}
	interval, err := durationParam(c, "interval", 500*time.Millisecond, 0, 10*time.Second)
	if err != nil {
		return err
	}
	resume, err := flagParam(c, "resume")
	if err != nil {
		return err
	}
	buffered, err := flagParam(c, "buffered")
	if err != nil {
		return err
	}
	id, err := lastEventID(c)
	if err != nil {
		return err
	}
	start := 0
	if resume && id != "" {
		k, err := strconv.ParseUint(id, 10, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return badRequest("Last-Event-ID must be the index of an event, a non-negative integer; got %s", quote(id))
		}
		// An id at or past the last event, whatever its size (one too
		// large for 64 bits included), leaves nothing to send.
		if err != nil || k >= uint64(count-1) {
			return c.NoContent(http.StatusNoContent)
		}
		start = int(k) + 1
	}
	if buffered {
		hw := &holdingWriter{ResponseWriter: c.Response().Writer}
		c.Response().Writer = hw
		defer hw.release()
	}

	s, err := openStream(c, h.m)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	wait := time.NewTimer(0)
	defer wait.Stop()
	for x := start; x < count; x++ {
		if x > start {
			wait.Reset(interval)
			select {
			case <-ctx.Done():
				sse.Part(ctx, s.Stream)
				return nil
			case <-wait.C:
			}
		}
		now := time.Now() // Unix seconds with a six-digit fraction, as the seed sends it
		ev := sse.Event{Data: fmt.Sprintf("%d %d.%06d", x, now.Unix(), now.Nanosecond()/1000)}
		if resume {
			ev.ID = strconv.Itoa(x)
		}
		if err := s.sendCounted(ev); err != nil {
			return err
		}
	}
	return nil
}

// holdingWriter is the seed's lesson in code: a layer that collects the
// body and ignores Flush holds every event back until the handler returns.
// Compressors and WSGI middleware did exactly this to the Pylons demo.
type holdingWriter struct {
	http.ResponseWriter
	held bytes.Buffer
}

func (w *holdingWriter) Write(b []byte) (int, error) { return w.held.Write(b) }
func (w *holdingWriter) Flush()                      {}

// release sends what was held, and flushes so the response stays chunked
// (net/http would otherwise add a Content-Length to a small finished body).
func (w *holdingWriter) release() {
	w.ResponseWriter.Write(w.held.Bytes())
	http.NewResponseController(w.ResponseWriter).Flush()
}
