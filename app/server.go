package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"

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
	Stopping   context.Context // done when the server shuts down: every stream ends
}

// NewServer builds the Echo server: middleware, error handler, routes.
func NewServer(d Deps) *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	// The client address is the connection's: X-Forwarded-For is trusted
	// only behind a proxy you run, so a template starts without it.
	e.IPExtractor = echo.ExtractIPDirect()

	// Refuse cross-origin POSTs (by Sec-Fetch-Site, else Origin vs Host).
	// Requests with neither header, such as curl's, pass.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "cross-origin request refused: this site accepts state-changing requests only from its own pages", http.StatusForbidden)
	}))
	e.Pre(echo.WrapMiddleware(cop.Handler))

	h := newHandlers(d)
	e.HTTPErrorHandler = errorHandler(d.Logger, h.site.NotFound)
	rs := routes(h)
	streamPaths := map[string]bool{}
	for _, r := range rs {
		if r.stream {
			streamPaths[r.path] = true
		}
	}
	e.Use(middleware.Recover())
	e.Use(middleware.BodyLimit("64K")) // the chat's 4096-byte message is checked with its own reason
	e.Use(requestLogger(d.Logger, d.Metrics))
	// Gzip would rewrite a stream with Content-Encoding and, in stacks that
	// do not pass Flush through, hold every event back: streams skip it.
	e.Use(middleware.GzipWithConfig(middleware.GzipConfig{
		Skipper: func(c echo.Context) bool { return streamPaths[c.Path()] },
	}))

	limit := &streamLimit{max: int64(d.Config.MaxStreams), m: d.Metrics, stopping: d.Stopping}
	for _, r := range rs {
		var mw []echo.MiddlewareFunc
		if r.stream {
			mw = append(mw, limit.middleware)
		}
		e.Match(r.methods, r.path, r.handler, mw...)
	}
	return e
}

// streamLimit caps open streams, counts them by route, and ends them all
// when the server stops.
type streamLimit struct {
	open     atomic.Int64
	max      int64
	m        *metrics.Metrics
	stopping context.Context
}

func (l *streamLimit) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
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

		// The request's context ends when the client leaves; make it end
		// when the server stops too, so every stream loop returns and its
		// response is terminated properly instead of being reset.
		ctx, cancel := context.WithCancel(c.Request().Context())
		defer cancel()
		defer context.AfterFunc(l.stopping, cancel)()
		c.SetRequest(c.Request().WithContext(ctx))
		return next(c)
	}
}

// errorHandler answers errors in plain text naming what was wrong; a path
// the router does not know gets the 404 page. Once a response has started
// (mid-stream) nothing can be sent: it only logs.
func errorHandler(log *slog.Logger, notFound echo.HandlerFunc) func(error, echo.Context) {
	return func(err error, c echo.Context) {
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
