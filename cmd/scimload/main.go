package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// exitErrors is the exit status of a run that completed with failed
// requests: distinct from 1 (could not run) so that a script can tell.
const exitErrors = 3

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "report" {
		return report(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("scimload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: scimload -url SCIM_BASE_URL [flags]   (token from -token or SCIMLOAD_TOKEN)")
		fmt.Fprintln(stderr, "       scimload -inprocess [flags]          (scimflare's SCIM handler in this process)")
		fmt.Fprintln(stderr, "       scimload report [-min-ops PHASE=N,...] NAME=RESULT.json ...")
		fs.PrintDefaults()
	}
	var cfg Config
	var phases string
	var jsonOut bool
	var timeout time.Duration
	var ip inProcess
	var cpuProfile, memProfile string
	fs.StringVar(&cfg.URL, "url", "", "SCIM base URL, e.g. http://127.0.0.1:8080/scim/v2")
	fs.StringVar(&cfg.Token, "token", "", "bearer token (default: $SCIMLOAD_TOKEN)")
	fs.IntVar(&cfg.Users, "users", 1000, "users to import")
	fs.IntVar(&cfg.Groups, "groups", 50, "groups to import")
	fs.IntVar(&cfg.Memberships, "memberships", 10000, "memberships to add; group 0 gets min(users, memberships) of them")
	fs.IntVar(&cfg.Chunk, "chunk", 100, "members per PATCH in the import (Okta and Entra send 100)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 8, "concurrent clients")
	fs.IntVar(&cfg.Churn, "churn", 1000, "requests in the churn phase")
	fs.IntVar(&cfg.Lookups, "lookups", 3000, "requests in the lookup phase (a third each: userName eq, group GET, one-member PATCH)")
	fs.StringVar(&phases, "phases", "import,churn,lookup", "phases to run, in order; without import, ids are looked up first")
	fs.StringVar(&cfg.Prefix, "prefix", "load", "prefix of every userName and displayName")
	fs.Uint64Var(&cfg.Seed, "seed", 1, "seed of the churn and lookup choices")
	fs.IntVar(&cfg.RSSPid, "rss-pid", 0, "read VmRSS of this process after each phase")
	fs.BoolVar(&jsonOut, "json", false, "print the result as JSON")
	fs.DurationVar(&timeout, "timeout", 30*time.Minute, "stop the whole run after this long")
	fs.BoolVar(&ip.enabled, "inprocess", false, "serve scimflare's SCIM handler over a bbolt state file in this process and load it")
	fs.StringVar(&ip.state, "state", "", "with -inprocess: the state file (default: a new file in a temporary directory, removed at exit)")
	fs.DurationVar(&ip.batch, "store-batch", 0, "with -inprocess: open the store with bbolt's timer batch store.WithBatch(d) instead of the daemon's group commit")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.StringVar(&memProfile, "memprofile", "", "write a heap profile at the end of the run to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "scimload: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	for p := range strings.SplitSeq(phases, ",") {
		if p = strings.TrimSpace(p); p != "" {
			cfg.Phases = append(cfg.Phases, p)
		}
	}
	if cfg.Token == "" {
		cfg.Token = os.Getenv("SCIMLOAD_TOKEN")
	}
	cfg.Progress = stderr

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	if ip.enabled {
		if cfg.URL != "" {
			fmt.Fprintln(stderr, "scimload: -inprocess and -url exclude each other")
			return 2
		}
		if cfg.Token == "" {
			cfg.Token = "scimload-inprocess"
		}
		srv, err := ip.start(cfg.Token)
		if err != nil {
			fmt.Fprintf(stderr, "scimload: %v\n", err)
			return 1
		}
		defer srv.Close()
		cfg.URL = srv.URL
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "scimload: -cpuprofile: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "scimload: -cpuprofile: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}

	res, _, runErr := Run(ctx, cfg)
	if runErr != nil && res.Target == "" {
		fmt.Fprintf(stderr, "scimload: %v\n", runErr)
		return 1
	}
	var err error
	if jsonOut {
		err = writeJSON(stdout, res)
	} else {
		err = writeText(stdout, res)
	}
	if err != nil {
		fmt.Fprintf(stderr, "scimload: write result: %v\n", err)
		return 1
	}
	if memProfile != "" {
		if err := writeHeapProfile(memProfile); err != nil {
			fmt.Fprintf(stderr, "scimload: -memprofile: %v\n", err)
			return 1
		}
	}
	if runErr != nil {
		fmt.Fprintf(stderr, "scimload: %v\n", runErr)
		return 1
	}
	if n := res.Errors(); n > 0 {
		fmt.Fprintf(stderr, "scimload: %d requests failed\n", n)
		return exitErrors
	}
	return 0
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
