// Command scimflare keeps Cloudflare account access in line with the
// identity provider. This file is wiring only: flags, config, construct, run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/scimflare/scimflare/internal/admin"
	"github.com/scimflare/scimflare/internal/cli"
	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/internal/daemon"
	"github.com/scimflare/scimflare/internal/metrics"
	"github.com/scimflare/scimflare/store"
)

// Set with -ldflags "-X main.version=… -X main.commit=…".
var (
	version = "dev"
	commit  = ""
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	args = commandFirst(args)
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) == 0 {
			usage(stderr)
			return 1
		}
		usage(stdout)
		return 0
	}
	if cli.IsHelp(args[1:]) {
		return commandHelp(args[0], stdout, stderr)
	}
	switch args[0] {
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "scimflare %s (commit %s, %s)\n", version, commitID(), runtime.Version())
		return 0
	case "serve":
		return serve(args[1:], stderr)
	case "validate":
		return validate(args[1:], stdout, stderr)
	}
	if !cli.Has(args[0]) {
		fmt.Fprintf(stderr, "scimflare: unknown command %q; run `scimflare help` for the list\n", args[0])
		return 1
	}
	cfg, code := loadConfig(args[1:], stderr)
	if cfg == nil {
		return code
	}
	ctx := context.Background()
	// The daemon resolves paths against its own working directory.
	args = absolutePaths(args, "--out")
	if code, done := viaDaemon(ctx, cfg.Admin.Socket, args, stdout, stderr); done {
		return code
	}
	st, err := store.Open(cfg.State.Path)
	if err != nil {
		fmt.Fprintf(stderr, "scimflare: %v\n", err)
		return 1
	}
	defer st.Close()
	// Offline commands print their own results; only warnings and errors are logged.
	quiet := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rec, err := daemon.NewReconciler(cfg, st, metrics.New(), quiet, time.Now)
	if err != nil {
		fmt.Fprintf(stderr, "scimflare: %v\n", err)
		return 1
	}
	return cli.Run(ctx, &cli.Env{Config: cfg, Store: st, Now: time.Now, Reconciler: rec}, args, stdout, stderr)
}

// viaDaemon runs args in the daemon listening on socket. done is false
// when no daemon runs there: the caller then runs the command itself.
func viaDaemon(ctx context.Context, socket string, args []string, stdout, stderr io.Writer) (code int, done bool) {
	resp, err := admin.Call(ctx, socket, args)
	if err == nil {
		fmt.Fprint(stdout, resp.Stdout)
		fmt.Fprint(stderr, resp.Stderr)
		return resp.Exit, true
	}
	if !errors.Is(err, admin.ErrNoDaemon) {
		fmt.Fprintf(stderr, "scimflare: %v\n", err)
		return 1, true
	}
	return 0, false
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: scimflare COMMAND --config FILE [flags]")
	fmt.Fprintln(w, "commands:")
	fmt.Fprintln(w, "  serve --config FILE")
	for _, u := range cli.Usage() {
		fmt.Fprintln(w, "  "+u)
	}
	fmt.Fprintln(w, "  version")
}

// commandHelp answers `COMMAND --help` without reading any config.
func commandHelp(name string, stdout, stderr io.Writer) int {
	line, ok := cli.UsageOf(name)
	switch {
	case name == "serve":
		line = "serve --config FILE"
	case name == "version":
		line = "version"
	case !ok:
		fmt.Fprintf(stderr, "scimflare: unknown command %q; run `scimflare help` for the list\n", name)
		return 1
	}
	fmt.Fprintln(stdout, "usage: scimflare "+line)
	return 0
}

// commandFirst moves a --config given before the command behind it:
// `scimflare --config F status` is `scimflare status --config F`.
func commandFirst(args []string) []string {
	var global []string
	for len(args) > 0 {
		switch a := args[0]; {
		case (a == "--config" || a == "-config") && len(args) > 1:
			global, args = append(global, args[:2]...), args[2:]
		case strings.HasPrefix(a, "--config=") || strings.HasPrefix(a, "-config="):
			global, args = append(global, a), args[1:]
		default:
			return slices.Concat(args[:1], global, args[1:])
		}
	}
	return global
}

// configFlag finds --config in args without consuming the command's flags.
func configFlag(args []string) string {
	for i, a := range args {
		switch {
		case a == "--config" || a == "-config":
			if i+1 < len(args) {
				return args[i+1]
			}
		case strings.HasPrefix(a, "--config="):
			return strings.TrimPrefix(a, "--config=")
		case strings.HasPrefix(a, "-config="):
			return strings.TrimPrefix(a, "-config=")
		}
	}
	return ""
}

func loadConfig(args []string, stderr io.Writer) (*config.Config, int) {
	path := configFlag(args)
	if path == "" {
		fmt.Fprintln(stderr, "scimflare: --config FILE is required")
		return nil, 1
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(stderr, "scimflare: "+err.Error())
		return nil, 1
	}
	return cfg, 0
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("config", "", "config file")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	cfg, code := loadConfig(args, stderr)
	if cfg == nil {
		return code
	}
	if err := daemon.Run(context.Background(), cfg, daemon.Options{Logger: newLogger(stderr)}); err != nil {
		fmt.Fprintln(stderr, "scimflare: "+err.Error())
		return 1
	}
	return 0
}

// validate checks the config file, then lints it against the state: over
// the admin socket when a daemon runs, else on the state file when it
// exists and is free, else without the state.
func validate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("config", "", "config file")
	online := fs.Bool("online", false, "also resolve every name against Cloudflare")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	cfg, code := loadConfig(args, stderr)
	if cfg == nil {
		return code
	}
	path, err := filepath.Abs(cfg.Path)
	if err != nil {
		fmt.Fprintf(stderr, "scimflare: %v\n", err)
		return 1
	}
	cmd := []string{"validate", "--config", path}
	if *online {
		cmd = append(cmd, "--online")
	}
	ctx := context.Background()
	if code, done := viaDaemon(ctx, cfg.Admin.Socket, cmd, stdout, stderr); done {
		return code
	}
	env := &cli.Env{Config: cfg, Now: time.Now}
	// Never create a state file just to validate.
	if _, err := os.Stat(cfg.State.Path); err != nil {
		fmt.Fprintf(stderr, "note: no state file at %s yet\n", cfg.State.Path)
	} else if st, err := store.Open(cfg.State.Path, store.WithLockTimeout(200*time.Millisecond)); err != nil {
		fmt.Fprintf(stderr, "note: state file not read: %v\n", err)
	} else {
		defer st.Close()
		env.Store = st
	}
	return cli.Run(ctx, env, cmd, stdout, stderr)
}

// absolutePaths makes the value of each named flag an absolute path.
func absolutePaths(args []string, flags ...string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		for _, f := range flags {
			switch {
			case (a == f || a == f[1:]) && i+1 < len(out):
				if p, err := filepath.Abs(out[i+1]); err == nil {
					out[i+1] = p
				}
			case strings.HasPrefix(a, f+"=") || strings.HasPrefix(a, f[1:]+"="):
				name, v, _ := strings.Cut(a, "=")
				if p, err := filepath.Abs(v); err == nil {
					out[i] = name + "=" + p
				}
			}
		}
	}
	return out
}

// newLogger logs JSON unless stderr is a terminal.
func newLogger(w io.Writer) *slog.Logger {
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return slog.New(slog.NewTextHandler(w, nil))
		}
	}
	return slog.New(slog.NewJSONHandler(w, nil))
}

func commitID() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}
