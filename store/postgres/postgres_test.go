package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/store/postgres"
	"github.com/scimflare/scimflare/store/postgres/pgtest"
	"github.com/scimflare/scimflare/store/storetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var now = time.Date(2026, 12, 6, 5, 0, 0, 123456789, time.UTC)

func openDSN(t testing.TB, dsn string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), dsn, append([]postgres.Option{postgres.WithMaxConns(4)}, opts...)...)
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openPG(t testing.TB, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	return openDSN(t, pgtest.DSN(t), opts...)
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openPG(t) })
}

func TestSyncConformance(t *testing.T) {
	storetest.RunSync(t, func(t *testing.T) store.SyncState { return openPG(t) })
}

func TestBackendConformance(t *testing.T) {
	storetest.RunBackend(t, func(t *testing.T) store.Backend { return openPG(t) })
}

func conn(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// rrConflict makes the store's transaction hit a real serialization
// failure: the hook switches it to REPEATABLE READ and reads the user (its
// snapshot), then another replica updates that user and commits, so the
// store's locking read of the user fails with 40001.
func rrConflict(ctx context.Context, id string, other *postgres.Store, everyAttempt bool) func(int, pgx.Tx) error {
	return func(attempt int, tx pgx.Tx) error {
		if attempt > 1 && !everyAttempt {
			return nil
		}
		if _, err := tx.Exec(ctx, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "SELECT rec FROM scim_users WHERE id = $1", []byte(id)); err != nil {
			return err
		}
		_, err := other.UpdateUser(id, now.Add(time.Minute), 0, func(u *store.User) error { u.ExternalID += "b"; return nil })
		return err
	}
}

// Another replica commits a change to the user between the store's
// snapshot and its write: a real serialization failure (40001) in the
// store's own transaction. The store retries: its caller sees success,
// fn ran on the fresh row, and neither update is lost.
func TestSerializationFailureIsRetried(t *testing.T) {
	dsn := pgtest.DSN(t)
	var retried []string
	a := openDSN(t, dsn, postgres.WithRetryObserver(func(attempt int, err error) { retried = append(retried, pgCode(err)) }))
	other := openDSN(t, dsn)
	u, err := a.CreateUser(now, store.User{UserName: "alice", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	a.SetTxHook(rrConflict(context.Background(), u.ID, other, false))
	got, err := a.UpdateUser(u.ID, now.Add(time.Minute), 0, func(u *store.User) error {
		u.Email = "alice@example.com"
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateUser with a concurrent writer: %v (the store must retry 40001, not surface it)", err)
	}
	if len(retried) != 1 || retried[0] != "40001" {
		t.Fatalf("retries %v; want one after a 40001", retried)
	}
	if got.ExternalID != "b" || got.Email != "alice@example.com" || got.Meta.Version != 3 {
		t.Fatalf("after the retry the user is %+v; want both updates (externalId b, email) at version 3", got)
	}
}

// A deadlock between the store's transaction and another session: the
// store's transaction is the victim (its deadlock_timeout is the shorter),
// gets 40P01, and the store runs it again; the caller sees success.
func TestDeadlockIsRetried(t *testing.T) {
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	setup := conn(t, dsn)
	if _, err := setup.Exec(ctx, "CREATE TABLE probe (id int PRIMARY KEY, n int NOT NULL); INSERT INTO probe VALUES (1, 0), (2, 0)"); err != nil {
		t.Fatal(err)
	}
	var codes []string
	s := openDSN(t, dsn, postgres.WithRetryObserver(func(_ int, err error) { codes = append(codes, pgCode(err)) }))
	other := conn(t, dsn)
	otx, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer otx.Rollback(ctx)
	if _, err := otx.Exec(ctx, "SET LOCAL deadlock_timeout = '30s'"); err != nil {
		t.Fatal(err)
	}
	if _, err := otx.Exec(ctx, "UPDATE probe SET n = n + 1 WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	otherDone := make(chan error, 1)
	s.SetTxHook(func(attempt int, tx pgx.Tx) error {
		if attempt > 1 {
			return nil
		}
		if _, err := tx.Exec(ctx, "UPDATE probe SET n = n + 1 WHERE id = 1"); err != nil {
			return err
		}
		// The other session now waits for row 1, which we hold…
		go func() {
			_, err := otx.Exec(ctx, "UPDATE probe SET n = n + 1 WHERE id = 1")
			if err == nil {
				err = otx.Commit(ctx)
			}
			otherDone <- err
		}()
		waitForLockWait(t, dsn)
		// …and we wait for row 2, which it holds: a deadlock.
		_, err := tx.Exec(ctx, "UPDATE probe SET n = n + 1 WHERE id = 2")
		return err
	})
	if _, err := s.CreateUser(now, store.User{UserName: "bob"}); err != nil {
		t.Fatalf("CreateUser whose first attempt deadlocked: %v (the store must retry 40P01)", err)
	}
	if err := <-otherDone; err != nil {
		t.Fatalf("the other session: %v", err)
	}
	if len(codes) != 1 || codes[0] != "40P01" {
		t.Fatalf("retried on %v, want one 40P01", codes)
	}
	if _, err := s.UserByUserName("bob"); err != nil {
		t.Fatalf("user written by the retry: %v", err)
	}
}

// waitForLockWait returns once some session of the cluster waits for a
// lock (bounded: 10s).
func waitForLockWait(t *testing.T, dsn string) {
	c, err := pgx.Connect(context.Background(), dsn)
	if err != nil {
		t.Error(err)
		return
	}
	defer c.Close(context.Background())
	for range 1000 {
		var n int
		if err := c.QueryRow(context.Background(), "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").Scan(&n); err == nil && n > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Error("no session started waiting for the lock within 10s")
}

// When the conflict never clears, the store gives up after its bounded
// attempts with store.ErrUnavailable (SCIM: 503, retry later), having
// written nothing.
func TestRetriesAreBounded(t *testing.T) {
	dsn := pgtest.DSN(t)
	var attempts atomic.Int32
	a := openDSN(t, dsn, postgres.WithMaxAttempts(3), postgres.WithRetryObserver(func(int, error) { attempts.Add(1) }))
	other := openDSN(t, dsn)
	u, err := a.CreateUser(now, store.User{UserName: "carol"})
	if err != nil {
		t.Fatal(err)
	}
	a.SetTxHook(rrConflict(context.Background(), u.ID, other, true))
	start := time.Now()
	_, err = a.UpdateUser(u.ID, now, 0, func(u *store.User) error {
		u.Email = "never@example.com"
		return nil
	})
	if !errors.Is(err, store.ErrUnavailable) || pgCode(err) != "40001" {
		t.Fatalf("UpdateUser under a conflict on every attempt: %v; want ErrUnavailable wrapping the 40001", err)
	}
	if attempts.Load() != 2 || time.Since(start) > 5*time.Second {
		t.Fatalf("%d retries in %v; want 2 (3 attempts), quickly", attempts.Load(), time.Since(start))
	}
	got, err := a.GetUser(u.ID)
	if err != nil || got.Email != "" || got.ExternalID != "bbb" {
		t.Fatalf("user after the failed update: %+v, %v; want the other replica's three writes and none of this one's", got, err)
	}
}

// Several replicas start at once against an empty database: one applies
// the migrations, the others wait and find nothing to do; every version
// is recorded once.
func TestMigrationsRunOnceAcrossReplicas(t *testing.T) {
	dsn := pgtest.DSN(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			s, err := postgres.Open(context.Background(), dsn, postgres.WithMaxConns(2))
			if err == nil {
				_ = s.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
	var n, maxV int
	if err := conn(t, dsn).QueryRow(context.Background(), "SELECT count(*), max(version) FROM scimflare_schema_migrations").Scan(&n, &maxV); err != nil {
		t.Fatal(err)
	}
	if n != postgres.SchemaVersion || maxV != postgres.SchemaVersion {
		t.Fatalf("schema_migrations has %d rows up to version %d, want each of 1..%d once", n, maxV, postgres.SchemaVersion)
	}
}

// A database migrated by a newer scimflare is refused, not misread.
func TestNewerSchemaIsRefused(t *testing.T) {
	dsn := pgtest.DSN(t)
	openDSN(t, dsn)
	if _, err := conn(t, dsn).Exec(context.Background(), "INSERT INTO scimflare_schema_migrations (version, name) VALUES ($1, 'from the future')", postgres.SchemaVersion+1); err != nil {
		t.Fatal(err)
	}
	_, err := postgres.Open(context.Background(), dsn)
	if !errors.Is(err, store.ErrSchemaVersion) {
		t.Fatalf("Open of a newer schema: %v, want ErrSchemaVersion", err)
	}
}

// The audit trail survives a restart and the database itself refuses to
// edit it; a record altered by someone who disables that guard is named
// by VerifyAudit exactly as bbolt's would be.
func TestAuditTamperingIsCaught(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := openDSN(t, dsn)
	for i := range 3 {
		if err := s.AppendAudit(store.AuditRecord{Time: now.Add(time.Duration(i) * time.Minute), Actor: "schedule", Action: "update_roles", Email: "a@example.com"}); err != nil {
			t.Fatal(err)
		}
	}
	c := conn(t, dsn)
	ctx := context.Background()
	if _, err := c.Exec(ctx, "UPDATE sync_audit SET rec = rec WHERE seq = 2"); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("UPDATE of an audit record: %v, want the append-only refusal", err)
	}
	if _, err := c.Exec(ctx, `ALTER TABLE sync_audit DISABLE TRIGGER sync_audit_append_only;
		UPDATE sync_audit SET rec = convert_to(replace(convert_from(rec, 'UTF8'), 'update_roles', 'remove_member'), 'UTF8') WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	seq, err := openDSN(t, dsn).VerifyAudit()
	if seq != 2 || !errors.Is(err, store.ErrAuditBroken) || !strings.Contains(err.Error(), "audit record 2 was altered") {
		t.Fatalf("VerifyAudit after altering record 2 = %d, %v", seq, err)
	}
}

// A populated bbolt state file moves into an empty database with
// everything intact (ids, meta, Since times, tokens, ledger, cache,
// grants, the audit chain's hashes, status), the copy verifies, a second
// copy into the now non-empty database is refused, and the way back
// (BackupFile) gives a bbolt file equal to the original.
func TestCopyFromBoltRoundTrip(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.db")
	bs, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	storetest.Populate(t, bs)
	pg := openPG(t)
	sum, err := store.Copy(ctx, bs, pg)
	if err != nil {
		t.Fatalf("Copy bolt -> postgres: %v", err)
	}
	if sum.Users == 0 || sum.Members == 0 || sum.Audit == 0 {
		t.Fatalf("copied %s: the populated file was not read", sum)
	}
	storetest.CheckSame(t, bs, pg)
	bseq, bhash, _ := bs.AuditHead()
	pseq, phash, err := pg.AuditHead()
	if err != nil || pseq != bseq || phash != bhash {
		t.Fatalf("audit head after copy: %d %s (%v), bolt has %d %s", pseq, phash, err, bseq, bhash)
	}
	if _, err := store.Copy(ctx, bs, pg); !errors.Is(err, store.ErrNotEmpty) {
		t.Fatalf("second Copy into the same database: %v, want ErrNotEmpty", err)
	}
	back := filepath.Join(t.TempDir(), "back.db")
	if _, err := pg.BackupFile(back); err != nil {
		t.Fatalf("BackupFile: %v", err)
	}
	bb, err := store.Open(back)
	if err != nil {
		t.Fatal(err)
	}
	defer bb.Close()
	storetest.CheckSame(t, bs, bb)
}

// BackupFile never renames over a state file a scimflare has open.
func TestBackupRefusesLiveStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	live, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if _, err := openPG(t).BackupFile(path); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("BackupFile over a live state file: %v, want ErrInvalid", err)
	}
}

// A database that is not there: Open fails with ErrUnavailable, quickly.
func TestUnreachableDatabaseIsUnavailable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := postgres.Open(ctx, "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Open of an unreachable database: %v, want ErrUnavailable", err)
	}
}

// Location never shows the password.
func TestLocationHidesPassword(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := openDSN(t, strings.Replace(dsn, "postgres@", "postgres:s3cret@", 1))
	if loc := s.Location(); strings.Contains(loc, "s3cret") || !strings.Contains(loc, "127.0.0.1") {
		t.Fatalf("Location() = %q", loc)
	}
}

// WithoutMigrations never changes the schema: an empty database is
// refused, a migrated one opens.
func TestWithoutMigrationsOnlyChecks(t *testing.T) {
	dsn := pgtest.DSN(t)
	if _, err := postgres.Open(context.Background(), dsn, postgres.WithoutMigrations()); !errors.Is(err, store.ErrSchemaVersion) {
		t.Fatalf("Open WithoutMigrations of an empty database: %v, want ErrSchemaVersion", err)
	}
	var n int
	if err := conn(t, dsn).QueryRow(context.Background(), "SELECT count(*) FROM information_schema.tables WHERE table_name = 'scim_users'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("the check created tables (%d, %v)", n, err)
	}
	openDSN(t, dsn)
	openDSN(t, dsn, postgres.WithoutMigrations())
}

// The database goes away under a running store (every connection killed,
// new ones refused): calls fail with store.ErrUnavailable, quickly and
// with nothing half-written, and the store recovers by itself when the
// database is back.
func TestDatabaseDownIsUnavailableThenRecovers(t *testing.T) {
	ctx := context.Background()
	admin := conn(t, pgtest.AdminDSN(t))
	db := fmt.Sprintf("down_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)") })
	s := openDSN(t, strings.Replace(pgtest.AdminDSN(t), "/postgres?", "/"+db+"?", 1), postgres.WithOpTimeout(5*time.Second))
	u, err := s.CreateUser(now, store.User{UserName: "dana"})
	if err != nil {
		t.Fatal(err)
	}
	down := func(allow bool) {
		t.Helper()
		if _, err := admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s ALLOW_CONNECTIONS %t", db, allow)); err != nil {
			t.Fatal(err)
		}
		if !allow {
			if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", db); err != nil {
				t.Fatal(err)
			}
		}
	}
	down(false)
	start := time.Now()
	_, err = s.UpdateGroup("nope", now, 0, func(store.GroupTx) error { return nil })
	if !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("write while the database is down: %v, want ErrUnavailable", err)
	}
	_, err = s.CreateUser(now, store.User{UserName: "erin"})
	if !errors.Is(err, store.ErrUnavailable) || time.Since(start) > 15*time.Second {
		t.Fatalf("CreateUser while the database is down: %v after %v, want ErrUnavailable within the op timeout", err, time.Since(start))
	}
	if _, err := s.GetUser(u.ID); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("read while the database is down: %v, want ErrUnavailable", err)
	}
	down(true)
	if _, err := s.CreateUser(now, store.User{UserName: "erin"}); err != nil {
		t.Fatalf("CreateUser after the database is back: %v (erin must not exist half-written)", err)
	}
	if n, err := s.CountUsers(); err != nil || n != 2 {
		t.Fatalf("CountUsers after recovery = %d, %v; want dana and erin", n, err)
	}
}
