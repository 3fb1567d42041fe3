package sse_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"sselab/app/sse"
	"sselab/app/sse/ssetest"
)

func TestOpenSetsHeadersAndFlushes(t *testing.T) {
	w := ssetest.NewRecorder()
	w.Header().Set("Content-Length", "12")
	w.Header().Set("Content-Encoding", "gzip")
	if _, err := sse.Open(w); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"Content-Type": sse.ContentType, "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
		"Content-Length": "", "Content-Encoding": "",
	} {
		if got := w.Header().Get(k); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
	if w.Status() != http.StatusOK {
		t.Errorf("status: got %d, want 200", w.Status())
	}
	// Rule 1: the first body bytes go out with the headers, or Firefox
	// shows a quiet stream as CONNECTING.
	if got := w.Flushed(); got != ": open\n\n" {
		t.Errorf("flushed at open: got %q, want the opening comment", got)
	}
}

func TestSendFlushesEachEvent(t *testing.T) {
	w := ssetest.NewRecorder()
	s, _ := sse.Open(w)
	if err := s.Send(sse.Event{Data: "one"}); err != nil {
		t.Fatal(err)
	}
	if got := w.Flushed(); got != sse.Opening+"data: one\n\n" {
		t.Errorf("got %q, want the event flushed", got)
	}
}

func TestLoopKeepaliveAndStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := ssetest.NewRecorder()
		s, _ := sse.Open(w)
		ctx, cancel := context.WithCancel(t.Context())
		ready := make(chan struct{})
		steps := 0
		done := make(chan error)
		go func() {
			done <- sse.Loop(ctx, s, 15*time.Second, ready, func() (bool, error) {
				steps++
				return false, s.Send(sse.Event{Data: "x"})
			})
		}()

		time.Sleep(15*time.Second - time.Nanosecond)
		synctest.Wait()
		if got := w.Flushed(); got != sse.Opening {
			t.Fatalf("before the interval: got %q, want nothing", got)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if got := w.Flushed(); got != sse.Opening+": keepalive\n\n" {
			t.Fatalf("at the interval: got %q, want one keepalive", got)
		}
		ready <- struct{}{}
		synctest.Wait()
		if steps != 1 || !strings.HasSuffix(w.Flushed(), "data: x\n\n") {
			t.Fatalf("after ready: steps %d, flushed %q", steps, w.Flushed())
		}
		time.Sleep(15 * time.Second)
		synctest.Wait()
		if got := strings.Count(w.Flushed(), ": keepalive"); got != 2 {
			t.Fatalf("got %d keepalives after 30s, want 2", got)
		}

		cancel() // the client leaves
		if err := <-done; err != nil {
			t.Errorf("Loop: got %v, want nil", err)
		}
	})
}

func TestLoopStopsWhenStepIsDone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := sse.Open(ssetest.NewRecorder())
		ready := make(chan struct{}, 1)
		ready <- struct{}{}
		err := sse.Loop(t.Context(), s, time.Second, ready, func() (bool, error) { return true, nil })
		if err != nil {
			t.Errorf("got %v, want nil", err)
		}
	})
}

// leaving is a cause with a last word, as a server's shutdown is.
type leaving struct{}

func (leaving) Error() string { return "leaving" }
func (leaving) PartingEvent() sse.Event {
	return sse.Event{Comment: "bye", Retry: 2500 * time.Millisecond, HasRetry: true}
}

func TestLoopSendsThePartingEventOfItsCause(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cause error
		want  string
	}{
		{"a parting cause", leaving{}, ": bye\nretry: 2500\n\n"},
		{"a plain cancel", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := ssetest.NewRecorder()
			s, _ := sse.Open(w)
			ctx, cancel := context.WithCancelCause(t.Context())
			cancel(tc.cause)
			if err := sse.Loop(ctx, s, time.Minute, (<-chan struct{})(nil), func() (bool, error) { return false, nil }); err != nil {
				t.Fatalf("Loop: %v", err)
			}
			if got := w.Flushed(); got != sse.Opening+tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// An ended context comes first: with events ready too, Loop writes none of
// them, only the parting event.
func TestLoopEndsBeforeWhatIsReady(t *testing.T) {
	for range 100 { // select picks at random: give it many chances to pick wrong
		w := ssetest.NewRecorder()
		s, _ := sse.Open(w)
		ctx, cancel := context.WithCancelCause(t.Context())
		cancel(leaving{})
		ready := make(chan struct{})
		close(ready) // always ready
		steps := 0
		if err := sse.Loop(ctx, s, time.Minute, ready, func() (bool, error) {
			steps++
			return false, s.Send(sse.Event{Data: "late"})
		}); err != nil {
			t.Fatalf("Loop: %v", err)
		}
		if got := w.Flushed(); steps != 0 || got != sse.Opening+": bye\nretry: 2500\n\n" {
			t.Fatalf("%d steps, flushed %q: want only the parting event", steps, got)
		}
	}
}

// The keepalive tick and the end of the context due together: the end wins,
// no keepalive follows it.
func TestLoopEndsBeforeADueKeepalive(t *testing.T) {
	for range 64 { // select picks at random: give it many chances to pick wrong
		synctest.Test(t, func(t *testing.T) {
			w := ssetest.NewRecorder()
			s, _ := sse.Open(w)
			ctx, cancel := context.WithCancelCause(t.Context())
			ready := make(chan struct{}, 1)
			ready <- struct{}{}
			err := sse.Loop(ctx, s, time.Second, ready, func() (bool, error) {
				cancel(leaving{})
				time.Sleep(time.Second) // the tick is due when step returns
				return false, nil
			})
			if err != nil {
				t.Fatalf("Loop: %v", err)
			}
			if got := w.Flushed(); got != sse.Opening+": bye\nretry: 2500\n\n" {
				t.Fatalf("flushed %q: want only the parting event", got)
			}
		})
	}
}

// stalled is a client that stops reading after its first write: every
// later write blocks until a write deadline in the past cuts it, as a
// connection's does.
type stalled struct {
	*ssetest.Recorder
	mu     sync.Mutex
	writes int
	cut    chan struct{}
}

func (w *stalled) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.writes++
	n := w.writes
	w.mu.Unlock()
	if n == 1 {
		return w.Recorder.Write(b)
	}
	<-w.cut
	return 0, os.ErrDeadlineExceeded
}

func (w *stalled) SetWriteDeadline(t time.Time) error {
	if !t.After(time.Now()) {
		w.mu.Lock()
		defer w.mu.Unlock()
		select {
		case <-w.cut:
		default:
			close(w.cut)
		}
	}
	return nil
}

// A write blocked on a client that stopped reading fails after
// WriteTimeout, however few events follow it; one that completes leaves
// no timer behind to cut the next.
func TestWriteToAStalledClientIsCutByTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &stalled{Recorder: ssetest.NewRecorder(), cut: make(chan struct{})}
		s, err := sse.Open(w) // the opening comment: the one write that completes
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Hour) // a stream long idle: the first write's timer is gone
		start := time.Now()
		err = s.Send(sse.Event{Data: "blocked"})
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("the blocked write returned %v, want the deadline's error", err)
		}
		if d := time.Since(start); d != sse.WriteTimeout {
			t.Errorf("the blocked write was cut after %v, want %v", d, sse.WriteTimeout)
		}
	})
}

// Large events are sent, but their buffer is not kept for the stream's
// life.
func TestLargeBufferNotKept(t *testing.T) {
	w := ssetest.NewRecorder()
	s, _ := sse.Open(w)
	big := strings.Repeat("x\n", 64<<10)
	if err := s.Send(sse.Event{Data: big}); err != nil {
		t.Fatal(err)
	}
	if n := sse.BufferCap(s); n > sse.KeepBuffer {
		t.Errorf("the stream keeps a buffer of %d bytes after a large event, more than %d", n, sse.KeepBuffer)
	}
	if evs := ssetest.Events(t, w.Flushed()); len(evs) != 1 || evs[0].Data != big {
		t.Errorf("the large event arrived as %d events", len(evs))
	}
}
