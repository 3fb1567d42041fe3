package handlers_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"sselab/app"
	"sselab/app/sse"
)

func TestTimeFeedSwitches(t *testing.T) {
	ts := newServer(t)
	status := func() map[string]bool {
		w := ts.do(http.MethodGet, "/time/status", "")
		var s map[string]bool
		if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil {
			t.Fatalf("status %q: %v", w.Body.String(), err)
		}
		return s
	}
	if s := status(); s["feed"] || s["typeSwitch"] {
		t.Fatalf("got %v, want both off at start", s)
	}
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		w := ts.do(method, "/time/timeSwitch", "")
		wantStatus(t, w.Code, http.StatusOK, w.Body.String())
		if !strings.HasPrefix(w.Body.String(), "Feed Toggled") || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
			t.Errorf("%s timeSwitch: got %q %q", method, w.Header().Get("Content-Type"), w.Body.String())
		}
	}
	ts.do(http.MethodPost, "/time/timeSwitch", "")
	ts.do(http.MethodGet, "/time/typeSwitch", "")
	if s := status(); !s["feed"] || !s["typeSwitch"] {
		t.Errorf("got %v, want both on after three feed toggles and one type toggle", s)
	}
}

func TestSendTimeShort(t *testing.T) {
	ts := newServer(t, func(c *app.Config) { c.Retry = 1500 * time.Millisecond })

	w := ts.do(http.MethodGet, "/time/sendTime", "")
	wantStatus(t, w.Code, http.StatusOK, w.Body.String())
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("Content-Type: got %q", ct)
	}
	if evs := parse(t, w.Body.String()); len(evs) != 0 {
		t.Errorf("feed off: got events %+v, want none", evs)
	}
	wantContains(t, w.Body.String(), "retry: 1500\n")

	ts.toggle(t, "/time/timeSwitch")
	w = ts.do(http.MethodGet, "/time/sendTime?mode=short", "")
	evs := parse(t, w.Body.String())
	if len(evs) != 1 || evs[0].Type != "time" || !evs[0].HasRetry || evs[0].Retry != 1500*time.Millisecond {
		t.Fatalf("feed on: got %+v, want one time event with retry 1500", evs)
	}
	if !unixStamp.MatchString(evs[0].Data) {
		t.Errorf("data: got %q, want Unix seconds with a fraction", evs[0].Data)
	}
}

func TestSendTimeTypeSwitch(t *testing.T) {
	ts := newServer(t)
	ts.toggle(t, "/time/timeSwitch")
	ts.toggle(t, "/time/typeSwitch")
	for _, target := range []string{"/time/sendTime", "/time/sendTime?mode=stream"} {
		w := ts.do(http.MethodGet, target, "")
		wantStatus(t, w.Code, http.StatusOK, w.Body.String())
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("%s: Content-Type got %q, want text/plain", target, ct)
		}
	}
	ts.toggle(t, "/time/typeSwitch")
	w := ts.do(http.MethodGet, "/time/sendTime", "")
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("after toggling back: Content-Type got %q", ct)
	}
}

func TestSendTimeBadInput(t *testing.T) {
	ts := newServer(t)
	for target, want := range map[string]string{
		"/time/sendTime?mode=poll":                   "mode must be short or stream",
		"/time/sendTime?mode=stream&interval=50ms":   "interval must be a duration from 100ms to 1m0s",
		"/time/sendTime?mode=stream&interval=2m":     "interval must be a duration from 100ms to 1m0s",
		"/time/sendTime?mode=stream&interval=banana": "interval must be",
	} {
		w := ts.do(http.MethodGet, target, "")
		wantStatus(t, w.Code, http.StatusBadRequest, w.Body.String())
		wantContains(t, w.Body.String(), want)
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("%s: Content-Type got %q, want text/plain", target, ct)
		}
	}
}

func TestSendTimeStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t, func(c *app.Config) { c.Keepalive = 10 * time.Second })
		w, leave, wait := ts.open(t.Context(), "/time/sendTime?mode=stream&interval=250ms")
		synctest.Wait()
		if got := w.Flushed(); got != sse.Opening+"retry: 1000\n\n" {
			t.Fatalf("at open: got %q, want only the retry block", got)
		}

		// Off: nothing but keepalives.
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if evs := parse(t, w.Flushed()); len(evs) != 0 || !strings.Contains(w.Flushed(), ": keepalive\n") {
			t.Fatalf("feed off for 10s: got %q, want a keepalive and no event", w.Flushed())
		}

		// A toggle reaches the open stream within one interval.
		ts.toggle(t, "/time/timeSwitch")
		time.Sleep(250 * time.Millisecond)
		synctest.Wait()
		if evs := parse(t, w.Flushed()); len(evs) != 1 || evs[0].Type != "time" {
			t.Fatalf("one interval after the toggle: got %+v, want one time event", evs)
		}
		time.Sleep(750 * time.Millisecond)
		synctest.Wait()
		if evs := parse(t, w.Flushed()); len(evs) != 4 {
			t.Fatalf("after 1s: got %d events, want 4", len(evs))
		}
		ts.toggle(t, "/time/timeSwitch")
		time.Sleep(time.Second)
		synctest.Wait()
		if evs := parse(t, w.Flushed()); len(evs) != 4 {
			t.Fatalf("after toggling off: got %d events, want still 4", len(evs))
		}

		leave()
		wait() // the handler returns when the client leaves
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
	if on, plain := ts.feed(t); on || plain {
		t.Fatal("a refused toggle moved a switch")
	}
	if w := ts.do(http.MethodGet, "/time/timeSwitch", "", "Sec-Fetch-Site", "same-origin"); w.Code != http.StatusOK {
		t.Errorf("a same-origin GET: %d", w.Code)
	}
	if on, _ := ts.feed(t); !on {
		t.Error("a same-origin GET did not turn the feed on")
	}
	if w := ts.do(http.MethodGet, "/time/timeSwitch", ""); w.Code != http.StatusOK {
		t.Errorf("a GET without those headers (the address bar, curl): %d", w.Code)
	}
	if on, _ := ts.feed(t); on {
		t.Error("a GET without those headers did not toggle the feed off")
	}
}

// The time feed's interval and mode: 400 with a reason, or a stream.
func FuzzSendTimeParams(f *testing.F) {
	f.Add("short", "250ms")
	f.Add("stream", "99ms")
	f.Add("stream", "1e9h")
	ts := newServer(f)
	f.Fuzz(func(t *testing.T, mode, interval string) {
		if mode == "stream" {
			mode = "short" // a long-lived stream would not end
		}
		q := url.Values{"mode": {mode}, "interval": {interval}}
		w := ts.do(http.MethodGet, "/time/sendTime?"+q.Encode(), "")
		if w.Code != http.StatusOK && w.Code != http.StatusBadRequest {
			t.Fatalf("mode %q interval %q: %d", mode, interval, w.Code)
		}
	})
}
