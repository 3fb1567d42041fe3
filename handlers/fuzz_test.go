package handlers_test

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"sselab/handlers"
)

// Every parser of client input on the generator: count, interval, resume
// and Last-Event-ID. Whatever they hold, the answer is 200, 204 or 400,
// and the generator sends at most count events.
func FuzzGeneratorRequest(f *testing.F) {
	f.Add("10", "0", "1", "9223372036854775807")
	f.Add("1000", "0ms", "1", "998")
	f.Add("3", "1ns", "true", "-1")
	f.Add("", "", "", "\x00\r\n")
	ts := newServer(f)
	f.Fuzz(func(t *testing.T, count, interval, resume, lastID string) {
		if d, err := strconv.ParseFloat(strings.TrimSuffix(interval, "s"), 64); err == nil && d > 0 {
			interval = "0" // the fuzzer explores parsing, not waiting
		}
		q := url.Values{"count": {count}, "interval": {interval}, "resume": {resume}}
		w := ts.do(http.MethodGet, "/eventsource/event_sender?"+q.Encode(), "", "Last-Event-ID", lastID)
		switch w.Code {
		case http.StatusOK:
			n, err := strconv.Atoi(count)
			if count == "" {
				n, err = 10, nil
			}
			if evs := parse(t, w.Body.String()); err != nil || len(evs) > n {
				t.Fatalf("count %q: %d events", count, len(evs))
			}
		case http.StatusNoContent, http.StatusBadRequest, http.StatusRequestTimeout:
			if w.Body.Len() > 400 {
				t.Fatalf("a %d answer of %d bytes: a client's value echoed whole?", w.Code, w.Body.Len())
			}
		default:
			t.Fatalf("got %d %q", w.Code, w.Body.String())
		}
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
