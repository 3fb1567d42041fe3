package redisbroker

import (
	"context"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"sselab/app/hub"
	"sselab/app/hub/redistest"
)

// BenchmarkPublishParallel: 64 goroutines post at once, each to a channel
// of its own, as the many-channel load does; ns/op is per publish, through
// a real redis-server.
func BenchmarkPublishParallel(b *testing.B) {
	srv := redistest.Start(b)
	r, err := New(context.Background(), srv.URL, hub.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0))) // about 64 goroutines
	b.ReportAllocs()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		ch := []string{"bench-" + strconv.FormatInt(next.Add(1), 10)}
		for pb.Next() {
			if err := r.Publish(context.Background(), ch, hub.Message{Type: "ping", Data: "x"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
