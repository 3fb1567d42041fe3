package handlers

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"sselab/app/hub"
	"sselab/app/sse"
	"sselab/views"
)

// VisitsChannel is the visits demo's channel; ViewersChannel carries the
// viewer count, apart so counts never push visits out of the history.
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
	return sse.Event{Type: "visit", Data: text}
}

const viewerCookie = "sselab_viewer"

// visitsBroker is what the visits demo needs of the broker.
type visitsBroker interface {
	publisher
	subscriber
	Subscribers(ctx context.Context, channels ...string) ([]hub.Subscriber, error)
}

// Visits serves the Publisher demo under /visits/: every page load tells
// every viewer about the visit.
type Visits struct {
	b         visitsBroker
	keepalive time.Duration
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
	if err := h.b.Publish(ctx, []string{VisitsChannel}, hub.Message{Type: "visit", Func: VisitFunc, Data: viewer + " " + text}); err != nil {
		return unavailable(err)
	}
	n := h.count(ctx)
	return render(c, http.StatusOK, views.VisitsPage(views.VisitsVM{Viewers: n}))
}

// Subscribe streams the visits: a welcome (the seed's initial data), the
// latest visits with the viewer's own marked, then every new visit and
// every change of the viewer count.
func (h *Visits) Subscribe(c echo.Context) error {
	ctx := c.Request().Context()
	viewer := h.viewer(c)
	r := hub.Request{
		Channels: []string{VisitsChannel, ViewersChannel},
		Props:    hub.Props{"viewer": viewer},
		Recent:   10,
		Initial:  []sse.Event{{Type: "welcome", Data: "Welcome, viewer " + viewer + "."}},
	}
	// Everyone hears the count change when this viewer joins and leaves.
	defer h.publishCount(context.WithoutCancel(ctx))
	return serveChannel(c, h.b, r, h.keepalive, func() { h.publishCount(ctx) })
}

func (h *Visits) publishCount(ctx context.Context) {
	h.b.Publish(ctx, []string{ViewersChannel}, hub.Message{Type: "viewers", Data: strconv.Itoa(h.count(ctx))})
}

// count is the number of distinct viewers subscribed: one page holds two
// subscriptions (its EventSource and its wire panel), and a viewer may
// have several tabs open.
func (h *Visits) count(ctx context.Context) int {
	subs, _ := h.b.Subscribers(ctx, VisitsChannel) // on error, this instance's own
	viewers := map[string]bool{}
	for _, s := range subs {
		viewers[s.Props["viewer"]] = true
	}
	return len(viewers)
}

// viewer returns the viewer id from its cookie, setting one if absent. It
// only tells viewers apart, so it need not be signed.
func (h *Visits) viewer(c echo.Context) string {
	if ck, err := c.Cookie(viewerCookie); err == nil && validViewer(ck.Value) {
		return ck.Value
	}
	b := make([]byte, 8)
	rand.Read(b)
	id := hex.EncodeToString(b)
	c.SetCookie(&http.Cookie{Name: viewerCookie, Value: id, Path: "/visits/", HttpOnly: true, Secure: c.IsTLS(), SameSite: http.SameSiteLaxMode, MaxAge: 365 * 24 * 3600})
	return id
}

func validViewer(s string) bool {
	if len(s) != 16 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
