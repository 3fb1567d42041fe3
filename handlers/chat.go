package handlers

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/labstack/echo/v4"

	"sselab/app/hub"
	"sselab/views"
)

// ChatChannel is the chat demo's channel.
const ChatChannel = "chat"

const (
	sessionCookie = "sselab_session"
	anonymous     = "anonymous"
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
	keys      func() [][]byte

	mu      sync.Mutex
	keysFor [][]byte // the keys codecs were made for
	codecs  []securecookie.Codec
}

// NewChat returns the chat handlers; keys sign the session cookie (the
// first) and verify it (every one), asked for at each use. Instances
// behind one load balancer must share them.
func NewChat(b chatBroker, keepalive time.Duration, keys func() [][]byte) *Chat {
	return &Chat{b: b, keepalive: keepalive, keys: keys}
}

// cookieCodecs are the session cookie's codecs for the keys as they are
// now, made again only when the keys change.
func (h *Chat) cookieCodecs() []securecookie.Codec {
	keys := h.keys()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(keys) != len(h.keysFor) || len(keys) > 0 && &keys[0] != &h.keysFor[0] {
		codecs := make([]securecookie.Codec, 0, len(keys)) // a new slice: callers may hold the old
		for _, k := range keys {
			sc := securecookie.New(k, nil)
			sc.MaxAge(30 * 24 * 3600)
			codecs = append(codecs, sc)
		}
		h.codecs, h.keysFor = codecs, keys
	}
	return h.codecs
}

// user is the signed-in name, or "" when there is no valid session.
func (h *Chat) user(c echo.Context) string {
	ck, err := c.Cookie(cookieName(c, sessionCookie))
	if err != nil {
		return ""
	}
	var name string
	if err := securecookie.DecodeMulti(sessionCookie, ck.Value, &name, h.cookieCodecs()...); err != nil {
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
	value, err := securecookie.EncodeMulti(sessionCookie, name, h.cookieCodecs()...)
	if err != nil {
		return err
	}
	c.SetCookie(&http.Cookie{Name: cookieName(c, sessionCookie), Value: value, Path: "/chat/", HttpOnly: true, Secure: c.IsTLS(), SameSite: http.SameSiteLaxMode, MaxAge: 30 * 24 * 3600})
	return c.Redirect(http.StatusSeeOther, "/chat/")
}

// Post publishes a message. A multi-line message is one event: the encoder
// sends each line as a data: line of it.
func (h *Chat) Post(c echo.Context) error {
	msg, err := formValue(c, "message")
	if err != nil {
		return err
	}
	if err := checkMessage(msg); err != nil {
		return err
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
