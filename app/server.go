package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"sselab/app/hub"
	"sselab/app/metrics"
	"sselab/app/timefeed"
)

// Deps is everything a server needs. Tests build their own.
type Deps struct {
	Config  Config
	Logger  *slog.Logger
	Metrics *metrics.Metrics
	Feed    *timefeed.Feed
	Broker  hub.Broker // where channels live: memory or Redis
	// SessionKey signs the chat's session cookies; instances serving one
	// site must share it.
	SessionKey []byte
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
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// The client address is the connection's: X-Forwarded-For is trusted
	// only behind a proxy you run, so a template starts without it.
	e.IPExtractor = echo.ExtractIPDirect()

	h := newHandlers(d)
	e.HTTPErrorHandler = errorHandler(d.Logger, d.Metrics, h.site.NotFound)
	pages := []echo.MiddlewareFunc{
		middleware.Recover(),
		middleware.BodyLimit("64K"), // the chat's 4096-byte message is checked with its own reason
		requestLogger(d.Logger, d.Metrics),
		middleware.Gzip(),
	}
	streams := &streamLimit{max: int64(d.Config.MaxStreams), m: d.Metrics, log: d.Logger}
	for _, r := range routes(h) {
		if r.stream {
			e.Match(r.methods, r.path, r.handler, streams.middleware)
		} else {
			e.Match(r.methods, r.path, r.handler, pages...)
		}
	}

	// Refuse cross-origin POSTs (by Sec-Fetch-Site, else Origin vs Host).
	// Requests with neither header, such as curl's, pass.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "cross-origin request refused: this site accepts state-changing requests only from its own pages", http.StatusForbidden)
	}))
	return cop.Handler(e)
}

// streamLimit caps open streams and counts them by route.
type streamLimit struct {
	open atomic.Int64
	max  int64
	m    *metrics.Metrics
	log  *slog.Logger
}

// middleware is all a stream route has: the cap, the gauge, and, when the
// stream ends, the log line, the request count and recovery from a panic.
// Streams end on shutdown because every request's context comes from the
// server's base context, which Run cancels (see run.go).
func (l *streamLimit) middleware(next echo.HandlerFunc) echo.HandlerFunc {
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
			l.m.Requests.WithLabelValues(c.Path(), strconv.Itoa(status)).Inc()
			l.log.LogAttrs(context.Background(), slog.LevelInfo, "stream",
				slog.String("method", c.Request().Method), slog.String("uri", c.Request().RequestURI),
				slog.Int("status", status), slog.Duration("latency", time.Since(start)))
		}()
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			c.Response().Header().Set("Retry-After", "5")
			return echo.NewHTTPError(http.StatusServiceUnavailable,
				fmt.Sprintf("too many open streams (the limit is %d); retry later", l.max))
		}
		defer l.open.Add(-1)
		g := l.m.OpenStreams.WithLabelValues(c.Path())
		g.Inc()
		defer g.Dec()
		return next(c)
	}
}

// errorHandler answers errors in plain text naming what was wrong; a path
// the router does not know gets the 404 page. Once a response has started
// (mid-stream) nothing can be sent: it only logs.
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
			log.Debug("error after the response started", "path", c.Request().URL.Path, "err", err)
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
			log.Error("handler failed", "path", c.Request().URL.Path, "err", err)
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

// requestLogger logs each request with slog when it ends and counts it.
func requestLogger(log *slog.Logger, m *metrics.Metrics) echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogStatus: true, LogURI: true, LogMethod: true, LogLatency: true, LogError: true, LogRoutePath: true,
		HandleError: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			m.Requests.WithLabelValues(v.RoutePath, strconv.Itoa(v.Status)).Inc()
			log.LogAttrs(c.Request().Context(), slog.LevelInfo, "request",
				slog.String("method", v.Method), slog.String("uri", v.URI),
				slog.Int("status", v.Status), slog.Duration("latency", v.Latency))
			return nil
		},
	})
}
