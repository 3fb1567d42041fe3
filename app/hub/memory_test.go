package hub

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"sselab/app/sse"
	"sselab/app/sse/ssetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// read drains what a subscription has now into events.
func read(t *testing.T, s *Subscription) []sse.Event {
	t.Helper()
	buf, err := s.Next(nil)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return parseFrames(t, buf)
}

func parseFrames(t *testing.T, b []byte) []sse.Event { return ssetest.Events(t, string(b)) }

// waitRead blocks until the subscription has events, then reads them.
func waitRead(t *testing.T, s *Subscription) []sse.Event {
	t.Helper()
	select {
	case <-s.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up within 5s")
	}
	return read(t, s)
}

func publish(t *testing.T, b Broker, ch string, data string) {
	t.Helper()
	if err := b.Publish(context.Background(), []string{ch}, Message{Data: data}); err != nil {
		t.Fatal(err)
	}
}

// A channel's log costs what it holds: one request can make a channel, so
// it must not cost a whole history. Reading channels makes none. Past its
// bound, the log keeps exactly the latest History events, in order.
func TestChannelLogGrowsWithItsEvents(t *testing.T) {
	b := NewMemory(Options{History: 100})
	defer b.Close()
	ctx := t.Context()
	b.Count(ctx, "counted")
	b.Subscribers(ctx, "listed", "also listed")
	for _, name := range []string{"counted", "listed", "also listed"} {
		if b.e.lookup(name) != nil {
			t.Errorf("reading channel %q made it", name)
		}
	}

	publish(t, b, "c", "0")
	if got := cap(b.e.lookup("c").ring); got > 8 {
		t.Errorf("a channel with one event holds room for %d", got)
	}
	for i := 1; i < 250; i++ { // grows 8, 16, 32, 64, 100, then wraps
		publish(t, b, "c", strconv.Itoa(i))
		if i == 36 {
			checkRecent(t, b, 100, 0, 36)
		}
	}
	if got := cap(b.e.lookup("c").ring); got != 100 {
		t.Errorf("a full log holds room for %d, want its History 100", got)
	}
	checkRecent(t, b, 100, 150, 249)
}

// checkRecent checks that the latest events of channel c are from..to.
func checkRecent(t *testing.T, b *Memory, n, from, to int) {
	t.Helper()
	s, _ := b.Subscribe(t.Context(), Request{Channels: []string{"c"}, Recent: n})
	defer s.Close()
	evs := read(t, s)
	if len(evs) != to-from+1 {
		t.Fatalf("recent: got %d events, want %d..%d", len(evs), from, to)
	}
	for i, ev := range evs {
		if ev.Data != strconv.Itoa(from+i) {
			t.Fatalf("recent event %d: got %q, want %d", i, ev.Data, from+i)
		}
	}
}

type countingObserver struct{ published, delivered, dropped atomic.Int64 }

func (o *countingObserver) Published(string)          { o.published.Add(1) }
func (o *countingObserver) Delivered(_ uint64, n int) { o.delivered.Add(int64(n)) }
func (o *countingObserver) Dropped()                  { o.dropped.Add(1) }

// resume subscribes with lastID and returns what arrives at once: event
// data, "gap" for a gap event.
func resume(t *testing.T, b Broker, channels []string, lastID string, recent int) []string {
	t.Helper()
	s, err := b.Subscribe(t.Context(), Request{Channels: channels, LastID: lastID, Recent: recent})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []string
	for _, ev := range read(t, s) {
		if ev.Type == GapEvent {
			got = append(got, "gap")
			continue
		}
		got = append(got, ev.Data)
	}
	return got
}

// before is the memory id just before id.
func before(id string) string {
	k, _ := ParseID(id)
	return strconv.FormatUint(k.Hi-1, 10)
}
