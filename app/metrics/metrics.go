// Package metrics holds the Prometheus collectors of one server. Each
// server has its own registry, so tests can run many servers in one
// process.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the server's collectors.
type Metrics struct {
	Registry    *prometheus.Registry
	Requests    *prometheus.CounterVec // by route and status code
	OpenStreams *prometheus.GaugeVec   // by route
	EventsSent  *prometheus.CounterVec // by route: events written to streams
	Published   *prometheus.CounterVec // by channel
	Delivered   prometheus.Counter     // channel events written to subscribers
	Dropped     prometheus.Counter     // slow subscribers disconnected
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
		Published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sselab_events_published_total", Help: "Events published, by channel.",
		}, []string{"channel"}),
		Delivered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sselab_events_delivered_total", Help: "Channel events written to subscribers.",
		}),
		Dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sselab_slow_subscribers_dropped_total", Help: "Subscribers disconnected because their queue was full.",
		}),
	}
	m.Registry.MustRegister(m.Requests, m.OpenStreams, m.EventsSent, m.Published, m.Delivered, m.Dropped,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
