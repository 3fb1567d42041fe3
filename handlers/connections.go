package handlers

import (
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"sselab/app/sse"
	"sselab/views"
)

// Connections makes the browser's connection limit visible: a page that
// opens as many streams as asked and shows which are open and which wait.
type Connections struct {
	keepalive time.Duration
}

// NewConnections returns the connections page's handlers.
func NewConnections(keepalive time.Duration) *Connections {
	return &Connections{keepalive: keepalive}
}

// Page serves the page; ?n= is how many streams it opens (1..32, 8).
func (h *Connections) Page(c echo.Context) error {
	n, err := intParam(c, "n", 8, 1, 32)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, views.ConnectionsPage(views.ConnectionsVM{Streams: n, Proto: c.Request().Proto}))
}

// Stream is one of the page's streams: an event that says it is open and
// over which protocol, then only keepalives, until the page closes it.
func (h *Connections) Stream(c echo.Context) error {
	i, err := intParam(c, "i", 0, 0, 31)
	if err != nil {
		return err
	}
	s, err := sse.Open(c.Response())
	if err != nil {
		return err
	}
	if err := s.Send(sse.Event{Type: "opened", Data: fmt.Sprintf("stream %d open over %s", i+1, c.Request().Proto)}); err != nil {
		return err
	}
	return sse.Loop(c.Request().Context(), s, h.keepalive, (<-chan struct{})(nil), func() (bool, error) { return false, nil })
}
