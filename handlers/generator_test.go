package handlers_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestGeneratorDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t)
		start := time.Now()
		w, _, wait := ts.open(t.Context(), "/eventsource/event_sender")
		synctest.Wait()
		if evs := parse(t, w.Flushed()); len(evs) != 1 || !strings.HasPrefix(evs[0].Data, "0 ") {
			t.Fatalf("at once: got %+v, want event 0 flushed", evs)
		}
		// Each event is flushed the moment it exists, 500ms apart.
		for x := 1; x < 10; x++ {
			time.Sleep(500 * time.Millisecond)
			synctest.Wait()
			if evs := parse(t, w.Flushed()); len(evs) != x+1 {
				t.Fatalf("after %v: got %d events, want %d", time.Since(start), len(evs), x+1)
			}
		}
		wait() // the response ends after the tenth event
		evs := parse(t, w.Flushed())
		for x, ev := range evs {
			data := strings.SplitN(ev.Data, " ", 2)
			if data[0] != fmt.Sprint(x) || !unixStamp.MatchString(data[1]) || ev.ID != "" {
				t.Errorf("event %d: got %+v, want data \"%d <unix time>\" and no id", x, ev, x)
			}
		}
		if elapsed := time.Since(start); elapsed != 4500*time.Millisecond {
			t.Errorf("took %v, want 4.5s", elapsed)
		}
	})
}

func TestGeneratorResume(t *testing.T) {
	ts := newServer(t)
	w := ts.do(http.MethodGet, "/eventsource/event_sender?resume=1&interval=0&count=5", "", "Last-Event-ID", "2")
	wantStatus(t, w.Code, http.StatusOK, w.Body.String())
	evs := parse(t, w.Body.String())
	if len(evs) != 2 || evs[0].ID != "3" || evs[1].ID != "4" || !strings.HasPrefix(evs[1].Data, "4 ") {
		t.Fatalf("got %+v, want events 3 and 4 with ids", evs)
	}
	w = ts.do(http.MethodGet, "/eventsource/event_sender?resume=1&interval=0&count=5&lastEventId=0", "")
	if evs := parse(t, w.Body.String()); len(evs) != 4 || evs[0].ID != "1" {
		t.Fatalf("lastEventId query: got %+v, want events 1..4", evs)
	}
	w = ts.do(http.MethodGet, "/eventsource/event_sender?resume=1&count=5", "", "Last-Event-ID", "4")
	wantStatus(t, w.Code, http.StatusNoContent, w.Body.String())
	// Without resume, Last-Event-ID is ignored: the seed's generator restarts.
	w = ts.do(http.MethodGet, "/eventsource/event_sender?interval=0&count=2", "", "Last-Event-ID", "9")
	if evs := parse(t, w.Body.String()); len(evs) != 2 || evs[0].ID != "" {
		t.Fatalf("without resume: got %+v, want events 0 and 1 without ids", evs)
	}
}

func TestGeneratorBadInput(t *testing.T) {
	ts := newServer(t)
	for _, tt := range []struct{ target, lastID, want string }{
		{"/eventsource/event_sender?count=0", "", "count must be an integer from 1 to 1000"},
		{"/eventsource/event_sender?count=1001", "", "count must be an integer from 1 to 1000"},
		{"/eventsource/event_sender?count=ten", "", "count must be an integer"},
		{"/eventsource/event_sender?interval=11s", "", "interval must be a duration from 0s to 10s"},
		{"/eventsource/event_sender?interval=-1s", "", "interval must be a duration"},
		{"/eventsource/event_sender?resume=yes", "", "resume must be 1 or 0"},
		{"/eventsource/event_sender?resume=1", "x", "Last-Event-ID must be the index of an event"},
	} {
		w := ts.do(http.MethodGet, tt.target, "", "Last-Event-ID", tt.lastID)
		wantStatus(t, w.Code, http.StatusBadRequest, w.Body.String())
		wantContains(t, w.Body.String(), tt.want)
	}
}

// The seed's buffering lesson, in both directions: the normal route flushes
// event 0 at once; the buffered one holds everything until the end.
func TestGeneratorBuffered(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t)
		w, _, wait := ts.open(t.Context(), "/eventsource/event_sender?buffered=1&count=3&interval=1s")
		synctest.Wait()
		if got := w.Flushed(); got != "" {
			t.Fatalf("buffered, at once: got %q flushed, want nothing", got)
		}
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		if got := w.Flushed(); got != "" {
			t.Fatalf("buffered, mid-way: got %q flushed, want nothing", got)
		}
		wait()
		if evs := parse(t, w.All()); len(evs) != 3 {
			t.Fatalf("buffered, at the end: got %d events, want 3", len(evs))
		}
		if cl := w.SentHeader().Get("Content-Length"); cl != "" {
			t.Errorf("Content-Length %q, want none", cl)
		}
	})
}

func TestGeneratorPageAndScript(t *testing.T) {
	ts := newServer(t)
	w := ts.do(http.MethodGet, "/eventsource/page", "")
	wantStatus(t, w.Code, http.StatusOK, "")
	wantContains(t, w.Body.String(), `<script src="/eventsource/js">`)
	w = ts.do(http.MethodGet, "/eventsource/js", "")
	wantStatus(t, w.Code, http.StatusOK, "")
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("Content-Type: got %q", ct)
	}
	wantContains(t, w.Body.String(), "/eventsource/event_sender")
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
