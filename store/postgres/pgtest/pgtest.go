// Package pgtest runs a throw-away PostgreSQL cluster for tests: one per
// test binary (started by Main from TestMain, stopped when the tests end),
// listening on a free loopback port, with its data directory and unix
// socket in a temporary directory. Each test gets its own empty schema.
//
// The server binaries are looked up in /usr/lib/postgresql/*/bin (Debian's
// postgresql-NN packages; the newest version wins), or in the directory
// $SCIMFLARE_POSTGRES_BIN names. Without them the tests
// that need PostgreSQL skip, and Main says so in one line; with
// SCIMFLARE_REQUIRE_POSTGRES=1 (set by .ci/run) they fail instead.
//
// initdb refuses to run as root, and CI runs as root: then initdb and
// pg_ctl run as the "postgres" user (runuser), which owns the temporary
// directory. When benchmarks run (-test.bench), the cluster is durable
// (fsync on) so that figures compare with bbolt's fsync per commit;
// otherwise fsync is off to keep tests quick.
package pgtest

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// RequireEnv names the environment variable that turns a skip for want of
// PostgreSQL into a failure.
const RequireEnv = "SCIMFLARE_REQUIRE_POSTGRES"

type cluster struct {
	bin, dir, data string
	port           int
	asUser         *user.User // nil: run the binaries as ourselves
}

var (
	running *cluster
	why     string // why there is no cluster
	schemas atomic.Int64
)

// Main starts the cluster, runs the tests and stops the cluster. Call it
// from TestMain: func TestMain(m *testing.M) { pgtest.Main(m) }.
func Main(m *testing.M) {
	flag.Parse()
	c, err := start()
	switch {
	case err != nil && os.Getenv(RequireEnv) == "1":
		fmt.Fprintf(os.Stderr, "pgtest: %v, and %s=1 requires PostgreSQL\n", err, RequireEnv)
		os.Exit(1)
	case err != nil:
		why = err.Error()
		fmt.Fprintf(os.Stderr, "pgtest: %v: the PostgreSQL tests skip\n", err)
	}
	running = c
	if c != nil {
		// An interrupted test binary (^C, go test -timeout, a CI kill)
		// must not leave a server running.
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		go func() {
			s := <-sig
			_ = c.stop()
			fmt.Fprintf(os.Stderr, "pgtest: %v: cluster stopped\n", s)
			os.Exit(2)
		}()
	}
	code := m.Run()
	if c != nil {
		if err := c.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		}
	}
	os.Exit(code)
}

// Available reports whether a cluster runs.
func Available() bool { return running != nil }

// DSN creates a new empty schema in the cluster and returns a DSN whose
// connections use it (search_path); it skips t when there is no cluster.
// The schema is dropped when t ends.
func DSN(t testing.TB) string {
	t.Helper()
	if running == nil {
		if why == "" {
			why = "pgtest.Main did not run (no TestMain?)"
		}
		t.Skip("no PostgreSQL: " + why)
	}
	name := fmt.Sprintf("t%d_%d", os.Getpid(), schemas.Add(1))
	admin := running.AdminDSN()
	exec1(t, admin, "CREATE SCHEMA "+name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, admin); err == nil {
			_, _ = conn.Exec(ctx, "DROP SCHEMA "+name+" CASCADE")
			_ = conn.Close(ctx)
		}
	})
	return admin + "&search_path=" + name
}

// AdminDSN is the cluster's superuser DSN on its default database
// (search_path left alone); it skips t without a cluster.
func AdminDSN(t testing.TB) string {
	t.Helper()
	if running == nil {
		t.Skip("no PostgreSQL: " + why)
	}
	return running.AdminDSN()
}

func (c *cluster) AdminDSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

func exec1(t testing.TB, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// BinEnv names an environment variable that, when set, is the directory
// holding initdb and pg_ctl (for machines that are not Debian).
const BinEnv = "SCIMFLARE_POSTGRES_BIN"

// findBin returns $SCIMFLARE_POSTGRES_BIN, or the newest
// /usr/lib/postgresql/*/bin holding pg_ctl.
func findBin() (string, error) {
	if dir := os.Getenv(BinEnv); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err != nil {
			return "", fmt.Errorf("no PostgreSQL binaries in %s=%s", BinEnv, dir)
		}
		return dir, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	if len(matches) == 0 {
		return "", fmt.Errorf("no PostgreSQL binaries in /usr/lib/postgresql/*/bin (apt-get install postgresql-15)")
	}
	version := func(p string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(p))), 64)
		return v
	}
	slices.SortFunc(matches, func(a, b string) int {
		switch va, vb := version(a), version(b); {
		case va < vb:
			return -1
		case va > vb:
			return 1
		}
		return 0
	})
	return filepath.Dir(matches[len(matches)-1]), nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func durable() bool {
	f := flag.Lookup("test.bench")
	return f != nil && f.Value.String() != ""
}

func start() (*cluster, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	c := &cluster{bin: bin}
	if os.Geteuid() == 0 {
		if c.asUser, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("running as root, and initdb refuses root: no postgres user to run it as: %v", err)
		}
	}
	reapStale()
	if c.dir, err = os.MkdirTemp("", "scimflare-pg-"); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(c.dir, "owner.pid"), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		_ = os.RemoveAll(c.dir)
		return nil, err
	}
	if c.asUser != nil {
		uid, _ := strconv.Atoi(c.asUser.Uid)
		gid, _ := strconv.Atoi(c.asUser.Gid)
		if err := os.Chown(c.dir, uid, gid); err != nil {
			_ = os.RemoveAll(c.dir)
			return nil, err
		}
	}
	c.data = filepath.Join(c.dir, "data")
	if out, err := c.run("initdb", "-D", c.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		_ = os.RemoveAll(c.dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	sync := "off"
	if durable() {
		sync = "on"
	}
	// A port found free may be taken before the server binds it: try a few.
	for attempt := range 3 {
		if c.port, err = freePort(); err != nil {
			break
		}
		opts := strings.Join([]string{
			"-p", strconv.Itoa(c.port), "-k", c.dir, "-c", "listen_addresses=127.0.0.1",
			"-c", "fsync=" + sync, "-c", "synchronous_commit=" + sync, "-c", "full_page_writes=" + sync,
			"-c", "max_connections=200", "-c", "deadlock_timeout=100ms", "-c", "shared_buffers=64MB",
		}, " ")
		var out []byte
		out, err = c.run("pg_ctl", "-D", c.data, "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "-o", opts, "start")
		if err == nil {
			return c, nil
		}
		err = fmt.Errorf("pg_ctl start (attempt %d): %v: %s", attempt+1, err, out)
	}
	_ = os.RemoveAll(c.dir)
	return nil, err
}

func (c *cluster) run(name string, args ...string) ([]byte, error) {
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.asUser != nil {
		cmd = exec.Command("runuser", append([]string{"-u", c.asUser.Username, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = c.dir
	return cmd.CombinedOutput()
}

func (c *cluster) stop() error {
	out, err := c.run("pg_ctl", "-D", c.data, "-m", "immediate", "-w", "-t", "60", "stop")
	if rerr := os.RemoveAll(c.dir); err == nil && rerr != nil {
		return fmt.Errorf("remove %s: %w", c.dir, rerr)
	}
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %v: %s", err, out)
	}
	return nil
}

// reapStale stops and removes the clusters of test binaries that died
// without stopping them (SIGKILL, a -timeout panic).
func reapStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "scimflare-pg-*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		stale := &cluster{dir: dir, data: filepath.Join(dir, "data")}
		if bin, err := findBin(); err == nil {
			stale.bin = bin
		}
		if os.Geteuid() == 0 {
			stale.asUser, _ = user.Lookup("postgres")
		}
		_ = stale.stop()
	}
}
