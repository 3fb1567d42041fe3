package app

import (
	"context"
	"log/slog"
	"sync"
)

// maxLogLines bounds the log: the server writes at most this many lines a
// second, whatever clients do. Every request and stream logs one line, so
// a client resetting 25,000 HTTP/2 streams a second once wrote 25 MB of
// log in 10 s.
const maxLogLines = 200

// rateLimited passes at most per records a second (by each record's time)
// to next; the rest are counted, and the first record of a later second
// is preceded by one line saying how many were dropped.
type rateLimited struct {
	next slog.Handler
	per  int
	st   *rateState // shared by the handlers WithAttrs and WithGroup make
}

type rateState struct {
	mu      sync.Mutex
	second  int64
	n       int
	dropped int
}

func newRateLimited(next slog.Handler, per int) slog.Handler {
	return &rateLimited{next: next, per: per, st: &rateState{}}
}

func (h *rateLimited) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *rateLimited) Handle(ctx context.Context, r slog.Record) error {
	sec := r.Time.Unix()
	h.st.mu.Lock()
	dropped := 0
	if sec != h.st.second {
		dropped = h.st.dropped
		h.st.second, h.st.n, h.st.dropped = sec, 0, 0
	}
	h.st.n++
	pass := h.st.n <= h.per
	if !pass {
		h.st.dropped++
	}
	h.st.mu.Unlock()
	if dropped > 0 {
		s := slog.NewRecord(r.Time, slog.LevelWarn, "log lines dropped: more than the bound in one second", 0)
		s.AddAttrs(slog.Int("dropped", dropped), slog.Int("bound", h.per))
		h.next.Handle(ctx, s)
	}
	if !pass {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *rateLimited) WithAttrs(as []slog.Attr) slog.Handler {
	return &rateLimited{next: h.next.WithAttrs(as), per: h.per, st: h.st}
}

func (h *rateLimited) WithGroup(name string) slog.Handler {
	return &rateLimited{next: h.next.WithGroup(name), per: h.per, st: h.st}
}
