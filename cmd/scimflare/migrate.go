package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/scimflare/scimflare/internal/cli"
	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/internal/daemon"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/store/backends"
)

// migrate copies a bbolt state file into the empty PostgreSQL database the
// config names, and verifies the copy. The bbolt file's lock proves no
// daemon serves from it meanwhile.
func migrate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("config", "", "config file")
	from := fs.String("from", "", "the backend to copy from: bolt")
	to := fs.String("to", "", "the backend to copy to: postgres")
	boltPath := fs.String("bolt", "", "the bbolt state file (default: state.path)")
	if err := cli.ParseFlags(fs, args); err != nil {
		fmt.Fprintln(stderr, "scimflare: "+err.Error())
		return 1
	}
	if *from != config.StateBolt || *to != config.StatePostgres {
		fmt.Fprintf(stderr, "scimflare: migrate copies --from bolt --to postgres (got --from %q --to %q)\n", *from, *to)
		return 1
	}
	cfg, code := loadConfig(args, stderr)
	if cfg == nil {
		return code
	}
	src := cfg.State.Path
	if *boltPath != "" {
		src = *boltPath
	}
	ctx := context.Background()
	if _, err := os.Stat(src); err != nil {
		fmt.Fprintf(stderr, "scimflare: migrate: no bbolt state file at %s\n", src)
		return 1
	}
	bolt, err := store.Open(src, store.WithLockTimeout(time.Second))
	if err != nil {
		fmt.Fprintf(stderr, "scimflare: migrate: open %s: %v (is a daemon still serving from it? stop it first)\n", src, err)
		return 1
	}
	defer bolt.Close()
	pgCfg := *cfg
	pgCfg.State.Backend = config.StatePostgres
	pg, err := daemon.OpenState(ctx, &pgCfg, backends.Migrate)
	if err != nil {
		fmt.Fprintf(stderr, "scimflare: migrate: open the PostgreSQL database: %v\n", err)
		return 1
	}
	defer pg.Close()
	sum, err := store.Copy(ctx, bolt, pg)
	if err != nil {
		if errors.Is(err, store.ErrNotEmpty) {
			fmt.Fprintf(stderr, "scimflare: migrate: %s already holds state; migrate copies only into an empty database, and nothing was written\n", pg.Location())
		} else {
			fmt.Fprintf(stderr, "scimflare: migrate: %v\n", err)
		}
		return 1
	}
	fmt.Fprintf(stdout, "copied %s to %s and verified the copy: %s; audit head %d %s\n",
		bolt.Location(), pg.Location(), sum, sum.AuditSeq, short(sum.AuditHash))
	fmt.Fprintf(stdout, "next: set state.backend: postgres in %s and start the replicas\n", cfg.Path)
	return 0
}

// healthcheck asks the daemon's /healthz, for container health checks
// that have no shell or curl: exit 0 on 200, else 1 with one sentence. It
// never opens the state or the admin socket.
func healthcheck(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("config", "", "config file")
	if err := cli.ParseFlags(fs, args); err != nil {
		fmt.Fprintln(stderr, "scimflare: "+err.Error())
		return 1
	}
	cfg, code := loadConfig(args, stderr)
	if cfg == nil {
		return code
	}
	host, port, err := net.SplitHostPort(cfg.Server.Listen)
	if err != nil {
		fmt.Fprintf(stderr, "scimflare: healthcheck: %s: server.listen %q: %v\n", cfg.Path, cfg.Server.Listen, err)
		return 1
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http"
	if cfg.Server.TLSCertFile != "" {
		scheme = "https"
	}
	url := scheme + "://" + net.JoinHostPort(host, port) + "/healthz"
	// The certificate names the public host, not loopback: the check is
	// about liveness, and the request carries no secret.
	client := &http.Client{Timeout: 3 * time.Second, Transport: insecureLoopbackTransport()}
	res, err := client.Get(url)
	if err != nil {
		fmt.Fprintf(stderr, "scimflare: healthcheck: %s does not answer: %v\n", url, err)
		return 1
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "scimflare: healthcheck: %s answered %s\n", url, res.Status)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n", url)
	return 0
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12] + "…"
	}
	return h
}

// insecureLoopbackTransport skips certificate checks: healthcheck talks to
// its own daemon on loopback, whose certificate names the public host.
func insecureLoopbackTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // loopback liveness check, no secret sent
	return t
}
