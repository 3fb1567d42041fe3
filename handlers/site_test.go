package handlers_test

import (
	"compress/gzip"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"testing/synctest"

	"sselab/app"
)

func TestHomeListsDemosAndRoutes(t *testing.T) {
	ts := newServer(t)
	w := ts.do(http.MethodGet, "/", "")
	wantStatus(t, w.Code, http.StatusOK, "")
	body := w.Body.String()
	for _, want := range []string{`href="/fixture/"`, "/fixture/:ch/stream", "curl http://example.com/healthz", "/metrics"} {
		wantContains(t, body, want)
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	ts := newServer(t)
	w := ts.do(http.MethodGet, "/no/such/page", "")
	wantStatus(t, w.Code, http.StatusNotFound, "")
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("404 Content-Type: got %q, want the HTML page", ct)
	}
	wantContains(t, w.Body.String(), "/no/such/page")
	w = ts.do(http.MethodPut, "/fixture/a/post", "")
	wantStatus(t, w.Code, http.StatusMethodNotAllowed, w.Body.String())
	w = ts.do(http.MethodGet, "/healthz", "")
	wantStatus(t, w.Code, http.StatusOK, "")
	if w.Body.String() != "ok\n" {
		t.Errorf("healthz: got %q", w.Body.String())
	}
}

func TestCrossOriginPostsRefused(t *testing.T) {
	ts := newServer(t)
	for _, tt := range []struct {
		name   string
		header []string
		want   int
	}{
		{"no headers, as curl", nil, http.StatusOK},
		{"same origin", []string{"Origin", "http://example.com", "Sec-Fetch-Site", "same-origin"}, http.StatusOK},
		{"same origin without fetch metadata", []string{"Origin", "http://example.com"}, http.StatusOK},
		{"cross-site fetch metadata", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"foreign origin", []string{"Origin", "http://evil.example"}, http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w := ts.do(http.MethodPost, "/fixture/a/post", "", tt.header...)
			wantStatus(t, w.Code, tt.want, w.Body.String())
			if tt.want == http.StatusForbidden {
				wantContains(t, w.Body.String(), "cross-origin")
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t)
		_, leave, wait := ts.open(t.Context(), "/fixture/a/stream")
		synctest.Wait()
		ts.do(http.MethodPost, "/fixture/a/post", "x")
		synctest.Wait()
		w := ts.do(http.MethodGet, "/metrics", "")
		for _, want := range []string{
			`sselab_http_requests_total{code="200",route="/fixture/:ch/post"} 1`,
			`sselab_open_streams{route="/fixture/:ch/stream"} 1`,
			`sselab_events_delivered_total 1`,
		} {
			wantContains(t, w.Body.String(), want)
		}
		leave()
		wait()
		w = ts.do(http.MethodGet, "/metrics", "")
		wantContains(t, w.Body.String(), `sselab_open_streams{route="/fixture/:ch/stream"} 0`)
	})
}

func TestMaxStreams(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t, func(c *app.Config) { c.MaxStreams = 2 })
		_, leave1, wait1 := ts.open(t.Context(), "/fixture/a/stream")
		_, leave2, wait2 := ts.open(t.Context(), "/fixture/b/stream")
		synctest.Wait()
		w := ts.do(http.MethodGet, "/fixture/c/stream", "")
		wantRefusal(t, w, "too many open streams")
		if w := ts.do(http.MethodGet, "/healthz", ""); w.Code != http.StatusOK {
			t.Errorf("pages must not count as streams: status %d", w.Code)
		}
		leave1()
		wait1()
		w3, leave3, wait3 := ts.open(t.Context(), "/fixture/c/stream")
		synctest.Wait()
		if w3.Status() != http.StatusOK || strings.Contains(w3.Flushed(), "too many") {
			t.Errorf("after one stream closed: got %d %q, want the stream served", w3.Status(), w3.Flushed())
		}
		leave3()
		wait3()
		leave2()
		wait2()
	})
}

func TestStreamsSkipGzip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t)
		rec, leave, wait := ts.open(t.Context(), "/fixture/a/stream", "Accept-Encoding", "gzip")
		synctest.Wait()
		ts.do(http.MethodPost, "/fixture/a/post", "x")
		synctest.Wait()
		if ce := rec.SentHeader().Get("Content-Encoding"); ce != "" {
			t.Errorf("stream Content-Encoding: got %q, want none", ce)
		}
		if evs := parse(t, rec.Flushed()); len(evs) != 1 {
			t.Errorf("got %d events, want 1 in plain text", len(evs))
		}
		leave()
		wait()
	})
	ts := newServer(t)
	// Pages are still compressed: the skipper is per route, not global.
	w := ts.do(http.MethodGet, "/", "", "Accept-Encoding", "gzip")
	if ce := w.Header().Get("Content-Encoding"); ce != "gzip" {
		t.Errorf("home page Content-Encoding: got %q, want gzip", ce)
	}
}

// The nav comes from the demos table, marks the page being shown, and is
// on the 404 page too.
func TestNavFromTheTable(t *testing.T) {
	ts := newServer(t)
	w := ts.do(http.MethodGet, "/", "")
	wantContains(t, w.Body.String(), `<a href="/fixture/">Fixture</a>`)
	w = ts.do(http.MethodGet, "/no/such/page", "")
	wantStatus(t, w.Code, http.StatusNotFound, "")
	wantContains(t, w.Body.String(), `<a href="/fixture/">Fixture</a>`)
}

// A scrape that accepts gzip gets the metrics compressed once; HEAD works.
func TestMetricsGzipOnce(t *testing.T) {
	ts := newServer(t)
	w := ts.do(http.MethodGet, "/metrics", "", "Accept-Encoding", "gzip")
	wantStatus(t, w.Code, http.StatusOK, "")
	if w.Header().Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", w.Header().Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(zr)
	if err != nil {
		t.Fatalf("once decoded, not Prometheus text: %v", err)
	}
	if _, ok := families["go_goroutines"]; !ok {
		t.Errorf("no go_goroutines among %d families", len(families))
	}
	if w := ts.do(http.MethodHead, "/metrics", ""); w.Code != http.StatusOK {
		t.Errorf("HEAD /metrics: %d", w.Code)
	}
}
