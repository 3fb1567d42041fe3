package hub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// The history of all channels together stays within HistoryBytes: past
// it, the oldest events of all channels go first, and a client resuming
// from one of them is told of the gap.
func TestHistoryBytesBound(t *testing.T) {
	const bound = 1 << 20
	b := NewMemory(Options{HistoryBytes: bound})
	defer b.Close()
	big := strings.Repeat("x", 64<<10)
	var first string
	for i := range 200 { // 12.8 MB of events over 200 channels
		ch := fmt.Sprintf("token:%d", i)
		publish(t, b, ch, big)
		if got := b.e.total.Load(); got > bound+2*int64(len(big)) {
			t.Fatalf("after %d publishes the history holds %d bytes, past the bound %d", i+1, got, bound)
		}
		if i == 0 {
			first = b.e.lookup(ch).latest().String()
		}
	}
	if got := resume(t, b, []string{"token:199"}, before(b.e.lookup("token:199").latest().String()), 0); len(got) != 1 || got[0] != big {
		t.Errorf("the newest event is not held")
	}
	if got := fmt.Sprint(resume(t, b, []string{"token:0"}, first, 0)); got != "[]" {
		t.Errorf("resume from the first event, whose channel has nothing left: got %.40s, want []", got)
	}
	if got := resume(t, b, []string{"token:0"}, before(first), 0); len(got) != 1 || got[0] != "gap" {
		t.Errorf("resume from before the first event, now gone: got %.60v, want a gap alone", got)
	}
}

// One channel holds at most ChannelBytes of events, but always its latest.
func TestChannelBytesBound(t *testing.T) {
	b := NewMemory(Options{ChannelBytes: 256 << 10})
	defer b.Close()
	big := strings.Repeat("y", 64<<10)
	for range 20 {
		publish(t, b, "c", big)
	}
	ch := b.e.lookup("c")
	if n := ch.head - ch.start; n < 1 || n > 4 {
		t.Errorf("a 256 KiB channel holds %d events of 64 KiB, want 1 to 4", n)
	}
	huge := strings.Repeat("z", 300<<10) // larger than the bound alone
	publish(t, b, "c", huge)
	if got := resume(t, b, []string{"c"}, "", 1); len(got) != 1 || got[0] != huge {
		t.Errorf("an event larger than the bound is not held as the latest")
	}
}

// Past MaxChannels, what would make a channel is refused; existing
// channels go on working.
func TestMaxChannels(t *testing.T) {
	b := NewMemory(Options{MaxChannels: 3})
	defer b.Close()
	for _, c := range []string{"a", "b", "c"} {
		publish(t, b, c, "x")
	}
	ctx := t.Context()
	if err := b.Publish(ctx, []string{"d"}, Message{Data: "x"}); !errors.Is(err, ErrFull) {
		t.Errorf("publishing to a 4th channel: got %v, want ErrFull", err)
	}
	if err := b.Publish(ctx, []string{"a", "d"}, Message{Data: "partial"}); !errors.Is(err, ErrFull) {
		t.Errorf("publishing to a and a 4th: got %v, want ErrFull", err)
	}
	if got := resume(t, b, []string{"a"}, "", 5); fmt.Sprint(got) != "[x]" {
		t.Errorf("a refused publish reached channel a: got %v", got)
	}
	if _, err := b.Subscribe(ctx, Request{Channels: []string{"e"}}); !errors.Is(err, ErrFull) {
		t.Errorf("subscribing to a 4th channel: got %v, want ErrFull", err)
	}
	if n := b.e.Count("a"); n != 0 {
		t.Errorf("a refused subscription is still counted: %d", n)
	}
	publish(t, b, "a", "still works")
}

// A channel nobody listens to and nobody publishes to for IdleTTL is
// forgotten with its history; one with a listener never is.
func TestIdleChannelsForgotten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewMemory(Options{IdleTTL: time.Minute})
		defer b.Close()
		publish(t, b, "idle", strings.Repeat("x", 1000))
		s, err := b.Subscribe(context.Background(), Request{Channels: []string{"listened"}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		before := b.e.total.Load()
		time.Sleep(2 * time.Minute)
		publish(t, b, "new", "x") // any use of the hub sweeps when due
		if b.e.lookup("idle") != nil {
			t.Error("the idle channel is still held after twice its TTL")
		}
		if b.e.lookup("listened") == nil {
			t.Error("a channel with a listener was forgotten")
		}
		if after := b.e.total.Load(); after >= before {
			t.Errorf("history bytes: %d before, %d after forgetting", before, after)
		}
		// Forgotten means a fresh start: resuming from its old id is a gap.
		if got := resume(t, b, []string{"idle"}, "1", 0); fmt.Sprint(got) != "[gap]" {
			t.Errorf("resume on a forgotten channel: got %v, want [gap]", got)
		}
	})
}

// A state channel holds its latest value; a subscriber that falls behind
// skips to it and is never dropped for it.
func TestStateChannelSkipsToLatest(t *testing.T) {
	obs := &countingObserver{}
	b := NewMemory(Options{State: []string{"count"}, Queue: 2, Observer: obs})
	defer b.Close()
	s, err := b.Subscribe(t.Context(), Request{Channels: []string{"events", "count"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 50 {
		b.Publish(t.Context(), []string{"count"}, Message{Type: "count", Data: fmt.Sprint(i), NoID: true})
	}
	evs := read(t, s)
	if len(evs) != 1 || evs[0].Data != "49" || evs[0].ID != "" {
		t.Errorf("got %+v, want the latest count alone, without an id", evs)
	}
	if obs.dropped.Load() != 0 {
		t.Errorf("%d subscribers dropped for state they skipped", obs.dropped.Load())
	}
}

// A queue longer than the history is clamped to it: a subscriber that falls
// a whole history behind is dropped, never handed events the log has
// already overwritten.
func TestQueueClampedToHistory(t *testing.T) {
	b := NewMemory(Options{History: 4, Queue: 100})
	defer b.Close()
	if q := b.e.Options().Queue; q != 4 {
		t.Errorf("Options().Queue: got %d, want the history, 4", q)
	}
	s, err := b.Subscribe(t.Context(), Request{Channels: []string{"events"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 10 {
		b.Publish(t.Context(), []string{"events"}, Message{Data: fmt.Sprint(i)})
	}
	select {
	case <-s.Done():
	default:
		t.Fatalf("10 events behind a history of 4: not dropped, reads %+v", read(t, s))
	}
	if !errors.Is(s.Err(), ErrDropped) {
		t.Errorf("Err: got %v, want ErrDropped", s.Err())
	}
}
