package sync

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scimflare/scimflare/sync/cloudflare"
)

// Metrics are the reconciler's own collectors: its runs, what they changed
// and withheld, and the Cloudflare calls made for it. The wiring registers
// them where /metrics serves (NewMetrics). Every label comes from a closed
// set; none is an email or a token.
type Metrics struct {
	ReconcileRuns     *prometheus.CounterVec // trigger, outcome
	ReconcileDuration *prometheus.HistogramVec
	ChangesApplied    *prometheus.CounterVec // kind
	ChangesFailed     *prometheus.CounterVec // kind
	CloudflareCalls   *prometheus.CounterVec // method, route, status
	Cloudflare429     prometheus.Counter
	DriftFound        prometheus.Gauge
	RemovalsWithheld  prometheus.Gauge
	IdentityProblems  *prometheus.GaugeVec // kind
	// UserGroupConflicts: user groups of scimflare's names it does not own.
	UserGroupConflicts prometheus.Gauge
	GuardTrips         prometheus.Counter
	GuardTripped       prometheus.Gauge
	PendingExpiries    prometheus.Gauge
	LastSuccess        prometheus.Gauge
	PlanOnly           prometheus.Gauge
}

// NewMetrics builds the reconciler's collectors and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
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
		ChangesFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scimflare_changes_failed_total",
			Help: "Changes Cloudflare refused, or whose answer disagreed with what was sent, by kind; the next run repairs them.",
		}, []string{"kind"}),
		CloudflareCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "scimflare_cloudflare_calls_total", Help: "Cloudflare API calls by method, route and status.",
		}, []string{"method", "route", "status"}),
		Cloudflare429: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "scimflare_cloudflare_rate_limited_total", Help: "Cloudflare 429 answers.",
		}),
		DriftFound: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimflare_drift_found", Help: "Roles found in Cloudflare that scimflare did not grant, at the last full reconcile.",
		}),
		RemovalsWithheld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimflare_removals_withheld",
			Help: "Removals a guard holds back until `scimflare apply --force` (or until the window allows them), at the last run.",
		}),
		IdentityProblems: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "scimflare_identity_problems",
			Help: "SCIM users whose address gives no Cloudflare access (kind invalid_email) and Cloudflare emails several active users share (kind shared_email), at the last run.",
		}, []string{"kind"}),
		UserGroupConflicts: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "scimflare_user_group_conflicts",
			Help: "User groups named as scimflare names its groups that scimflare does not own (never changed; their mapping gets no group), at the last full run.",
		}),
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
	}
	reg.MustRegister(m.ReconcileRuns, m.ReconcileDuration, m.ChangesApplied, m.ChangesFailed,
		m.CloudflareCalls, m.Cloudflare429, m.DriftFound, m.RemovalsWithheld, m.IdentityProblems, m.UserGroupConflicts,
		m.GuardTrips, m.GuardTripped, m.PendingExpiries, m.LastSuccess, m.PlanOnly)
	return m
}

// CloudflareObserver counts the calls and 429s of the Cloudflare client
// it is given to (cloudflare.Config.Observer) into m: the reconciler's
// calls, and those of anything else sharing the client.
func (m *Metrics) CloudflareObserver() cloudflare.Observer { return cfObserver{m} }

type cfObserver struct{ m *Metrics }

func (o cfObserver) Attempt(method, route string, status int, err error) {
	s := strconv.Itoa(status)
	if status == 0 {
		s = "error"
	}
	o.m.CloudflareCalls.WithLabelValues(method, route, s).Inc()
}

func (o cfObserver) RateLimited(method, route string, wait time.Duration) {
	o.m.Cloudflare429.Inc()
}
