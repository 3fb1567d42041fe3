package handlers

import (
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gorilla/securecookie"
	"github.com/labstack/echo/v4"
	"golang.org/x/text/secure/precis"

	"sselab/app/hub"
	"sselab/views"
)

// ChatChannel is the chat demo's channel.
const ChatChannel = "chat"

// Chat limits, from the contract.
const (
	MaxUserChars    = 32
	MaxMessageBytes = 4096
	sessionCookie   = "sselab_session"
	anonymous       = "anonymous"
)

// chatBroker is what the chat needs of the broker.
type chatBroker interface {
	publisher
	subscriber
}

// Chat serves the Flask/Redis chat demo under /chat/. The session is a
// signed cookie holding the user name: a tampered cookie fails the
// signature check and the user is anonymous.
type Chat struct {
	b         chatBroker
	keepalive time.Duration
	cookies   *securecookie.SecureCookie
}

// NewChat returns the chat handlers; hashKey signs the session cookie.
// Instances behind one load balancer must share it.
func NewChat(b chatBroker, keepalive time.Duration, hashKey []byte) *Chat {
	sc := securecookie.New(hashKey, nil)
	sc.MaxAge(30 * 24 * 3600)
	return &Chat{b: b, keepalive: keepalive, cookies: sc}
}

// user is the signed-in name, or "" when there is no valid session.
func (h *Chat) user(c echo.Context) string {
	ck, err := c.Cookie(cookieName(c, sessionCookie))
	if err != nil {
		return ""
	}
	var name string
	if err := h.cookies.Decode(sessionCookie, ck.Value, &name); err != nil {
		return "" // tampered, expired or foreign: never trusted
	}
	if n, err := normalUser(name); err != nil || n != name {
		return "" // tampered, expired or foreign: never trusted
	}
	return name
}

// Page shows the name form until a name is set, then the chat.
func (h *Chat) Page(c echo.Context) error {
	return render(c, http.StatusOK, views.ChatPage(views.ChatVM{User: h.user(c), MaxMessage: MaxMessageBytes}))
}

// Login sets the session cookie and goes back to the chat.
func (h *Chat) Login(c echo.Context) error {
	name, err := formValue(c, "user")
	if err != nil {
		return err
	}
	if name, err = normalUser(name); err != nil {
		return badRequest("%v", err)
	}
	value, err := h.cookies.Encode(sessionCookie, name)
	if err != nil {
		return err
	}
	c.SetCookie(&http.Cookie{Name: cookieName(c, sessionCookie), Value: value, Path: "/chat/", HttpOnly: true, Secure: c.IsTLS(), SameSite: http.SameSiteLaxMode, MaxAge: 30 * 24 * 3600})
	return c.Redirect(http.StatusSeeOther, "/chat/")
}

// normalUser is a name as the chat shows it: the PRECIS Nickname profile
// (RFC 8266, golang.org/x/text/secure/precis) maps its width and
// compatibility forms to one (NFKC: a fullwidth ａｎｎ is ann), trims and
// collapses spaces, and refuses what cannot be shown as a name: controls,
// invisible fillers and other default-ignorable code points. Then 1 to
// MaxUserChars characters. Names are not owned on the chat (anyone may
// pick any name, as in the seed): a look-alike in another script is a
// matter for a demo where names are owned.
func normalUser(raw string) (string, error) {
	if !utf8.ValidString(raw) {
		return "", fmt.Errorf("user must be UTF-8 text")
	}
	if strings.TrimSpace(raw) == "" {
		return "", fmt.Errorf("user must be 1 to %d printable characters; got 0", MaxUserChars)
	}
	name, err := precis.Nickname.String(raw)
	if err != nil {
		return "", fmt.Errorf("user %s is not a name that can be shown: printable letters, digits, symbols and spaces only (%v)", quote(raw), err)
	}
	if n := utf8.RuneCountInString(name); n < 1 || n > MaxUserChars {
		return "", fmt.Errorf("user must be 1 to %d printable characters; got %d", MaxUserChars, n)
	}
	return name, nil
}

// Post publishes a message. A multi-line message is one event: the encoder
// sends each line as a data: line of it.
func (h *Chat) Post(c echo.Context) error {
	msg, err := formValue(c, "message")
	if err != nil {
		return err
	}
	switch {
	case len(msg) > MaxMessageBytes:
		return echo.NewHTTPError(http.StatusRequestEntityTooLarge,
			fmt.Sprintf("message is %d bytes; the limit is %d bytes of UTF-8", len(msg), MaxMessageBytes))
	case !utf8.ValidString(msg):
		return badRequest("message must be valid UTF-8")
	case strings.TrimSpace(msg) == "":
		return badRequest("message is empty: write something first")
	}
	user := h.user(c)
	if user == "" {
		user = anonymous
	}
	at := time.Now().Format("15:04:05")
	line := fmt.Sprintf("[%s] %s: %s", at, user, msg)
	// One channel, three renderings: the text, and the fragments that
	// /fragments/ streams, rendered here once for every subscriber.
	alt, err := renderings(c.Request().Context(), views.ChatMessage{Time: at, User: user, Text: msg})
	if err != nil {
		return err
	}
	m := hub.Message{Type: "message", Data: line, Renderings: alt}
	if err := h.b.Publish(c.Request().Context(), []string{ChatChannel}, m); err != nil {
		return unavailable(c, err)
	}
	// A plain HTML form (no JavaScript) navigates: send it back to the
	// chat. htmx and Datastar post for the page, which stays.
	hd := c.Request().Header
	if hd.Get("HX-Request") == "" && hd.Get("Datastar-Request") == "" && strings.Contains(hd.Get("Accept"), "text/html") {
		return c.Redirect(http.StatusSeeOther, "/chat/")
	}
	return c.NoContent(http.StatusNoContent)
}

// Stream is the chat channel: the latest messages on page load, replay
// after Last-Event-ID on reconnect, then live.
func (h *Chat) Stream(c echo.Context) error {
	r := hub.Request{Channels: []string{ChatChannel}, Recent: 50}
	return serveChannel(c, h.b, r, h.keepalive, nil)
}
