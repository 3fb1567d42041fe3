package handlers_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"

	"sselab/app/sse/ssetest"
)

// The page tells its script to open as many streams as ?n= asks (8 by
// default); a count out of 1..32 is a 400 naming n.
func TestConnectionsPage(t *testing.T) {
	ts := newServer(t)
	for target, want := range map[string]int{"/connections/": 8, "/connections/?n=3": 3, "/connections/?n=32": 32} {
		w := ts.do(http.MethodGet, target, "")
		wantStatus(t, w.Code, http.StatusOK, w.Body.String())
		wantContains(t, w.Body.String(), fmt.Sprintf(`data-n="%d"`, want))
	}
	for _, target := range []string{"/connections/?n=0", "/connections/?n=33", "/connections/?n=x"} {
		w := ts.do(http.MethodGet, target, "")
		wantStatus(t, w.Code, http.StatusBadRequest, w.Body.String())
		wantContains(t, w.Body.String(), "n must be an integer from 1 to 32")
	}
}

// Each stream opens with rule 1's comment, says at once that it is open
// and over which protocol, then holds with keepalives until the page
// leaves; its handler ends with the client.
func TestConnectionsStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t)
		w, leave, wait := ts.open(t.Context(), "/connections/stream?i=2")
		synctest.Wait()
		got := w.Flushed()
		if !strings.HasPrefix(got, ":") {
			t.Errorf("the stream's first bytes are %q, want rule 1's comment", got)
		}
		evs := ssetest.Events(t, got)
		if len(evs) != 1 || evs[0].Type != "opened" || evs[0].Data != "stream 3 open over HTTP/1.1" {
			t.Fatalf("events %+v, want one opened event for stream 3 over HTTP/1.1", evs)
		}
		leave()
		wait()
		for _, target := range []string{"/connections/stream?i=32", "/connections/stream?i=-1"} {
			w := ts.do(http.MethodGet, target, "")
			wantStatus(t, w.Code, http.StatusBadRequest, w.Body.String())
			wantContains(t, w.Body.String(), "i must be an integer from 0 to 31")
		}
	})
}
