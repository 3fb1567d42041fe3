// Package metrics holds the Prometheus collectors of one server. Each
// server has its own registry, so tests can run many servers in one
// process.
package metrics

import (
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the server's collectors.
type Metrics struct {
	Registry       *prometheus.Registry
	Requests       *prometheus.CounterVec // by route and status code
	OpenStreams    *prometheus.GaugeVec   // by route
	EventsSent     *prometheus.CounterVec // by route: events the time feed and the generator write (channel streams count in delivered)
	PublishedTotal *prometheus.CounterVec // by channel kind
	delivered      shardedCounter         // channel events written to subscribers
	DroppedTotal   prometheus.Counter     // slow subscribers disconnected
}

// New registers the collectors on a fresh registry.
func New() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sselab_http_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		OpenStreams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sselab_open_streams", Help: "Open event streams by route.",
		}, []string{"route"}),
		EventsSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sselab_events_sent_total", Help: "Events written by the time feed and the generator, by route; channel streams count in sselab_events_delivered_total.",
		}, []string{"route"}),
		PublishedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sselab_events_published_total", Help: "Events published, by channel kind.",
		}, []string{"channel"}),

		DroppedTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sselab_slow_subscribers_dropped_total", Help: "Subscribers disconnected because their queue was full.",
		}),
	}
	delivered := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "sselab_events_delivered_total", Help: "Channel events written to subscribers.",
	}, func() float64 { return float64(m.delivered.sum()) })
	m.Registry.MustRegister(m.Requests, m.OpenStreams, m.EventsSent, m.PublishedTotal, delivered, m.DroppedTotal,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	// The site's Gzip middleware compresses pages, this one included: a
	// second compression here would send gzip inside gzip.
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry, DisableCompression: true})
}

// Published, Delivered and Dropped make Metrics a hub.Observer. Channels are
// counted by kind (the part before ':'), so that one token per client does
// not make one time series per token.
func (m *Metrics) Published(channel string) {
	kind, _, _ := strings.Cut(channel, ":")
	m.PublishedTotal.WithLabelValues(kind).Inc()
}

// Delivered counts events written to subscribers. Every delivery counts,
// so the counter is sharded: subscribers on different shards never write
// the same cache line, and a scrape adds the shards up.
func (m *Metrics) Delivered(shard uint64, n int) { m.delivered.add(shard, uint64(n)) }

// shardedCounter is a counter that many goroutines add to without
// contending: each adds to its own padded slot.
type shardedCounter struct {
	slots [64]struct {
		n atomic.Uint64
		_ [56]byte // one slot per 64-byte cache line
	}
}

func (s *shardedCounter) add(shard, n uint64) { s.slots[shard%64].n.Add(n) }

func (s *shardedCounter) sum() uint64 {
	var total uint64
	for i := range s.slots {
		total += s.slots[i].n.Load()
	}
	return total
}

// Dropped counts slow subscribers disconnected.
func (m *Metrics) Dropped() { m.DroppedTotal.Inc() }
