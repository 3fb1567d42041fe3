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
// the same entries that are registered, so it cannot drift from what is
// served.
type route struct {
	methods []string
	path    string
	handler echo.HandlerFunc
	stream  bool   // text/event-stream: no gzip, counted, capped, cut on shutdown
	changes bool   // changes state on GET too: cross-origin requests refused
	doc     string // for the route table
	curl    string // for the route table; {base} becomes the site's URL
	// doctor is what the doctor page offers to check on this route, each
	// with the lesson it shows: deleting a demo deletes its targets too.
	doctor []views.DoctorTarget
}

// demo is one demo of the site. This table feeds the routes, the nav, the
// home page's cards and its route table: a new demo is a handler file, a
// view, a script, and one entry here.
type demo struct {
	title  string // the card's title
	nav    string // the nav's label
	href   string // the demo's page
	seed   string // the write-up it reproduces
	lesson string
	routes []route
}

var (
	get     = []string{http.MethodGet}
	post    = []string{http.MethodPost}
	getPost = []string{http.MethodGet, http.MethodPost}
)

// demos is every demo, in the order the nav and the home page show them.
func demos(d Deps) []demo {
	// Each entry makes its own handlers, so that it stands alone: deleting
	// a demo is deleting its entry.
	return []demo{
		{title: "Time feed", nav: "Time feed", href: "/time/", seed: "CherryPy time feed",
			lesson: "A response that ends makes EventSource reconnect after the retry delay, so a short response per event is polling in disguise. A response that is not text/event-stream stops the retries for good.",
			routes: func() []route {
				tf := handlers.NewTimeFeed(d.Feed, d.Metrics, d.Config.Retry, d.Config.Keepalive)
				return []route{
					{methods: get, path: "/time/", handler: tf.Page, doc: "Time feed page (the CherryPy seed).", curl: "curl {base}/time/"},
					{methods: get, path: "/time/sendTime", handler: tf.Send, stream: true,
						doc:  "One time event per short response; ?mode=stream&interval=250ms for one long-lived stream.",
						curl: "curl -N '{base}/time/sendTime?mode=stream&interval=250ms'"},
					{methods: getPost, path: "/time/timeSwitch", handler: tf.ToggleFeed, changes: true, doc: "Toggle the feed (it starts off).", curl: "curl -X POST {base}/time/timeSwitch"},
					{methods: getPost, path: "/time/typeSwitch", handler: tf.ToggleType, changes: true, doc: "Toggle the content-type switch: sendTime answers text/plain.", curl: "curl -X POST {base}/time/typeSwitch"},
					{methods: get, path: "/time/status", handler: tf.Status, doc: "Both switches as JSON.", curl: "curl {base}/time/status"},
				}
			}()},
		{title: "Finite generator", nav: "Generator", href: "/eventsource/page", seed: "Pylons finite generator",
			lesson: "Ten events flushed one by one, then the response ends and the browser starts the generator again. Anything that buffers the body between handler and socket holds every event back until the end.",
			routes: func() []route {
				gen := handlers.NewGenerator(d.Metrics)
				return []route{
					{methods: get, path: "/eventsource/page", handler: gen.Page, doc: "Finite generator page (the Pylons seed).", curl: "curl {base}/eventsource/page"},
					{methods: get, path: "/eventsource/js", handler: gen.JS, doc: "The page's script.", curl: "curl {base}/eventsource/js"},
					{methods: get, path: "/eventsource/event_sender", handler: gen.Send, stream: true,
						doc:  "count events (default 10) interval apart (default 500ms), then the end; ?resume=1 for ids and 204; ?buffered=1 to see buffering.",
						curl: "curl -N '{base}/eventsource/event_sender?interval=200ms'",
						doctor: []views.DoctorTarget{
							{Name: "generator", Label: "The finite generator", Path: "/eventsource/event_sender",
								Expect: "Flush passes, judged from the generator's own 500 ms spacing; the stream ends after ten events, and ids warn: the generator sends none unless asked (?resume=1)."},
							{Name: "buffered", Label: "The generator behind buffering middleware (the Pylons lesson)", Path: "/eventsource/event_sender?buffered=1",
								Expect: "Headers and flush fail: a layer that collects the body holds the headers and all ten events until the end. This is what a buffering proxy or a compressor does to a stream."},
						}},
				}
			}()},
		{title: "Visits", nav: "Visits", href: "/visits/", seed: "Python Publisher library",
			lesson: "Channels, a publish that is a function of each subscriber, initial data and a subscriber list. Every event has an id in a bounded history, so a reconnect replays what it missed, and a slow subscriber is cut off instead of slowing the rest.",
			routes: func() []route {
				vis := handlers.NewVisits(d.Broker, d.Config.Keepalive)
				return []route{
					{methods: get, path: "/visits/", handler: vis.Page, doc: "Publishes a visit to channel visits, then serves the page (the Publisher seed).", curl: "curl {base}/visits/"},
					{methods: get, path: "/visits/subscribe", handler: vis.Subscribe, stream: true,
						doc:  "Long-lived stream of channel visits, with ids; Last-Event-ID or ?lastEventId= replays.",
						curl: "curl -N {base}/visits/subscribe"},
				}
			}()},
		{title: "Chat", nav: "Chat", href: "/chat/", seed: "Flask chat over Redis pub/sub",
			lesson: "Posting is a plain POST; receiving is one stream per tab. With -redis the channel lives in Redis Streams, so several sselab processes serve one chat and replay works across them.",
			routes: func() []route {
				chat := handlers.NewChat(d.Broker, d.Config.Keepalive, d.SessionKey)
				return []route{
					{methods: get, path: "/chat/", handler: chat.Page, doc: "Chat page: a name form, then the chat (the Flask/Redis seed).", curl: "curl {base}/chat/"},
					{methods: post, path: "/chat/login", handler: chat.Login, doc: "Form user (1..32 printable characters): sets the session cookie, 303 to /chat/.",
						curl: "curl -i -d user=ann {base}/chat/login"},
					{methods: post, path: "/chat/post", handler: chat.Post, doc: "Form message: publishes [HH:MM:SS] user: message to channel chat; 204.",
						curl: "curl -d message=hello {base}/chat/post"},
					{methods: get, path: "/chat/stream", handler: chat.Stream, stream: true,
						doc:  "Long-lived stream of channel chat: the latest 50 messages, then live; Last-Event-ID replays.",
						curl: "curl -N {base}/chat/stream"},
				}
			}()},
		{title: "Token streams", nav: "Tokens", href: "/tokens/", seed: "Tornado eventsource library",
			lesson: "Streams addressed by a token; other clients post ping, close and retry to them. Keepalive comments, ids, JSON events, and the command-line listener and request tools.",
			routes: func() []route {
				tok := handlers.NewTokens(d.Broker, d.Config.Keepalive, tokens.For(d.Config.JSON, d.Config.IDs))
				return []route{
					{methods: get, path: "/tokens/", handler: tok.Page, doc: "Token streams page (the Tornado eventsource seed).", curl: "curl {base}/tokens/"},
					{methods: get, path: "/tokens/:token/poll", handler: tok.Poll, stream: true,
						doc:  "Long-lived stream of one token (1..64 of A-Z a-z 0-9 : . _ -).",
						curl: "curl -N {base}/tokens/demo/poll",
						doctor: []views.DoctorTarget{{Name: "tokens", Label: "A token stream, with doctor's own pings",
							Path: "/tokens/{token}/poll", Publish: "/tokens/{token}/ping",
							Expect: "Nothing fails: doctor posts five pings and times each one's arrival. Ids and replay warn unless the server runs with -i (the Tornado seed's flag: token events carry ids); keepalive passes once a comment came within the run (-keepalive, 15 s by default)."}}},
					{methods: post, path: "/tokens/:token/:action", handler: tok.Act,
						doc:  "Post ping, close or retry (the body, or form field data) to every listener; answers how many were reached.",
						curl: "curl -d 42 {base}/tokens/demo/ping"},
				}
			}()},
		{title: "Fragments", nav: "Fragments", href: "/fragments/", seed: "the chat, as Echo + templ apps do it",
			lesson: "The server renders each message once with a templ component and htmx swaps it in: HTML over several data: lines of one event, render-then-send, replay by Last-Event-ID, no script of sselab's own.",
			routes: func() []route {
				fr := handlers.NewFragments(d.Broker, d.Config.Keepalive)
				return []route{
					{methods: get, path: "/fragments/", handler: fr.Page, doc: "The chat as server-rendered fragments, with htmx's SSE extension.", curl: "curl {base}/fragments/"},
					{methods: get, path: "/fragments/stream", handler: fr.Stream, stream: true,
						doc: "Channel chat as HTML fragments rendered by a templ component, with ids; Last-Event-ID replays.", curl: "curl -N {base}/fragments/stream"},
				}
			}()},
		{title: "Connections", nav: "Connections", href: "/connections/", seed: "the browser's connection limit",
			lesson: "Over HTTP/1.1 a browser holds at most six connections per site, and each stream takes one: the seventh waits, with no error. Over HTTP/2 (-tls) every stream shares one connection.",
			routes: func() []route {
				conn := handlers.NewConnections(d.Config.Keepalive)
				return []route{
					{methods: get, path: "/connections/", handler: conn.Page, doc: "Opens n streams (default 8, ?n=1..32) and shows which wait for a connection.", curl: "curl {base}/connections/"},
					{methods: get, path: "/connections/stream", handler: conn.Stream, stream: true,
						doc: "One of that page's streams: an opened event naming the protocol, then keepalives.", curl: "curl -N '{base}/connections/stream?i=0'"},
				}
			}()},
	}
}

// doctorDemo runs sselab doctor on the routes of the other demos that
// offer themselves to it (a route's doctor field); it comes last in the
// nav and on the home page.
func doctorDemo(d Deps, others []demo) demo {
	var targets []views.DoctorTarget
	for _, dm := range others {
		for _, r := range dm.routes {
			targets = append(targets, r.doctor...)
		}
	}
	doc := handlers.NewDoctor(d.Config.Keepalive, d.Cert, targets)
	return demo{title: "Doctor", nav: "Doctor", href: "/doctor/", seed: "sselab doctor, on the site's own routes",
		lesson: "What a proxy, a compressor or buffering middleware does to a stream, seen check by check: the server runs sselab doctor on one of its own routes and streams each verdict.",
		routes: []route{
			{methods: get, path: "/doctor/", handler: doc.Page, doc: "Doctor page: run sselab doctor on one of the site's routes.", curl: "curl {base}/doctor/"},
			{methods: get, path: "/doctor/run", handler: doc.Run, stream: true, changes: true,
				doc:  "?target=generator|buffered|tokens: a started event, a seen event per thing doctor sees as it happens, a check event (JSON) per check, a done event, then the end; at most 2 runs at once.",
				curl: "curl -N '{base}/doctor/run?target=buffered'"},
		}}
}

// siteMap is what the server registers and shows: every route, the 404
// page, and the nav every page carries.
type siteMap struct {
	routes   []route
	notFound echo.HandlerFunc
	nav      []views.NavItem
}

// site is every route: the home page, each demo's, and the operations'.
func site(d Deps) siteMap {
	var rs []route
	ds := demos(d)
	ds = append(ds, doctorDemo(d, ds))
	home := route{methods: get, path: "/", doc: "This page: the demos and every route.", curl: "curl {base}/"}
	rs = []route{home}
	var cards []views.Demo
	var nav []views.NavItem
	for _, dm := range ds {
		rs = append(rs, dm.routes...)
		cards = append(cards, views.Demo{Title: dm.title, Href: dm.href, Seed: dm.seed, Lesson: dm.lesson})
		nav = append(nav, views.NavItem{Label: dm.nav, Href: dm.href})
	}
	ops := d.Metrics.Handler()
	rs = append(rs,
		route{methods: get, path: "/healthz", handler: handlers.Health, doc: "200 ok while the server runs.", curl: "curl {base}/healthz"},
		route{methods: []string{http.MethodGet, http.MethodHead}, path: "/metrics", handler: echo.WrapHandler(ops),
			doc: "Prometheus metrics: open streams, events sent, published and delivered, requests.", curl: "curl {base}/metrics"},
		route{methods: get, path: "/assets/*", handler: echo.WrapHandler(http.StripPrefix("/assets/", http.FileServerFS(assets.FS))),
			doc: "Embedded CSS and scripts.", curl: "curl {base}/assets/sselab.js"},
	)
	s := handlers.NewSite(cards, routeRows(rs))
	rs[0].handler = s.Home
	return siteMap{routes: rs, notFound: s.NotFound, nav: nav}
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
