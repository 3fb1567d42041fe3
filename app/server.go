package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"sselab/app/hub"
	"sselab/app/metrics"
	"sselab/app/sse"
	"sselab/handlers"
	"sselab/views"
)

// Deps is everything a server needs. Tests build their own.
type Deps struct {
	Config  Config
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	Broker  hub.Broker // where channels live: memory or Redis
	// SessionKey signs the chat's session cookies (its first key; every
	// one is accepted); instances serving one site must share it.
	SessionKey hub.Keys
	// Streams knows the open streams; nil makes one from Config.
	Streams *Streams
	// Cert is the certificate the server presents with -tls (DER): the
	// doctor page, which checks the site through its own listener, trusts
	// only it. Nil over plain HTTP.
	Cert []byte
	// Demos are the demos served; nil serves every one of Demos. Tests
	// serve demos of their own this way.
	Demos []Demo
}

func (d Deps) demos() []Demo {
	if d.Demos == nil {
		return Demos()
	}
	return d.Demos
}

// NewServer builds the site: the Echo server with its middleware, error
// handler and routes, behind the cross-origin check.
//
// Middleware is per route, not global: page routes get recovery, a body
// limit, request logging and gzip; stream routes get one middleware that
// does what streams need. A stream's goroutine blocks for as long as the
// stream lives with every middleware frame on its stack, so fewer frames is
// less memory per open stream; and gzip, which would rewrite a stream with
// Content-Encoding (and hold events back where Flush is not passed
// through), never sees a stream.
func NewServer(d Deps) http.Handler {
	if d.Streams == nil {
		d.Streams = newStreams(d.Config.MaxStreams, d.Metrics, d.Logger)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// The client address is the connection's: X-Forwarded-For is trusted
	// only behind a proxy you run, so a template starts without it.
	e.IPExtractor = echo.ExtractIPDirect()

	sm := site(d)
	e.HTTPErrorHandler = errorHandler(d.Logger, d.Metrics, withNav(sm.nav)(sm.notFound))
	pages := []echo.MiddlewareFunc{
		middleware.Recover(),
		withNav(sm.nav),
		limitBody,
		requestLogger(d.Logger, d.Metrics),
		middleware.Gzip(),
	}
	// Refuse cross-origin POSTs (by Sec-Fetch-Site, else Origin vs Host).
	// Requests with neither header, such as curl's, pass.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, crossOrigin, http.StatusForbidden)
	}))
	for _, r := range sm.routes {
		switch {
		case r.Stream && r.Changes:
			e.Match(r.Methods, r.Path, r.Handler, d.Streams.middleware, sameOrigin(cop))
		case r.Stream:
			e.Match(r.Methods, r.Path, r.Handler, d.Streams.middleware)
		case r.Changes:
			e.Match(r.Methods, r.Path, r.Handler, append(pages, sameOrigin(cop))...)
		default:
			e.Match(r.Methods, r.Path, r.Handler, pages...)
		}
	}
	return limitFloods(d.Logger, cop.Handler(e))
}

// withNav gives every page the nav, which the layout reads from the
// request's context.
func withNav(nav []views.NavItem) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			c.SetRequest(r.WithContext(views.WithNav(r.Context(), nav, r.URL.Path)))
			return next(c)
		}
	}
}

const crossOrigin = "cross-origin request refused: this site accepts state-changing requests only from its own pages"

// sameOrigin refuses cross-origin requests to a route that changes state
// on GET too (the seed's toggles, a doctor run that posts pings):
// http.CrossOriginProtection lets safe methods through, so it is asked as
// if the request were a POST.
func sameOrigin(cop *http.CrossOriginProtection) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			asPost := *c.Request()
			asPost.Method = http.MethodPost
			if err := cop.Check(&asPost); err != nil {
				return echo.NewHTTPError(http.StatusForbidden, crossOrigin).WithInternal(err)
			}
			return next(c)
		}
	}
}

// bodyTimeout bounds how long a request body may take to arrive, as
// ReadHeaderTimeout bounds the headers.
const bodyTimeout = 10 * time.Second

// limitBody bounds what a request may send: at most MaxBody bytes however
// it is sent (Content-Length, chunked, form-encoded: the bound is on the
// bytes read), arriving within BodyTimeout. A declared length over the
// bound is refused before anything is read.
func limitBody(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if r.ContentLength > handlers.MaxBody {
			return echo.NewHTTPError(http.StatusRequestEntityTooLarge,
				fmt.Sprintf("the request body is %d bytes; the limit is %d (64 KiB)", r.ContentLength, handlers.MaxBody))
		}
		r.Body = http.MaxBytesReader(c.Response(), r.Body, handlers.MaxBody)
		// Not cleared after the handler: the server reads what is left of
		// a body after the handler within it too, and the next request on
		// the connection sets its own.
		http.NewResponseController(c.Response()).SetReadDeadline(time.Now().Add(bodyTimeout))
		return next(c)
	}
}

// errShutdown is the cause with which the server's base context ends on
// SIGINT or SIGTERM. It is an sse.Parting: every stream loop sends its
// event, rule 8's retry: spread over 1-5 s (so that the clients of a
// restarted instance do not all come back in the same instant), before the
// handler tears its subscription down.
var errShutdown error = shutdown{}

type shutdown struct{}

func (shutdown) Error() string { return "the server is shutting down" }

func (shutdown) PartingEvent() sse.Event {
	return sse.RetryBlock("the server is restarting", sse.Spread(time.Second, 5*time.Second))
}

// Streams caps open streams, counts them by route, and ends them well on
// shutdown: it knows every open stream, so that Shutdown can cut the
// writes blocked on clients that stopped reading.
type Streams struct {
	max    int64
	budget int64 // bytes: what the open streams may cost together (see streamCost)
	m      *metrics.Metrics
	log    *slog.Logger
	open   atomic.Int64
	cost   atomic.Int64

	mu   sync.Mutex
	live map[*http.ResponseController]struct{}
}

// newStreams makes the stream registry of one server.
func newStreams(max int, m *metrics.Metrics, log *slog.Logger) *Streams {
	return &Streams{max: int64(max), budget: streamBudget, m: m, log: log, live: map[*http.ResponseController]struct{}{}}
}

// streamBudget is what open streams may cost together, charged by
// streamCost: past it a new stream is refused as rule 7 says, however
// few are open. Over plain HTTP/1.1 -max-streams (10,000 by default)
// binds first; over HTTP/2 a stream costs nearly three times as much, and
// 10,000 of them took the process past the 512 MiB the contract promises.
// With the history's 64 MiB and the waiting connections (a quarter of
// -max-conns, about 39 kB each when idle over HTTP/2) it keeps the
// process under that.
const streamBudget = 288 << 20

// streamCost is what one open stream costs the process, by protocol, as
// measured: RSS over the idle process divided by 3,000 streams of one
// token route, each on a connection of its own as a browser tab's is
// (2026-12-04, this 2-core machine): HTTP/1.1 29 kB, HTTP/1.1 over TLS
// 58 kB, HTTP/2 69-71 kB (three goroutines with their stacks, the TLS and
// HTTP/2 connection state, the hub subscription). Rounded up, but for
// HTTP/1.1 (see below).
func streamCost(r *http.Request) int64 {
	switch {
	case r.ProtoMajor >= 2:
		return 72 << 10
	case r.TLS != nil:
		return 60 << 10
	}
	return 28 << 10 // 29.4 kB measured is 28.7 KiB: so that -max-streams binds first over HTTP/1.1
}

// Cut makes every write to an open stream that has not finished by the
// deadline fail: on shutdown, a client that stopped reading cannot hold
// its stream, nor the server, open.
func (s *Streams) Cut(deadline time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for rc := range s.live {
		rc.SetWriteDeadline(deadline)
	}
}

// middleware is all a stream route has: the cap (a refusal the browser
// recovers from, rule 7), the gauge, the registry, and, when the stream
// ends, the log line, the request count and recovery from a panic. Every
// stream ends on shutdown because every request's context comes from the
// server's base context, which Run cancels with ErrShutdown (see run.go),
// and the stream's loop sends ErrShutdown's parting retry (rule 8).
func (s *Streams) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic in a stream handler: %v", p)
			}
			if err != nil {
				c.Error(err)
			}
			status := c.Response().Status
			s.m.Requests.WithLabelValues(c.Path(), strconv.Itoa(status)).Inc()
			level, attrs := logAttrs([]slog.Attr{slog.String("method", c.Request().Method), slog.String("uri", c.Request().RequestURI),
				slog.Int("status", status), slog.Duration("latency", time.Since(start))}, err)
			s.log.LogAttrs(context.Background(), level, "stream", attrs...)
			err = nil // handled: the error handler answered it, and this line logged it
		}()
		cost := streamCost(c.Request())
		if total := s.cost.Add(cost); total > s.budget {
			s.cost.Add(-cost)
			return sse.Refuse(c.Response(), fmt.Sprintf("the open streams use the memory the server gives them (%d MiB, %d streams over %s); retry later",
				s.budget>>20, s.open.Load(), c.Request().Proto))
		}
		defer s.cost.Add(-cost)
		if s.open.Add(1) > s.max {
			s.open.Add(-1)
			return sse.Refuse(c.Response(), fmt.Sprintf("too many open streams (the limit is %d); retry later", s.max))
		}
		defer s.open.Add(-1)
		g := s.m.OpenStreams.WithLabelValues(c.Path())
		g.Inc()
		defer g.Dec()

		rc := http.NewResponseController(c.Response())
		s.mu.Lock()
		s.live[rc] = struct{}{}
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.live, rc)
			s.mu.Unlock()
		}()
		return next(c)
	}
}

// errorHandler answers errors in plain text naming what was wrong; a path
// the router does not know gets the 404 page. It logs nothing for routes:
// the route's middleware (the request logger, or Streams for a stream)
// logs each request once, with the error's cause. Once a response has
// started (mid-stream) nothing can be written: the stream is left as it
// is: so an error that reaches it a second time, from Echo after the
// middleware that handled it, finds the response written and does
// nothing.
func errorHandler(log *slog.Logger, m *metrics.Metrics, notFound echo.HandlerFunc) func(error, echo.Context) {
	return func(err error, c echo.Context) {
		// The router's own 404 and 405 pass no route middleware: log them here.
		if errors.Is(err, echo.ErrNotFound) || errors.Is(err, echo.ErrMethodNotAllowed) {
			code := err.(*echo.HTTPError).Code
			m.Requests.WithLabelValues("unmatched", strconv.Itoa(code)).Inc()
			log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
				slog.String("method", c.Request().Method), slog.String("uri", c.Request().RequestURI), slog.Int("status", code))
		}
		if c.Response().Committed {
			return
		}
		if errors.Is(err, echo.ErrNotFound) && c.Request().Method == http.MethodGet {
			if err := notFound(c); err != nil {
				log.Debug("writing the 404 page", "err", err)
			}
			return
		}
		var he *echo.HTTPError
		if !errors.As(err, &he) {
			he = echo.NewHTTPError(http.StatusInternalServerError, "internal server error")
		}
		msg := fmt.Sprint(he.Message)
		if c.Request().Method == http.MethodHead {
			err = c.NoContent(he.Code)
		} else {
			err = c.String(he.Code, msg+"\n")
		}
		if err != nil {
			log.Debug("writing the error response", "err", err)
		}
	}
}

// logAttrs are the attributes of a request's one log line, with the
// error's cause when it failed: an HTTPError's internal error (such as
// what Redis said behind a 503) is what an operator needs.
func logAttrs(attrs []slog.Attr, err error) (slog.Level, []slog.Attr) {
	if err == nil {
		return slog.LevelInfo, attrs
	}
	level, cause := slog.LevelWarn, err
	var he *echo.HTTPError
	if errors.As(err, &he) {
		if he.Code < 500 {
			level = slog.LevelInfo
		}
		if he.Internal != nil {
			cause = he.Internal
		} else {
			cause = fmt.Errorf("%v", he.Message)
		}
	}
	return level, append(attrs, slog.String("err", cause.Error()))
}

// requestLogger logs each request with slog when it ends and counts it.
func requestLogger(log *slog.Logger, m *metrics.Metrics) echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogStatus: true, LogURI: true, LogMethod: true, LogLatency: true, LogError: true, LogRoutePath: true,
		HandleError: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			m.Requests.WithLabelValues(v.RoutePath, strconv.Itoa(v.Status)).Inc()
			level, attrs := logAttrs([]slog.Attr{slog.String("method", v.Method), slog.String("uri", v.URI),
				slog.Int("status", v.Status), slog.Duration("latency", v.Latency)}, v.Error)
			log.LogAttrs(c.Request().Context(), level, "request", attrs...)
			return nil
		},
	})
}
