package app

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// A flood of log lines writes at most the bound each second, then says
// how many it dropped.
func TestLogBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		log := slog.New(newRateLimited(slog.NewTextHandler(&out, nil), 200)).With("part", "test")
		time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second))) // at the start of a second
		for range 25_000 {
			log.Info("stream", "status", 200)
		}
		time.Sleep(time.Second)
		log.Info("next second")
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != 202 {
			t.Fatalf("%d lines for 25,001 records, want 200, the note of the dropped, and the next", len(lines))
		}
		if !strings.Contains(lines[200], "log lines dropped") || !strings.Contains(lines[200], "dropped=24800") || !strings.Contains(lines[201], "next second") {
			t.Errorf("after the bound: %q, %q", lines[200], lines[201])
		}
	})
}
