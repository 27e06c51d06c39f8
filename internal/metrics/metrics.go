// Package metrics holds the one Prometheus registry /metrics serves, in
// which every subsystem registers its own collectors (scim.NewMetrics,
// sync.NewMetrics), and the daemon's own. No series is labelled with a
// token, an email or any other value a client controls beyond a fixed set.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the registry /metrics serves, and the daemon's own
// collectors: leadership and the Cloudflare token's expiry. Each subsystem
// registers its own collectors in Registry (scim.NewMetrics,
// sync.NewMetrics).
type Metrics struct {
	Registry *prometheus.Registry

	Leader     prometheus.Gauge
	LeaseEpoch prometheus.Gauge
	// CloudflareTokenExpiry is the Unix time the Cloudflare API token
	// expires; 0 when it has no expiry date or it is not known.
	CloudflareTokenExpiry prometheus.Gauge
}

// New registers the daemon's collectors and the Go runtime's and process's
// in a fresh registry.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimflare_leader",
			Help: "1 while this replica holds the reconciler lease (several replicas on PostgreSQL; always 1 with bbolt), else 0.",
		}),
		LeaseEpoch: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimflare_lease_epoch",
			Help: "The epoch of the reconciler lease this replica holds (0 when it does not lead, or with bbolt).",
		}),
		CloudflareTokenExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimflare_cloudflare_token_expiry_timestamp_seconds",
			Help: "Unix time the Cloudflare API token expires, from its last verification; 0 when it has no expiry date or it is unknown.",
		}),
	}
	r.MustRegister(m.Leader, m.LeaseEpoch, m.CloudflareTokenExpiry,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ExportBudgetLeft exports scimflare_cloudflare_budget_left, read live
// from left (the Cloudflare client's limiter) at every scrape, so it says
// what `status` says. Without a Cloudflare client the series is absent, as
// `status` shows "n/a": a 0 there would fire a "budget exhausted" alert in
// plan-only mode.
func (m *Metrics) ExportBudgetLeft(left func() int) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "scimflare_cloudflare_budget_left", Help: "Cloudflare requests left in the rolling 5-minute budget (absent without a Cloudflare client).",
	}, func() float64 { return float64(left()) }))
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
