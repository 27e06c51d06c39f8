// Package daemon wires scimflare's parts into the running service: the SCIM
// endpoint, health and metrics, the admin socket, and (when configured) the
// reconciler. It owns start-up and orderly shutdown; it holds no business
// logic of its own.
package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	gosync "sync"
	"syscall"
	"time"

	"github.com/scimflare/scimflare/internal/admin"
	"github.com/scimflare/scimflare/internal/cli"
	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/internal/metrics"
	"github.com/scimflare/scimflare/internal/settings"
	"github.com/scimflare/scimflare/scim"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/store/backends"
	syncer "github.com/scimflare/scimflare/sync"
	"github.com/scimflare/scimflare/sync/cloudflare"
)

// Options are the parts a caller (main, or a test) may set.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// Ready, when set, receives the HTTP address once the daemon serves.
	Ready chan<- string
	// TokenRecheck and TokenFilePoll pace the Cloudflare token checks
	// (credentials.go); zero means hourly and every two seconds.
	TokenRecheck, TokenFilePoll time.Duration
	// Version and Commit are logged at start-up.
	Version, Commit string
	// LogLevel, when set, is the Logger's level: a reload sets it from the
	// new log.level (log.format takes a restart).
	LogLevel *slog.LevelVar
}

// Daemon is a running scimflare.
type Daemon struct {
	cfgMu gosync.RWMutex
	// reloadMu keeps reloads (SIGHUP, `scimflare reload`) one at a time,
	// so their audit records and the config they leave agree.
	reloadMu gosync.Mutex
	cfg      *config.Config
	rec      *syncer.Reconciler
	log      *slog.Logger
	now      func() time.Time
	st       store.Backend
	metrics  *metrics.Metrics
	scim     *scim.Server
	auth     *scim.Authenticator
	oidc     *scim.OIDCVerifier // nil unless scim.oidc.issuer is set
	cfToken  *tokenWatch        // nil without a Cloudflare token
	probe    *storeProbe
	lead     *leadership // nil with one replica (bbolt)
	logLevel *slog.LevelVar
}

// Run serves until ctx ends or SIGINT/SIGTERM arrives, then shuts down:
// in-flight requests finish, the store is closed.
func Run(ctx context.Context, cfg *config.Config, opt Options) error {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	log := opt.Logger
	mem := applyMemoryLimit(os.DirFS("/"))
	// Concurrent SCIM writes share commits (each still fsynced before it is
	// acknowledged): OpenState opens bbolt with group commit, so writes
	// that arrive while a commit is in flight are committed together as
	// soon as it ends, and a lone writer commits at once. See BENCHMARKS.md,
	// "SCIM load (scimload)".
	// Before anything is opened: serve would otherwise replace what
	// stands at admin.socket.
	if err := cfg.CheckAdminSocket(); err != nil {
		return err
	}
	st, err := OpenState(ctx, cfg, backends.Serve)
	if err != nil {
		return err
	}
	defer st.Close()
	d := &Daemon{cfg: cfg, log: log, now: opt.Now, st: st, metrics: metrics.New(), logLevel: opt.LogLevel}
	// Real time, not opt.Now: this measures the disk, not the schedule.
	d.probe = newStoreProbe(func() error { _, err := st.CountUsers(); return err }, time.Now)

	// With several replicas one leads: it alone reconciles, and every
	// intent it commits is fenced by its lease.
	var recState syncer.State = st
	leaser, multi := st.(store.Leaser)
	if multi {
		d.lead = &leadership{leaser: leaser, replica: newReplicaID(), ttl: cfg.State.Lease, log: log.With("component", "leader"), m: d.metrics}
		recState = fencedState{State: st, leaser: leaser, lead: d.lead}
	}
	var cfClient *cloudflare.Client
	d.rec, cfClient, err = newReconciler(cfg, recState, syncer.NewMetrics(d.metrics.Registry), log.With("component", "reconciler"), opt.Now)
	if err != nil {
		return err
	}
	if d.oidc, err = newOIDCVerifier(cfg, log.With("component", "scim")); err != nil {
		return err
	}
	auth := scim.NewAuthenticator(cfg.StaticSCIMToken(), st, opt.Now).UseOIDC(d.oidc)
	d.auth = auth
	d.scim, err = scim.New(st, scim.Options{
		Notifier:     d.changeNotifier(),
		BasePath:     cfg.Server.SCIMBasePath,
		MaxBodyBytes: cfg.SCIM.MaxBodyBytes,
		EmailFrom:    cfg.Identity.EmailFrom,
		Auth:         auth,
		Metrics:      scim.NewMetrics(d.metrics.Registry),
		Logger:       log.With("component", "scim"),
		RequestLog:   func() bool { return d.config().Log.AccessLog },
		Now:          opt.Now,
	})
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		log.Warn("config warning", "problem", w.String())
	}
	if cfClient != nil {
		d.metrics.ExportBudgetLeft(cfClient.BudgetLeft)
	}
	logStart(log, cfg, st, opt, d.rec.PlanOnly())
	if !d.rec.PlanOnly() {
		logFirstEnforce(log, cfg, st)
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d.cfToken = newTokenWatch(cfg, cfClient, d.metrics, log.With("component", "cloudflare-token"), opt.Now)
	if err := d.cfToken.startupCheck(ctx, cfg.Sync.Mode == config.ModeEnforce); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("listen on server.listen %s: %w", cfg.Server.Listen, err)
	}
	httpSrv := &http.Server{
		Handler:           d.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	adminLn, err := admin.Listen(cfg.Admin.Socket)
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer admin.Remove(cfg.Admin.Socket)
	// Reconciles that admin commands and SIGHUP reloads start must end
	// before the store closes under them: work tracks them, and adminCtx
	// (the admin requests' base context) is cancelled when shutdown starts
	// so that they stop promptly.
	var work gosync.WaitGroup
	adminCtx, cancelAdmin := context.WithCancel(context.Background())
	defer cancelAdmin()
	adminSrv := &http.Server{
		Handler: admin.HandlerFor(func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
			work.Add(1)
			defer work.Done()
			return d.runCommand(ctx, args, stdout, stderr)
		}, func() string { return d.config().Path }),
		ReadHeaderTimeout: 5 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return adminCtx },
	}

	errc := make(chan error, 3)
	go func() {
		var err error
		if cfg.Server.TLSCertFile != "" {
			err = httpSrv.ServeTLS(ln, cfg.Server.TLSCertFile, cfg.Server.TLSKeyFile)
		} else {
			err = httpSrv.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("http server: %w", err)
		}
	}()
	go func() {
		if err := adminSrv.Serve(adminLn); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("admin socket: %w", err)
		}
	}()
	work.Go(func() { d.probe.run(ctx) })
	if d.lead == nil {
		d.metrics.Leader.Set(1) // one replica: it always reconciles
	}
	recDone := make(chan struct{})
	go func() {
		defer close(recDone)
		if d.lead != nil {
			if n, ok := st.(store.Notifier); ok {
				work.Go(func() { listenForChanges(ctx, n, d.rec, log.With("component", "leader")) })
			}
			d.lead.run(ctx, func(term context.Context) {
				if err := d.rec.Run(term); err != nil && term.Err() == nil {
					log.Error("reconciler stopped", "error", err)
				}
			})
			return
		}
		if err := d.rec.Run(ctx); err != nil && ctx.Err() == nil {
			errc <- fmt.Errorf("reconciler: %w", err)
		}
	}()
	credDone := d.startCredentialWatch(ctx, opt)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	work.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_, _ = d.reload(ctx, "SIGHUP")
			}
		}
	})
	log.Info("scimflare serving", "listen", ln.Addr().String(), "scim", cfg.Server.SCIMBasePath,
		"state", cfg.State.Path, "admin_socket", cfg.Admin.Socket, "tls", cfg.Server.TLSCertFile != "",
		"memory_limit", mem.String())
	if opt.Ready != nil {
		opt.Ready <- ln.Addr().String()
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-errc:
		log.Error("server failed", "err", runErr)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cancelAdmin()
	_ = httpSrv.Shutdown(shutdownCtx)
	_ = adminSrv.Shutdown(shutdownCtx)
	stop()
	<-recDone
	work.Wait()
	credDone()
	log.Info("stopped")
	return runErr
}

func (d *Daemon) config() *config.Config {
	d.cfgMu.RLock()
	defer d.cfgMu.RUnlock()
	return d.cfg
}

func (d *Daemon) runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "reload" {
		return cli.RunReload(ctx, d.reload, args[1:], stdout, stderr)
	}
	env := &cli.Env{Config: d.config(), Store: d.st, Now: d.now, Reconciler: d.rec, Daemon: true, CloudflareToken: d.CloudflareTokenHealth}
	if d.lead != nil {
		env.Leader = func() cli.Leadership {
			in := d.lead.info()
			return cli.Leadership{Leader: in.Leader, ReplicaID: in.ReplicaID, LeaderID: in.LeaderID, Since: in.Since, Epoch: in.Epoch}
		}
	}
	return cli.Run(ctx, env, args, stdout, stderr)
}

// reload re-reads the config file. A bad file is rejected, logged and
// audited, and the running config stays. A good one is audited, put in
// force, and followed by a full reconcile, so that what it changes goes
// through the guards at once like any other change.
func (d *Daemon) reload(ctx context.Context, trigger string) (*cli.ReloadResult, error) {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	cur := d.config()
	next, summary, err := loadReload(d.st, cur, d.now(), trigger)
	if err != nil {
		reason := strings.TrimPrefix(err.Error(), ErrReloadRejected.Error()+": ")
		d.log.Error("config reload rejected; the running config stays", "file", cur.Path, "trigger", trigger, "reason", reason)
		return nil, err
	}
	d.cfgMu.Lock()
	d.cfg = next
	d.cfgMu.Unlock()
	d.rec.Reload(settings.Reconciler(next))
	if d.logLevel != nil {
		var level slog.Level
		if err := level.UnmarshalText([]byte(next.Log.Level)); err == nil {
			d.logLevel.Set(level)
		}
	}
	for _, w := range next.Warnings {
		d.log.Warn("config warning", "problem", w.String())
	}
	d.log.Info("config reloaded", "file", next.Path, "trigger", trigger, "accounts", len(next.Accounts), "mappings", len(next.Mappings), "summary", summary)
	res, err := d.rec.Apply(ctx, syncer.RunOptions{Actor: syncer.ActorReload})
	if err != nil {
		return nil, fmt.Errorf("the new config is in force, but the reconcile after it did not run: %w", err)
	}
	return &cli.ReloadResult{Summary: summary, Run: res}, nil
}

// notifier hands SCIM changes to the reconciler, and with several replicas
// announces them to the leader, wherever it runs.
type notifier struct {
	rec *syncer.Reconciler
	n   store.Notifier // nil with one replica
	log *slog.Logger
}

func (n notifier) Changed(c scim.Change) {
	n.rec.Touch(c.UserIDs, c.GroupIDs, c.Emails)
	if n.n == nil {
		return
	}
	if err := n.n.Notify(changesChannel, encodeChange(c.UserIDs, c.GroupIDs, c.Emails)); err != nil {
		// The leader's next full run covers it.
		n.log.Warn("cannot announce a SCIM change to the leader; the next full reconcile covers it", "error", err)
	}
}

func (d *Daemon) changeNotifier() notifier {
	n := notifier{rec: d.rec, log: d.log}
	if d.lead != nil {
		n.n, _ = d.st.(store.Notifier)
	}
	return n
}

func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	base := "/" + strings.Trim(d.cfg.Server.SCIMBasePath, "/")
	scimHandler := d.scim.Handler()
	mux.Handle(base+"/", scimHandler)
	mux.Handle(base, scimHandler)
	mux.HandleFunc("GET /healthz", d.healthz)
	mux.HandleFunc("GET /readyz", d.readyz)
	mux.Handle("GET /metrics", d.metrics.Handler())
	return securityHeaders(mux)
}

// securityHeaders marks every response as not cacheable and not sniffable:
// SCIM answers carry personal data.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		h.Set("Referrer-Policy", "no-referrer")
		if r.TLS != nil {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}

func (d *Daemon) healthz(w http.ResponseWriter, r *http.Request) {
	if !d.probe.answers() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unhealthy", "reason": "the state file does not answer"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
}

func (d *Daemon) readyz(w http.ResponseWriter, r *http.Request) {
	var reasons []string
	if !d.probe.answers() {
		reasons = append(reasons, "the state file does not answer")
	}
	ok, why := d.rec.Ready()
	body := map[string]any{"plan_only": d.rec.PlanOnly()}
	if d.lead != nil {
		// Every replica says who leads; a follower's readiness is the
		// leader's last reconcile, read from the shared state.
		in := d.lead.info()
		body["leader"], body["replica_id"], body["leader_id"], body["epoch"] = in.Leader, in.ReplicaID, in.LeaderID, in.Epoch
		if !in.Since.IsZero() {
			body["since"] = in.Since
		}
	}
	if w := d.rec.Withheld(); len(w) > 0 {
		// Who waits and since when; the first 100 (status lists all).
		body["withheld_count"] = len(w)
		body["withheld"] = w[:min(len(w), 100)]
	}
	if warn := d.credentialWarnings(); len(warn) > 0 {
		body["warnings"] = warn
	}
	if !ok || len(reasons) > 0 {
		body["status"] = "not ready"
		body["reasons"] = append(reasons, why...)
		writeJSON(w, http.StatusServiceUnavailable, body)
		return
	}
	body["status"] = "ready"
	if len(why) > 0 {
		body["notes"] = why
	}
	writeJSON(w, http.StatusOK, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
