package handlers

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"sselab/app/hub"
	"sselab/app/sse"
)

// subscriber is what a channel stream needs of the broker.
type subscriber interface {
	Subscribe(ctx context.Context, r hub.Request) (*hub.Subscription, error)
}

// publisher is what a handler that publishes needs of the broker.
type publisher interface {
	Publish(ctx context.Context, channels []string, m hub.Message) error
}

// serveChannel streams a subscription: initial events, replay after the
// client's Last-Event-ID, then live events, until the client leaves, the
// server stops, or the subscriber is dropped for falling behind (its
// client reconnects and catches up by Last-Event-ID). joined, if not nil,
// runs once the subscription is registered.
// Its deliveries are counted by the hub (sselab_events_delivered_total).
func serveChannel(c echo.Context, b subscriber, r hub.Request, keepalive time.Duration, joined func()) error {
	ctx := c.Request().Context()
	id, err := lastEventID(c)
	if err != nil {
		return err
	}
	if r.LastID = id; r.LastID != "" {
		r.Recent = 0
	}
	sub, err := b.Subscribe(ctx, r)
	if errors.Is(err, hub.ErrUnavailable) || errors.Is(err, hub.ErrFull) {
		return sse.Refuse(c.Response(), refusal(err))
	}
	if err != nil {
		return err
	}
	defer sub.Close()
	if joined != nil {
		joined()
	}
	s, err := sse.Open(c.Response())
	if err != nil {
		return err
	}
	// A dropped subscriber may be blocked writing to a client that stopped
	// reading: a deadline in the past makes that write fail at once. Close
	// (deferred above) waits for a cut under way, so the response is never
	// touched after the handler returns.
	sub.OnDrop(func(cause error) {
		if errors.Is(cause, hub.ErrDropped) {
			s.SetWriteDeadline(time.Now())
		}
	})

	var buf []byte
	return sse.Loop(ctx, s, keepalive, sub.Ready(), func() (bool, error) {
		buf, err = sub.Next(buf[:0])
		if errors.Is(err, hub.ErrFinal) || errors.Is(err, hub.ErrMore) {
			return true, s.Write(buf) // the publisher's last event, or a replay's last piece: then the end
		}
		if err != nil {
			return true, nil // dropped or closed: end the response
		}
		if len(buf) == 0 {
			return false, nil
		}
		err = s.Write(buf)
		if cap(buf) > sse.KeepBuffer {
			buf = nil // a replay's piece, or a large event: not held for the stream's life
		}
		return false, err
	})
}

// refusal is the reason a stream or a publish cannot be served now.
func refusal(err error) string {
	if errors.Is(err, hub.ErrFull) {
		return "the server is at capacity (a bound on channels or stored events); try again later"
	}
	return "the message broker is unavailable; try again shortly"
}

// unavailable turns a broker failure into a 503 with Retry-After and its
// reason, for the routes that are not streams (rule 7 is for those).
func unavailable(c echo.Context, err error) error {
	if errors.Is(err, hub.ErrUnavailable) || errors.Is(err, hub.ErrFull) {
		c.Response().Header().Set("Retry-After", "5")
		return echo.NewHTTPError(http.StatusServiceUnavailable, refusal(err)).WithInternal(err)
	}
	return err
}
