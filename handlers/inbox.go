package handlers

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"sselab/app/hub"
	"sselab/app/inbox"
	"sselab/app/sse"
	"sselab/views"
)

// EndsChannel carries the ends of inbox sessions to every instance: an
// event of type "session" (data: the session's digest) or "user" (data:
// the name), after which the streams of that session, or of every session
// of that user, end.
const EndsChannel = "inbox-ends"

// Bounds of the inbox, from the contract and beyond it.
const (
	MinPassword = 8
	MaxPassword = 128
	// Sign-in attempts: per client address, and per name.
	attemptsPerClient = 30
	attemptsPerName   = 10
	attemptsWindow    = 5 * time.Minute
	inboxCookie       = "sselab_inbox"
	// The stream gives the latest messages on a new connection.
	inboxRecent = 50
)

// inboxBroker is what the inbox needs of the broker.
type inboxBroker interface {
	publisher
	subscriber
}

// Inbox serves the private inbox demo under /inbox/: a person signs in
// with a name and a password (the first sign-in claims the name), reads a
// stream that only their session opens, and sends messages to others by
// name. The stream's channel comes from the session alone; a session's
// end (sign-out, "everywhere", expiry) ends its streams on every instance.
type Inbox struct {
	b         inboxBroker
	store     inbox.Store
	keepalive time.Duration
	ttl       time.Duration
	log       *slog.Logger

	mu      sync.Mutex
	streams map[*inboxStream]struct{}

	fmu       sync.Mutex
	following bool // EndsChannel is followed (see follow)
}

// inboxStream is one open stream, to end when its session does.
type inboxStream struct {
	session, user string // the session's digest, and its user
	end           context.CancelCauseFunc
}

// sessionEnded is why a stream ended: it parts with an "ended" event that
// says so (the page shows it); the reconnect then gets 401.
type sessionEnded string

func (e sessionEnded) Error() string { return string(e) }
func (e sessionEnded) PartingEvent() sse.Event {
	return sse.Event{Type: "ended", Data: string(e)}
}

// checkAgain ends a stream whose session may have ended unseen: it parts
// with a spread retry, as a restart does, and the reconnect is checked.
type checkAgain struct{}

func (checkAgain) Error() string { return "inbox: session ends may have been missed" }
func (checkAgain) PartingEvent() sse.Event {
	return sse.RetryBlock("sign-outs may have been missed: reconnect, and the session is checked again", sse.Spread(time.Second, 5*time.Second))
}

// NewInbox returns the inbox handlers.
func NewInbox(b inboxBroker, store inbox.Store, keepalive, ttl time.Duration, log *slog.Logger) *Inbox {
	return &Inbox{b: b, store: store, keepalive: keepalive, ttl: ttl, log: log, streams: map[*inboxStream]struct{}{}}
}

// follow makes sure this instance follows EndsChannel, from the first
// stream it serves on: once it returns nil, every session end published
// anywhere reaches endLocal.
func (h *Inbox) follow() error {
	h.fmu.Lock()
	defer h.fmu.Unlock()
	if h.following {
		return nil
	}
	sub, err := h.b.Subscribe(context.Background(), hub.Request{Channels: []string{EndsChannel}})
	if err != nil {
		return err
	}
	h.following = true
	go h.read(sub)
	return nil
}

// read ends the streams of each session end on sub until it ends. If it
// ends for any reason but the broker's close (this instance fell behind,
// Redis failed), an end may have been missed: every stream here ends,
// and each reconnect checks its session again.
func (h *Inbox) read(sub *hub.Subscription) {
	var buf []byte
	var err error
	for err == nil {
		select {
		case <-sub.Ready():
		case <-sub.Done():
		}
		buf, err = sub.Next(buf[:0])
		p := sse.NewParser(bytes.NewReader(buf))
		for ev, perr := p.Next(); perr == nil; ev, perr = p.Next() {
			h.endLocal(ev.Type, ev.Data)
		}
	}
	sub.Close()
	h.fmu.Lock()
	h.following = false
	h.fmu.Unlock()
	if !errors.Is(err, hub.ErrClosed) {
		h.log.Warn("inbox: following session ends stopped; ending this instance's inbox streams, whose reconnects check their sessions", "err", err)
		h.endLocal("all", "")
	}
}

// endLocal ends this instance's streams of a session (kind "session") or
// of a user (kind "user").
func (h *Inbox) endLocal(kind, who string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.streams {
		switch {
		case kind == "session" && s.session == who:
			s.end(sessionEnded("this session was signed out"))
		case kind == "user" && s.user == who:
			s.end(sessionEnded("every session of " + who + " was signed out"))
		case kind == "all":
			s.end(checkAgain{})
		}
	}
}

// session is the request's valid session: its id's digest and the
// session, or ok false (no cookie, an unknown, ended or expired id, or
// one made before "sign out everywhere").
func (h *Inbox) session(c echo.Context) (digest string, s inbox.Session, ok bool, err error) {
	ck, cerr := c.Cookie(cookieName(c, inboxCookie))
	if cerr != nil || len(ck.Value) != 43 {
		return "", inbox.Session{}, false, nil
	}
	digest = sessionDigest(ck.Value)
	ctx := c.Request().Context()
	s, ok, err = h.store.Session(ctx, digest)
	if err != nil || !ok {
		return "", inbox.Session{}, false, err
	}
	a, found, err := h.store.Account(ctx, s.User)
	if err != nil || !found || a.Gen != s.Gen {
		return "", inbox.Session{}, false, err
	}
	return digest, s, true, nil
}

// sessionDigest is what the store and the ends channel know of a session:
// the SHA-256 of its id, so that neither holds a cookie's value.
func sessionDigest(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16])
}

// userChannel is the hub channel of a user's inbox.
func userChannel(user string) string {
	sum := sha256.Sum256([]byte(user))
	return "inbox:" + hex.EncodeToString(sum[:16])
}

// Page shows the sign-in form, or the signed-in user's inbox.
func (h *Inbox) Page(c echo.Context) error {
	_, s, ok, err := h.session(c)
	if err != nil {
		return unavailable(c, hub.ErrUnavailable)
	}
	vm := views.InboxVM{MaxMessage: MaxMessageBytes, MinPassword: MinPassword, MaxPassword: MaxPassword}
	if ok {
		vm.User = s.User
	}
	return render(c, http.StatusOK, views.InboxPage(vm))
}

// Login signs in: the first time for a name claims it (unless it looks
// like a name in use); later, only with the same password.
func (h *Inbox) Login(c echo.Context) error {
	ctx := c.Request().Context()
	// Every attempt from a client counts, bad input too; then every
	// attempt for a name. Past either, 429 before any hashing.
	if err := h.limit(c, "client:"+c.RealIP(), attemptsPerClient, "from your address"); err != nil {
		return err
	}
	raw, err := formValue(c, "user")
	if err != nil {
		return err
	}
	password, err := formValue(c, "password")
	if err != nil {
		return err
	}
	name, err := normalUser(raw)
	if err != nil {
		return badRequest("%v", err)
	}
	if n := len(password); n < MinPassword || n > MaxPassword {
		return badRequest("password must be %d to %d bytes; got %d", MinPassword, MaxPassword, n)
	}
	if err := h.limit(c, "name:"+name, attemptsPerName, "for "+quote(name)); err != nil {
		return err
	}
	gen, err := h.checkPassword(c, name, password)
	if err != nil {
		return err
	}
	id := newSessionID()
	s := inbox.Session{User: name, Gen: gen, Expires: time.Now().Add(h.ttl)}
	if err := h.store.PutSession(ctx, sessionDigest(id), s); err != nil {
		return unavailable(c, hub.ErrFull)
	}
	c.SetCookie(&http.Cookie{Name: cookieName(c, inboxCookie), Value: id, Path: "/inbox/", HttpOnly: true, Secure: c.IsTLS(),
		SameSite: http.SameSiteStrictMode, MaxAge: int(h.ttl / time.Second)})
	return c.Redirect(http.StatusSeeOther, "/inbox/")
}

// limit counts an attempt under key: 429 with Retry-After past most in
// attemptsWindow.
func (h *Inbox) limit(c echo.Context, key string, most int64, what string) error {
	n, left, err := h.store.Hit(c.Request().Context(), key, attemptsWindow)
	if err != nil && !errors.Is(err, inbox.ErrFull) {
		return unavailable(c, hub.ErrUnavailable)
	}
	if err == nil && n <= most {
		return nil
	}
	if left <= 0 {
		left = attemptsWindow
	}
	c.Response().Header().Set("Retry-After", strconv.Itoa(int((left+time.Second-1)/time.Second)))
	return echo.NewHTTPError(http.StatusTooManyRequests,
		fmt.Sprintf("too many sign-in attempts %s: at most %d in %v; try again in %v", what, most, attemptsWindow, left.Round(time.Second)))
}

// checkPassword claims name with password, or checks password against
// the name's: nil when the person may sign in as name, with the account's
// generation for the session.
func (h *Inbox) checkPassword(c echo.Context, name, password string) (int64, error) {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 5*time.Second)
	defer cancel()
	a, ok, err := h.store.Account(ctx, name)
	if err != nil {
		return 0, unavailable(c, hub.ErrUnavailable)
	}
	if !ok {
		hash, err := inbox.Hash(ctx, password)
		if err != nil {
			return 0, busy(c)
		}
		owner, err := h.store.Claim(ctx, inbox.Account{Name: name, Hash: hash}, inbox.Skeleton(name))
		switch {
		case errors.Is(err, inbox.ErrLookalike):
			return 0, echo.NewHTTPError(http.StatusConflict, fmt.Sprintf("user %s looks like %s, a name in use: choose another", quote(name), quote(owner)))
		case errors.Is(err, inbox.ErrExists):
			return h.checkPassword(c, name, password) // claimed at the same moment: sign in as it
		case errors.Is(err, inbox.ErrFull):
			return 0, unavailable(c, hub.ErrFull)
		case err != nil:
			return 0, unavailable(c, hub.ErrUnavailable)
		}
		return 0, nil // a new account's generation
	}
	good, err := inbox.Verify(ctx, password, a.Hash)
	if errors.Is(err, inbox.ErrBusy) {
		return 0, busy(c)
	}
	if err != nil || !good {
		return 0, echo.NewHTTPError(http.StatusUnauthorized, fmt.Sprintf("wrong password for %s (the name is claimed: its first sign-in set the password)", quote(name)))
	}
	return a.Gen, nil
}

// busy answers a sign-in that found no hashing slot in time.
func busy(c echo.Context) error {
	c.Response().Header().Set("Retry-After", "2")
	return echo.NewHTTPError(http.StatusServiceUnavailable, "too many sign-ins at once; try again in a moment")
}

func newSessionID() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b) // 43 characters
}

// Logout ends this session, or with everywhere=1 every session of its
// user; their streams end on every instance.
func (h *Inbox) Logout(c echo.Context) error {
	v, err := formValue(c, "everywhere")
	if err != nil {
		return err
	}
	if v != "" && v != "0" && v != "1" {
		return badRequest("everywhere must be 1 or 0; got %s", quote(v))
	}
	everywhere := v == "1"
	digest, s, ok, err := h.session(c)
	if err != nil {
		return unavailable(c, hub.ErrUnavailable)
	}
	c.SetCookie(&http.Cookie{Name: cookieName(c, inboxCookie), Value: "", Path: "/inbox/", HttpOnly: true, Secure: c.IsTLS(),
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	if ok {
		ctx := c.Request().Context()
		end := hub.Message{Type: "session", Data: digest}
		if err = h.store.EndSession(ctx, digest); err == nil && everywhere {
			_, err = h.store.EndAll(ctx, s.User)
			end = hub.Message{Type: "user", Data: s.User}
		}
		if err == nil {
			err = h.b.Publish(ctx, []string{EndsChannel}, end)
		}
		if err != nil {
			return unavailable(c, hub.ErrUnavailable)
		}
	}
	return c.Redirect(http.StatusSeeOther, "/inbox/")
}

// Stream is the signed-in user's own stream: the latest messages, then
// live, with ids and replay within the user's channel. Nothing in the
// request but the session cookie chooses whose it is. Without a valid
// session: 401, which makes EventSource stop for good.
func (h *Inbox) Stream(c echo.Context) error {
	digest, s, ok, err := h.session(c)
	if err != nil {
		return sse.Refuse(c.Response(), refusal(hub.ErrUnavailable))
	}
	if !ok {
		return echo.NewHTTPError(http.StatusUnauthorized, "not signed in, or the session ended: sign in at /inbox/")
	}
	ctx, end := context.WithCancelCause(c.Request().Context())
	defer end(nil)
	expiry := time.AfterFunc(time.Until(s.Expires), func() { end(sessionEnded("the session expired")) })
	defer expiry.Stop()
	st := &inboxStream{session: digest, user: s.User, end: end}
	h.mu.Lock()
	h.streams[st] = struct{}{}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.streams, st)
		h.mu.Unlock()
	}()
	// Registered and following first, checked again after: a sign-out
	// between the two is seen here or by endLocal.
	if err := h.follow(); err != nil {
		return sse.Refuse(c.Response(), refusal(err))
	}
	if _, _, still, err := h.session(c); err != nil || !still {
		return echo.NewHTTPError(http.StatusUnauthorized, "the session ended: sign in at /inbox/")
	}
	c.SetRequest(c.Request().WithContext(ctx))
	r := hub.Request{Channels: []string{userChannel(s.User)}, Recent: inboxRecent}
	return serveChannel(c, h.b, r, h.keepalive, nil)
}

// Send delivers a message to another user's inbox.
func (h *Inbox) Send(c echo.Context) error {
	_, s, ok, err := h.session(c)
	if err != nil {
		return unavailable(c, hub.ErrUnavailable)
	}
	if !ok {
		return echo.NewHTTPError(http.StatusUnauthorized, "not signed in: sign in at /inbox/ first")
	}
	rawTo, err := formValue(c, "to")
	if err != nil {
		return err
	}
	msg, err := formValue(c, "message")
	if err != nil {
		return err
	}
	to, err := normalUser(rawTo)
	if err != nil {
		return badRequest("to: %v", err)
	}
	if err := checkMessage(msg); err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, found, err := h.store.Account(ctx, to); err != nil {
		return unavailable(c, hub.ErrUnavailable)
	} else if !found {
		return echo.NewHTTPError(http.StatusNotFound, fmt.Sprintf("no user %s: a name exists once its first sign-in claims it", quote(to)))
	}
	line := fmt.Sprintf("[%s] %s: %s", time.Now().Format("15:04:05"), s.User, msg)
	if err := h.b.Publish(ctx, []string{userChannel(to)}, hub.Message{Type: "message", Data: line}); err != nil {
		return unavailable(c, err)
	}
	// A plain HTML form (no script) navigates: back to the inbox.
	if strings.Contains(c.Request().Header.Get("Accept"), "text/html") {
		return c.Redirect(http.StatusSeeOther, "/inbox/")
	}
	return c.NoContent(http.StatusNoContent)
}
