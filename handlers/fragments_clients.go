package handlers

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"sselab/app/sse"
	"sselab/views"
)

// FragmentClients is /fragments/clients: the visitor's browser runs each
// client the fragments pages use (EventSource, htmx 4's hx-sse, Datastar)
// against probe streams that answer as sselab's server does on a refusal,
// a restart, a 204, another status, another content type and its own
// stop, and the page shows what each did beside what the tests measured
// in the three engines. The probes log each request they see by key, and
// the page reads the log: what a client did is what reached the server.
type FragmentClients struct {
	keepalive time.Duration
	measured  views.ClientsMeasured

	mu   sync.Mutex
	logs map[string]*probeLog
}

// fragmentClientsJSON is what the tests measured, by client and answer:
// written and checked by TestFragmentClients (tests/fragments_test.go).
//
//go:embed fragments_clients.json
var fragmentClientsJSON []byte

// The probes' bounds: a key is 1..64 of [A-Za-z0-9-]; at most maxProbeKeys
// logs are held, each for probeLogLife, each of at most maxProbeArrivals.
const (
	maxProbeKeys     = 512
	maxProbeArrivals = 32
	probeLogLife     = 2 * time.Minute
	// ProbeRetry is the retry: every probe sends (in a RetryBlock), so that
	// a client that honours it comes back after about this long.
	ProbeRetry = 2 * time.Second
)

type probeLog struct {
	first    time.Time
	arrivals []int64 // ms after first
	open     int
}

// NewFragmentClients returns the handlers of the clients page and its probes.
func NewFragmentClients(keepalive time.Duration) *FragmentClients {
	return &FragmentClients{keepalive: keepalive, measured: clientsMeasured(), logs: map[string]*probeLog{}}
}

// clientsMeasured is the embedded table.
func clientsMeasured() views.ClientsMeasured {
	var m views.ClientsMeasured
	if err := json.Unmarshal(fragmentClientsJSON, &m); err != nil {
		panic("handlers/fragments_clients.json: " + err.Error()) // embedded at build time: a broken file is a build defect
	}
	return m
}

// Page serves the page; its script runs the probes.
func (h *FragmentClients) Page(c echo.Context) error {
	return render(c, http.StatusOK, views.FragmentClientsPage(h.measured))
}

// Probe answers one client's requests for one key: the first with an
// event, then rule 8's parting block (retry: ProbeRetry) and a clean end,
// so that the client reconnects; the second as ?with= says (with
// ?first=1, the first: for a client that a clean end stops); every later
// one as the first. with is refuse (rule 7), shutdown (rule 8 again), 204,
// 500, type (200 text/plain), stop (sselab's stop for the client that
// asks: an htmx request gets event: close, which the page names in
// hx-sse:close, any other a 204), or hidden (the stream stays open).
func (h *FragmentClients) Probe(c echo.Context) error {
	key, with := c.QueryParam("key"), c.QueryParam("with")
	if !validProbeKey(key) {
		return badRequest("key must be 1 to 64 of A-Z a-z 0-9 -")
	}
	switch with {
	case "refuse", "shutdown", "204", "500", "type", "stop", "hidden":
	default:
		return badRequest("with must be refuse, shutdown, 204, 500, type, stop or hidden")
	}
	first, err := flagParam(c, "first")
	if err != nil {
		return err
	}
	n, done, ok := h.arrive(key)
	if !ok {
		return sse.Refuse(c.Response(), "too many probes at once")
	}
	defer done()
	w := c.Response()
	if n == 2 || first && n == 1 {
		switch with {
		case "refuse":
			w.Header().Set("Retry-After", "2")
			s, err := sse.Open(w)
			if err != nil {
				return err
			}
			return s.Send(sse.RetryBlock("refused: the probe's refusal", ProbeRetry))
		case "204":
			return c.NoContent(http.StatusNoContent)
		case "500":
			return c.String(http.StatusInternalServerError, "the probe's 500\n")
		case "type":
			return c.String(http.StatusOK, "the probe's text/plain: not a stream\n")
		case "stop":
			if c.Request().Header.Get("HX-Request") == "" {
				return c.NoContent(http.StatusNoContent)
			}
			s, err := sse.Open(w)
			if err != nil {
				return err
			}
			return s.Send(sse.Event{Type: "close", Data: "the server means stop"})
		}
	}
	s, err := sse.Open(w)
	if err != nil {
		return err
	}
	if err := s.Send(sse.Event{Type: "opened", Data: fmt.Sprint(n), ID: fmt.Sprint(n)}); err != nil {
		return err
	}
	if with == "hidden" {
		return sse.Loop[struct{}](c.Request().Context(), s, h.keepalive, nil, nil)
	}
	return s.Send(sse.RetryBlock("the probe's parting: come back", ProbeRetry))
}

// Log is what the probes saw of a key, as JSON: each request's arrival,
// in ms after the first, and how many are open now.
func (h *FragmentClients) Log(c echo.Context) error {
	key := c.QueryParam("key")
	if !validProbeKey(key) {
		return badRequest("key must be 1 to 64 of A-Z a-z 0-9 -")
	}
	h.mu.Lock()
	l := h.logs[key]
	out := struct {
		Arrivals []int64 `json:"arrivals"`
		Open     int     `json:"open"`
	}{Arrivals: []int64{}}
	if l != nil {
		out.Arrivals, out.Open = append(out.Arrivals, l.arrivals...), l.open
	}
	h.mu.Unlock()
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusOK, out)
}

// arrive logs a request for key: its number (1 for the first), and done,
// to call when it ends. ok is false past the bounds.
func (h *FragmentClients) arrive(key string) (n int, done func(), ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	l := h.logs[key]
	if l == nil {
		for k, old := range h.logs {
			if now.Sub(old.first) > probeLogLife && old.open == 0 {
				delete(h.logs, k)
			}
		}
		if len(h.logs) >= maxProbeKeys {
			return 0, nil, false
		}
		l = &probeLog{first: now}
		h.logs[key] = l
	}
	if len(l.arrivals) >= maxProbeArrivals {
		return 0, nil, false
	}
	l.arrivals = append(l.arrivals, now.Sub(l.first).Milliseconds())
	l.open++
	return len(l.arrivals), func() {
		h.mu.Lock()
		l.open--
		h.mu.Unlock()
	}, true
}

func validProbeKey(k string) bool {
	if len(k) < 1 || len(k) > 64 {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}
