package handlers

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"sselab/app/hub"
	"sselab/views"
)

// FragmentRendering is the rendering of chat messages as HTML (hub.Message.Renderings).
const FragmentRendering = "html"

// Fragments serves the chat the hypermedia way under /fragments/: the same
// channel as /chat/, each message a server-rendered templ fragment.
type Fragments struct {
	b         subscriber
	keepalive time.Duration
}

// NewFragments returns the fragments handlers.
func NewFragments(b subscriber, keepalive time.Duration) *Fragments {
	return &Fragments{b: b, keepalive: keepalive}
}

// Page serves the page; htmx connects to Stream.
func (h *Fragments) Page(c echo.Context) error {
	return render(c, http.StatusOK, views.FragmentsPage())
}

// Stream is channel chat as HTML fragments: the latest 50, then live, with
// ids, replay and gap as every channel stream.
func (h *Fragments) Stream(c echo.Context) error {
	r := hub.Request{Channels: []string{ChatChannel}, Recent: 50, Rendering: FragmentRendering}
	return serveChannel(c, h.b, r, h.keepalive, nil)
}
