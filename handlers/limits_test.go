package handlers_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"

	"sselab/app"
	"sselab/handlers"
)

// wantRefusal checks rule 7: a stream that cannot be served now is a 200
// event stream with Retry-After, a comment naming the reason, a retry
// spread over 2-10 s, and the end, which EventSource recovers from.
func wantRefusal(t *testing.T, w *httptest.ResponseRecorder, reason string) {
	t.Helper()
	wantStatus(t, w.Code, http.StatusOK, w.Body.String())
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("Content-Type %q, want text/event-stream", ct)
	}
	ra, err := strconv.Atoi(w.Header().Get("Retry-After"))
	if err != nil || ra < 2 || ra > 10 {
		t.Errorf("Retry-After %q, want 2 to 10 seconds", w.Header().Get("Retry-After"))
	}
	body := w.Body.String()
	wantContains(t, body, ": "+reason)
	i := strings.Index(body, "retry: ")
	if i < 0 {
		t.Fatalf("no retry field in %q", body)
	}
	ms, _ := strconv.Atoi(strings.TrimSpace(body[i+7 : i+7+strings.IndexByte(body[i+7:], '\n')]))
	if ms < 2000 || ms > 10000 {
		t.Errorf("retry %d ms, want 2000 to 10000", ms)
	}
	if evs := parse(t, body); len(evs) != 0 {
		t.Errorf("a refusal dispatched events: %+v", evs)
	}
}

// The retries of refused clients are spread, not all the same.
func TestRefusalRetriesSpread(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t, func(c *app.Config) { c.MaxStreams = 1 })
		_, leave, wait := ts.open(t.Context(), "/tokens/a/poll")
		synctest.Wait()
		seen := map[string]bool{}
		for range 20 {
			w := ts.do(http.MethodGet, "/tokens/b/poll", "")
			seen[w.Body.String()] = true
		}
		if len(seen) < 5 {
			t.Errorf("20 refusals carried %d distinct retry values, want them spread", len(seen))
		}
		leave()
		wait()
	})
}

// A stream on a channel the server may not make now (past -max-channels)
// is refused the rule 7 way; a publish gets 503 with Retry-After.
func TestChannelBoundRefusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t, func(c *app.Config) { c.MaxChannels = 1 })
		_, leave, wait := ts.open(t.Context(), "/tokens/a/poll")
		synctest.Wait()
		wantRefusal(t, ts.do(http.MethodGet, "/tokens/b/poll", ""), "the server is at capacity")
		w := ts.do(http.MethodPost, "/tokens/b/ping", "x")
		wantStatus(t, w.Code, http.StatusServiceUnavailable, w.Body.String())
		wantContains(t, w.Body.String(), "at capacity")
		if w.Header().Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
		if w := ts.do(http.MethodPost, "/tokens/a/ping", "x"); w.Code != http.StatusOK {
			t.Errorf("publishing to the existing channel: %d %q", w.Code, w.Body.String())
		}
		leave()
		wait()
	})
}

func TestLastEventIDLimit(t *testing.T) {
	ts := newServer(t)
	huge := strings.Repeat("9", 900_000)
	for _, target := range []string{"/chat/stream", "/visits/subscribe", "/tokens/a/poll"} {
		w := ts.do(http.MethodGet, target, "", "Last-Event-ID", strings.Repeat("7", 257))
		wantStatus(t, w.Code, http.StatusBadRequest, w.Body.String())
		wantContains(t, w.Body.String(), "Last-Event-ID is 257 bytes; the limit is 256")
		sep := "?"
		if strings.Contains(target, "?") {
			sep = "&"
		}
		w = ts.do(http.MethodGet, target+sep+"lastEventId="+huge[:300], "")
		wantStatus(t, w.Code, http.StatusBadRequest, w.Body.String())
	}
	// A client's value is never echoed whole.
	w := ts.do(http.MethodGet, "/tokens/a/poll?lastEventId="+huge, "")
	wantStatus(t, w.Code, http.StatusBadRequest, "")
	if n := w.Body.Len(); n > 300 {
		t.Errorf("the 400 for a 900 kB id is %d bytes long", n)
	}
}

func TestGeneratorLastEventIDLimit(t *testing.T) {
	ts := newServer(t)
	w := ts.do(http.MethodGet, "/eventsource/event_sender?resume=1", "", "Last-Event-ID", strings.Repeat("7", 257))
	wantStatus(t, w.Code, http.StatusBadRequest, w.Body.String())
	wantContains(t, w.Body.String(), "Last-Event-ID is 257 bytes; the limit is 256")
	// A client's value is never echoed whole.
	w = ts.do(http.MethodGet, "/eventsource/event_sender?count="+strings.Repeat("9", 900_000), "")
	wantStatus(t, w.Code, http.StatusBadRequest, "")
	if n := w.Body.Len(); n > 300 {
		t.Errorf("the 400 for a 900 kB count is %d bytes long", n)
	}
}

// An id at or past the generator's last event answers 204, however large:
// no request can make the generator run for ever.
func TestGeneratorHugeID(t *testing.T) {
	ts := newServer(t)
	for _, id := range []string{"9", "10", "9223372036854775807", "18446744073709551615", "99999999999999999999999999"} {
		w := ts.do(http.MethodGet, "/eventsource/event_sender?resume=1&interval=0", "", "Last-Event-ID", id)
		if w.Code != http.StatusNoContent {
			t.Errorf("Last-Event-ID %s: got %d, want 204", id, w.Code)
		}
	}
	w := ts.do(http.MethodGet, "/eventsource/event_sender?resume=1&interval=0", "", "Last-Event-ID", "8")
	if evs := parse(t, w.Body.String()); len(evs) != 1 || evs[0].ID != "9" {
		t.Errorf("Last-Event-ID 8: got %+v, want event 9 alone", evs)
	}
	for _, id := range []string{"-1", "1e3", "0x10", " 5"} {
		w := ts.do(http.MethodGet, "/eventsource/event_sender?resume=1&interval=0", "", "Last-Event-ID", id)
		wantStatus(t, w.Code, http.StatusBadRequest, w.Body.String())
	}
}

// chunked is a body whose length is not declared, as a chunked upload's.
type chunked struct{ io.Reader }

func post(ts *testServer, target, contentType string, body io.Reader, length int64) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, target, body)
	req.ContentLength = length
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	ts.e.ServeHTTP(w, req)
	return w
}

// The body limit holds on the bytes read, however the body is sent; a
// body over it is refused with 413, never taken as an empty value.
func TestBodyLimit(t *testing.T) {
	ts := newServer(t)
	form := "application/x-www-form-urlencoded"
	exact := strings.Repeat("a", handlers.MaxBody)
	over := exact + "a"
	overForm := "data=" + strings.Repeat("a", handlers.MaxBody)
	for _, tt := range []struct {
		name, ct, body string
		declared       bool
		code           int
	}{
		{"raw, at the limit", "", exact, true, 200},
		{"raw, declared over", "", over, true, 413},
		{"raw, chunked over", "", over, false, 413},
		{"form, declared over", form, overForm, true, 413},
		{"form, chunked over", form, overForm, false, 413},
		{"form, chunked within", form, "data=42", false, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			length := int64(-1)
			var body io.Reader = chunked{strings.NewReader(tt.body)}
			if tt.declared {
				length, body = int64(len(tt.body)), strings.NewReader(tt.body)
			}
			w := post(ts, "/tokens/x/ping", tt.ct, body, length)
			if w.Code != tt.code {
				t.Fatalf("got %d %q, want %d", w.Code, w.Body.String(), tt.code)
			}
			if tt.code == 413 {
				wantContains(t, w.Body.String(), "65536")
			}
		})
	}
	w := post(ts, "/chat/post", form, chunked{strings.NewReader("message=" + strings.Repeat("b", handlers.MaxBody))}, -1)
	wantStatus(t, w.Code, http.StatusRequestEntityTooLarge, w.Body.String())
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

// The seed's toggles change state on GET: a cross-site GET is refused as
// a cross-site POST is, and the switch does not move.
func TestTogglesRefuseCrossSite(t *testing.T) {
	ts := newServer(t)
	for _, path := range []string{"/time/timeSwitch", "/time/typeSwitch"} {
		for _, h := range [][]string{
			{"Sec-Fetch-Site", "cross-site"},
			{"Origin", "https://evil.example"},
		} {
			w := ts.do(http.MethodGet, path, "", h...)
			wantStatus(t, w.Code, http.StatusForbidden, w.Body.String())
			wantContains(t, w.Body.String(), "cross-origin request refused")
		}
	}
	if ts.feed.On() || ts.feed.Plain() {
		t.Fatal("a refused toggle moved a switch")
	}
	if w := ts.do(http.MethodGet, "/time/timeSwitch", "", "Sec-Fetch-Site", "same-origin"); w.Code != http.StatusOK || !ts.feed.On() {
		t.Errorf("a same-origin GET: %d, feed on %v", w.Code, ts.feed.On())
	}
	if w := ts.do(http.MethodGet, "/time/timeSwitch", ""); w.Code != http.StatusOK || ts.feed.On() {
		t.Errorf("a GET without those headers (the address bar, curl): %d", w.Code)
	}
}
