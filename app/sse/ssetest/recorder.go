// Package ssetest helps test stream handlers: a ResponseWriter that
// records only what was flushed, which is what a client has received, and
// a parser of what was recorded.
package ssetest

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"sselab/app/sse"
)

// Recorder is an http.ResponseWriter and http.Flusher. Bytes written but
// not flushed stay pending; Flushed returns what a client would have seen.
// It is safe to read while a handler writes.
type Recorder struct {
	mu      sync.Mutex
	header  http.Header
	sent    http.Header // the header as it was when first written
	status  int
	pending strings.Builder
	flushed strings.Builder
	flushes int
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder { return &Recorder{header: http.Header{}} }

func (r *Recorder) Header() http.Header { return r.header }

func (r *Recorder) WriteHeader(code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.status == 0 {
		r.status, r.sent = code, r.header.Clone()
	}
}

func (r *Recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pending.Write(b)
}

func (r *Recorder) Flush() {
	r.WriteHeader(http.StatusOK)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushed.WriteString(r.pending.String())
	r.pending.Reset()
	r.flushes++
}

// Flushed is everything flushed so far.
func (r *Recorder) Flushed() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.flushed.String()
}

// All is everything written, flushed or not: what the client has once the
// response is complete.
func (r *Recorder) All() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.flushed.String() + r.pending.String()
}

// Status is the status code sent, 0 before any.
func (r *Recorder) Status() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// SentHeader is the header as it was sent with the status line.
func (r *Recorder) SentHeader() http.Header {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent
}

// Events parses every complete event of a recorded stream with the
// project's parser, failing the test on a parse error.
func Events(t testing.TB, stream string) []sse.Event {
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
