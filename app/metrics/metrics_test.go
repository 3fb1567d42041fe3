package metrics

import (
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestDeliveredSumsShards(t *testing.T) {
	m := New()
	var wg sync.WaitGroup
	for g := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				m.Delivered(uint64(g), 2)
			}
		}()
	}
	wg.Wait()
	want := "# HELP sselab_events_delivered_total Channel events written to subscribers.\n# TYPE sselab_events_delivered_total counter\nsselab_events_delivered_total 200000\n"
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "sselab_events_delivered_total"); err != nil {
		t.Error(err)
	}
}

func TestPublishedByKind(t *testing.T) {
	m := New()
	m.Published("token:abc")
	m.Published("token:def")
	m.Published("chat")
	if got := testutil.ToFloat64(m.PublishedTotal.WithLabelValues("token")); got != 2 {
		t.Errorf("token: got %v, want 2 (one series for every token)", got)
	}
	if got := testutil.ToFloat64(m.PublishedTotal.WithLabelValues("chat")); got != 1 {
		t.Errorf("chat: got %v, want 1", got)
	}
}

func BenchmarkDelivered(b *testing.B) {
	m := New()
	var shard uint64
	b.RunParallel(func(pb *testing.PB) {
		s := shard
		shard++
		for pb.Next() {
			m.Delivered(s, 1)
		}
	})
}
