package handlers

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"sselab/app/sse"
	"sselab/views"
)

// Engines is the /engines/ page: the visitor's own browser probes what it
// does where the SSE specification leaves room or an engine deviates from
// it, and the page shows the answers beside what the tests measured in
// Chromium, Firefox and WebKit.
//
// The probes are the one place where sselab breaks its own wire rules on
// purpose: a stream that says nothing at first (rule 1), a charset other
// than UTF-8, a 204 or a 500 to a stream. Each answers one question and
// ends, and none of them takes any input but the probe's own settings.
type Engines struct {
	keepalive time.Duration
	measured  views.EnginesMeasured
}

// enginesJSON is what the tests measured in each engine, by probe: written
// and checked by TestEnginesPage in tests/engines_page_test.go, so that the
// table the page shows cannot drift from what the engines do.
//
//go:embed engines.json
var enginesJSON []byte

// NewEngines returns the engines page's handlers.
func NewEngines(keepalive time.Duration) *Engines {
	h := &Engines{keepalive: keepalive}
	if err := json.Unmarshal(enginesJSON, &h.measured); err != nil {
		panic("handlers/engines.json: " + err.Error()) // embedded at build time: a broken file is a build defect
	}
	return h
}

// Page serves the page: the probes run in the visitor's browser.
func (h *Engines) Page(c echo.Context) error {
	return render(c, http.StatusOK, views.EnginesPage(views.EnginesVM{Measured: h.measured, Proto: c.Request().Proto}))
}

// Away is the page the back/forward cache probe leaves to; its script
// goes back at once.
func (h *Engines) Away(c echo.Context) error {
	return render(c, http.StatusOK, views.EnginesAway())
}

// QuietFor is how long the quiet probe sends nothing after its headers.
const QuietFor = 1500 * time.Millisecond

// Quiet sends its headers, then nothing for QuietFor, then one event, and
// ends: how long EventSource takes to fire open on it is the question.
func (h *Engines) Quiet(c echo.Context) error {
	sse.SetHeaders(c.Response().Header())
	c.Response().WriteHeader(http.StatusOK)
	c.Response().Flush()
	select {
	case <-time.After(QuietFor):
	case <-c.Request().Context().Done():
		return nil
	}
	return writeRaw(c, "retry: 60000\ndata: the first bytes, after a quiet start\n\n")
}

// Ends sends what the request came with (its Last-Event-ID, or nothing),
// then, as asked, a retry field (?retry=MS, 0 to 10000) and an id-only
// block (?idonly=1), and ends: the next request shows when the browser
// reconnected and which id it sent.
func (h *Engines) Ends(c echo.Context) error {
	retry, err := intParam(c, "retry", 0, 0, 10000)
	if err != nil {
		return err
	}
	idOnly := c.QueryParam("idonly") == "1"
	sse.SetHeaders(c.Response().Header())
	c.Response().WriteHeader(http.StatusOK)
	seen, _ := json.Marshal(c.Request().Header.Get("Last-Event-ID"))
	frames := "event: seen\ndata: " + string(seen) + "\n\n"
	if c.QueryParam("retry") != "" {
		frames += fmt.Sprintf("retry: %d\n\n", retry)
	}
	if idOnly {
		frames += "id: 7\n\n"
	}
	return writeRaw(c, frames)
}

// Bytes sends one event whose data is a probe's odd input, and keeps the
// stream open (the page closes it): ?what=nul is "a", NUL, "b"; ?what=charset
// is "café" in UTF-8 under a Content-Type that says ISO-8859-1, which the
// specification says to ignore (event streams are always UTF-8).
func (h *Engines) Bytes(c echo.Context) error {
	var frames string
	switch c.QueryParam("what") {
	case "nul":
		sse.SetHeaders(c.Response().Header())
		frames = "data: a\x00b\n\n"
	case "charset":
		sse.SetHeaders(c.Response().Header())
		c.Response().Header().Set("Content-Type", "text/event-stream; charset=iso-8859-1")
		frames = "data: caf\xc3\xa9\n\n"
	default:
		return badRequest("what must be nul or charset; got %s", quote(c.QueryParam("what")))
	}
	c.Response().WriteHeader(http.StatusOK)
	return writeRaw(c, "retry: 60000\n"+frames)
}

// Answer is a stream request answered with something that is not a stream:
// ?with=204 (No Content), 500 (an error status) or type (200 text/plain).
// Whether EventSource tries again is the question.
func (h *Engines) Answer(c echo.Context) error {
	switch c.QueryParam("with") {
	case "204":
		return c.NoContent(http.StatusNoContent)
	case "500":
		return c.String(http.StatusInternalServerError, "an error status, on purpose: the /engines/ probe\n")
	case "type":
		return c.String(http.StatusOK, "a 200 that is not text/event-stream, on purpose: the /engines/ probe\n")
	}
	return badRequest("with must be 204, 500 or type; got %s", quote(c.QueryParam("with")))
}

// Held is a stream that stays open (its opening comment at once, then
// keepalives) until the page closes it: the probes of the connection limit
// and the back/forward cache hold these.
func (h *Engines) Held(c echo.Context) error {
	s, err := sse.Open(c.Response())
	if err != nil {
		return err
	}
	if err := s.Send(sse.Event{Type: "held", Data: c.Request().Proto}); err != nil {
		return err
	}
	return sse.Loop(c.Request().Context(), s, h.keepalive, (<-chan struct{})(nil), func() (bool, error) { return false, nil })
}

// writeRaw writes a probe's bytes exactly as given, and flushes.
func writeRaw(c echo.Context, frames string) error {
	if _, err := c.Response().Write([]byte(frames)); err != nil {
		return err
	}
	c.Response().Flush()
	return nil
}
