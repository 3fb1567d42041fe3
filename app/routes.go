package app

import (
	"context"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"sselab/app/cli"
	"sselab/app/doctor"
	"sselab/app/hub"
	"sselab/app/inbox"
	"sselab/app/timefeed"
	"sselab/app/tokens"
	"sselab/assets"
	"sselab/handlers"
	"sselab/views"
)

// Route is one entry of the site. The home page's route table is made from
// the same entries that are registered, so it cannot drift from what is
// served.
type Route struct {
	Methods []string
	Path    string
	Handler echo.HandlerFunc
	Stream  bool   // text/event-stream: no gzip, counted, capped, cut on shutdown
	Changes bool   // changes state on GET too: cross-origin requests refused
	Doc     string // for the route table
	Curl    string // for the route table; {base} becomes the site's URL
}

// Command is a subcommand of the sselab binary that a demo brings.
type Command struct {
	Name, Usage string
	Run         func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// Demo is one unit of the site: its card and nav entry, its routes, what
// it registers with the hub, and the commands it adds. Nothing outside its
// entry in Demos and its own files names it, so deleting those removes it.
type Demo struct {
	Title  string // the card's title
	Nav    string // the nav's label
	Href   string // the demo's page
	Seed   string // the write-up it reproduces
	Lesson string
	// Funcs are the per-subscriber functions its publishes name, and
	// State the channels that carry a current value rather than events
	// (see hub.Options); the broker is made with every demo's.
	Funcs map[string]hub.Func
	State []string
	// Routes makes its handlers; site, the routes of every demo served,
	// is there for a demo that works on the others' (the doctor page).
	Routes   func(d Deps, site []Route) []Route
	Commands []Command
}

var (
	get     = []string{http.MethodGet}
	post    = []string{http.MethodPost}
	getPost = []string{http.MethodGet, http.MethodPost}
)

// Demos is every demo, in the order the nav and the home page show them.
// To remove one, delete its entry and its files (the README lists them).
// The chat and its server-rendered fragments are one demo (one channel,
// each message published once with every rendering). The doctor is a tool:
// its page checks those of its targets whose routes are served, and its
// command any endpoint.
func Demos() []Demo {
	return []Demo{
		{Title: "Time feed", Nav: "Time feed", Href: "/time/", Seed: "CherryPy time feed",
			Lesson: "A response that ends makes EventSource reconnect after the retry delay, so a short response per event is polling in disguise. A response that is not text/event-stream stops the retries for good.",
			Routes: func(d Deps, _ []Route) []Route {
				tf := handlers.NewTimeFeed(new(timefeed.Feed), d.Metrics, d.Config.Retry, d.Config.Keepalive)
				return []Route{
					{Methods: get, Path: "/time/", Handler: tf.Page, Doc: "Time feed page (the CherryPy seed).", Curl: "curl {base}/time/"},
					{Methods: get, Path: "/time/sendTime", Handler: tf.Send, Stream: true,
						Doc:  "One time event per short response; ?mode=stream&interval=250ms for one long-lived stream.",
						Curl: "curl -N '{base}/time/sendTime?mode=stream&interval=250ms'"},
					{Methods: getPost, Path: "/time/timeSwitch", Handler: tf.ToggleFeed, Changes: true, Doc: "Toggle the feed (it starts off).", Curl: "curl -X POST {base}/time/timeSwitch"},
					{Methods: getPost, Path: "/time/typeSwitch", Handler: tf.ToggleType, Changes: true, Doc: "Toggle the content-type switch: sendTime answers text/plain.", Curl: "curl -X POST {base}/time/typeSwitch"},
					{Methods: get, Path: "/time/status", Handler: tf.Status, Doc: "Both switches as JSON.", Curl: "curl {base}/time/status"},
				}
			}},
		{Title: "Finite generator", Nav: "Generator", Href: "/eventsource/page", Seed: "Pylons finite generator",
			Lesson: "Ten events flushed one by one, then the response ends and the browser starts the generator again. Anything that buffers the body between handler and socket holds every event back until the end.",
			Routes: func(d Deps, _ []Route) []Route {
				gen := handlers.NewGenerator(d.Metrics)
				return []Route{
					{Methods: get, Path: "/eventsource/page", Handler: gen.Page, Doc: "Finite generator page (the Pylons seed).", Curl: "curl {base}/eventsource/page"},
					{Methods: get, Path: "/eventsource/js", Handler: gen.JS, Doc: "The page's script.", Curl: "curl {base}/eventsource/js"},
					{Methods: get, Path: "/eventsource/event_sender", Handler: gen.Send, Stream: true,
						Doc:  "count events (default 10) interval apart (default 500ms), then the end; ?resume=1 for ids and 204; ?buffered=1 to see buffering.",
						Curl: "curl -N '{base}/eventsource/event_sender?interval=200ms'"},
				}
			}},
		{Title: "Visits", Nav: "Visits", Href: "/visits/", Seed: "Python Publisher library",
			Lesson: "Channels, a publish that is a function of each subscriber, initial data and a subscriber list. Every event has an id in a bounded history, so a reconnect replays what it missed, and a slow subscriber is cut off instead of slowing the rest.",
			Funcs:  map[string]hub.Func{handlers.VisitFunc: handlers.Visit},
			State:  []string{handlers.ViewersChannel},
			Routes: func(d Deps, _ []Route) []Route {
				vis := handlers.NewVisits(d.Broker, d.Config.Keepalive)
				return []Route{
					{Methods: get, Path: "/visits/", Handler: vis.Page, Doc: "Publishes a visit to channel visits, then serves the page (the Publisher seed).", Curl: "curl {base}/visits/"},
					{Methods: get, Path: "/visits/subscribe", Handler: vis.Subscribe, Stream: true,
						Doc:  "Long-lived stream of channel visits, with ids; Last-Event-ID or ?lastEventId= replays.",
						Curl: "curl -N {base}/visits/subscribe"},
				}
			}},
		{Title: "Chat", Nav: "Chat", Href: "/chat/", Seed: "Flask chat over Redis pub/sub, and its templ fragments",
			Lesson: "Posting is a plain POST; receiving is one stream per tab. With -redis the channel lives in Redis Streams, so several sselab processes serve one chat and replay works across them. /fragments/ shows the same channel as HTML rendered once by a templ component, put into the page by htmx 4 or by Datastar, and what each client does when the server refuses, restarts or says stop.",
			Routes: func(d Deps, _ []Route) []Route {
				chat := handlers.NewChat(d.Broker, d.Config.Keepalive, d.SessionKey)
				fr := handlers.NewFragments(d.Broker, d.Config.Keepalive)
				fc := handlers.NewFragmentClients(d.Config.Keepalive)
				return []Route{
					{Methods: get, Path: "/chat/", Handler: chat.Page, Doc: "Chat page: a name form, then the chat (the Flask/Redis seed).", Curl: "curl {base}/chat/"},
					{Methods: post, Path: "/chat/login", Handler: chat.Login, Doc: "Form user (1..32 printable characters, normalised by PRECIS Nickname; invisible ones refused): sets the session cookie, 303 to /chat/.",
						Curl: "curl -i -d user=ann {base}/chat/login"},
					{Methods: post, Path: "/chat/post", Handler: chat.Post, Doc: "Form message: publishes [HH:MM:SS] user: message to channel chat; 204.",
						Curl: "curl -d message=hello {base}/chat/post"},
					{Methods: get, Path: "/chat/stream", Handler: chat.Stream, Stream: true,
						Doc:  "Long-lived stream of channel chat: the latest 50 messages, then live; Last-Event-ID replays.",
						Curl: "curl -N {base}/chat/stream"},
					{Methods: get, Path: "/fragments/", Handler: fr.Page, Doc: "The chat as server-rendered templ fragments, with htmx 4's hx-sse.", Curl: "curl {base}/fragments/"},
					{Methods: get, Path: "/fragments/stream", Handler: fr.Stream, Stream: true,
						Doc: "Channel chat as unnamed events of HTML rendered by a templ component, with ids; Last-Event-ID replays.", Curl: "curl -N {base}/fragments/stream"},
					{Methods: get, Path: "/fragments/datastar/", Handler: fr.DatastarPage, Doc: "The chat with Datastar: its Go SDK and its client.", Curl: "curl {base}/fragments/datastar/"},
					{Methods: get, Path: "/fragments/datastar/stream", Handler: fr.DatastarStream, Stream: true,
						Doc: "Channel chat as Datastar's datastar-patch-elements events, with ids; Last-Event-ID replays.", Curl: "curl -N {base}/fragments/datastar/stream"},
					{Methods: get, Path: "/fragments/clients", Handler: fc.Page, Doc: "Runs EventSource, htmx 4 and Datastar against probes in your browser, beside the measured table.", Curl: "curl {base}/fragments/clients"},
					{Methods: get, Path: "/fragments/probe", Handler: fc.Probe, Stream: true,
						Doc: "Probe: ?key=K&with=refuse|shutdown|204|500|type|stop|hidden: an event and retry: 2000, then the end; the second request is answered as with says.", Curl: "curl -N '{base}/fragments/probe?key=k1&with=204'"},
					{Methods: get, Path: "/fragments/probe/log", Handler: fc.Log, Doc: "What the probes saw of ?key=: each request's arrival (ms after the first) and how many are open, as JSON.", Curl: "curl '{base}/fragments/probe/log?key=k1'"},
				}
			}},
		{Title: "Token streams", Nav: "Tokens", Href: "/tokens/", Seed: "Tornado eventsource library",
			Lesson: "Streams addressed by a token; other clients post ping, close and retry to them. Keepalive comments, ids, JSON events, and the command-line listener and request tools.",
			Routes: func(d Deps, _ []Route) []Route {
				tok := handlers.NewTokens(d.Broker, d.Config.Keepalive, tokens.For(d.Config.JSON, d.Config.IDs))
				return []Route{
					{Methods: get, Path: "/tokens/", Handler: tok.Page, Doc: "Token streams page (the Tornado eventsource seed).", Curl: "curl {base}/tokens/"},
					{Methods: get, Path: "/tokens/:token/poll", Handler: tok.Poll, Stream: true,
						Doc:  "Long-lived stream of one token (1..64 of A-Z a-z 0-9 : . _ -).",
						Curl: "curl -N {base}/tokens/demo/poll"},
					{Methods: post, Path: "/tokens/:token/:action", Handler: tok.Act,
						Doc:  "Post ping, close or retry (the body, or form field data) to every listener; answers how many were reached.",
						Curl: "curl -d 42 {base}/tokens/demo/ping"},
				}
			},
			Commands: []Command{
				{Name: "client", Usage: "[-H host] [-P port] [-r ms] [-d] TOKEN  follow a token's stream, print its events", Run: cli.Client},
				{Name: "request", Usage: "[-H host] [-P port] [-j] TOKEN ACTION [DATA]  post ping, close or retry to a token", Run: cli.Request},
			}},
		{Title: "Connections", Nav: "Connections", Href: "/connections/", Seed: "the browser's connection limit",
			Lesson: "Over HTTP/1.1 a browser holds at most six connections per site, and each stream takes one: the seventh waits, with no error. Over HTTP/2 (-tls) every stream shares one connection.",
			Routes: func(d Deps, _ []Route) []Route {
				conn := handlers.NewConnections(d.Config.Keepalive)
				return []Route{
					{Methods: get, Path: "/connections/", Handler: conn.Page, Doc: "Opens n streams (default 8, ?n=1..32) and shows which wait for a connection.", Curl: "curl {base}/connections/"},
					{Methods: get, Path: "/connections/stream", Handler: conn.Stream, Stream: true,
						Doc: "One of that page's streams: an opened event naming the protocol, then keepalives.", Curl: "curl -N '{base}/connections/stream?i=0'"},
				}
			}},
		{Title: "Inbox", Nav: "Inbox", Href: "/inbox/", Seed: "the CherryPy write-up's closing words",
			Lesson: "Authentication and sessions, and a stream from your domain only: sign in with a password (kept as an argon2id hash), read a stream that the session cookie alone opens, and see sign-out end it on every instance within a second.",
			Routes: func(d Deps, _ []Route) []Route {
				in := handlers.NewInbox(d.Broker, inbox.StoreFor(d.Broker), d.Config.Keepalive, d.Config.SessionTTL, d.Logger)
				return []Route{
					{Methods: get, Path: "/inbox/", Handler: in.Page, Doc: "A sign-in form until signed in, then your inbox and a form to send to another user.", Curl: "curl {base}/inbox/"},
					{Methods: post, Path: "/inbox/login", Handler: in.Login,
						Doc:  "Form user and password (8..128 bytes): the first sign-in claims the name; later ones need its password (else 401); a look-alike of a name in use 409; too many attempts 429. Sets the session cookie, 303 to /inbox/.",
						Curl: "curl -i -d user=ann -d password=correct-horse {base}/inbox/login"},
					{Methods: post, Path: "/inbox/logout", Handler: in.Logout, Doc: "Ends this session (everywhere=1: every session of the user) and its streams on every instance; 303 to /inbox/.",
						Curl: "j=$(mktemp) && curl -s -c $j -d user=ann -d password=correct-horse {base}/inbox/login -o /dev/null && curl -i -b $j -X POST {base}/inbox/logout"},
					{Methods: get, Path: "/inbox/stream", Handler: in.Stream, Stream: true, Changes: true,
						Doc:  "The signed-in user's own stream: message events, ids, replay within their channel; without a valid session 401; ends when the session does.",
						Curl: "j=$(mktemp) && curl -s -c $j -d user=ann -d password=correct-horse {base}/inbox/login -o /dev/null && curl -N -b $j {base}/inbox/stream"},
					{Methods: post, Path: "/inbox/send", Handler: in.Send, Doc: "Form to and message: to that user's inbox; 204 (303 for a plain form); not signed in 401; unknown user 404.",
						Curl: "j=$(mktemp) && curl -s -c $j -d user=ann -d password=correct-horse {base}/inbox/login -o /dev/null && curl -b $j -d to=ann -d message=hi {base}/inbox/send"},
				}
			}},
		{Title: "Engines", Nav: "Engines", Href: "/engines/", Seed: "your browser's engine",
			Lesson: "Where the specification leaves room or an engine deviates (time to open, reconnection delay, retry floor, NUL, id-only blocks, charset, 204, the back/forward cache), your browser answers each question live, beside Chromium, Firefox and WebKit as the tests measured them.",
			Routes: func(d Deps, _ []Route) []Route {
				eng := handlers.NewEngines(d.Config.Keepalive)
				return []Route{
					{Methods: get, Path: "/engines/", Handler: eng.Page, Doc: "Probes your browser's engine, beside the three engines as measured.", Curl: "curl {base}/engines/"},
					{Methods: get, Path: "/engines/away", Handler: eng.Away, Doc: "The page the back/forward cache probe leaves to: it goes back.", Curl: "curl {base}/engines/away"},
					{Methods: get, Path: "/engines/quiet", Handler: eng.Quiet, Stream: true,
						Doc: "Probe: headers, nothing for 1.5 s (against rule 1, on purpose), one event, the end.", Curl: "curl -N {base}/engines/quiet"},
					{Methods: get, Path: "/engines/ends", Handler: eng.Ends, Stream: true,
						Doc: "Probe: a seen event with the request's Last-Event-ID, ?retry=MS, ?idonly=1 for an id-only block, the end.", Curl: "curl -N -H 'Last-Event-ID: 7' '{base}/engines/ends?retry=100&idonly=1'"},
					{Methods: get, Path: "/engines/bytes", Handler: eng.Bytes, Stream: true,
						Doc: "Probe: ?what=nul (data a NUL b) or ?what=charset (UTF-8 served as ISO-8859-1).", Curl: "curl -N '{base}/engines/bytes?what=nul'"},
					{Methods: get, Path: "/engines/answer", Handler: eng.Answer, Stream: true,
						Doc: "Probe: a stream request answered ?with=204, 500 or type (200 text/plain).", Curl: "curl -i '{base}/engines/answer?with=204'"},
					{Methods: get, Path: "/engines/held", Handler: eng.Held, Stream: true,
						Doc: "Probe: a stream that stays open (a held event naming the protocol, then keepalives).", Curl: "curl -N '{base}/engines/held?i=0'"},
				}
			}},
		{Title: "Doctor", Nav: "Doctor", Href: "/doctor/", Seed: "sselab doctor, on the site's own routes",
			Lesson: "What a proxy, a compressor or buffering middleware does to a stream, seen check by check: the server runs sselab doctor on one of its own routes and streams each verdict.",
			Routes: func(d Deps, site []Route) []Route {
				doc := handlers.NewDoctor(d.Config.Keepalive, d.Cert, handlers.DoctorTargets(served(site)))
				return []Route{
					{Methods: get, Path: "/doctor/", Handler: doc.Page, Doc: "Doctor page: run sselab doctor on one of the site's routes.", Curl: "curl {base}/doctor/"},
					{Methods: get, Path: "/doctor/run", Handler: doc.Run, Stream: true, Changes: true,
						Doc:  "?target=generator|buffered|tokens: a started event, a seen event per thing doctor sees as it happens, a check event (JSON) per check, a done event, then the end; at most 2 runs at once, one per client address.",
						Curl: "curl -N '{base}/doctor/run?target=buffered'"},
				}
			},
			Commands: []Command{{Name: "doctor", Usage: "[-json] [-v] [-publish URL] [-timeout D] URL  check any SSE endpoint, through its proxies", Run: doctor.Command}}},
	}
}

// served is the set of route paths (Echo's patterns) of routes.
func served(routes []Route) map[string]bool {
	m := make(map[string]bool, len(routes))
	for _, r := range routes {
		m[r.Path] = true
	}
	return m
}

// siteMap is what the server registers and shows: every route, the 404
// page, and the nav every page carries.
type siteMap struct {
	routes   []Route
	notFound echo.HandlerFunc
	nav      []views.NavItem
}

// site is every route: the home page, each demo's, and the operations'.
func site(d Deps) siteMap {
	home := Route{Methods: get, Path: "/", Doc: "This page: the demos and every route.", Curl: "curl {base}/"}
	rs := []Route{home}
	var cards []views.Demo
	var nav []views.NavItem
	for _, dm := range d.demos() {
		rs = append(rs, dm.Routes(d, rs)...)
		cards = append(cards, views.Demo{Title: dm.Title, Href: dm.Href, Seed: dm.Seed, Lesson: dm.Lesson})
		nav = append(nav, views.NavItem{Label: dm.Nav, Href: dm.Href})
	}
	ops := d.Metrics.Handler()
	rs = append(rs,
		Route{Methods: get, Path: "/healthz", Handler: handlers.Health, Doc: "200 ok while the server runs.", Curl: "curl {base}/healthz"},
		Route{Methods: []string{http.MethodGet, http.MethodHead}, Path: "/metrics", Handler: echo.WrapHandler(ops),
			Doc: "Prometheus metrics: open streams, events sent, published and delivered, requests.", Curl: "curl {base}/metrics"},
		Route{Methods: get, Path: "/assets/*", Handler: echo.WrapHandler(http.StripPrefix("/assets/", http.FileServerFS(assets.FS))),
			Doc: "Embedded CSS and scripts.", Curl: "curl {base}/assets/sselab.js"},
	)
	s := handlers.NewSite(cards, routeRows(rs))
	rs[0].Handler = s.Home
	return siteMap{routes: rs, notFound: s.NotFound, nav: nav}
}

func routeRows(rs []Route) []views.RouteRow {
	var rows []views.RouteRow
	for _, r := range rs {
		rows = append(rows, views.RouteRow{Method: strings.Join(r.Methods, " | "), Path: r.Path, Doc: r.Doc, Curl: r.Curl})
	}
	return rows
}
