package handlers_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"sselab/app"
	"sselab/app/hub"
	"sselab/app/metrics"
	"sselab/app/sse/ssetest"
	"sselab/app/timefeed"
)

// Every test must leave no goroutine behind: a stream whose client left
// ends its goroutine.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type testServer struct {
	e    http.Handler
	feed *timefeed.Feed
	m    *metrics.Metrics
	b    *hub.Memory
}

func newServer(t testing.TB, change ...func(*app.Config)) *testServer {
	t.Helper()
	cfg := app.DefaultConfig()
	for _, f := range change {
		f(&cfg)
	}
	ts := &testServer{feed: new(timefeed.Feed), m: metrics.New()}
	ts.b = hub.NewMemory(app.BrokerOptions(cfg, ts.m))
	t.Cleanup(func() { ts.b.Close() })
	ts.e = app.NewServer(app.Deps{
		Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics: ts.m, Feed: ts.feed, Broker: ts.b, SessionKey: []byte("test key of 32 bytes, exactly!!!"),
	})
	return ts
}

// do serves one request to completion.
func (ts *testServer) do(method, target string, body string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	ts.e.ServeHTTP(w, req)
	return w
}

// open starts a streaming request in its own goroutine; cancel ends it as
// a client leaving does, and wait returns when the handler has returned.
func (ts *testServer) open(ctx context.Context, target string, header ...string) (w *ssetest.Recorder, cancel context.CancelFunc, wait func()) {
	ctx, cancel = context.WithCancel(ctx)
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w = ssetest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		ts.e.ServeHTTP(w, req)
	}()
	return w, cancel, func() { <-done }
}

func wantStatus(t *testing.T, got, want int, body string) {
	t.Helper()
	if got != want {
		t.Fatalf("status: got %d, want %d (body %q)", got, want, body)
	}
}

func wantContains(t *testing.T, s, sub string) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Errorf("got %q, want it to contain %q", s, sub)
	}
}
