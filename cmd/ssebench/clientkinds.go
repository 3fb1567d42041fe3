package main

import (
	"bytes"
	"math/rand/v2"
	"time"
)

// A clientKind is how one kind of client decides when to reconnect, as its
// source says (the versions sselab vendors): the restart scenario applies
// it to what instance A parted with. -restart compares the first two;
// -restart -clients the rest.
type clientKind struct {
	name, label string
	// newPolicy makes one client's rules.
	newPolicy func() reconnectPolicy
}

// reconnectPolicy is one client's reconnect rules.
type reconnectPolicy interface {
	// parted: the stream on A ended; retry is the last retry: it was sent
	// (ok false: none), named whether that retry: came in a block with an
	// event: or data: line. It returns the delay before the first
	// reconnect, and false when the client does not come back at all.
	parted(retry time.Duration, ok, named bool) (time.Duration, bool)
	// failed: a reconnect failed (no connection, or no stream); the delay
	// before the next, and false when the client gives up.
	failed() (time.Duration, bool)
}

var (
	kindSpread = clientKind{"spread", "spread (rule 8)", func() reconnectPolicy { return &eventSource{} }}
	kindSame   = clientKind{"same_retry", "same 3s for all", func() reconnectPolicy { return &eventSource{ignore: true} }}
	// clientKinds are the kinds -restart -clients runs, one round each.
	clientKinds = []clientKind{
		{"eventsource", "EventSource", func() reconnectPolicy { return &eventSource{} }},
		{"htmx4", "htmx 4 hx-sse", func() reconnectPolicy { return &htmx4{} }},
		{"htmx4_unnamed", "htmx 4, retry: alone", func() reconnectPolicy { return &htmx4{unnamed: true} }},
		{"datastar_always", "Datastar, retry 'always'", func() reconnectPolicy { return &datastar{always: true} }},
		{"datastar_auto", "Datastar, its default", func() reconnectPolicy { return &datastar{} }},
	}
)

// eventSource: the reconnection time is the last retry: (Chromium's 3 s
// when none came), the same after a failure. ignore: as if no retry:
// came, for the run without the spread.
type eventSource struct {
	ignore bool
	delay  time.Duration
}

func (e *eventSource) parted(retry time.Duration, ok, _ bool) (time.Duration, bool) {
	e.delay = sameRetry
	if ok && !e.ignore {
		e.delay = retry
	}
	return e.delay, true
}

func (e *eventSource) failed() (time.Duration, bool) { return e.delay, true }

// htmx4 is hx-sse 4.0.1: reconnectDelay starts at 500 ms and becomes a
// retry: only when the block is dispatched (it has data or an event:
// line); each attempt waits reconnectDelay × 2^(attempt-1), at most 60 s,
// ±30 % at random. unnamed: as if the parting retry: came alone (sselab
// before its retry blocks carried event: retry).
type htmx4 struct {
	unnamed bool
	base    time.Duration
	attempt int
}

func (h *htmx4) parted(retry time.Duration, ok, named bool) (time.Duration, bool) {
	h.base = 500 * time.Millisecond
	if ok && named && !h.unnamed {
		h.base = retry
	}
	h.attempt = 1
	return h.delay(), true
}

func (h *htmx4) failed() (time.Duration, bool) {
	h.attempt++
	return h.delay(), true
}

func (h *htmx4) delay() time.Duration {
	d := min(float64(h.base)*float64(int64(1)<<min(h.attempt-1, 20)), float64(60*time.Second))
	return time.Duration(d + (rand.Float64()*2-1)*0.3*d)
}

// datastar is Datastar 1.0.2's @get: retry: from any block sets its
// interval; by default ('auto') a clean end is the end, and only a network
// error retries; with retry: 'always' a clean end retries too. A failed
// attempt doubles the interval (at most 30 s), with no jitter; after 10
// failures in a row it gives up.
type datastar struct {
	always   bool
	interval time.Duration
	failures int
}

func (d *datastar) parted(retry time.Duration, ok, _ bool) (time.Duration, bool) {
	if !d.always {
		return 0, false // A's stream ended cleanly
	}
	d.interval, d.failures = time.Second, 1 // this retry counts as its first
	if ok {
		d.interval = retry
	}
	return d.next(), true
}

func (d *datastar) failed() (time.Duration, bool) {
	if d.failures++; d.failures > 10 {
		return 0, false
	}
	return d.next(), true
}

func (d *datastar) next() time.Duration {
	n := d.interval
	d.interval = min(d.interval*2, 30*time.Second)
	return n
}

// tail keeps the last bytes read through it, to tell whether the stream's
// last retry: came in a named block.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 4096 {
		t.b = append(t.b[:0], t.b[len(t.b)-2048:]...)
	}
	return len(p), nil
}

// namedRetry reports whether the block of the last retry: line in b also
// has an event: or data: line.
func namedRetry(b []byte) bool {
	i := bytes.LastIndex(b, []byte("\nretry:"))
	if i < 0 {
		return false
	}
	start := bytes.LastIndex(b[:i+1], []byte("\n\n")) + 1
	end := bytes.Index(b[i:], []byte("\n\n"))
	if end < 0 {
		end = len(b) - i
	}
	for _, line := range bytes.Split(b[start:i+end], []byte("\n")) {
		if bytes.HasPrefix(line, []byte("event:")) || bytes.HasPrefix(line, []byte("data:")) {
			return true
		}
	}
	return false
}
