// Package metrics holds the Prometheus collectors of one server. Each
// server has its own registry, so tests can run many servers in one
// process.
package metrics

import (
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the server's collectors.
type Metrics struct {
	Registry       *prometheus.Registry
	Requests       *prometheus.CounterVec // by route and status code
	OpenStreams    *prometheus.GaugeVec   // by route
	EventsSent     *prometheus.CounterVec // by route: events written to streams
	PublishedTotal *prometheus.CounterVec // by channel kind
	DeliveredTotal prometheus.Counter     // channel events written to subscribers
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
			Name: "sselab_events_sent_total", Help: "Events written to streams, by route.",
		}, []string{"route"}),
		PublishedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sselab_events_published_total", Help: "Events published, by channel kind.",
		}, []string{"channel"}),
		DeliveredTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sselab_events_delivered_total", Help: "Channel events written to subscribers.",
		}),
		DroppedTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sselab_slow_subscribers_dropped_total", Help: "Subscribers disconnected because their queue was full.",
		}),
	}
	m.Registry.MustRegister(m.Requests, m.OpenStreams, m.EventsSent, m.PublishedTotal, m.DeliveredTotal, m.DroppedTotal,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// Published, Delivered and Dropped make Metrics a hub.Observer. Channels are
// counted by kind (the part before ':'), so that one token per client does
// not make one time series per token.
func (m *Metrics) Published(channel string) {
	kind, _, _ := strings.Cut(channel, ":")
	m.PublishedTotal.WithLabelValues(kind).Inc()
}

// Delivered counts events written to subscribers.
func (m *Metrics) Delivered(n int) { m.DeliveredTotal.Add(float64(n)) }

// Dropped counts slow subscribers disconnected.
func (m *Metrics) Dropped() { m.DroppedTotal.Inc() }
