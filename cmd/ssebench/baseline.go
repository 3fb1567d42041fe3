package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The baseline is the least an SSE broadcast server can do: net/http, no
// framework, one buffered channel per stream, each event encoded once and
// the same bytes sent to every stream. sselab's figures are given as
// ratios to it, measured in the same run on the same machine.

type baseline struct {
	mu   sync.Mutex
	subs map[chan []byte]struct{}
}

func (b *baseline) poll(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	f := w.(http.Flusher)
	f.Flush()
	ch := make(chan []byte, 64)
	b.mu.Lock()
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
	}()
	for {
		select {
		case <-r.Context().Done():
			return
		case frame := <-ch:
			if _, err := w.Write(frame); err != nil {
				return
			}
			f.Flush()
		}
	}
}

func (b *baseline) ping(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	data := strings.NewReplacer("\r", "", "\n", "").Replace(string(body))
	frame := []byte("event: ping\ndata: " + data + "\n\n")
	b.mu.Lock()
	n := 0
	for ch := range b.subs {
		select {
		case ch <- frame:
		default: // a full queue: the baseline drops the event for that stream
		}
		n++
	}
	b.mu.Unlock()
	fmt.Fprintf(w, "%d listeners reached\n", n)
}

// serveBaseline runs the baseline server until ctx ends.
func serveBaseline(ctx context.Context, addr string) error {
	b := &baseline{subs: map[chan []byte]struct{}{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /tokens/bench/poll", b.poll)
	mux.HandleFunc("POST /tokens/bench/ping", b.ping)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}
