package tests

import (
	"testing"
	"time"
)

// The Pylons lesson in each engine and protocol: the page receives the
// generator's ten messages; with ?resume=1 the reconnect after the last
// one (Last-Event-ID: 9) is answered 204, and EventSource is CLOSED for
// good, which the page says.
func TestEnginesGenerator(t *testing.T) {
	inEachEngineAndProtocol(t, nil, func(t *testing.T, b *tab, s *server) {
		b.Go(s.URL + "/eventsource/page")
		b.Until(20*time.Second, "ten messages", `Number(document.querySelector("[data-testid=event-count]").textContent) >= 10`)
		if !b.Bool(list("events") + `.some(t => / message: 9 /.test(t))`) {
			t.Errorf("%s: the event list has no message 9: %s", b.engine, b.String(list("events")+`.join(" | ")`))
		}
		b.Go(s.URL + "/eventsource/page?resume=1")
		b.Until(30*time.Second, "CLOSED by the 204 after the last event",
			`document.querySelector("[data-testid=ready-state]").textContent === "CLOSED" &&
			 `+list("events")+`.some(t => t.includes("answered 204 No Content"))`)
		if n := b.String(`document.querySelector("[data-testid=connect-count]").textContent`); n != "1" {
			t.Errorf("%s: the resume page opened %s times, want 1: the 204 is not an open", b.engine, n)
		}
	})
}
