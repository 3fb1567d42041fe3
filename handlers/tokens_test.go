package handlers_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"

	"sselab/app"
	"sselab/app/sse"
	"sselab/handlers"
)

func TestTokensActions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t, func(c *app.Config) { c.IDs = true })
		w1, _, wait1 := ts.open(t.Context(), "/tokens/abc/poll")
		w2, _, wait2 := ts.open(t.Context(), "/tokens/abc/poll")
		other, leaveOther, waitOther := ts.open(t.Context(), "/tokens/other/poll")
		synctest.Wait()

		w := ts.do(http.MethodPost, "/tokens/abc/ping", "42")
		if w.Code != http.StatusOK || w.Body.String() != "2 listeners reached\n" {
			t.Fatalf("ping: got %d %q", w.Code, w.Body.String())
		}
		w = ts.do(http.MethodPost, "/tokens/abc/retry", "data=1500", "Content-Type", "application/x-www-form-urlencoded")
		wantStatus(t, w.Code, http.StatusOK, w.Body.String())
		w = ts.do(http.MethodPost, "/tokens/abc/close", "bye")
		wantStatus(t, w.Code, http.StatusOK, w.Body.String())
		wait1() // close ends every listener's stream
		wait2()
		for _, rec := range []string{w1.Flushed(), w2.Flushed()} {
			evs := parse(t, rec)
			if len(evs) != 2 || evs[0].Type != "ping" || evs[0].Data != "42" || evs[0].ID == "" ||
				evs[1].Type != "close" || evs[1].Data != "bye" {
				t.Errorf("listener got %+v, want ping 42 with an id, then close", evs)
			}
			wantContains(t, rec, "retry: 1500\n\n")
		}
		if got := other.Flushed(); got != sse.Opening {
			t.Errorf("another token's listener got %q", got)
		}
		w = ts.do(http.MethodPost, "/tokens/nobody/ping", "x")
		if w.Body.String() != "0 listeners reached\n" {
			t.Errorf("no listeners: got %q", w.Body.String())
		}
		leaveOther()
		waitOther()
	})
}

func TestTokensWithoutIDs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t)
		w, leave, wait := ts.open(t.Context(), "/tokens/abc/poll")
		synctest.Wait()
		ts.do(http.MethodPost, "/tokens/abc/ping", "a\nb")
		synctest.Wait()
		if got := w.Flushed(); got != sse.Opening+"event: ping\ndata: a\ndata: b\n\n" {
			t.Errorf("got %q, want a ping without an id, its lines as data lines", got)
		}
		leave()
		wait()
	})
}

func TestTokensBadInput(t *testing.T) {
	ts := newServer(t, func(c *app.Config) { c.JSON = true })
	for _, tt := range []struct {
		method, path, body string
		code               int
		reason             string
	}{
		{"GET", "/tokens/" + strings.Repeat("x", 65) + "/poll", "", 400, "token must be 1 to 64 characters"},
		{"GET", "/tokens/a%20b/poll", "", 400, "token must be"},
		{"POST", "/tokens/a%2Fb/ping", "1", 400, "token must be"},
		{"POST", "/tokens/abc/explode", "1", 404, `unknown action "explode"; the actions are ping, close, retry`},
		{"GET", "/tokens/abc/ping", "", 405, "Method Not Allowed"},
		{"POST", "/tokens/abc/ping", "not json", 400, "data must be valid JSON: invalid character 'o' in literal null"},
		{"POST", "/tokens/abc/retry", "-5", 400, "retry data must be a whole number of milliseconds from 0 to 600000"},
		{"POST", "/tokens/abc/retry", "1.5", 400, "retry data must be a whole number"},
		{"POST", "/tokens/abc/retry", "600001", 400, "from 0 to 600000"},
		{"POST", "/tokens/abc/retry", "2147483647", 400, "from 0 to 600000"},
		{"POST", "/tokens/abc/retry", "600000", 200, "0 listeners reached"},
		{"POST", "/tokens/abc/ping", `{"ok": true}`, 200, "0 listeners reached"},
		{"POST", "/tokens/abc/retry", "250", 200, "0 listeners reached"},
	} {
		w := ts.do(tt.method, tt.path, tt.body)
		if w.Code != tt.code || !strings.Contains(w.Body.String(), tt.reason) {
			t.Errorf("%s %s %q: got %d %q, want %d with %q", tt.method, tt.path, tt.body, w.Code, w.Body.String(), tt.code, tt.reason)
		}
	}
}

func TestTokensPage(t *testing.T) {
	ts := newServer(t, func(c *app.Config) { c.JSON, c.IDs = true, true })
	w := ts.do(http.MethodGet, "/tokens/", "")
	wantStatus(t, w.Code, http.StatusOK, "")
	for _, want := range []string{`data-testid="post-ping"`, `data-testid="post-close"`, `data-testid="post-retry"`, "valid <b>JSON</b>", "carry <b>ids</b>"} {
		wantContains(t, w.Body.String(), want)
	}
}

// curl -d 42 sends "42" form-encoded, with no field named data: the
// listener gets 42, as the README's line says.
func TestTokensCurlData(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t)
		rec, leave, wait := ts.open(t.Context(), "/tokens/demo/poll")
		synctest.Wait()
		form := "application/x-www-form-urlencoded"
		for _, body := range []string{"42", url.Values{"data": {"43"}}.Encode()} {
			if w := post(ts, "/tokens/demo/ping", form, strings.NewReader(body), int64(len(body))); w.Code != http.StatusOK {
				t.Fatalf("ping %q: %d %q", body, w.Code, w.Body.String())
			}
		}
		if w := post(ts, "/tokens/demo/retry", form, strings.NewReader("5000"), 4); w.Code != http.StatusOK {
			t.Fatalf("retry 5000: %d %q", w.Code, w.Body.String())
		}
		synctest.Wait()
		evs := parse(t, rec.Flushed())
		if len(evs) != 2 || evs[0].Data != "42" || evs[1].Data != "43" {
			t.Errorf("got %+v, want pings 42 and 43", evs)
		}
		wantContains(t, rec.Flushed(), "retry: 5000\n")
		leave()
		wait()
	})
}

// The retry action's data: only 0 to 600000 ms is accepted, whatever is
// posted and however.
func FuzzTokenRetry(f *testing.F) {
	f.Add("5000", false)
	f.Add("data=600000", true)
	f.Add("2147483647", false)
	f.Add(" 42\n", true)
	ts := newServer(f)
	f.Fuzz(func(t *testing.T, body string, form bool) {
		ct := "text/plain"
		if form {
			ct = "application/x-www-form-urlencoded"
		}
		w := ts.do(http.MethodPost, "/tokens/fuzz/retry", body, "Content-Type", ct)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("retry %q: %d %q", body, w.Code, w.Body.String())
		}
		if w.Code == http.StatusOK {
			data := body
			if v, err := url.ParseQuery(body); form && err == nil && v.Has("data") {
				data = v.Get("data")
			}
			if ms, err := strconv.ParseUint(strings.TrimSpace(data), 10, 64); err != nil || ms > handlers.MaxRetry {
				t.Fatalf("retry %q accepted", body)
			}
		}
	})
}
