package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/internal/settings"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/store/backends"
	syncer "github.com/scimflare/scimflare/sync"
	"github.com/scimflare/scimflare/sync/cloudflare"
)

// NewReconciler builds the reconciler the daemon and the offline CLI share,
// for an offline command: its collectors are its own, nobody scrapes them.
// Without a Cloudflare token it is plan-only and makes no Cloudflare call.
func NewReconciler(cfg *config.Config, st store.Backend, log *slog.Logger, now func() time.Time) (*syncer.Reconciler, error) {
	rec, _, err := newReconciler(cfg, st, syncer.NewMetrics(prometheus.NewRegistry()), log, now)
	return rec, err
}

// cloudflareTimeout is the per-attempt timeout and longest back-off of the
// Cloudflare client. With several replicas it is a third of the lease, so a
// write in flight when a leader is deposed ends well within the next term.
func cloudflareTimeout(cfg *config.Config) (attempt, backoff time.Duration) {
	if cfg.State.Backend != config.StatePostgres {
		return 0, 0 // the client's defaults
	}
	return cfg.State.Lease / 3, cfg.State.Lease / 3
}

// newReconciler also returns the Cloudflare client (nil without a token),
// which the daemon's token watch verifies and hands rotated secrets to.
func newReconciler(cfg *config.Config, st syncer.State, m *syncer.Metrics, log *slog.Logger, now func() time.Time) (*syncer.Reconciler, *cloudflare.Client, error) {
	token, err := cfg.CloudflareToken()
	if err != nil {
		return nil, nil, err
	}
	opt := syncer.Options{
		Settings: settings.Reconciler(cfg),
		State:    st,
		PlanOnly: cfg.PlanOnly(token),
		Metrics:  m,
		Logger:   log,
		Now:      now,
	}
	var client *cloudflare.Client
	if token != "" {
		attempt, backoff := cloudflareTimeout(cfg)
		client, err = cloudflare.New(cloudflare.Config{
			BaseURL:    cfg.Cloudflare.BaseURL,
			Token:      token,
			Budget:     cfg.Cloudflare.RequestBudget,
			Observer:   m.CloudflareObserver(),
			Timeout:    attempt,
			MaxBackoff: backoff,
		})
		if err != nil {
			return nil, nil, fmt.Errorf("cloudflare client: %w", err)
		}
		opt.Cloudflare = client
	}
	rec, err := syncer.New(opt)
	return rec, client, err
}

// OpenState opens the state cfg names (state.backend) for use: the daemon
// (backends.Serve), an offline command (Command, or ReadOnly for one that
// only looks), or `scimflare migrate`. The PostgreSQL DSN is read from
// state.dsn_file or state.dsn_env, never from the config file.
func OpenState(ctx context.Context, cfg *config.Config, use backends.Use) (store.Backend, error) {
	c := backends.Config{Backend: cfg.State.Backend, Path: cfg.State.Path}
	if cfg.State.Backend == config.StatePostgres {
		dsn, err := cfg.PostgresDSN()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Path, err)
		}
		c.DSN = dsn
	}
	return backends.Open(ctx, c, use)
}
