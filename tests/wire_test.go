package tests

import (
	"errors"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Wire rule 1 on every stream route, short ones included, whatever
// Accept-Encoding says; headers go out before the first event.
func TestStreamHeaders(t *testing.T) {
	s := startServer(t)
	for _, path := range []string{
		"/time/sendTime",
		"/time/sendTime?mode=stream", // the feed is off: headers with no event yet
		"/eventsource/event_sender?interval=10s",
	} {
		t.Run(path, func(t *testing.T) {
			resp, _ := openStream(t, s.URL+path, "Accept-Encoding", "gzip, deflate, br")
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			h := resp.Header
			if ct := h.Get("Content-Type"); ct != "text/event-stream" && ct != "text/event-stream; charset=utf-8" {
				t.Errorf("Content-Type: got %q", ct)
			}
			if got := h.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("Cache-Control: got %q, want no-cache", got)
			}
			if got := h.Get("X-Accel-Buffering"); got != "no" {
				t.Errorf("X-Accel-Buffering: got %q, want no", got)
			}
			if got := h.Get("Content-Encoding"); got != "" {
				t.Errorf("Content-Encoding: got %q, want none", got)
			}
			if resp.ContentLength != -1 || h.Get("Content-Length") != "" {
				t.Errorf("Content-Length: got %d %q, want none", resp.ContentLength, h.Get("Content-Length"))
			}
		})
	}
}

// Each event is flushed the moment it exists: with interval=200ms, event 0
// reaches the client before event 9 is even produced. The buffered variant,
// which holds the body as the seed's middleware did, shows the opposite,
// so this test can tell the two apart.
func TestEventsArriveOneByOne(t *testing.T) {
	s := startServer(t)
	arrival0, produced9 := generatorTimes(t, s.URL+"/eventsource/event_sender?interval=200ms")
	if !arrival0.Before(produced9) {
		t.Errorf("event 0 arrived at %v, after event 9 was produced at %v: events were held back", arrival0, produced9)
	}
	arrival0, produced9 = generatorTimes(t, s.URL+"/eventsource/event_sender?interval=200ms&buffered=1")
	if arrival0.Before(produced9) {
		t.Errorf("buffered: event 0 arrived at %v, before event 9 was produced at %v: the demo does not buffer", arrival0, produced9)
	}
}

// generatorTimes reads ten generator events and returns when event 0
// arrived and when, by its data, event 9 was produced. Client and server
// share this machine's clock.
func generatorTimes(t *testing.T, url string) (arrival0, produced9 time.Time) {
	t.Helper()
	_, p := openStream(t, url, "Accept-Encoding", "gzip")
	for x := 0; x < 10; x++ {
		ev := next(t, p, 10*time.Second)
		if x == 0 {
			arrival0 = time.Now()
		}
		fields := strings.Fields(ev.Data)
		if len(fields) != 2 || fields[0] != strconv.Itoa(x) {
			t.Fatalf("event %d: data %q", x, ev.Data)
		}
		if x == 9 {
			sec, err := strconv.ParseFloat(fields[1], 64)
			if err != nil {
				t.Fatal(err)
			}
			produced9 = time.Unix(0, int64(sec*1e9))
		}
	}
	if _, err := p.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("after 10 events: got %v, want the end of the response", err)
	}
	return arrival0, produced9
}

// A client that leaves mid-stream ends its handler: the open-streams gauge
// and the goroutine count return to their baseline.
func TestClientLeavingEndsItsGoroutines(t *testing.T) {
	s := startServer(t, "-keepalive", "1h")
	_, _, _ = do(t, http.MethodGet, s.URL+"/healthz", "")
	plainClient.CloseIdleConnections()
	base := runtime.NumGoroutine()
	for i := 0; i < 20; i++ {
		resp, _ := openStream(t, s.URL+"/time/sendTime?mode=stream")
		resp.Body.Close()
	}
	eventually(t, 5*time.Second, "open streams back to 0", func() bool {
		return metric(t, s.URL, "sselab_open_streams{") == 0
	})
	plainClient.CloseIdleConnections()
	eventually(t, 5*time.Second, "goroutines back to the baseline", func() bool {
		return runtime.NumGoroutine() <= base
	})
}
