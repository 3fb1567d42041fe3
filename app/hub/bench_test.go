package hub

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// BenchmarkFanout measures one publish reaching every subscriber: each
// subscriber is a goroutine that waits on Ready and calls Next, as a
// stream handler does (without the socket write). ns/delivery and
// allocs/delivery are per event per subscriber.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 1000, 10000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			m := NewMemory(Options{History: 1024, Queue: 1024})
			defer m.Close()
			var got sync.WaitGroup
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var ready sync.WaitGroup
			for range n {
				s, _ := m.Subscribe(ctx, Request{Channels: []string{"bench"}})
				ready.Add(1)
				go func() {
					defer s.Close()
					buf := make([]byte, 0, 4096)
					var err error
					ready.Done()
					for {
						select {
						case <-ctx.Done():
							return
						case <-s.Ready():
						}
						buf, err = s.Next(buf[:0])
						if err != nil {
							return
						}
						for range countEvents(buf) {
							got.Done()
						}
					}
				}()
			}
			ready.Wait()
			msg := Message{Type: "ping", Data: "1763712000123456789 xxxxxxxxxxxxxxxxxxxx"}
			channels := []string{"bench"}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				got.Add(n)
				m.Publish(ctx, channels, msg)
				got.Wait()
			}
			b.StopTimer()
			deliveries := float64(b.N) * float64(n)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
		})
	}
}

// countEvents counts the blank lines that end events in encoded frames.
func countEvents(b []byte) int {
	n := 0
	for i := 1; i < len(b); i++ {
		if b[i] == '\n' && b[i-1] == '\n' {
			n++
		}
	}
	return n
}

// BenchmarkNextAllocs checks that delivering to a subscriber that reuses
// its buffer allocates nothing.
func BenchmarkNextAllocs(b *testing.B) {
	m := NewMemory(Options{History: 1024, Queue: 1024})
	defer m.Close()
	s, _ := m.Subscribe(context.Background(), Request{Channels: []string{"c"}})
	defer s.Close()
	buf := make([]byte, 0, 4096)
	msg := Message{Type: "ping", Data: "x"}
	b.ReportAllocs()
	for b.Loop() {
		m.Publish(context.Background(), []string{"c"}, msg)
		buf, _ = s.Next(buf[:0])
	}
}
