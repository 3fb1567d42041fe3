package handlers_test

import (
	"regexp"
	"testing"

	"sselab/app/sse"
	"sselab/app/sse/ssetest"
)

var unixStamp = regexp.MustCompile(`^\d+\.\d{6}$`)

// parse reads every complete event of a recorded stream.
func parse(t *testing.T, stream string) []sse.Event { return ssetest.Events(t, stream) }
