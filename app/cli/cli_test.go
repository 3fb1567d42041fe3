package cli

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

func TestReconnectDelay(t *testing.T) {
	for _, tc := range []struct {
		retry    time.Duration
		failures int
		r        float64
		want     time.Duration
	}{
		{0, 0, 0.9, MinRetry},                      // retry: 0 from the server (or a visitor's post): the floor
		{100 * time.Millisecond, 0, 0.9, MinRetry}, // under the floor
		{3 * time.Second, 0, 0.9, 3 * time.Second}, // a clean end: the retry delay, exactly, as EventSource
		{time.Second, 1, 0.5, time.Second},         // the first failure: the delay, spread
		{time.Second, 3, 0.5, 4 * time.Second},     // doubled per failure after the first
		{time.Second, 3, 0, 2800 * time.Millisecond},
		{time.Second, 30, 0.5, MaxBackoff},                          // bounded
		{2 * time.Minute, 5, 0.5, 2 * time.Minute},                  // a server's longer retry stands
		{0, 2, 0.999999, time.Duration(float64(time.Second) * 1.3)}, // the floor, doubled, spread up
	} {
		got := reconnectDelay(tc.retry, tc.failures, tc.r)
		if d := got - tc.want; d < -time.Microsecond || d > time.Microsecond {
			t.Errorf("reconnectDelay(%v, %d, %v) = %v, want %v", tc.retry, tc.failures, tc.r, got, tc.want)
		}
	}
}

// endsAt once is a transport whose every response is a stream that sends
// retry: 0 and one event and ends, as a hostile server (or a visitor who
// posted retry 0 to the token) makes it.
// Past a thousand requests it ends the client: without a floor it would
// never stop.
type endsAtOnce struct {
	requests atomic.Int64
	stop     context.CancelFunc
}

func (e *endsAtOnce) RoundTrip(req *http.Request) (*http.Response, error) {
	if e.requests.Add(1) >= 1000 {
		e.stop()
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}},
		Body: io.NopCloser(strings.NewReader("retry: 0\n\ndata: x\n\n")), Request: req}, nil
}

// After retry: 0 the client reconnects no faster than MinRetry: 20 times
// in 10 s, not thousands.
func TestClientRetryFloor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		tr := &endsAtOnce{stop: cancel}
		f := &follower{url: "http://sselab.test/tokens/t/poll", httpc: &http.Client{Transport: tr},
			stdout: io.Discard, stderr: io.Discard, rand: func() float64 { return 0.5 }}
		if err := f.follow(ctx, 0); err != nil {
			t.Fatal(err)
		}
		if n := tr.requests.Load(); n < 20 || n > 21 {
			t.Errorf("%d connections in 10 s after retry: 0, want 20 or 21 (one per %v)", n, MinRetry)
		}
	})
}
