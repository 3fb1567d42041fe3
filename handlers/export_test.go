package handlers

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"sselab/app/hub"
)

// Fixture is a channel stream and a publish that belong to no demo: the
// tests of what is app-wide (limits, refusals, the body bound, metrics,
// CSRF) run on it, so that deleting any demo leaves them standing. It uses
// the same code paths as the demos' channel routes.
type Fixture struct {
	B interface {
		subscriber
		publisher
	}
	Keepalive time.Duration
}

// Stream is GET /fixture/:ch/stream: channel fixture:<ch>, with replay.
func (f Fixture) Stream(c echo.Context) error {
	return serveChannel(c, f.B, hub.Request{Channels: []string{"fixture:" + c.Param("ch")}}, f.Keepalive, nil)
}

// Post is POST /fixture/:ch/post: the body, as one event of type ping.
func (f Fixture) Post(c echo.Context) error {
	data, err := readBody(c)
	if err != nil {
		return err
	}
	if err := f.B.Publish(c.Request().Context(), []string{"fixture:" + c.Param("ch")}, hub.Message{Type: "ping", Data: data}); err != nil {
		return unavailable(c, err)
	}
	return c.String(http.StatusOK, "published\n")
}
