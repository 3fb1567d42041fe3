package sse

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// ContentType is the media type of every stream.
const ContentType = "text/event-stream; charset=utf-8"

// Stream writes events to one HTTP response and flushes each at once.
// It is not safe for concurrent use: one goroutine owns a stream.
type Stream struct {
	w     http.ResponseWriter
	rc    *http.ResponseController
	buf   []byte
	watch *time.Timer // cuts a write blocked for WriteTimeout
}

// SetHeaders sets the headers every event stream needs: the content type,
// no caching, and no buffering by proxies such as nginx. It removes any
// Content-Length and Content-Encoding: a stream has no length, and a
// compressor would hold events back until its buffer fills.
func SetHeaders(h http.Header) {
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Del("Content-Length")
	h.Del("Content-Encoding")
}

// Opening is the comment every stream starts with. Firefox, and WebKit over
// HTTP/2, fire EventSource's open only when the first body byte arrives:
// a stream with nothing to say yet would show CONNECTING until its first
// keepalive. So the headers and this go out together, at once.
const Opening = ": open\n\n"

// Open sets the stream headers, sends them with status 200 and the opening
// comment, and flushes, so that every browser sees the stream open before
// the first event exists.
func Open(w http.ResponseWriter) (*Stream, error) {
	SetHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	s := &Stream{w: w, rc: http.NewResponseController(w)}
	if err := s.Write([]byte(Opening)); err != nil {
		return nil, err
	}
	return s, nil
}

// KeepBuffer is the largest encoding buffer a stream keeps between
// events: a larger one (a large event, a replay's piece) is let go once
// written, so that ten thousand idle streams do not each hold the largest
// thing they ever sent.
const KeepBuffer = 4 << 10

// Send encodes ev and flushes it.
func (s *Stream) Send(ev Event) error {
	s.buf = ev.AppendTo(s.buf[:0])
	err := s.Write(s.buf)
	if cap(s.buf) > KeepBuffer {
		s.buf = nil
	}
	return err
}

// Comment sends a comment line. Comments keep idle connections open
// through proxies and let clients notice a dead server; EventSource
// ignores them.
func (s *Stream) Comment(text string) error {
	return s.Send(Event{Comment: text})
}

// WriteTimeout bounds each write and its flush: a client that stopped
// reading (its connection's buffers full, or its HTTP/2 window shut) is
// cut when a write has been blocked this long, whether or not newer
// events pile up behind it. A client that reads, however slowly, finishes
// a write of at most hub.MaxBatch well within it.
const WriteTimeout = 30 * time.Second

// Write sends bytes that are already encoded events, and flushes. Fan-out
// code encodes an event once and writes the same bytes to every stream.
// A write still blocked after WriteTimeout fails (see cut).
func (s *Stream) Write(frames []byte) error {
	if s.watch == nil {
		s.watch = time.AfterFunc(WriteTimeout, s.cut)
	} else {
		s.watch.Reset(WriteTimeout)
	}
	defer s.watch.Stop()
	if _, err := s.w.Write(frames); err != nil {
		return err
	}
	return s.rc.Flush()
}

// cut makes the write under way fail at once, by a write deadline in the
// past. Deadlines only ever move earlier, so it cannot undo another cut
// (SetWriteDeadline, a server's shutdown).
func (s *Stream) cut() { s.SetWriteDeadline(time.Now()) }

// SetWriteDeadline bounds the next writes. A deadline in the past makes a
// write that is blocked on a client that stopped reading return at once:
// that is how a slow subscriber is cut off without waiting for it.
func (s *Stream) SetWriteDeadline(t time.Time) error {
	err := s.rc.SetWriteDeadline(t)
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}

// Parting is a cause of a stream's end that has a last event for its
// client: a server that shuts down cancels its streams' contexts with one
// (context.WithCancelCause) whose event tells the client when to come back.
type Parting interface {
	error
	PartingEvent() Event
}

// Part sends the parting event of the cause with which ctx ended, if it has
// one (see Parting). Loop calls it; a stream that runs its own loop calls it
// when its context ends. It sends before the handler's deferred clean-up,
// so that no tear-down (a broker's bookkeeping) delays the last word. A
// write that fails is not an error here: a client that stopped reading has
// no use for it.
func Part(ctx context.Context, s *Stream) {
	var p Parting
	if errors.As(context.Cause(ctx), &p) {
		s.Send(p.PartingEvent())
	}
}

// Loop runs a long-lived stream: each time ready delivers, it calls step,
// which writes whatever is due; every keepalive interval it sends a comment.
// It returns nil when ctx ends (the client left, or the server is stopping:
// then it sends the parting event first, see Part) or step reports done,
// and the write error when a write fails. The end of ctx comes first: once
// it has ended, nothing else is written, whatever else is ready. A nil
// ready never delivers: the stream only keeps alive.
func Loop[T any](ctx context.Context, s *Stream, keepalive time.Duration, ready <-chan T, step func() (done bool, err error)) error {
	tick := time.NewTicker(keepalive)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			Part(ctx, s)
			return nil
		case <-tick.C:
			if ended(ctx) {
				Part(ctx, s)
				return nil
			}
			if err := s.Comment("keepalive"); err != nil {
				return err
			}
		case <-ready:
			if ended(ctx) {
				Part(ctx, s)
				return nil
			}
			done, err := step()
			if err != nil || done {
				return err
			}
		}
	}
}

// ended reports, without waiting, whether ctx has ended: select picks at
// random among what is ready, and a stream that ended writes no more.
func ended(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	default:
		return false
	}
}

// Refusal retries are spread over rule 7's 2-10 s, so that refused
// clients do not all come back together.
const (
	RefusalRetryMin = 2 * time.Second
	RefusalRetryMax = 10 * time.Second
)

// Refuse answers a stream request that cannot be served now in the one way
// EventSource recovers from (rule 7): 200 text/event-stream with a
// Retry-After header, a RetryBlock (a comment naming the reason, a retry:
// field spread over RefusalRetryMin to RefusalRetryMax), and the end. The browser then
// reconnects after retry; any other status, 503 included, would make it
// give up for good.
func Refuse(w http.ResponseWriter, reason string) error {
	retry := Spread(RefusalRetryMin, RefusalRetryMax)
	w.Header().Set("Retry-After", strconv.FormatInt(int64((retry+time.Second-1)/time.Second), 10))
	s, err := Open(w)
	if err != nil {
		return err
	}
	return s.Send(RetryBlock(reason, retry))
}

// Spread is a random duration in [lo, hi]: retry delays spread this way
// keep the clients of a refused or restarted server from reconnecting in
// the same instant.
func Spread(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + rand.N(hi-lo+1)
}
