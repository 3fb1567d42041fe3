package handlers_test

import (
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"sselab/app/sse/ssetest"
	"sselab/handlers"
	"sselab/views"
)

// The page has a row per probe, with the measured answer of each engine
// and protocol from the embedded table.
func TestEnginesPage(t *testing.T) {
	ts := newServer(t)
	w := ts.do(http.MethodGet, "/engines/", "")
	wantStatus(t, w.Code, http.StatusOK, w.Body.String())
	body := w.Body.String()
	for _, p := range views.EngineProbes {
		wantContains(t, body, `data-testid="yours-`+p.ID+`"`)
	}
	wantContains(t, body, `<td data-column="firefox/http1">5 s</td>`) // default-delay, from handlers/engines.json
	wantContains(t, body, "/assets/engines.js")
	w = ts.do(http.MethodGet, "/engines/away", "")
	wantStatus(t, w.Code, http.StatusOK, w.Body.String())
	wantContains(t, w.Body.String(), `data-testid="away"`)
}

// The quiet probe breaks rule 1 on purpose: its headers, then nothing at
// all for QuietFor, then one event, and the end.
func TestEnginesQuiet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t)
		start := time.Now()
		w, _, wait := ts.open(t.Context(), "/engines/quiet")
		synctest.Wait()
		if got := w.Flushed(); got != "" || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream") {
			t.Fatalf("at first: body %q, Content-Type %q; want headers and no body", got, w.Header().Get("Content-Type"))
		}
		wait()
		if d := time.Since(start); d != handlers.QuietFor {
			t.Errorf("the probe ended after %v, want %v", d, handlers.QuietFor)
		}
		if evs := ssetest.Events(t, w.Flushed()); len(evs) != 1 || !strings.Contains(evs[0].Data, "first bytes") {
			t.Errorf("events %+v, want the one after the quiet start", evs)
		}
	})
}

// The reconnect probe says which Last-Event-ID it was sent, then sends
// the retry and the id-only block asked for, exactly, and ends.
func TestEnginesEnds(t *testing.T) {
	for target, want := range map[string]string{
		"/engines/ends":                    "event: seen\ndata: \"\"\n\n",
		"/engines/ends?retry=100":          "event: seen\ndata: \"\"\n\nretry: 100\n\n",
		"/engines/ends?retry=600&idonly=1": "event: seen\ndata: \"\"\n\nretry: 600\n\nid: 7\n\n",
	} {
		w := newServer(t).do(http.MethodGet, target, "")
		wantStatus(t, w.Code, http.StatusOK, w.Body.String())
		if got := w.Body.String(); got != want {
			t.Errorf("%s: got %q, want %q", target, got, want)
		}
	}
	w := newServer(t).do(http.MethodGet, "/engines/ends", "", "Last-Event-ID", `7"x`)
	if got := w.Body.String(); got != "event: seen\ndata: \"7\\\"x\"\n\n" {
		t.Errorf("the id sent, as JSON: got %q", got)
	}
	for _, target := range []string{"/engines/ends?retry=10001", "/engines/ends?retry=-1", "/engines/ends?retry=x"} {
		w := newServer(t).do(http.MethodGet, target, "")
		wantStatus(t, w.Code, http.StatusBadRequest, w.Body.String())
		wantContains(t, w.Body.String(), "retry must be an integer")
	}
}

// The odd bytes go out as they are: NUL in data, and UTF-8 under a
// charset that says otherwise.
func TestEnginesBytes(t *testing.T) {
	w := newServer(t).do(http.MethodGet, "/engines/bytes?what=nul", "")
	if got := w.Body.String(); got != "retry: 60000\ndata: a\x00b\n\n" {
		t.Errorf("nul: got %q", got)
	}
	w = newServer(t).do(http.MethodGet, "/engines/bytes?what=charset", "")
	if got, ct := w.Body.String(), w.Header().Get("Content-Type"); got != "retry: 60000\ndata: café\n\n" || ct != "text/event-stream; charset=iso-8859-1" {
		t.Errorf("charset: got %q as %q", got, ct)
	}
	w = newServer(t).do(http.MethodGet, "/engines/bytes?what=x", "")
	wantStatus(t, w.Code, http.StatusBadRequest, w.Body.String())
	wantContains(t, w.Body.String(), "what must be nul or charset")
}

// The answers that are not streams.
func TestEnginesAnswer(t *testing.T) {
	for with, want := range map[string]int{"204": 204, "500": 500, "type": 200} {
		w := newServer(t).do(http.MethodGet, "/engines/answer?with="+with, "")
		wantStatus(t, w.Code, want, w.Body.String())
		if ct := w.Header().Get("Content-Type"); strings.HasPrefix(ct, "text/event-stream") {
			t.Errorf("with=%s: Content-Type %q, want anything but a stream", with, ct)
		}
	}
	w := newServer(t).do(http.MethodGet, "/engines/answer?with=302", "")
	wantStatus(t, w.Code, http.StatusBadRequest, w.Body.String())
	wantContains(t, w.Body.String(), "with must be 204, 500 or type")
}

// The held stream opens with rule 1's comment and a held event naming the
// protocol, and ends with its client.
func TestEnginesHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, leave, wait := newServer(t).open(t.Context(), "/engines/held?i=3")
		synctest.Wait()
		got := w.Flushed()
		if !strings.HasPrefix(got, ":") {
			t.Errorf("first bytes %q, want rule 1's comment", got)
		}
		if evs := ssetest.Events(t, got); len(evs) != 1 || evs[0].Type != "held" || evs[0].Data != "HTTP/1.1" {
			t.Errorf("events %+v", evs)
		}
		leave()
		wait()
	})
}
