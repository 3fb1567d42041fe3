package handlers_test

import (
	"net/http"
	"net/url"
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

func TestFragmentsPage(t *testing.T) {
	ts := newServer(t)
	w := ts.do(http.MethodGet, "/fragments/", "")
	wantStatus(t, w.Code, http.StatusOK, "")
	for _, want := range []string{`sse-connect="/fragments/stream"`, `sse-swap="message"`, `/assets/vendor/htmx.min.js`, `/assets/vendor/htmx-ext-sse.min.js`} {
		wantContains(t, w.Body.String(), want)
	}
	for _, asset := range []string{"/assets/vendor/htmx.min.js", "/assets/vendor/htmx-ext-sse.min.js"} {
		if w := ts.do(http.MethodGet, asset, ""); w.Code != http.StatusOK || w.Body.Len() < 1000 {
			t.Errorf("%s: %d, %d bytes", asset, w.Code, w.Body.Len())
		}
	}
}
