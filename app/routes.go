package app

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"sselab/app/tokens"
	"sselab/assets"
	"sselab/handlers"
	"sselab/views"
)

// route is one entry of the site. The home page's route table is made from
// this same list, so it cannot drift from what is served.
type route struct {
	methods []string
	path    string
	handler echo.HandlerFunc
	stream  bool   // text/event-stream: no gzip, counted, capped, cut on shutdown
	changes bool   // changes state on GET too: cross-origin requests refused
	doc     string // for the route table
	curl    string // for the route table; {base} becomes the site's URL
}

type handlerSet struct {
	site  *handlers.Site
	time  *handlers.TimeFeed
	gen   *handlers.Generator
	vis   *handlers.Visits
	chat  *handlers.Chat
	tok   *handlers.Tokens
	ops   http.Handler // /metrics
	table *[]route
}

var (
	get     = []string{http.MethodGet}
	post    = []string{http.MethodPost}
	getPost = []string{http.MethodGet, http.MethodPost}
)

func newHandlers(d Deps) *handlerSet {
	h := &handlerSet{
		time: handlers.NewTimeFeed(d.Feed, d.Metrics, d.Config.Retry, d.Config.Keepalive),
		gen:  handlers.NewGenerator(d.Metrics),
		vis:  handlers.NewVisits(d.Broker, d.Config.Keepalive),
		chat: handlers.NewChat(d.Broker, d.Config.Keepalive, d.SessionKey),
		tok:  handlers.NewTokens(d.Broker, d.Config.Keepalive, tokens.For(d.Config.JSON, d.Config.IDs)),
		ops:  d.Metrics.Handler(),
	}
	h.table = new([]route)
	h.site = handlers.NewSite(func() []views.RouteRow { return routeRows(*h.table) })
	return h
}

// routes is every route of the site, in the order the home page lists them.
func routes(h *handlerSet) []route {
	rs := []route{
		{methods: get, path: "/", handler: h.site.Home, doc: "This page: the demos and every route.", curl: "curl {base}/"},

		{methods: get, path: "/time/", handler: h.time.Page, doc: "Time feed page (the CherryPy seed).", curl: "curl {base}/time/"},
		{methods: get, path: "/time/sendTime", handler: h.time.Send, stream: true,
			doc:  "One time event per short response; ?mode=stream&interval=250ms for one long-lived stream.",
			curl: "curl -N {base}/time/sendTime?mode=stream&interval=250ms"},
		{methods: getPost, path: "/time/timeSwitch", handler: h.time.ToggleFeed, changes: true, doc: "Toggle the feed (it starts off).", curl: "curl -X POST {base}/time/timeSwitch"},
		{methods: getPost, path: "/time/typeSwitch", handler: h.time.ToggleType, changes: true, doc: "Toggle the content-type switch: sendTime answers text/plain.", curl: "curl -X POST {base}/time/typeSwitch"},
		{methods: get, path: "/time/status", handler: h.time.Status, doc: "Both switches as JSON.", curl: "curl {base}/time/status"},

		{methods: get, path: "/eventsource/page", handler: h.gen.Page, doc: "Finite generator page (the Pylons seed).", curl: "curl {base}/eventsource/page"},
		{methods: get, path: "/eventsource/js", handler: h.gen.JS, doc: "The page's script.", curl: "curl {base}/eventsource/js"},
		{methods: get, path: "/eventsource/event_sender", handler: h.gen.Send, stream: true,
			doc:  "count events (default 10) interval apart (default 500ms), then the end; ?resume=1 for ids and 204; ?buffered=1 to see buffering.",
			curl: "curl -N {base}/eventsource/event_sender?interval=200ms"},

		{methods: get, path: "/visits/", handler: h.vis.Page, doc: "Publishes a visit to channel visits, then serves the page (the Publisher seed).", curl: "curl {base}/visits/"},
		{methods: get, path: "/visits/subscribe", handler: h.vis.Subscribe, stream: true,
			doc:  "Long-lived stream of channel visits, with ids; Last-Event-ID or ?lastEventId= replays.",
			curl: "curl -N {base}/visits/subscribe"},

		{methods: get, path: "/chat/", handler: h.chat.Page, doc: "Chat page: a name form, then the chat (the Flask/Redis seed).", curl: "curl {base}/chat/"},
		{methods: post, path: "/chat/login", handler: h.chat.Login, doc: "Form user (1..32 printable characters): sets the session cookie, 303 to /chat/.",
			curl: "curl -i -d user=ann {base}/chat/login"},
		{methods: post, path: "/chat/post", handler: h.chat.Post, doc: "Form message: publishes [HH:MM:SS] user: message to channel chat; 204.",
			curl: "curl -d message=hello {base}/chat/post"},
		{methods: get, path: "/chat/stream", handler: h.chat.Stream, stream: true,
			doc:  "Long-lived stream of channel chat: the latest 50 messages, then live; Last-Event-ID replays.",
			curl: "curl -N {base}/chat/stream"},

		{methods: get, path: "/tokens/", handler: h.tok.Page, doc: "Token streams page (the Tornado eventsource seed).", curl: "curl {base}/tokens/"},
		{methods: get, path: "/tokens/:token/poll", handler: h.tok.Poll, stream: true,
			doc:  "Long-lived stream of one token (1..64 of A-Z a-z 0-9 : . _ -).",
			curl: "curl -N {base}/tokens/demo/poll"},
		{methods: post, path: "/tokens/:token/:action", handler: h.tok.Act,
			doc:  "Post ping, close or retry (body, or form field data) to every listener; answers how many were reached.",
			curl: "curl -d 42 {base}/tokens/demo/ping"},

		{methods: get, path: "/healthz", handler: h.site.Health, doc: "200 ok while the server runs.", curl: "curl {base}/healthz"},
		{methods: get, path: "/metrics", handler: echo.WrapHandler(h.ops), doc: "Prometheus metrics: open streams, events sent, requests.", curl: "curl {base}/metrics"},
		{methods: get, path: "/assets/*", handler: echo.WrapHandler(http.StripPrefix("/assets/", http.FileServerFS(assets.FS))),
			doc: "Embedded CSS and scripts.", curl: "curl {base}/assets/sselab.js"},
	}
	*h.table = rs
	return rs
}

func routeRows(rs []route) []views.RouteRow {
	var rows []views.RouteRow
	for _, r := range rs {
		method := r.methods[0]
		if len(r.methods) > 1 {
			method = r.methods[0] + " | " + r.methods[1]
		}
		rows = append(rows, views.RouteRow{Method: method, Path: r.path, Doc: r.doc, Curl: r.curl})
	}
	return rows
}
