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
	if r.LastID = lastEventID(c); r.LastID != "" {
		r.Recent = 0
	}
	sub, err := b.Subscribe(ctx, r)
	if err != nil {
		return unavailable(err)
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
	return sse.Loop(ctx, s, keepalive, sub.Ready, func() (bool, error) {
		buf, err = sub.Next(buf[:0])
		if errors.Is(err, hub.ErrFinal) {
			return true, s.Write(buf) // the publisher's last event, then the end
		}
		if err != nil {
			return true, nil // dropped or closed: end the response
		}
		if len(buf) == 0 {
			return false, nil
		}
		return false, s.Write(buf)
	})
}

// unavailable turns a broker failure into a 503 with its reason.
func unavailable(err error) error {
	if errors.Is(err, hub.ErrUnavailable) {
		return echo.NewHTTPError(http.StatusServiceUnavailable, "the message broker is unavailable; try again shortly").WithInternal(err)
	}
	return err
}
