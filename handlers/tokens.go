package handlers

import (
	"context"
	"fmt"
	"io"
	"net/http"
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
	_, json := h.kind.(tokens.JSON)
	_, ids := h.kind.ID(time.Now())
	return render(c, http.StatusOK, views.TokensPage(views.TokensVM{Actions: h.kind.Actions(), JSON: json, IDs: ids}))
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
		ms, err := strconv.ParseUint(strings.TrimSpace(data), 10, 31)
		if err != nil {
			return badRequest("retry data must be a non-negative whole number of milliseconds; got %q", data)
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
		return unavailable(err)
	}
	if err := h.b.Publish(ctx, []string{ch}, m); err != nil {
		return unavailable(err)
	}
	noun := "listeners"
	if listeners == 1 {
		noun = "listener"
	}
	return c.String(http.StatusOK, fmt.Sprintf("%d %s reached\n", listeners, noun))
}

// postedData is the form field data of a form post, else the body.
func postedData(c echo.Context) (string, error) {
	ct := c.Request().Header.Get("Content-Type")
	if strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "multipart/form-data") {
		return c.FormValue("data"), nil
	}
	b, err := io.ReadAll(c.Request().Body)
	if err != nil {
		return "", echo.NewHTTPError(http.StatusRequestEntityTooLarge, "the request body is too large: at most 64 KiB").WithInternal(err)
	}
	return string(b), nil
}
