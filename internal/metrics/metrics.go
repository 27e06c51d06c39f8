// Package metrics holds scimflare's Prometheus collectors in one registry,
// so every subsystem records into the same /metrics page and tests can read
// values back. It never labels a series with a token, an email or any other
// value a client controls beyond a fixed set.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the set of scimflare collectors.
type Metrics struct {
	Registry *prometheus.Registry

	ReconcileRuns     *prometheus.CounterVec // trigger, outcome
	ReconcileDuration *prometheus.HistogramVec
	ChangesApplied    *prometheus.CounterVec // kind
	CloudflareCalls   *prometheus.CounterVec // method, route, status
	Cloudflare429     prometheus.Counter
	BudgetLeft        prometheus.Gauge
	DriftFound        prometheus.Gauge
	ChangesFailed     *prometheus.CounterVec
	Leader            prometheus.Gauge
	LeaseEpoch        prometheus.Gauge
	RemovalsWithheld  prometheus.Gauge
	IdentityProblems  *prometheus.GaugeVec
	GuardTrips        prometheus.Counter
	GuardTripped      prometheus.Gauge
	PendingExpiries   prometheus.Gauge
	LastSuccess       prometheus.Gauge
	PlanOnly          prometheus.Gauge
	// CloudflareTokenExpiry is the Unix time the Cloudflare API token
	// expires; 0 when it has no expiry date or it is not known.
	CloudflareTokenExpiry prometheus.Gauge
}

// New registers every collector in a fresh registry.
func New() *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		ReconcileRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scimflare_reconcile_runs_total", Help: "Reconcile runs by trigger and outcome.",
		}, []string{"trigger", "outcome"}),
		ReconcileDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "scimflare_reconcile_duration_seconds", Help: "Reconcile run duration.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12),
		}, []string{"trigger"}),
		ChangesApplied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scimflare_changes_applied_total", Help: "Cloudflare changes applied by kind.",
		}, []string{"kind"}),
		CloudflareCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scimflare_cloudflare_calls_total", Help: "Cloudflare API calls by method, route and status.",
		}, []string{"method", "route", "status"}),
		Cloudflare429: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scimflare_cloudflare_rate_limited_total", Help: "Cloudflare 429 answers.",
		}),
		BudgetLeft: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimflare_cloudflare_budget_left", Help: "Cloudflare requests left in the rolling 5-minute budget.",
		}),
		DriftFound: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimflare_drift_found", Help: "Roles found in Cloudflare that scimflare did not grant, at the last full reconcile.",
		}),
		ChangesFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scimflare_changes_failed_total",
			Help: "Changes Cloudflare refused, or whose answer disagreed with what was sent, by kind; the next run repairs them.",
		}, []string{"kind"}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimflare_leader",
			Help: "1 while this replica holds the reconciler lease (several replicas on PostgreSQL; always 1 with bbolt), else 0.",
		}),
		LeaseEpoch: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimflare_lease_epoch",
			Help: "The epoch of the reconciler lease this replica holds (0 when it does not lead, or with bbolt).",
		}),
		RemovalsWithheld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimflare_removals_withheld",
			Help: "Removals a guard holds back until `scimflare apply --force` (or until the window allows them), at the last run.",
		}),
		IdentityProblems: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scimflare_identity_problems",
			Help: "SCIM users whose address gives no Cloudflare access (kind invalid_email) and Cloudflare emails several active users share (kind shared_email), at the last run.",
		}, []string{"kind"}),
		GuardTrips: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scimflare_guard_trips_total", Help: "Reconciles whose removals a guard withheld.",
		}),
		GuardTripped: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimflare_guard_tripped", Help: "1 while a removal guard is tripped, until apply --force.",
		}),
		PendingExpiries: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimflare_pending_expiries", Help: "Time-bound grants that have not expired yet.",
		}),
		LastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimflare_last_success_timestamp_seconds", Help: "Unix time of the last successful reconcile.",
		}),
		PlanOnly: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimflare_plan_only", Help: "1 when scimflare only plans and never writes to Cloudflare.",
		}),
		CloudflareTokenExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimflare_cloudflare_token_expiry_timestamp_seconds",
			Help: "Unix time the Cloudflare API token expires, from its last verification; 0 when it has no expiry date or it is unknown.",
		}),
	}
	r.MustRegister(m.ReconcileRuns, m.ReconcileDuration, m.ChangesApplied,
		m.CloudflareCalls, m.Cloudflare429, m.DriftFound, m.ChangesFailed, m.Leader, m.LeaseEpoch, m.RemovalsWithheld, m.IdentityProblems, m.GuardTrips, m.GuardTripped,
		m.PendingExpiries, m.LastSuccess, m.PlanOnly, m.CloudflareTokenExpiry,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ExportBudgetLeft exports scimflare_cloudflare_budget_left, read live
// from left (the Cloudflare client's limiter) at every scrape, so it says
// what `status` says. Without a Cloudflare client the series is absent, as
// `status` shows "n/a": a 0 there would fire a "budget exhausted" alert in
// plan-only mode. The BudgetLeft gauge the reconciler sets after each run
// is not exported.
func (m *Metrics) ExportBudgetLeft(left func() int) {
	m.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "scimflare_cloudflare_budget_left", Help: "Cloudflare requests left in the rolling 5-minute budget (absent without a Cloudflare client).",
	}, func() float64 { return float64(left()) }))
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
