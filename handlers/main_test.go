package handlers_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"sselab/app"
	"sselab/app/hub"
	"sselab/app/metrics"
	"sselab/app/sse/ssetest"
	"sselab/handlers"
)

// Every test must leave no goroutine behind: a stream whose client left
// ends its goroutine.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type testServer struct {
	e http.Handler
	m *metrics.Metrics
	b *hub.Memory
}

func newServer(t testing.TB, change ...func(*app.Config)) *testServer {
	t.Helper()
	cfg := app.DefaultConfig()
	for _, f := range change {
		f(&cfg)
	}
	ts := &testServer{m: metrics.New()}
	ts.b = hub.NewMemory(app.BrokerOptions(cfg, ts.m, app.Demos()))
	t.Cleanup(func() { ts.b.Close() })
	fx := handlers.Fixture{B: ts.b, Keepalive: cfg.Keepalive}
	fixture := app.Demo{Title: "Fixture", Nav: "Fixture", Href: "/fixture/", Routes: func(app.Deps, []app.Route) []app.Route {
		return []app.Route{
			{Methods: []string{http.MethodGet}, Path: "/fixture/:ch/stream", Handler: fx.Stream, Stream: true},
			{Methods: []string{http.MethodPost}, Path: "/fixture/:ch/post", Handler: fx.Post},
		}
	}}
	ts.e = app.NewServer(app.Deps{
		Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Metrics: ts.m, Broker: ts.b, SessionKey: hub.StaticKeys([]byte("test key of 32 bytes, exactly!!!")),
		Demos: append(app.Demos(), fixture),
	})
	return ts
}

// Every request a test makes ends by this deadline (of the bubble's fake
// clock under synctest): a stream that should have been refused or ended
// but was not fails its test in seconds, not at the test binary's timeout.
const deadline = 5 * time.Second

// do serves one request to completion.
func (ts *testServer) do(method, target string, body string, header ...string) *httptest.ResponseRecorder {
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, method, target, strings.NewReader(body))
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
	ctx, cancel = context.WithTimeout(ctx, time.Minute)
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

// form is a form body of the pairs kv, for a body of type formType.
func form(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v.Encode()
}

const formType = "application/x-www-form-urlencoded"

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

// toggle posts to one of the time feed's switches, as the page does.
func (ts *testServer) toggle(t testing.TB, path string) {
	t.Helper()
	if w := ts.do(http.MethodPost, path, ""); w.Code != http.StatusOK {
		t.Fatalf("POST %s: %d %q", path, w.Code, w.Body.String())
	}
}

// feed is the time feed's two switches, as /time/status tells them.
func (ts *testServer) feed(t testing.TB) (on, plain bool) {
	t.Helper()
	var st struct{ Feed, TypeSwitch bool }
	if err := json.Unmarshal(ts.do(http.MethodGet, "/time/status", "").Body.Bytes(), &st); err != nil {
		t.Fatalf("/time/status: %v", err)
	}
	return st.Feed, st.TypeSwitch
}
