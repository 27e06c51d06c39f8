// Package postgres keeps scimflare's state in PostgreSQL: a
// store.Backend that passes the same store/storetest conformance suite as
// the bbolt file, for deployments with several replicas.
//
// Every write is one READ COMMITTED transaction that locks what it relies
// on, so the rules BoltStore gets from its single writer hold across
// replicas: unique names are unique indexes; a user or group is changed
// under its row lock (FOR NO KEY UPDATE, or FOR UPDATE to delete it), so
// writers of one resource queue and no update is lost; an edge is added
// only while its member's row is held FOR KEY SHARE, so a concurrent
// delete waits and then removes it too; audit appends lock the chain
// head's table; member-cache replacements lock their account's scan row.
// (SERIALIZABLE was tried first: at 8 concurrent 1000-member PATCHes its
// predicate locks escalate to whole tables and abort most transactions as
// pivots, so an import crawled.) Deadlocks (SQLSTATE 40P01) and
// serialization failures (40001) are retried inside the store with
// bounded, jittered backoff, re-running the whole transaction (Store
// documents that UpdateUser and UpdateGroup's fn may run more than once);
// a caller sees them only when every attempt failed, then wrapped in
// store.ErrUnavailable. View is a REPEATABLE READ, READ ONLY transaction:
// one snapshot.
//
// Records are stored with package store's own encoders and the audit
// trail with its own sealing (store.SealAudit), so a state copied from a
// bbolt file (store.Copy) keeps every hash and `audit verify` judges both
// backends alike.
//
// The schema is versioned: embedded migrations/NNNN_*.sql files, applied
// in order at Open inside one transaction that first takes a transaction
// advisory lock, so of several replicas starting at once one migrates and
// the others wait and then find nothing to do; each applied version is a
// row of scimflare_schema_migrations. A database at a version this build
// does not know is refused with store.ErrSchemaVersion.
//
// The caller passes the DSN (a libpq URL or key=value string); it is
// never logged, and Location shows it without its password.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scimflare/scimflare/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// SchemaVersion is the newest migration this build applies.
var SchemaVersion = func() int {
	ms, err := migrations()
	if err != nil {
		panic(err)
	}
	return ms[len(ms)-1].version
}()

// Store is the PostgreSQL implementation of store.Backend.
type Store struct {
	pool        *pgxpool.Pool
	location    string
	opTimeout   time.Duration
	viewTimeout time.Duration
	maxAttempts int
	onRetry     func(attempt int, err error)
	// txHook, set only by tests, runs first in every write transaction
	// (it may even change the transaction's isolation level).
	txHook func(attempt int, tx pgx.Tx) error
}

var _ store.Backend = (*Store)(nil)

type options struct {
	maxConns    int32
	opTimeout   time.Duration
	viewTimeout time.Duration
	maxAttempts int
	onRetry     func(int, error)
	noMigrate   bool
}

// Option configures Open.
type Option func(*options)

// WithMaxConns bounds the connection pool (default: pgxpool's, the
// larger of 4 and the number of CPUs).
func WithMaxConns(n int32) Option { return func(o *options) { o.maxConns = n } }

// WithOpTimeout bounds each store call (default 30s): a database that
// stops answering fails the call with store.ErrUnavailable instead of
// hanging a SCIM request.
func WithOpTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.opTimeout = d
		}
	}
}

// WithViewTimeout bounds a View (default 10 minutes): the reconciler
// reads the whole state in one, which on a large state under load takes
// far longer than one SCIM call.
func WithViewTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.viewTimeout = d
		}
	}
}

// WithMaxAttempts sets how many times a write transaction is tried when it
// fails with a serialization failure or deadlock (default 20).
func WithMaxAttempts(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.maxAttempts = n
		}
	}
}

// WithoutMigrations makes Open only check that the schema is at
// SchemaVersion (store.ErrSchemaVersion otherwise) instead of migrating:
// for commands that read or check and must not change the schema under
// replicas still running an older scimflare (validate, offline CLI).
func WithoutMigrations() Option { return func(o *options) { o.noMigrate = true } }

// WithRetryObserver calls fn each time a write transaction failed with a
// retryable error and is about to be retried (for metrics and tests).
func WithRetryObserver(fn func(attempt int, err error)) Option {
	return func(o *options) { o.onRetry = fn }
}

// Open connects to the database named by dsn, brings its schema to
// SchemaVersion (one replica at a time) and returns the store.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	o := options{opTimeout: 30 * time.Second, viewTimeout: 10 * time.Minute, maxAttempts: 20}
	for _, opt := range opts {
		opt(&o)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's parse errors can quote the DSN, password included.
		return nil, fmt.Errorf("postgres state: the DSN does not parse (check its syntax): %w", store.ErrInvalid)
	}
	if o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	loc := location(cfg.ConnConfig)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres state %s: %w", loc, err)
	}
	s := &Store{pool: pool, location: loc, opTimeout: o.opTimeout, viewTimeout: o.viewTimeout, maxAttempts: o.maxAttempts, onRetry: o.onRetry}
	if err := s.migrate(ctx, o.noMigrate); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

func location(c *pgx.ConnConfig) string {
	u := url.URL{Scheme: "postgres", User: url.User(c.User), Host: c.Host + ":" + strconv.Itoa(int(c.Port)), Path: "/" + c.Database}
	if strings.HasPrefix(c.Host, "/") {
		u.Host, u.RawQuery = "", "host="+url.QueryEscape(c.Host)
	}
	if sp := c.RuntimeParams["search_path"]; sp != "" {
		q := u.Query()
		q.Set("search_path", sp)
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Location implements store.Backend: the database, without the password.
func (s *Store) Location() string { return s.location }

// Close implements store.Store.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("migration file %s is not named NNNN_name.sql", e.Name())
		}
		b, err := migrationFiles.ReadFile("migrations/" + e.Name())
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: e.Name(), sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	for i, m := range out {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: versions must run 1, 2, 3… without gaps", m.name)
		}
	}
	return out, nil
}

// migrationLock is the advisory lock key taken by migrate ("scimflare"
// in ASCII), scoped to the transaction so it never outlives it (and works
// behind PgBouncer's transaction pooling).
const migrationLock = 0x7363696d666c6172

// migrate applies the missing migrations in one transaction (with
// checkOnly, it only checks that none is missing).
func (s *Store) migrate(ctx context.Context, checkOnly bool) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.wrap(fmt.Errorf("postgres state %s: %w", s.location, err))
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(migrationLock)); err != nil {
		return fmt.Errorf("postgres state %s: wait for the schema lock: %w", s.location, err)
	}
	if checkOnly {
		// A read-only role may lack CREATE: do not even try.
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass('scimflare_schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
			return s.wrap(fmt.Errorf("postgres state %s: %w", s.location, err))
		}
		if !exists {
			return fmt.Errorf("postgres state %s has no scimflare schema yet (start `scimflare serve` once to create it): %w", s.location, store.ErrSchemaVersion)
		}
	} else if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS scimflare_schema_migrations (
		version integer PRIMARY KEY,
		name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("postgres state %s: create scimflare_schema_migrations: %w", s.location, err)
	}
	var have int
	if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM scimflare_schema_migrations").Scan(&have); err != nil {
		return fmt.Errorf("postgres state %s: read the schema version: %w", s.location, err)
	}
	if have > len(ms) {
		return fmt.Errorf("postgres state %s has schema version %d, this scimflare knows up to %d: %w", s.location, have, len(ms), store.ErrSchemaVersion)
	}
	if checkOnly && have < len(ms) {
		return fmt.Errorf("postgres state %s has schema version %d, this scimflare expects %d (start `scimflare serve` of this version once to migrate it): %w", s.location, have, len(ms), store.ErrSchemaVersion)
	}
	for _, m := range ms[have:] {
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return fmt.Errorf("postgres state %s: migration %s: %w", s.location, m.name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO scimflare_schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
			return fmt.Errorf("postgres state %s: record migration %s: %w", s.location, m.name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres state %s: commit migrations: %w", s.location, err)
	}
	return nil
}

// retryable reports a serialization failure or a deadlock: the
// transaction did nothing and may simply run again.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// wrap marks errors that say the database cannot be reached or did not
// answer in time with store.ErrUnavailable: the caller should retry later
// (SCIM: 503 with Retry-After), and nothing was half-written.
func (s *Store) wrap(err error) error {
	if err == nil {
		return nil
	}
	// Not connecting at all (whatever the server said: down, refusing
	// connections, too many clients) comes first: it wraps a PgError too.
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03" || strings.HasPrefix(pe.Code, "08") || pe.Code == "53300":
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		return err
	}
	// A connection that broke mid-call (server killed, network gone).
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.As(err, &ne) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

func (s *Store) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.opTimeout)
}

// backoff is the wait before attempt+1: doubling from 2ms, at most 100ms,
// with full jitter in its upper half so that writers that collided once
// spread out.
func backoff(attempt int) time.Duration {
	d := 2 * time.Millisecond << min(attempt-1, 6)
	d = min(d, 100*time.Millisecond)
	return d/2 + rand.N(d/2+1)
}

// write runs fn in one READ COMMITTED transaction, retried on
// serialization failures and deadlocks. With lockAudit the audit head's
// table is locked first, so audit appends queue behind each other.
func (s *Store) write(lockAudit bool, fn func(w *wtx) error) error {
	ctx, cancel := s.ctx()
	defer cancel()
	for attempt := 1; ; attempt++ {
		err := s.tryWrite(ctx, attempt, lockAudit, fn)
		if err == nil || !retryable(err) {
			return s.wrap(err)
		}
		if attempt >= s.maxAttempts {
			return fmt.Errorf("%w: write gave up after %d attempts on conflicting concurrent writes: %w", store.ErrUnavailable, attempt, err)
		}
		if s.onRetry != nil {
			s.onRetry(attempt, err)
		}
		select {
		case <-time.After(backoff(attempt)):
		case <-ctx.Done():
			return fmt.Errorf("%w: %w (after %d attempts: %w)", store.ErrUnavailable, ctx.Err(), attempt, err)
		}
	}
}

func (s *Store) tryWrite(ctx context.Context, attempt int, lockAudit bool, fn func(w *wtx) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if s.txHook != nil {
		if err := s.txHook(attempt, tx); err != nil {
			return err
		}
	}
	if lockAudit {
		if _, err := tx.Exec(ctx, "LOCK TABLE sync_audit_head IN EXCLUSIVE MODE"); err != nil {
			return err
		}
	}
	if err := fn(&wtx{reader: reader{ctx: ctx, q: tx}, tx: tx}); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// read runs fn with a reader on the pool (each query its own snapshot).
func (s *Store) read(fn func(r reader) error) error {
	ctx, cancel := s.ctx()
	defer cancel()
	return s.wrap(fn(reader{ctx: ctx, q: s.pool}))
}

// snapshot runs fn in one REPEATABLE READ, READ ONLY transaction.
func (s *Store) snapshot(ctx context.Context, fn func(r reader) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return s.wrap(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := fn(reader{ctx: ctx, q: tx}); err != nil {
		return s.wrap(err)
	}
	return s.wrap(tx.Commit(ctx))
}

// View implements store.Store.
func (s *Store) View(fn func(store.Reader) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.viewTimeout)
	defer cancel()
	return s.snapshot(ctx, func(r reader) error { return fn(r) })
}
