package tests

import (
	"encoding/json"
	"testing"
	"time"
)

// openTime is the page-side probe: how long an EventSource on path takes
// to fire open, in milliseconds, or -1 if it has not within 5 s.
func openTime(path string) string {
	return `new Promise(resolve => {
		const es = new EventSource(` + jsString(path) + `), t0 = performance.now();
		const timer = setTimeout(() => { es.close(); resolve(-1); }, 5000);
		es.onopen = () => { clearTimeout(timer); es.close(); resolve(Math.round(performance.now() - t0)); };
	})`
}

// jsString is s as a JavaScript string literal (JSON's is one).
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Rule 1 in every engine: a stream with nothing to say yet (a chat with no
// history, a token nobody pings, the fragments of an empty chat) still
// opens at once. Before its opening comment, Firefox (and WebKit over
// HTTP/2) showed these CONNECTING until the first keepalive, 15 s in.
func TestEnginesQuietStreamsOpenAtOnce(t *testing.T) {
	for _, proto := range []string{"http1", "tls"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			args := []string{"-keepalive", "15s"}
			if proto == "tls" {
				args = append(args, "-tls")
			}
			s := startServer(t, args...)
			inEachEngine(t, proto == "tls", func(t *testing.T, b *tab) {
				b.Go(s.URL + "/time/")
				for _, path := range []string{"/chat/stream", "/tokens/quiet/poll", "/fragments/stream"} {
					var ms float64
					b.Eval(openTime(path), &ms)
					if ms < 0 {
						t.Errorf("%s over %s: %s stayed CONNECTING for 5 s", b.engine, proto, path)
					}
				}
				// And the page says so: the chat's own status.
				b.Go(s.URL + "/chat/")
				b.Until(5*time.Second, "the chat page's stream OPEN", `document.querySelector("[data-testid=ready-state]")?.textContent === "OPEN"`)
			})
		})
	}
}
