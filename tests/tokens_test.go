package tests

import (
	"strings"
	"testing"
	"time"
)

// The Tornado lesson in each engine and protocol: the token page watches
// a token, posts ping from its button and shows it with its id (-i), and
// closes its EventSource on a close posted to the token, as the seed's
// client exited.
func TestEnginesTokens(t *testing.T) {
	inEachEngineAndProtocol(t, []string{"-i"}, func(t *testing.T, b *tab, s *server) {
		b.Go(s.URL + "/tokens/")
		b.Until(10*time.Second, "watching the demo token", `document.querySelector("[data-testid=ready-state]").textContent === "OPEN"`)
		b.Click("post-ping")
		b.Until(10*time.Second, "the ping shown with its id", list("events")+`.some(t => / ping #\d+: 42$/.test(t))`)
		// The ping can arrive on the stream before the post's answer does.
		b.Until(10*time.Second, "the post's answer shown", `document.querySelector("[data-testid=answer]").textContent !== ""`)
		if got := b.Text("answer"); got != "200 1 listener reached" {
			t.Errorf("%s: answer %q, want 200 and one listener: the page holds one stream", b.engine, got)
		}
		if got := b.Text("commands"); !strings.Contains(got, "sselab request -H 127.0.0.1 -P ") {
			t.Errorf("%s: commands %q", b.engine, got)
		}
		b.Click("post-close")
		b.Until(10*time.Second, "readyState CLOSED after close", `document.querySelector("[data-testid=ready-state]").textContent === "CLOSED"`)
	})
}
