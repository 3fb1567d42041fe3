// Package timefeed is the state of the CherryPy time-feed demo: one feed
// for the whole server, as in the seed, with its two switches.
package timefeed

import (
	"fmt"
	"sync/atomic"
	"time"

	"sselab/app/sse"
)

// Feed holds the two switches. The zero value is ready: both off, as the
// seed starts.
type Feed struct {
	on    atomic.Bool
	plain atomic.Bool
}

// ToggleFeed flips whether time events are sent and returns the new state.
func (f *Feed) ToggleFeed() bool { return toggle(&f.on) }

// ToggleType flips the content-type switch and returns the new state. While
// it is on, sendTime answers text/plain, which makes browsers give up.
func (f *Feed) ToggleType() bool { return toggle(&f.plain) }

// On reports whether the feed sends time events.
func (f *Feed) On() bool { return f.on.Load() }

// Plain reports whether the content-type switch is on.
func (f *Feed) Plain() bool { return f.plain.Load() }

func toggle(b *atomic.Bool) bool {
	for {
		old := b.Load()
		if b.CompareAndSwap(old, !old) {
			return !old
		}
	}
}

// Event is the time event for t: type "time", data the Unix time in
// seconds with a six-digit fraction, as the seed's time.time() printed.
func Event(t time.Time) sse.Event {
	return sse.Event{Type: "time", Data: stamp(t)}
}

// stamp formats t as Unix seconds with a six-digit fraction.
func stamp(t time.Time) string {
	return fmt.Sprintf("%d.%06d", t.Unix(), t.Nanosecond()/1000)
}
