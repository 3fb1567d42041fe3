package handlers_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"testing/synctest"
)

// login returns the session cookie for user.
func login(t *testing.T, ts *testServer, user string) string {
	t.Helper()
	w := ts.do(http.MethodPost, "/chat/login", form("user", user), "Content-Type", formType)
	wantStatus(t, w.Code, http.StatusSeeOther, w.Body.String())
	if loc := w.Header().Get("Location"); loc != "/chat/" {
		t.Errorf("Location: got %q, want /chat/", loc)
	}
	ck := w.Result().Cookies()
	if len(ck) != 1 {
		t.Fatalf("got cookies %v, want the session", ck)
	}
	return ck[0].Name + "=" + ck[0].Value
}

var chatLine = regexp.MustCompile(`^\[\d\d:\d\d:\d\d\] (.+?): (?s)(.*)$`)

func TestChatPostAndStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t)
		w, leave, wait := ts.open(t.Context(), "/chat/stream")
		ann := login(t, ts, "Ann Lee")
		post := func(cookie, msg string, header ...string) int {
			h := append([]string{"Content-Type", formType, "Cookie", cookie}, header...)
			r := ts.do(http.MethodPost, "/chat/post", form("message", msg), h...)
			return r.Code
		}
		if got := post(ann, "hello"); got != http.StatusNoContent {
			t.Fatalf("post: got %d, want 204", got)
		}
		if got := post("", "from nobody"); got != http.StatusNoContent {
			t.Fatalf("anonymous post: got %d", got)
		}
		tampered := strings.Replace(ann, "=", "=x", 1)
		post(tampered, "tampered")
		post(ann, "two\nlines\r\nthree")
		post(ann, "<img src=x onerror=alert(1)>")
		if got := post(ann, "plain form", "Accept", "text/html,application/xhtml+xml"); got != http.StatusSeeOther {
			t.Errorf("plain HTML form post: got %d, want 303", got)
		}
		synctest.Wait()
		evs := parse(t, w.Flushed())
		want := [][2]string{
			{"Ann Lee", "hello"}, {"anonymous", "from nobody"}, {"anonymous", "tampered"},
			{"Ann Lee", "two\nlines\nthree"}, {"Ann Lee", "<img src=x onerror=alert(1)>"}, {"Ann Lee", "plain form"},
		}
		if len(evs) != len(want) {
			t.Fatalf("got %d events %+v, want %d", len(evs), evs, len(want))
		}
		for i, ev := range evs {
			m := chatLine.FindStringSubmatch(ev.Data)
			if m == nil || m[1] != want[i][0] || m[2] != want[i][1] || ev.ID == "" || ev.Type != "message" {
				t.Errorf("event %d: got %+v, want [HH:MM:SS] %s: %q with an id", i, ev, want[i][0], want[i][1])
			}
		}
		leave()
		wait()

		// A new page load replays the latest messages; a reconnect replays
		// after Last-Event-ID, by header or by query.
		w2, leave2, wait2 := ts.open(t.Context(), "/chat/stream")
		w3, leave3, wait3 := ts.open(t.Context(), "/chat/stream", "Last-Event-ID", evs[3].ID)
		w4, leave4, wait4 := ts.open(t.Context(), "/chat/stream?lastEventId="+evs[4].ID)
		synctest.Wait()
		if got := parse(t, w2.Flushed()); len(got) != 6 {
			t.Errorf("page load: got %d events, want the latest 6", len(got))
		}
		if got := parse(t, w3.Flushed()); len(got) != 2 || got[0].ID != evs[4].ID {
			t.Errorf("Last-Event-ID header: got %+v, want events 4 and 5", got)
		}
		if got := parse(t, w4.Flushed()); len(got) != 1 || got[0].ID != evs[5].ID {
			t.Errorf("lastEventId query: got %+v, want event 5", got)
		}
		leave2()
		leave3()
		leave4()
		wait2()
		wait3()
		wait4()
	})
}

func TestChatBadInput(t *testing.T) {
	ts := newServer(t)
	for _, tt := range []struct {
		path, body string
		code       int
		reason     string
	}{
		{"/chat/post", form("message", ""), http.StatusBadRequest, "message is empty"},
		{"/chat/post", form("message", " \n\t "), http.StatusBadRequest, "message is empty"},
		{"/chat/post", form("message", strings.Repeat("é", 2049)), http.StatusRequestEntityTooLarge, "message is 4098 bytes; the limit is 4096 bytes"},
		{"/chat/post", form("message", "\xff\xfe"), http.StatusBadRequest, "valid UTF-8"},
		{"/chat/login", form("user", ""), http.StatusBadRequest, "user must be 1 to 32 printable characters"},
		{"/chat/login", form("user", strings.Repeat("x", 33)), http.StatusBadRequest, "user must be 1 to 32 printable characters; got 33"},
		{"/chat/login", form("user", "bad\x07bell"), http.StatusBadRequest, "printable"},
		{"/chat/login", form("user", "line\nbreak"), http.StatusBadRequest, "printable"},
	} {
		w := ts.do(http.MethodPost, tt.path, tt.body, "Content-Type", formType)
		if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.reason) {
			t.Errorf("%s %q: got %d %q, want %d with %q", tt.path, tt.body, w.Code, w.Body.String(), tt.code, tt.reason)
		}
	}
	if w := ts.do(http.MethodPost, "/chat/post", form("message", strings.Repeat("x", 4096)), "Content-Type", formType); w.Code != http.StatusNoContent {
		t.Errorf("a message of exactly 4096 bytes: got %d, want 204", w.Code)
	}
	if w := ts.do(http.MethodPost, "/chat/login", form("user", strings.Repeat("ж", 32)), "Content-Type", formType); w.Code != http.StatusSeeOther {
		t.Errorf("a name of 32 characters: got %d, want 303", w.Code)
	}
	if w := ts.do(http.MethodPost, "/chat/post", form("message", "x"), "Content-Type", formType, "Origin", "http://evil.example"); w.Code != http.StatusForbidden {
		t.Errorf("cross-origin post: got %d, want 403", w.Code)
	}
}

func TestChatPageShowsFormThenUser(t *testing.T) {
	ts := newServer(t)
	w := ts.do(http.MethodGet, "/chat/", "")
	wantContains(t, w.Body.String(), `data-testid="login"`)
	w = ts.do(http.MethodGet, "/chat/", "", "Cookie", login(t, ts, "<b>ann</b>"))
	wantContains(t, w.Body.String(), `&lt;b&gt;ann&lt;/b&gt;`)
}

// Over TLS the session cookie is __Secure-sselab_session, Secure: a plain
// sselab on the same host (cookies ignore the port) cannot overwrite it,
// and the browser would refuse a plain one that shadows it.
func TestChatSessionCookieOverTLS(t *testing.T) {
	ts := newServer(t)
	w := ts.do(http.MethodPost, "https://example.com/chat/login", form("user", "ann"), "Content-Type", formType, "Origin", "https://example.com")
	wantStatus(t, w.Code, http.StatusSeeOther, w.Body.String())
	ck := w.Result().Cookies()
	if len(ck) != 1 || ck[0].Name != "__Secure-sselab_session" || !ck[0].Secure || !ck[0].HttpOnly {
		t.Fatalf("got cookies %v, want one __Secure-sselab_session, Secure and HttpOnly", ck)
	}
	page := ts.do(http.MethodGet, "https://example.com/chat/", "", "Cookie", ck[0].Name+"="+ck[0].Value)
	wantContains(t, page.Body.String(), "ann")
}

// Names go through PRECIS's Nickname profile: width and compatibility
// forms become one name, spaces are trimmed and collapsed, and what cannot
// be shown (invisible fillers, zero-width characters) is refused, so that
// a name that looks like ann is ann.
func TestChatNamesNormalised(t *testing.T) {
	ts := newServer(t)
	for raw, want := range map[string]string{
		"ａｎｎ":           "ann", // fullwidth
		"  ann   lee  ": "ann lee",
		"ﬁona":          "fiona", // a ligature
	} {
		w := ts.do(http.MethodPost, "/chat/login", form("user", raw), "Content-Type", formType)
		wantStatus(t, w.Code, http.StatusSeeOther, w.Body.String())
		page := ts.do(http.MethodGet, "/chat/", "", "Cookie", strings.SplitN(w.Header().Get("Set-Cookie"), ";", 2)[0])
		wantContains(t, page.Body.String(), `<b data-testid="user">`+want+`</b>`)
	}
	for _, raw := range []string{"al\u200bice", "\u3164", "ann\u2066", "bob\u00ad"} {
		w := ts.do(http.MethodPost, "/chat/login", form("user", raw), "Content-Type", formType)
		wantStatus(t, w.Code, http.StatusBadRequest, w.Body.String())
		wantContains(t, w.Body.String(), "is not a name that can be shown")
	}
}
