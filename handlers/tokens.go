package handlers

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"sselab/app/hub"
	"sselab/app/tokens"
	"sselab/views"
)

// tokensBroker is what the token streams need of the broker.
type tokensBroker interface {
	publisher
	subscriber
	Count(ctx context.Context, channels ...string) (int, error)
}

// Tokens serves the Tornado eventsource demo under /tokens/: streams
// addressed by a token, and actions that other clients post to them.
type Tokens struct {
	b         tokensBroker
	keepalive time.Duration
	kind      tokens.Kind
}

// NewTokens returns the token handlers for events of the given kind.
func NewTokens(b tokensBroker, keepalive time.Duration, kind tokens.Kind) *Tokens {
	return &Tokens{b: b, keepalive: keepalive, kind: kind}
}

// Page lets a learner watch a token and post actions to it.
func (h *Tokens) Page(c echo.Context) error {
	rules := h.kind.Rules()
	return render(c, http.StatusOK, views.TokensPage(views.TokensVM{Actions: h.kind.Actions(), JSON: rules.JSON, IDs: rules.IDs}))
}

func token(c echo.Context) (string, error) {
	t := c.Param("token")
	if err := tokens.ValidToken(t); err != nil {
		return "", badRequest("%v", err)
	}
	return t, nil
}

// Poll is the long-lived stream of one token.
func (h *Tokens) Poll(c echo.Context) error {
	t, err := token(c)
	if err != nil {
		return err
	}
	return serveChannel(c, h.b, hub.Request{Channels: []string{tokens.Channel(t)}}, h.keepalive, nil)
}

// Act publishes an action to every listener of a token and answers how
// many listeners it reached.
func (h *Tokens) Act(c echo.Context) error {
	t, err := token(c)
	if err != nil {
		return err
	}
	action := c.Param("action")
	if !slices.Contains(h.kind.Actions(), action) {
		return echo.NewHTTPError(http.StatusNotFound,
			fmt.Sprintf("unknown action %q; the actions are %s", action, strings.Join(h.kind.Actions(), ", ")))
	}
	posted, err := postedData(c)
	if err != nil {
		return err
	}
	data, err := h.kind.Value(action, posted)
	if err != nil {
		return badRequest("%v", err)
	}
	m := hub.Message{Type: action, Data: data, Final: action == tokens.Close}
	if action == tokens.Retry {
		ms, err := strconv.ParseUint(strings.TrimSpace(data), 10, 64)
		if err != nil || ms > MaxRetry {
			return badRequest("retry data must be a whole number of milliseconds from 0 to %d; got %s", MaxRetry, quote(data))
		}
		m = hub.Message{Retry: time.Duration(ms) * time.Millisecond, HasRetry: true}
	}
	if id, ok := h.kind.ID(time.Now()); !ok {
		m.NoID = true
	} else {
		m.ID = id
	}
	ctx := c.Request().Context()
	ch := tokens.Channel(t)
	listeners, err := h.b.Count(ctx, ch)
	if err != nil {
		return unavailable(c, err)
	}
	if err := h.b.Publish(ctx, []string{ch}, m); err != nil {
		return unavailable(c, err)
	}
	noun := "listeners"
	if listeners == 1 {
		noun = "listener"
	}
	return c.String(http.StatusOK, fmt.Sprintf("%d %s reached\n", listeners, noun))
}

// MaxRetry is the longest reconnection delay a client may set for every
// listener of a token: ten minutes, in milliseconds.
const MaxRetry = 600_000

// postedData is what a client posted: the form field data of a form that
// has one, else the raw body. curl -d 42 sends "42" form-encoded, with no
// field named data: it means 42.
func postedData(c echo.Context) (string, error) {
	if strings.HasPrefix(c.Request().Header.Get("Content-Type"), "multipart/form-data") {
		return formValue(c, "data")
	}
	raw, err := readBody(c)
	if err != nil || !isForm(c) {
		return raw, err
	}
	if form, err := url.ParseQuery(raw); err == nil && form.Has("data") {
		return form.Get("data"), nil
	}
	return raw, nil
}
