package handlers

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"sselab/views"
)

// Site serves the home page, the 404 page and the health check.
type Site struct {
	routes func() []views.RouteRow
}

// NewSite takes the route table to show; it is a function because the
// table is built from the same list that registers this handler.
func NewSite(routes func() []views.RouteRow) *Site { return &Site{routes: routes} }

// demos is the home page's list: each demo, the seed it reproduces, and
// its lesson.
var demos = []views.Demo{
	{Title: "Time feed", Href: "/time/", Seed: "CherryPy time feed",
		Lesson: "A response that ends makes EventSource reconnect after the retry delay, so a short response per event is polling in disguise. A response that is not text/event-stream stops the retries for good."},
	{Title: "Finite generator", Href: "/eventsource/page", Seed: "Pylons finite generator",
		Lesson: "Ten events flushed one by one, then the response ends and the browser starts the generator again. Anything that buffers the body between handler and socket holds every event back until the end."},
	{Title: "Visits", Href: "/visits/", Seed: "Python Publisher library",
		Lesson: "Channels, a publish that is a function of each subscriber, initial data and a subscriber list. Every event has an id in a bounded history, so a reconnect replays what it missed, and a slow subscriber is cut off instead of slowing the rest."},
	{Title: "Chat", Href: "/chat/", Seed: "Flask chat over Redis pub/sub",
		Lesson: "Posting is a plain POST; receiving is one stream per tab. With -redis the channel lives in Redis Streams, so several sselab processes serve one chat and replay works across them."},
	{Title: "Token streams", Href: "/tokens/", Seed: "Tornado eventsource library",
		Lesson: "Streams addressed by a token; other clients post ping, close and retry to them. Keepalive comments, ids, JSON events, and the command-line listener and request tools."},
}

// Home lists the demos and every route with a curl command.
func (h *Site) Home(c echo.Context) error {
	base := c.Scheme() + "://" + c.Request().Host
	rows := h.routes()
	for i := range rows {
		rows[i].Curl = strings.ReplaceAll(rows[i].Curl, "{base}", base)
	}
	return render(c, http.StatusOK, views.HomePage(views.HomeVM{Demos: demos, Routes: rows}))
}

// NotFound renders the 404 page.
func (h *Site) NotFound(c echo.Context) error {
	return render(c, http.StatusNotFound, views.NotFoundPage(c.Request().URL.Path))
}

// Health answers 200 ok while the server runs.
func (h *Site) Health(c echo.Context) error {
	return c.String(http.StatusOK, "ok\n")
}
