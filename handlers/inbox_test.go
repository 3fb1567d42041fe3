package handlers_test

import (
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"sselab/app"
	"sselab/app/sse/ssetest"
)

// signIn signs user in with password and returns the session cookie.
func signIn(t *testing.T, ts *testServer, user, password string, header ...string) string {
	t.Helper()
	w := ts.do(http.MethodPost, "/inbox/login", form("user", user, "password", password), append([]string{"Content-Type", formType}, header...)...)
	wantStatus(t, w.Code, http.StatusSeeOther, w.Body.String())
	ck := w.Result().Cookies()
	if len(ck) != 1 {
		t.Fatalf("cookies %v, want the session", ck)
	}
	return ck[0].Name + "=" + ck[0].Value
}

// stream is an inbox stream a test holds open.
type stream struct {
	w     *ssetest.Recorder
	leave func()
	ended atomic.Bool
}

func openInbox(t *testing.T, ts *testServer, header ...string) *stream {
	t.Helper()
	w, leave, wait := ts.open(t.Context(), "/inbox/stream", header...)
	s := &stream{w: w, leave: leave}
	go func() { wait(); s.ended.Store(true) }()
	t.Cleanup(func() { leave() })
	return s
}

func (s *stream) messages(t *testing.T) []string {
	var got []string
	for _, ev := range parse(t, s.w.Flushed()) {
		if ev.Type == "message" {
			got = append(got, ev.Data)
		}
	}
	return got
}

// The first sign-in claims a name; later ones need its password. Names
// that look like one in use are refused; bounds are 400s; the cookie is
// HttpOnly, SameSite=Strict, on /inbox/ only, and Secure with the
// __Secure- prefix over TLS.
func TestInboxSignIn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t)
		login := func(user, password string) (int, string) {
			w := ts.do(http.MethodPost, "/inbox/login", form("user", user, "password", password), "Content-Type", formType)
			return w.Code, w.Body.String()
		}
		w := ts.do(http.MethodPost, "/inbox/login", form("user", "alice", "password", "correct horse"), "Content-Type", formType)
		wantStatus(t, w.Code, http.StatusSeeOther, w.Body.String())
		set := w.Header().Get("Set-Cookie")
		for _, want := range []string{"sselab_inbox=", "Path=/inbox/", "HttpOnly", "SameSite=Strict", "Max-Age=86400"} {
			wantContains(t, set, want)
		}
		if strings.Contains(set, "Secure") {
			t.Errorf("a plain-HTTP cookie marked Secure: %q", set)
		}
		for _, c := range []struct {
			user, password string
			want           int
			why            string
		}{
			{"alice", "correct horse", http.StatusSeeOther, "the same password"},
			{"ａｌｉｃｅ", "correct horse", http.StatusSeeOther, "the same name in fullwidth, normalised"},
			{"alice", "wrong horse!", http.StatusUnauthorized, "another password"},
			{"аlice", "correct horse", http.StatusConflict, "a Cyrillic а"},
			{"Alice", "correct horse", http.StatusConflict, "another case"},
			{"a1ice", "correct horse", http.StatusConflict, "a digit one for an l"},
			{"alice\u200b", "correct horse", http.StatusBadRequest, "an invisible character"},
			{"bob", "short", http.StatusBadRequest, "a password under 8 bytes"},
			{"bob", strings.Repeat("p", 129), http.StatusBadRequest, "a password over 128 bytes"},
			{strings.Repeat("b", 33), "long enough", http.StatusBadRequest, "a name over 32 characters"},
		} {
			if got, body := login(c.user, c.password); got != c.want || got >= 400 && strings.TrimSpace(body) == "" {
				t.Errorf("%s (%q): %d %q, want %d with a reason", c.why, c.user, got, body, c.want)
			}
		}
		tls := ts.do(http.MethodPost, "https://example.com/inbox/login", form("user", "carol", "password", "carol's password"), "Content-Type", formType)
		wantStatus(t, tls.Code, http.StatusSeeOther, tls.Body.String())
		if set := tls.Header().Get("Set-Cookie"); !strings.HasPrefix(set, "__Secure-sselab_inbox=") || !strings.Contains(set, "Secure") {
			t.Errorf("over TLS: %q, want a __Secure- cookie marked Secure", set)
		}
	})
}

// A password-guessing loop meets 429 with Retry-After: per name after 10
// attempts in five minutes, per client after 30 (bad input included),
// before any hashing; the window passes and attempts are allowed again.
func TestInboxSignInLimits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t)
		signIn(t, ts, "dave", "dave's password")
		var got []int
		for i := range 12 {
			w := ts.do(http.MethodPost, "/inbox/login", form("user", "dave", "password", "guess number "+strconv.Itoa(i)), "Content-Type", formType, "X-Real-Ip", "192.0.2.1")
			got = append(got, w.Code)
			if w.Code == http.StatusTooManyRequests {
				if ra, _ := strconv.Atoi(w.Header().Get("Retry-After")); ra < 1 || ra > 300 {
					t.Errorf("Retry-After %q, want 1..300 s", w.Header().Get("Retry-After"))
				}
				wantContains(t, w.Body.String(), `for "dave"`)
			}
		}
		// The first sign-in was the name's first attempt.
		if got[8] != http.StatusUnauthorized || got[9] != http.StatusTooManyRequests || got[11] != http.StatusTooManyRequests {
			t.Errorf("statuses %v: want 401 nine times, then 429", got)
		}
		time.Sleep(5 * time.Minute)
		signIn(t, ts, "dave", "dave's password")
		time.Sleep(5 * time.Minute)

		var last int
		for i := range 31 {
			w := ts.do(http.MethodPost, "/inbox/login", form("user", "erin"+strconv.Itoa(i), "password", "short"), "Content-Type", formType)
			last = w.Code
			if i < 30 && w.Code != http.StatusBadRequest {
				t.Fatalf("attempt %d: %d, want 400 (a short password)", i, w.Code)
			}
		}
		if last != http.StatusTooManyRequests {
			t.Errorf("the 31st attempt from one address: %d, want 429", last)
		}
	})
}

// Nothing in the request but the session makes a stream someone's: bob
// asks for alice's by every parameter and header he can think of, and
// with an id from her stream, and gets only his own; without a session,
// with a tampered or made-up cookie, 401.
func TestInboxStreamIsYours(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t)
		alice, bob := signIn(t, ts, "alice", "alice's password"), signIn(t, ts, "bob", "bob's password")
		hers := openInbox(t, ts, "Cookie", alice)
		synctest.Wait()
		w := ts.do(http.MethodPost, "/inbox/send", form("to", "alice", "message", "for alice only"), "Content-Type", formType, "Cookie", bob)
		wantStatus(t, w.Code, http.StatusNoContent, w.Body.String())
		synctest.Wait()
		evs := parse(t, hers.w.Flushed())
		if len(evs) != 1 || !strings.HasSuffix(evs[0].Data, "] bob: for alice only") || evs[0].ID == "" {
			t.Fatalf("alice's stream: %+v", evs)
		}
		herID := evs[0].ID
		for _, tries := range [][]string{
			{"/inbox/stream?user=alice"}, {"/inbox/stream?to=alice&channel=inbox:alice"},
			{"/inbox/stream?lastEventId=0"}, {"/inbox/stream", "Last-Event-ID", "0"},
			{"/inbox/stream", "X-User", "alice"}, {"/inbox/stream", "X-Forwarded-User", "alice", "X-Real-Ip", "10.0.0.1"},
		} {
			header := append([]string{"Cookie", bob}, tries[1:]...)
			w, leave, wait := ts.open(t.Context(), tries[0], header...)
			synctest.Wait()
			if strings.Contains(w.Flushed(), "for alice only") || strings.Contains(w.Flushed(), "event: message") {
				t.Errorf("bob asking %v: got %q, want no message (his inbox is empty)", tries, w.Flushed())
			}
			leave()
			wait()
		}
		for _, cookie := range []string{"", "sselab_inbox=" + strings.Repeat("A", 43), alice[:len(alice)-1] + "x", "sselab_inbox=../alice", "sselab_session=alice"} {
			w := ts.do(http.MethodGet, "/inbox/stream", "", "Cookie", cookie)
			wantStatus(t, w.Code, http.StatusUnauthorized, w.Body.String())
			if strings.TrimSpace(w.Body.String()) == "" {
				t.Error("401 without a reason")
			}
		}
		// Replay stays inside bob's channel: alice's id gives him nothing of hers.
		w2, leave, wait := ts.open(t.Context(), "/inbox/stream", "Cookie", bob, "Last-Event-ID", herID)
		synctest.Wait()
		if strings.Contains(w2.Flushed(), "for alice only") {
			t.Errorf("bob, with alice's id: %q", w2.Flushed())
		}
		leave()
		wait()
	})
}

// Sign-out ends the streams of that session at once, not the user's other
// sessions; "everywhere" ends all of them; a reconnect with the dead
// session is 401; the session's expiry ends its streams too.
func TestInboxSessionsEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t, func(c *app.Config) { c.SessionTTL = 30 * time.Second })
		one, two, three := signIn(t, ts, "ann", "ann's password"), signIn(t, ts, "ann", "ann's password"), signIn(t, ts, "ann", "ann's password")
		tabA, tabB, other := openInbox(t, ts, "Cookie", one), openInbox(t, ts, "Cookie", one), openInbox(t, ts, "Cookie", two)
		synctest.Wait()
		w := ts.do(http.MethodPost, "/inbox/logout", "", "Cookie", one)
		wantStatus(t, w.Code, http.StatusSeeOther, w.Body.String())
		synctest.Wait()
		if !tabA.ended.Load() || !tabB.ended.Load() || other.ended.Load() {
			t.Fatalf("after sign-out: tabs ended %v %v, other session ended %v; want true true false", tabA.ended.Load(), tabB.ended.Load(), other.ended.Load())
		}
		wantContains(t, tabA.w.Flushed(), "event: ended\ndata: this session was signed out\n")
		wantStatus(t, ts.do(http.MethodGet, "/inbox/stream", "", "Cookie", one).Code, http.StatusUnauthorized, "")
		wantStatus(t, ts.do(http.MethodPost, "/inbox/send", form("to", "ann", "message", "x"), "Content-Type", formType, "Cookie", one).Code, http.StatusUnauthorized, "")

		w = ts.do(http.MethodPost, "/inbox/logout", form("everywhere", "1"), "Content-Type", formType, "Cookie", two)
		wantStatus(t, w.Code, http.StatusSeeOther, w.Body.String())
		synctest.Wait()
		if !other.ended.Load() {
			t.Fatal("sign out everywhere left a stream of the user open")
		}
		for _, ck := range []string{two, three} {
			wantStatus(t, ts.do(http.MethodGet, "/inbox/stream", "", "Cookie", ck).Code, http.StatusUnauthorized, "")
		}

		four := signIn(t, ts, "ann", "ann's password")
		late := openInbox(t, ts, "Cookie", four)
		time.Sleep(29 * time.Second) // within the test's stream deadline of a minute
		synctest.Wait()
		if late.ended.Load() {
			t.Fatal("the stream ended before its session expired")
		}
		time.Sleep(time.Second)
		synctest.Wait()
		if !late.ended.Load() {
			t.Fatal("the stream outlived its session")
		}
		wantContains(t, late.w.Flushed(), "data: the session expired\n")
		wantStatus(t, ts.do(http.MethodGet, "/inbox/stream", "", "Cookie", four).Code, http.StatusUnauthorized, "")
	})
}

// Sending: 204, or 303 for a plain form; not signed in 401; unknown user
// 404; the chat's message bounds; a message cannot forge a field.
func TestInboxSend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t)
		fay, gus := signIn(t, ts, "fay", "fay's password"), signIn(t, ts, "gus", "gus's password")
		hers := openInbox(t, ts, "Cookie", fay)
		synctest.Wait()
		send := func(cookie, to, msg string, header ...string) int {
			return ts.do(http.MethodPost, "/inbox/send", form("to", to, "message", msg), append([]string{"Content-Type", formType, "Cookie", cookie}, header...)...).Code
		}
		for _, c := range []struct {
			cookie, to, msg string
			header          []string
			want            int
		}{
			{gus, "fay", "hi\r\nevent: forged\rid: 7\n\ndata: x", nil, http.StatusNoContent},
			{gus, "fay", "from a form", []string{"Accept", "text/html"}, http.StatusSeeOther},
			{"", "fay", "anonymous", nil, http.StatusUnauthorized},
			{gus, "nobody", "hello?", nil, http.StatusNotFound},
			{gus, "fay", "   ", nil, http.StatusBadRequest},
			{gus, "fay", strings.Repeat("x", 4097), nil, http.StatusRequestEntityTooLarge},
			{gus, "fay\x00", "x", nil, http.StatusBadRequest},
		} {
			if got := send(c.cookie, c.to, c.msg, c.header...); got != c.want {
				t.Errorf("send to %q %q: %d, want %d", c.to, c.msg, got, c.want)
			}
		}
		synctest.Wait()
		got := hers.messages(t)
		if len(got) != 2 || !strings.HasSuffix(got[0], "] gus: hi\nevent: forged\nid: 7\n\ndata: x") {
			t.Errorf("fay's inbox: %q", got)
		}
		if raw := hers.w.Flushed(); strings.Contains(raw, "\nevent: forged") || strings.Contains(raw, "\nid: 7\n") {
			t.Errorf("a forged field: %q", raw)
		}
	})
}

// From the site's own pages only: a foreign Origin or a cross-site fetch
// is refused on every inbox route that acts or reads, and the stream has
// no CORS allowance.
func TestInboxCrossOrigin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t)
		hal := signIn(t, ts, "hal", "hal's password")
		for _, r := range []struct{ method, path, body string }{
			{http.MethodPost, "/inbox/login", form("user", "hal", "password", "hal's password")},
			{http.MethodPost, "/inbox/send", form("to", "hal", "message", "x")},
			{http.MethodPost, "/inbox/logout", ""},
			{http.MethodGet, "/inbox/stream", ""},
		} {
			for _, h := range [][]string{{"Origin", "https://evil.example"}, {"Sec-Fetch-Site", "cross-site"}} {
				w := ts.do(r.method, r.path, r.body, "Content-Type", formType, "Cookie", hal, h[0], h[1])
				if w.Code != http.StatusForbidden || w.Header().Get("Access-Control-Allow-Origin") != "" {
					t.Errorf("%s %s with %s: %d, ACAO %q; want 403 and no allowance", r.method, r.path, h, w.Code, w.Header().Get("Access-Control-Allow-Origin"))
				}
			}
		}
		s := openInbox(t, ts, "Cookie", hal, "Origin", "http://example.com", "Host", "example.com")
		synctest.Wait()
		if s.w.Header().Get("Access-Control-Allow-Origin") != "" {
			t.Error("the stream allows another origin")
		}
	})
}
