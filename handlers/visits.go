package handlers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"sselab/app/hub"
	"sselab/app/sse"
	"sselab/views"
)

// VisitsChannel is the visits demo's channel; ViewersChannel carries the
// viewer count. The count is state, not an event: it is a state channel
// (hub.Options.State) holding only the latest value, sent without an id,
// so it never pushes visits out of the history, never fills a queue, and
// never breaks the order of a stream's ids.
const (
	VisitsChannel  = "visits"
	ViewersChannel = "visits:viewers"
)

// VisitFunc is the per-subscriber function of the visits demo, registered
// with the broker under this name: the viewer whose visit it is reads
// "(you)" after the message. Its argument is "<viewer id> <message>".
const VisitFunc = "visit"

// Visit makes a subscriber's own view of a visit.
func Visit(sub hub.Props, arg string) sse.Event {
	viewer, text, _ := strings.Cut(arg, " ")
	if viewer != "" && sub["viewer"] == viewer {
		text += " (you)"
	}
	return sse.Event{Data: text} // untyped: the seed's page listened with onmessage
}

const viewerCookie = "sselab_viewer"

// visitsBroker is what the visits demo needs of the broker.
type visitsBroker interface {
	publisher
	subscriber
	Count(ctx context.Context, channels ...string) (int, error)
}

// CountEvery is how often at most the viewer count is announced: every
// join and leave within it shares one announcement, so a burst of
// thousands of viewers costs a few publishes, not one per viewer to every
// viewer.
const CountEvery = 250 * time.Millisecond

// Visits serves the Publisher demo under /visits/: every page load tells
// every viewer about the visit.
type Visits struct {
	b         visitsBroker
	keepalive time.Duration

	mu      sync.Mutex
	pending bool // an announcement of the count is due
}

// NewVisits returns the visits handlers.
func NewVisits(b visitsBroker, keepalive time.Duration) *Visits {
	return &Visits{b: b, keepalive: keepalive}
}

// Page publishes the visit, then serves the page.
func (h *Visits) Page(c echo.Context) error {
	viewer := h.viewer(c)
	ctx := c.Request().Context()
	text := fmt.Sprintf("New visit from %s at %s!", c.RealIP(), time.Now().Format("15:04:05"))
	if err := h.b.Publish(ctx, []string{VisitsChannel}, hub.Message{Func: VisitFunc, Data: viewer + " " + text}); err != nil {
		return unavailable(c, err)
	}
	n, _ := h.b.Count(ctx, VisitsChannel) // on error, this instance's own
	return render(c, http.StatusOK, views.VisitsPage(views.VisitsVM{Viewers: n}))
}

// Subscribe streams the visits: a welcome (the seed's initial data), the
// latest visits with the viewer's own marked and the latest count, then
// every new visit and every change of the viewer count.
func (h *Visits) Subscribe(c echo.Context) error {
	viewer := h.viewer(c)
	r := hub.Request{
		Channels: []string{VisitsChannel, ViewersChannel},
		Props:    hub.Props{"viewer": viewer},
		Recent:   10,
		Initial:  []sse.Event{{Type: "welcome", Data: "Welcome, viewer " + viewer + "."}},
	}
	// Everyone hears the count change when this viewer joins and leaves.
	defer h.announce()
	return serveChannel(c, h.b, r, h.keepalive, h.announce)
}

// announce schedules one announcement of the viewer count, unless one is
// due already.
func (h *Visits) announce() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.pending {
		return
	}
	h.pending = true
	time.AfterFunc(CountEvery, h.publishCount)
}

// publishCount publishes the number of open visit streams, on every
// instance.
func (h *Visits) publishCount() {
	h.mu.Lock()
	h.pending = false
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n, _ := h.b.Count(ctx, VisitsChannel) // on error, this instance's own
	h.b.Publish(ctx, []string{ViewersChannel}, hub.Message{Type: "viewers", Data: strconv.Itoa(n), NoID: true})
}

// viewer returns the viewer id from its cookie, setting one if absent. It
// only tells viewers apart, so it need not be signed.
func (h *Visits) viewer(c echo.Context) string {
	if ck, err := c.Cookie(cookieName(c, viewerCookie)); err == nil && validViewer(ck.Value) {
		return ck.Value
	}
	b := make([]byte, 8)
	rand.Read(b)
	id := hex.EncodeToString(b)
	c.SetCookie(&http.Cookie{Name: cookieName(c, viewerCookie), Value: id, Path: "/visits/", HttpOnly: true, Secure: c.IsTLS(), SameSite: http.SameSiteLaxMode, MaxAge: 365 * 24 * 3600})
	return id
}

func validViewer(s string) bool {
	if len(s) != 16 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
