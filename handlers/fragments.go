package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"
	"github.com/starfederation/datastar-go/datastar"

	"sselab/app/hub"
	"sselab/app/sse"
	"sselab/views"
)

// The renderings of a chat message besides its text (hub.Message.Renderings):
// an unnamed event of HTML for htmx 4, whose hx-sse swaps unnamed events in
// and dispatches named ones as DOM events; and Datastar's own
// datastar-patch-elements event, made by Datastar's Go SDK.
const (
	FragmentRendering = "html"
	DatastarRendering = "datastar"
)

// Fragments serves the chat the hypermedia way under /fragments/: the same
// channel as /chat/, each message a server-rendered templ fragment, put
// into the page by htmx 4 (/fragments/) or by Datastar
// (/fragments/datastar/).
type Fragments struct {
	b         subscriber
	keepalive time.Duration
	measured  views.ClientsMeasured // what each client does, for the lessons
}

// NewFragments returns the fragments handlers.
func NewFragments(b subscriber, keepalive time.Duration) *Fragments {
	return &Fragments{b: b, keepalive: keepalive, measured: clientsMeasured()}
}

// Page serves the htmx page; hx-sse connects to Stream.
func (h *Fragments) Page(c echo.Context) error {
	return render(c, http.StatusOK, views.FragmentsPage(h.measured))
}

// Stream is channel chat as HTML fragments for htmx: the latest 50, then
// live, with ids, replay and gap as every channel stream.
func (h *Fragments) Stream(c echo.Context) error {
	r := hub.Request{Channels: []string{ChatChannel}, Recent: 50, Rendering: FragmentRendering}
	return serveChannel(c, h.b, r, h.keepalive, nil)
}

// DatastarPage serves the Datastar page; its @get connects to DatastarStream.
func (h *Fragments) DatastarPage(c echo.Context) error {
	return render(c, http.StatusOK, views.DatastarPage(h.measured))
}

// DatastarStream is channel chat as Datastar's events: each message a
// datastar-patch-elements event that appends its list item to #messages.
func (h *Fragments) DatastarStream(c echo.Context) error {
	r := hub.Request{Channels: []string{ChatChannel}, Recent: 50, Rendering: DatastarRendering}
	return serveChannel(c, h.b, r, h.keepalive, nil)
}

// renderings renders a chat message once, when it is posted, in each form
// the fragments streams send.
func renderings(ctx context.Context, m views.ChatMessage) (map[string]hub.Rendering, error) {
	item := inert(views.ChatItem(m))
	html, err := sse.Render(ctx, item, sse.Event{})
	if err != nil {
		return nil, err
	}
	ds, err := datastarEvent(ctx, item, datastar.WithSelectorID("messages"), datastar.WithModeAppend())
	if err != nil {
		return nil, err
	}
	return map[string]hub.Rendering{
		FragmentRendering: {Data: html.Data},
		DatastarRendering: {Type: ds.Type, Data: ds.Data},
	}, nil
}

// inert renders c with CR and NUL written as character references. templ
// escapes markup but leaves both as they are, and Datastar's SDK splits
// HTML into data: lines on LF only: a lone CR in a user's text would end
// the line in every SSE parser, and what followed it, "id: 9" or
// "event: x", would be a field. As a reference a CR is the same character
// in the page; NUL becomes U+FFFD, as the HTML parser makes it anyway.
func inert(c templ.Component) templ.Component {
	return templ.ComponentFunc(func(ctx context.Context, w io.Writer) error {
		var b strings.Builder
		if err := c.Render(ctx, &b); err != nil {
			return err
		}
		_, err := io.WriteString(w, inertReplacer.Replace(b.String()))
		return err
	})
}

var inertReplacer = strings.NewReplacer("\r", "&#13;", "\x00", "&#xFFFD;")

// datastarEvent is the event Datastar's SDK writes for a templ component,
// caught in memory and read back with sselab's parser, so that the hub
// stores it once and sends it, with ids and replay, like any other event.
// (The SDK's own stream writer would send no first bytes, set
// Connection: keep-alive, and panic on a failed flush.)
func datastarEvent(ctx context.Context, c templ.Component, opts ...datastar.PatchElementOption) (sse.Event, error) {
	var w recorder
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	if err != nil {
		return sse.Event{}, err
	}
	if err := datastar.NewSSE(&w, r).PatchElementTempl(c, opts...); err != nil {
		return sse.Event{}, err
	}
	p := sse.NewParser(&w.body)
	ev, err := p.Next()
	if err != nil {
		return sse.Event{}, fmt.Errorf("datastar's event: %w", err)
	}
	if _, err := p.Next(); !errors.Is(err, io.EOF) {
		return sse.Event{}, errors.New("datastar's SDK wrote more than one event")
	}
	return ev, nil
}

// recorder is the http.ResponseWriter the SDK writes to: headers dropped,
// body kept.
type recorder struct {
	h    http.Header
	body bytes.Buffer
}

func (w *recorder) Header() http.Header {
	if w.h == nil {
		w.h = http.Header{}
	}
	return w.h
}
func (w *recorder) Write(p []byte) (int, error) { return w.body.Write(p) }
func (w *recorder) WriteHeader(int)             {}
func (w *recorder) Flush()                      {}
