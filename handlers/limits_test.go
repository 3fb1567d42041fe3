package handlers_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
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
		_, leave, wait := ts.open(t.Context(), "/fixture/a/stream")
		synctest.Wait()
		seen := map[string]bool{}
		for range 20 {
			w := ts.do(http.MethodGet, "/fixture/b/stream", "")
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
		_, leave, wait := ts.open(t.Context(), "/fixture/a/stream")
		synctest.Wait()
		wantRefusal(t, ts.do(http.MethodGet, "/fixture/b/stream", ""), "the server is at capacity")
		w := ts.do(http.MethodPost, "/fixture/b/post", "x")
		wantStatus(t, w.Code, http.StatusServiceUnavailable, w.Body.String())
		wantContains(t, w.Body.String(), "at capacity")
		if w.Header().Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
		if w := ts.do(http.MethodPost, "/fixture/a/post", "x"); w.Code != http.StatusOK {
			t.Errorf("publishing to the existing channel: %d %q", w.Code, w.Body.String())
		}
		leave()
		wait()
	})
}

func TestLastEventIDLimit(t *testing.T) {
	ts := newServer(t)
	huge := strings.Repeat("9", 900_000)
	for _, target := range []string{"/fixture/a/stream"} {
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
	w := ts.do(http.MethodGet, "/fixture/a/stream?lastEventId="+huge, "")
	wantStatus(t, w.Code, http.StatusBadRequest, "")
	if n := w.Body.Len(); n > 300 {
		t.Errorf("the 400 for a 900 kB id is %d bytes long", n)
	}
}

// chunked is a body whose length is not declared, as a chunked upload's.
type chunked struct{ io.Reader }

func post(ts *testServer, target, contentType string, body io.Reader, length int64) *httptest.ResponseRecorder {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, target, body)
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
			w := post(ts, "/fixture/x/post", tt.ct, body, length)
			if w.Code != tt.code {
				t.Fatalf("got %d %q, want %d", w.Code, w.Body.String(), tt.code)
			}
			if tt.code == 413 {
				wantContains(t, w.Body.String(), "65536")
			}
		})
	}
}
