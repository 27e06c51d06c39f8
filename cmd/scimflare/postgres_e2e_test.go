package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/scimflare/scimflare/store/postgres/pgtest"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

// One throw-away PostgreSQL cluster for this test binary (skipped with one
// line where PostgreSQL is not installed; CI requires it).
func TestMain(m *testing.M) { pgtest.Main(m) }

var statePathLine = regexp.MustCompile(`(?m)^state:\n  path: .*$`)

// onPostgres makes an e2e config use the PostgreSQL backend, the DSN in an
// environment variable as for every secret.
func onPostgres(t *testing.T) func(string) string {
	t.Setenv("E2E_PG_DSN", pgtest.DSN(t))
	return func(y string) string {
		return statePathLine.ReplaceAllString(y, "state:\n  backend: postgres\n  dsn_env: E2E_PG_DSN")
	}
}

// The daemon serves from PostgreSQL: SCIM writes land, the reconciler
// invites and removes, the CLI reaches the daemon, and the audit trail
// verifies.
func TestE2EServeOnPostgres(t *testing.T) {
	e := startE2E(t, e2eOptions{editConfig: onPostgres(t)})
	alice := e.createUser("alice@example.com")
	e.addMembers(e.createGroup("cf-deployers"), alice)
	e.waitFor(10*time.Second, "alice invited from a PostgreSQL state", func() bool { _, ok := e.member("alice@example.com"); return ok })
	e.deactivate(alice)
	e.waitFor(10*time.Second, "alice removed after her deactivation", func() bool { _, ok := e.member("alice@example.com"); return !ok })
	if code, out, errOut := e.cli("audit", "verify"); code != 0 || !strings.Contains(out, "intact") {
		t.Errorf("audit verify on PostgreSQL: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := e.cli("status"); code != 0 || !strings.Contains(out, "last reconcile") {
		t.Errorf("status: %d %s %s", code, out, errOut)
	}
}

// migrate copies a state file the previous release wrote into an empty
// PostgreSQL database, verifies it, refuses to copy twice, and the copy
// then serves every read the file did.
func TestMigrateBoltToPostgresThroughMain(t *testing.T) {
	dir := t.TempDir()
	state := v1State(t, dir)
	fake := cftest.New(t, cftest.Options{Accounts: []string{"0123456789abcdef0123456789abcdef"}, Token: "cf-tok"})
	t.Setenv("MIGRATE_CF_TOKEN", "cf-tok")
	t.Setenv("MIGRATE_PG_DSN", pgtest.DSN(t))
	write := func(name, backend string) string {
		p := filepath.Join(dir, name)
		y := `admin:
  socket: ` + filepath.Join(dir, name+".sock") + `
state:
  backend: ` + backend + `
  path: ` + state + `
  dsn_env: MIGRATE_PG_DSN
cloudflare:
  api_token_env: MIGRATE_CF_TOKEN
  base_url: ` + fake.URL() + `
sync:
  max_grant_duration: 720h
  protected: [breakglass@example.com]
accounts:
  - {name: prod, id: 0123456789abcdef0123456789abcdef, environment: production}
mappings:
  - {group: cf-deployers, account: prod, roles: [Workers Platform Admin]}
  - {group: cf-oncall, account: prod, roles: [Administrator], ttl: 500h}
`
		if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	boltCfg, pgCfg := write("bolt.yaml", "bolt"), write("pg.yaml", "postgres")

	code, out, errOut := runMain("migrate", "--config", boltCfg, "--from", "bolt", "--to", "postgres")
	if code != 0 || !strings.Contains(out, "verified the copy") || !strings.Contains(out, "8 audit records") {
		t.Fatalf("migrate: %d %s %s", code, out, errOut)
	}
	code, _, errOut = runMain("migrate", "--from=bolt", "--to=postgres", "--config="+boltCfg)
	if code != 1 || !strings.Contains(errOut, "already holds state") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("a second migrate must be refused with one sentence: %d %q", code, errOut)
	}
	if code, out, errOut := runMain("audit", "verify", "--config", pgCfg); code != 0 || !strings.Contains(out, "8 record(s)") {
		t.Errorf("audit verify on the copy: %d %s %s", code, out, errOut)
	}
	code, out, errOut = runMain("report", "access", "--at", "2026-12-06T06:00:00Z", "--csv", "--config", pgCfg)
	if code != 0 || !strings.Contains(out, "bob@example.com,prod,DNS,grant g-6a01edfd32e5") || !strings.Contains(out, "alice@example.com,prod,Administrator,group cf-oncall") {
		t.Errorf("report access on the copy: %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runMain("token", "list", "--config", pgCfg); code != 0 || !strings.Contains(out, "okta") {
		t.Errorf("token list on the copy: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := runMain("migrate", "--config", boltCfg, "--from", "postgres", "--to", "bolt"); code != 1 || !strings.Contains(errOut, "--from bolt --to postgres") {
		t.Errorf("migrate in the other direction: %d %q", code, errOut)
	}
}

// healthcheck answers for the daemon on server.listen, and fails with one
// sentence once it is gone: what a container HEALTHCHECK runs.
func TestHealthcheckThroughMain(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	e := startE2E(t, e2eOptions{editConfig: func(y string) string {
		return strings.Replace(y, `listen: "127.0.0.1:0"`, `listen: "`+addr+`"`, 1)
	}})
	if code, out, errOut := runMain("healthcheck", "--config", e.cfgPath); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("healthcheck with the daemon up: %d %s %s", code, out, errOut)
	}
	e.stop()
	if code, _, errOut := runMain("healthcheck", "--config", e.cfgPath); code != 1 || !strings.Contains(errOut, "does not answer") {
		t.Errorf("healthcheck with the daemon down: %d %q", code, errOut)
	}
}

// When PostgreSQL refuses connections, a SCIM write is answered 503 with
// Retry-After and nothing half-written; once it is back, the same write
// succeeds. An IdP then retries instead of quarantining the job.
func TestE2EPostgresDownIsA503WithRetryAfter(t *testing.T) {
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pgtest.AdminDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.Close(context.Background()) })
	db := fmt.Sprintf("down_e2e_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)") })
	t.Setenv("E2E_PG_DSN", strings.Replace(pgtest.AdminDSN(t), "/postgres?", "/"+db+"?", 1))
	e := startE2E(t, e2eOptions{editConfig: func(y string) string {
		return statePathLine.ReplaceAllString(y, "state:\n  backend: postgres\n  dsn_env: E2E_PG_DSN")
	}})
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
	body := map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "dana@example.com", "active": true}
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, e.base+"/Users", bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+e2eSCIMToken)
	req.Header.Set("Content-Type", "application/scim+json")
	res, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Fatalf("POST /Users with PostgreSQL down: %d, Retry-After %q; want 503 with Retry-After\n%s", res.StatusCode, res.Header.Get("Retry-After"), answer)
	}
	down(true)
	// As an IdP does: retry while the answer is 503.
	code := 0
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if code, _ = e.scim("POST", "/Users", body); code != http.StatusServiceUnavailable {
			break
		}
	}
	if code != http.StatusCreated {
		t.Fatalf("POST /Users once PostgreSQL is back: %d, want 201 (nothing was half-written)", code)
	}
}
