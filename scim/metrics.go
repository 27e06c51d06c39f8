package scim

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the SCIM endpoint's own collectors; the wiring registers them
// where /metrics serves (NewMetrics). Every label comes from a closed set.
type Metrics struct {
	Requests    *prometheus.CounterVec   // endpoint, method, status
	Latency     *prometheus.HistogramVec // endpoint, method
	AuthBlocked prometheus.Counter
}

// NewMetrics builds the SCIM collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scimflare_scim_requests_total", Help: "SCIM requests by endpoint, method and status.",
		}, []string{"endpoint", "method", "status"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "scimflare_scim_request_duration_seconds", Help: "SCIM request latency.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"endpoint", "method"}),
		AuthBlocked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scimflare_scim_auth_blocked_total",
			Help: "SCIM requests refused with 429 because their address had too many failed authentications.",
		}),
	}
	reg.MustRegister(m.Requests, m.Latency, m.AuthBlocked)
	return m
}
