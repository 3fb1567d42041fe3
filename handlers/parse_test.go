package handlers_test

import (
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"

	"sselab/app/sse"
)

var unixStamp = regexp.MustCompile(`^\d+\.\d{6}$`)

// parse reads every complete event of a recorded stream with the
// project's own parser.
func parse(t *testing.T, stream string) []sse.Event {
	t.Helper()
	p := sse.NewParser(strings.NewReader(stream))
	var evs []sse.Event
	for {
		ev, err := p.Next()
		if errors.Is(err, io.EOF) {
			return evs
		}
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
}
