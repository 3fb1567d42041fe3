package tests

import (
	"strings"
	"testing"
	"time"
)

// The Publisher lesson in each engine and protocol: a viewer sees its own
// visit marked (you), then the visit of someone else (a request of the
// page's without its cookies, as another browser's).
func TestEnginesVisits(t *testing.T) {
	inEachEngineAndProtocol(t, nil, func(t *testing.T, b *tab, s *server) {
		b.Go(s.URL + "/visits/")
		b.Until(10*time.Second, "the stream open", `document.querySelector("[data-testid=ready-state]").textContent === "OPEN"`)
		b.Until(10*time.Second, "its own visit, marked", list("visits")+`.some(t => t.endsWith("! (you)"))`)
		b.Eval(`fetch("/visits/", {credentials: "omit"}).then(r => r.status)`, new(float64))
		b.Until(10*time.Second, "another visit", list("visits")+`.some(t => /^New visit from 127\.0\.0\.1 at .*!$/.test(t))`)
	})
}

// gap in each engine and protocol: the server restarts (a new run, whose
// history cannot place the ids of the old one), the browser's own
// reconnect sends the last id it saw, and the page shows the gap event
// that says events may have been missed.
func TestEnginesGapAfterRestart(t *testing.T) {
	inEachEngineAndProtocol(t, []string{"-retry", "600ms"}, func(t *testing.T, b *tab, s *server) {
		b.Go(s.URL + "/visits/")
		b.Until(10*time.Second, "its own visit, with an id", list("events")+`.some(t => / #\S+: New visit from /.test(t))`)
		addr := s.URL[strings.Index(s.URL, "//")+2:]
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
		args := []string{"-retry", "600ms"}
		if strings.HasPrefix(s.URL, "https:") {
			args = append(args, "-tls")
		}
		startServerAt(t, addr, args...)
		b.Until(15*time.Second, "the gap shown after the restart", list("events")+`.some(t => / gap( #\S+)?: /.test(t))`)
		b.Until(5*time.Second, "the stream open again", `document.querySelector("[data-testid=ready-state]").textContent === "OPEN"`)
	})
}
