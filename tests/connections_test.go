package tests

import (
	"testing"
	"time"
)

// The connection limit in each engine: eight streams over HTTP/1.1 get
// the six connections a browser allows per site, and two wait with no
// error; over -tls, HTTP/2 carries all eight on one connection.
func TestEnginesConnectionLimit(t *testing.T) {
	inEachEngineAndProtocol(t, nil, func(t *testing.T, b *tab, s *server) {
		b.Go(s.URL + "/connections/?n=8")
		b.Until(15*time.Second, "the page settled", `document.body.dataset.settled === "1"`)
		want := "6 open, 2 waiting"
		if b.String(`location.protocol`) == "https:" {
			want = "8 open, 0 waiting"
		}
		if got := b.String(`document.body.dataset.open + " open, " + document.body.dataset.waiting + " waiting"`); got != want {
			t.Errorf("%s over %s: %s, want %s", b.engine, b.String(`location.protocol`), got, want)
		}
	})
}
