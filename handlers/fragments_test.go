package handlers_test

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/synctest"

	"sselab/app/sse"
)

// A message with markup, quotes and a newline reaches /fragments/stream as
// escaped HTML over several data: lines of one event, and the text stream
// and the fragment stream carry the same ids for the same messages.
func TestFragmentsStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t)
		text, leaveText, waitText := ts.open(t.Context(), "/chat/stream")
		html, leaveHTML, waitHTML := ts.open(t.Context(), "/fragments/stream")
		synctest.Wait()
		for _, msg := range []string{`<script>alert("x")</script> it's` + "\nsecond line", "plain"} {
			w := ts.do(http.MethodPost, "/chat/post", url.Values{"message": {msg}}.Encode(), "Content-Type", "application/x-www-form-urlencoded", "HX-Request", "true", "Accept", "text/html")
			wantStatus(t, w.Code, http.StatusNoContent, w.Body.String())
		}
		synctest.Wait()
		raw := strings.TrimPrefix(html.Flushed(), sse.Opening)
		if strings.Contains(raw, "<script>") {
			t.Fatalf("markup from a user reached the fragment unescaped: %q", raw)
		}
		first := raw[:strings.Index(raw, "\n\n")+2]
		if n := strings.Count(first, "data: "); n < 2 || !strings.Contains(first, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; it&#39;s") {
			t.Errorf("the first fragment event: %q, want escaped HTML over %d+ data: lines", first, 2)
		}
		tv, hv := parse(t, text.Flushed()), parse(t, raw)
		if len(tv) != 2 || len(hv) != 2 {
			t.Fatalf("got %d text and %d fragment events, want 2 and 2", len(tv), len(hv))
		}
		for i := range tv {
			if tv[i].ID == "" || tv[i].ID != hv[i].ID {
				t.Errorf("message %d: text id %q, fragment id %q: want the same", i, tv[i].ID, hv[i].ID)
			}
		}
		if !strings.HasPrefix(hv[0].Data, `<li class="msg">`) || !strings.Contains(hv[0].Data, "\nsecond line") {
			t.Errorf("the fragment, joined again: %q", hv[0].Data)
		}
		leaveText()
		leaveHTML()
		waitText()
		waitHTML()
	})
}

func TestFragmentsPages(t *testing.T) {
	ts := newServer(t)
	for page, wants := range map[string][]string{
		"/fragments/":          {`hx-sse:connect="/fragments/stream"`, `hx-sse:close="close"`, `/assets/vendor/htmx.min.js`, `/assets/vendor/htmx-hx-sse.min.js`, `data-client="htmx4"`},
		"/fragments/datastar/": {`data-init="@get('/fragments/datastar/stream', {retry: 'always'})"`, `id="messages"`, `/assets/vendor/datastar.js`, `data-client="datastar-always"`},
		"/fragments/clients":   {`/assets/fragments-clients.js`, `data-testid="yours-htmx4-refuse"`, `data-testid="yours-datastar-auto-hidden"`},
	} {
		w := ts.do(http.MethodGet, page, "")
		wantStatus(t, w.Code, http.StatusOK, "")
		for _, want := range wants {
			wantContains(t, w.Body.String(), want)
		}
	}
	for _, asset := range []string{"/assets/vendor/htmx.min.js", "/assets/vendor/htmx-hx-sse.min.js", "/assets/vendor/datastar.js", "/assets/fragments-clients.js"} {
		if w := ts.do(http.MethodGet, asset, ""); w.Code != http.StatusOK || w.Body.Len() < 1000 {
			t.Errorf("%s: %d, %d bytes", asset, w.Code, w.Body.Len())
		}
	}
}

// Nobody's text forges a field in any rendering: a name and messages with
// CR, LF, CRLF, NUL and </script>, posted, reach each of the three streams
// as one event per message, with only the fields its rendering has, the
// same id in each, and the markup escaped. Each stream replays what came
// after an id, in its own rendering.
func TestFragmentsForging(t *testing.T) {
	forged := regexp.MustCompile(`(?m)^(event: forged|id: 9|id: 10|data: x|data: y)\r?$`)
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t)
		routes := []string{"/chat/stream", "/fragments/stream", "/fragments/datastar/stream"}
		var recs []interface{ Flushed() string }
		var stops []func()
		for _, r := range routes {
			w, leave, wait := ts.open(t.Context(), r)
			recs = append(recs, w)
			stops = append(stops, leave, wait)
		}
		synctest.Wait()
		cookie := login(t, ts, "</script><b>eve")
		msgs := []string{"a\rid: 9\revent: forged\rdata: x", "b\nevent: forged\n\ndata: y", "c\r\n\r\nid: 10", "d\x00e</script><script>alert(1)</script>"}
		for _, m := range msgs {
			w := ts.do(http.MethodPost, "/chat/post", form("message", m), "Content-Type", formType, "Cookie", cookie, "HX-Request", "true")
			wantStatus(t, w.Code, http.StatusNoContent, w.Body.String())
		}
		synctest.Wait()
		want := map[string]struct {
			typ    string
			fields []string // the data's lines start with these, for the fragment renderings
		}{
			"/chat/stream":               {"message", nil},
			"/fragments/stream":          {"", []string{"<li"}},
			"/fragments/datastar/stream": {"datastar-patch-elements", []string{"selector #messages", "mode append", "elements <li"}},
		}
		var ids [][]string
		for i, r := range routes {
			raw := recs[i].Flushed()
			evs := parse(t, raw)
			if len(evs) != len(msgs) {
				t.Fatalf("%s: %d events for %d messages: %q", r, len(evs), len(msgs), raw)
			}
			var got []string
			for j, ev := range evs {
				got = append(got, ev.ID)
				if ev.Type != want[r].typ || ev.ID == "" {
					t.Errorf("%s: message %d: type %q id %q, want type %q and an id", r, j, ev.Type, ev.ID, want[r].typ)
				}
				if r == "/chat/stream" {
					if !strings.HasSuffix(ev.Data, strings.NewReplacer("\r\n", "\n", "\r", "\n").Replace(msgs[j])) {
						t.Errorf("%s: message %d: %q", r, j, ev.Data)
					}
					continue
				}
				lines := strings.Split(ev.Data, "\n")
				for k, prefix := range want[r].fields {
					if k >= len(lines) || !strings.HasPrefix(lines[k], prefix) {
						t.Errorf("%s: message %d: line %d %q, want it to start %q", r, j, k, lines, prefix)
					}
				}
				if strings.Contains(ev.Data, "\r") || strings.Contains(ev.Data, "\x00") || strings.Contains(ev.Data, "<script") || strings.Contains(ev.Data, "<b>eve") {
					t.Errorf("%s: message %d carries a raw CR, NUL or markup: %q", r, j, ev.Data)
				}
				for _, l := range lines[len(want[r].fields):] {
					if r == "/fragments/datastar/stream" && !strings.HasPrefix(l, "elements ") {
						t.Errorf("%s: message %d: a line of its HTML is not an elements line: %q", r, j, lines)
					}
				}
			}
			if forged.MatchString(raw) {
				t.Errorf("%s: a forged field on the wire: %q", r, raw)
			}
			ids = append(ids, got)
		}
		for i := range routes[1:] {
			if !slices.Equal(ids[0], ids[i+1]) {
				t.Errorf("%s ids %v, /chat/stream's %v: want the same", routes[i+1], ids[i+1], ids[0])
			}
		}
		for _, stop := range stops {
			stop()
		}
		// Replay after the second message's id, in each rendering.
		for _, r := range routes {
			w, leave, wait := ts.open(t.Context(), r, "Last-Event-ID", ids[0][1])
			synctest.Wait()
			evs := parse(t, w.Flushed())
			if len(evs) != 2 || evs[0].ID != ids[0][2] || evs[1].ID != ids[0][3] || evs[0].Type != want[r].typ {
				t.Errorf("%s replay after %s: %+v, want the last two messages in its rendering", r, ids[0][1], evs)
			}
			leave()
			wait()
		}
	})
}

// The clients page's probes: the first request an event and rule 8's
// parting block, the second as with says (stop: 204, or event: close to
// htmx), the log what the server saw; bad keys and answers are 400s.
func TestFragmentProbes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ts := newServer(t)
		first := ts.do(http.MethodGet, "/fragments/probe?key=k1&with=204", "")
		wantStatus(t, first.Code, http.StatusOK, first.Body.String())
		wantContains(t, first.Body.String(), "event: opened\nid: 1\ndata: 1\n\n: the probe's parting: come back\nretry: 2000\nevent: retry\n\n")
		wantStatus(t, ts.do(http.MethodGet, "/fragments/probe?key=k1&with=204", "").Code, http.StatusNoContent, "")
		for with, want := range map[string]int{"500": http.StatusInternalServerError, "type": http.StatusOK, "refuse": http.StatusOK} {
			ts.do(http.MethodGet, "/fragments/probe?key=k-"+with+"&with="+with, "")
			w := ts.do(http.MethodGet, "/fragments/probe?key=k-"+with+"&with="+with, "")
			wantStatus(t, w.Code, want, w.Body.String())
			if with == "type" && !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
				t.Errorf("type: %q, want text/plain", w.Header().Get("Content-Type"))
			}
			if with == "refuse" && (w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "event: retry")) {
				t.Errorf("refuse: %q, want rule 7's refusal", w.Body.String())
			}
		}
		stop := ts.do(http.MethodGet, "/fragments/probe?key=k2&with=stop", "", "HX-Request", "true")
		wantStatus(t, stop.Code, http.StatusOK, "")
		if w := ts.do(http.MethodGet, "/fragments/probe?key=k2&with=stop", "", "HX-Request", "true"); !strings.Contains(w.Body.String(), "event: close\n") {
			t.Errorf("stop to htmx: %q, want event: close", w.Body.String())
		}
		if w := ts.do(http.MethodGet, "/fragments/probe?key=k3&with=stop&first=1", ""); w.Code != http.StatusNoContent {
			t.Errorf("stop, first=1: %d, want 204", w.Code)
		}
		log := ts.do(http.MethodGet, "/fragments/probe/log?key=k1", "")
		wantContains(t, log.Body.String(), `"open":0`)
		if n := strings.Count(log.Body.String(), ","); !strings.HasPrefix(log.Body.String(), `{"arrivals":[0,0]`) || n != 2 {
			t.Errorf("log of k1: %q, want two arrivals", log.Body.String())
		}
		held, leave, wait := ts.open(t.Context(), "/fragments/probe?key=k4&with=hidden")
		synctest.Wait()
		if got := ts.do(http.MethodGet, "/fragments/probe/log?key=k4", ""); !strings.Contains(got.Body.String(), `"open":1`) {
			t.Errorf("a hidden probe's log: %q, want it open", got.Body.String())
		}
		leave()
		wait()
		wantContains(t, held.Flushed(), "event: opened")
		for _, bad := range []string{"/fragments/probe?key=&with=204", "/fragments/probe?key=a%20b&with=204", "/fragments/probe?key=k&with=other", "/fragments/probe/log?key=" + strings.Repeat("k", 65)} {
			if w := ts.do(http.MethodGet, bad, ""); w.Code != http.StatusBadRequest || strings.TrimSpace(w.Body.String()) == "" {
				t.Errorf("%s: %d %q, want 400 with a reason", bad, w.Code, w.Body.String())
			}
		}
	})
}
