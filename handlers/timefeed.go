package handlers

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"sselab/app/metrics"
	"sselab/app/sse"
	"sselab/app/timefeed"
	"sselab/views"
)

// feedSwitches is what the time feed handlers need of the feed.
type feedSwitches interface {
	ToggleFeed() bool
	ToggleType() bool
	On() bool
	Plain() bool
}

// TimeFeed serves the CherryPy time-feed demo under /time/.
type TimeFeed struct {
	feed      feedSwitches
	m         *metrics.Metrics
	retry     time.Duration
	keepalive time.Duration
}

// NewTimeFeed returns the time feed handlers. retry is sent to browsers as
// the reconnection delay; keepalive paces comments on long-lived streams.
func NewTimeFeed(feed feedSwitches, m *metrics.Metrics, retry, keepalive time.Duration) *TimeFeed {
	return &TimeFeed{feed: feed, m: m, retry: retry, keepalive: keepalive}
}

// Page serves the demo page.
func (h *TimeFeed) Page(c echo.Context) error {
	return render(c, http.StatusOK, views.TimeFeedPage(views.TimeFeedVM{
		FeedOn: h.feed.On(), TypeSwitchOn: h.feed.Plain(), Retry: h.retry,
	}))
}

// Send serves sendTime: by default one short response per request, as the
// seed did, so the browser's reconnect turns EventSource into polling; with
// mode=stream, one long-lived response.
func (h *TimeFeed) Send(c echo.Context) error {
	mode := c.QueryParam("mode")
	if mode != "" && mode != "short" && mode != "stream" {
		return badRequest("mode must be short or stream; got %q", mode)
	}
	interval, err := durationParam(c, "interval", time.Second, 100*time.Millisecond, time.Minute)
	if err != nil {
		return err
	}
	if h.feed.Plain() {
		// The seed's lesson: a response that is not text/event-stream makes
		// the browser fail the connection for good, with no retry.
		return c.String(http.StatusOK, "The content-type switch is on: this is text/plain, so EventSource gives up.\n")
	}
	s, err := openStream(c, h.m)
	if err != nil {
		return err
	}
	hello := sse.Event{Retry: h.retry, HasRetry: true}
	if mode != "stream" {
		if !h.feed.On() {
			hello.Comment = "feed is off; reconnect after retry"
			return s.Send(hello)
		}
		ev := timefeed.Event(time.Now())
		ev.Retry, ev.HasRetry = h.retry, true
		return s.sendCounted(ev)
	}
	if err := s.Send(hello); err != nil {
		return err
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	return sse.Loop(c.Request().Context(), s.Stream, h.keepalive,
		tick.C,
		func() (bool, error) {
			if !h.feed.On() {
				return false, nil
			}
			return false, s.sendCounted(timefeed.Event(time.Now()))
		})
}

// ToggleFeed flips the feed, on GET too, as the seed allowed.
func (h *TimeFeed) ToggleFeed(c echo.Context) error {
	state := "off"
	if h.feed.ToggleFeed() {
		state = "on"
	}
	return c.String(http.StatusOK, "Feed Toggled: the feed is now "+state+"\n")
}

// ToggleType flips the content-type switch.
func (h *TimeFeed) ToggleType(c echo.Context) error {
	if h.feed.ToggleType() {
		return c.String(http.StatusOK, "Type Switched: sendTime now answers text/plain, and browsers stop retrying\n")
	}
	return c.String(http.StatusOK, "Type Switched: sendTime answers text/event-stream again\n")
}

// Status reports both switches as JSON.
func (h *TimeFeed) Status(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]bool{"feed": h.feed.On(), "typeSwitch": h.feed.Plain()})
}
