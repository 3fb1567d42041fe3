package tests

import (
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
