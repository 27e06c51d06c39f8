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

	"github.com/spf13/cobra"

	scimflare "github.com/scimflare/scimflare"
	"github.com/scimflare/scimflare/internal/admin"
	"github.com/scimflare/scimflare/internal/cli"
	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/internal/daemon"
	devmode "github.com/scimflare/scimflare/internal/dev"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/store/backends"
)

// Set with -ldflags "-X main.version=… -X main.commit=… -X main.date=…".
var (
	version = "dev"
	commit  = ""
	date    = ""
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	args = commandFirst(args)
	root := newRoot(stdout, stderr, func(name string, args []string) int {
		switch name {
		case "serve":
			return serve(args, stdout, stderr)
		case "validate":
			return validate(args, stdout, stderr)
		case "migrate":
			return migrate(args, stdout, stderr)
		case "healthcheck":
			return healthcheck(args, stdout, stderr)
		case "version":
			fmt.Fprintln(stdout, versionLine())
			return 0
		}
		return stateCommand(append([]string{name}, args...), stdout, stderr)
	})
	if len(args) == 0 {
		root.SetOut(stderr)
		_ = root.Usage()
		return 1
	}
	switch args[0] {
	case "-version", "--version":
		fmt.Fprintln(stdout, versionLine())
		return 0
	case "-help", "-h":
		args[0] = "--help"
	}
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd(args...)
	complete := args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd
	if !strings.HasPrefix(args[0], "-") && !complete {
		if c, _, err := root.Find(args[:1]); err != nil || c == root {
			fmt.Fprintf(stderr, "scimflare: unknown command %q; run `scimflare help` for the list\n", args[0])
			return 1
		}
	}
	root.SetArgs(args)
	err := root.Execute()
	var code exitCode
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	}
	fmt.Fprintln(stderr, "scimflare: "+err.Error())
	return 1
}

func versionLine() string {
	built := ""
	if date != "" {
		built = ", built " + date
	}
	return fmt.Sprintf("scimflare %s (commit %s%s, %s)", version, commitID(), built, runtime.Version())
}

// readOnly reports whether args (command first) only read the state:
// such a command never creates or migrates a state file, and reaches the
// daemon even when the local config does not load.
func readOnly(args []string) bool {
	switch args[0] {
	case "status", "audit", "explain", "report", "plan", "backup", "validate":
		return true
	case "token":
		for i := 1; i < len(args); i++ {
			a := args[i]
			switch {
			case a == "--config" || a == "-config":
				i++
			case strings.HasPrefix(a, "-"):
			default:
				return a == "list"
			}
		}
	}
	return false
}

// stateCommand runs a command of internal/cli: in the daemon when one
// answers on admin.socket, else on the state file.
func stateCommand(args []string, stdout, stderr io.Writer) int {
	path := configFlag(args[1:])
	if path == "" {
		fmt.Fprintln(stderr, "scimflare: --config FILE is required")
		return 1
	}
	ctx := context.Background()
	// The daemon resolves paths against its own working directory.
	args = absolutePaths(args, "--out")
	cfg, err := config.Load(path)
	if err != nil {
		if readOnly(args) {
			if code, ok := daemonDespiteConfig(ctx, path, err, args, stdout, stderr); ok {
				return code
			}
		}
		fmt.Fprintln(stderr, "scimflare: "+err.Error())
		return 1
	}
	if code, done := viaDaemon(ctx, cfg.Admin.Socket, cfg.Path, args, stdout, stderr); done {
		return code
	}
	use := backends.Command
	if readOnly(args) {
		// Looking never creates, migrates or changes the state.
		use = backends.ReadOnly
	}
	st, err := daemon.OpenState(ctx, cfg, use)
	if errors.Is(err, store.ErrNoStateFile) {
		fmt.Fprintf(stderr, "scimflare: %s: no state file at %s (state.path) and no daemon on %s (admin.socket); %s only reads state and never creates it: start `scimflare serve --config %s` first, or fix the paths\n",
			cfg.Path, cfg.State.Path, cfg.Admin.Socket, args[0], cfg.Path)
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "scimflare: %v\n", err)
		return 1
	}
	defer st.Close()
	// Offline commands print their own results; only warnings and errors are logged.
	quiet := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rec, err := daemon.NewReconciler(cfg, st, quiet, time.Now)
	if err != nil {
		fmt.Fprintf(stderr, "scimflare: %v\n", err)
		return 1
	}
	return cli.Run(ctx, &cli.Env{Config: cfg, Store: st, Now: time.Now, Reconciler: rec}, args, stdout, stderr)
}

// daemonDespiteConfig runs a read-only command in the daemon when the
// local config file does not load: a typo in the daemon's config must not
// block `status` or `audit verify` while the daemon serves. ok reports
// whether a daemon answered; code is its exit status.
func daemonDespiteConfig(ctx context.Context, path string, loadErr error, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	socket := config.AdminSocketOf(path)
	if socket == "" {
		return 0, false
	}
	resp, err := admin.Call(ctx, socket, args)
	if err != nil {
		return 0, false
	}
	first, _, _ := strings.Cut(loadErr.Error(), "\n")
	fmt.Fprintf(stderr, "note: %s does not load (%s); the daemon on %s answered with its running config %s\n", path, first, socket, resp.Config)
	fmt.Fprint(stdout, resp.Stdout)
	fmt.Fprint(stderr, resp.Stderr)
	return resp.Exit, true
}

// viaDaemon runs args in the daemon listening on socket. done is false
// when no daemon runs there: the caller then runs the command itself. When
// the daemon runs with another config file than cfgPath, it says so: the
// daemon answers with its own config, not the one given.
func viaDaemon(ctx context.Context, socket, cfgPath string, args []string, stdout, stderr io.Writer) (code int, done bool) {
	resp, err := admin.Call(ctx, socket, args)
	if err == nil {
		if resp.Config != "" && !config.SameFile(resp.Config, cfgPath) {
			fmt.Fprintf(stderr, "note: the daemon on %s runs with %s, not %s: it answered with its own config\n", socket, resp.Config, cfgPath)
		}
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

func serve(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.String("config", "", "config file")
	dev := fs.Bool("dev", false, "throw-away state against an in-process fake Cloudflare")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "scimflare: serve: unexpected argument %q\n", fs.Arg(0))
		return 1
	}
	if *dev {
		if configFlag(args) != "" {
			fmt.Fprintln(stderr, "scimflare: serve: --dev runs on the embedded config.example.yaml; leave out --config")
			return 1
		}
		example, err := config.Parse("config.example.yaml", scimflare.ExampleConfig)
		if err != nil {
			fmt.Fprintln(stderr, "scimflare: "+err.Error())
			return 1
		}
		logger, _ := newLogger(stderr, example.Log)
		if err := devmode.Run(context.Background(), stdout, devmode.Options{Logger: logger, Version: version, Commit: commitID()}); err != nil {
			fmt.Fprintln(stderr, "scimflare: "+err.Error())
			return 1
		}
		return 0
	}
	if configFlag(args) == "" {
		fmt.Fprintln(stderr, "scimflare: serve: give --config FILE, or try it with --dev (a throw-away state against a fake Cloudflare)")
		return 1
	}
	cfg, code := loadConfig(args, stderr)
	if cfg == nil {
		return code
	}
	logger, level := newLogger(stderr, cfg.Log)
	if err := daemon.Run(context.Background(), cfg, daemon.Options{Logger: logger, LogLevel: level, Version: version, Commit: commitID()}); err != nil {
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
	if code, done := viaDaemon(ctx, cfg.Admin.Socket, cfg.Path, cmd, stdout, stderr); done {
		return code
	}
	env := &cli.Env{Config: cfg, Now: time.Now}
	// Never create a state file just to validate.
	if _, err := os.Stat(cfg.State.Path); err != nil && cfg.State.Backend != config.StatePostgres {
		fmt.Fprintf(stderr, "note: no state file at %s yet\n", cfg.State.Path)
	} else if st, err := daemon.OpenState(ctx, cfg, backends.ReadOnly); err != nil {
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

// newLogger builds the daemon's logger from the log section: level (a
// LevelVar a reload can change), and format (auto: text on a terminal,
// else JSON).
func newLogger(w io.Writer, lc config.Log) (*slog.Logger, *slog.LevelVar) {
	level := new(slog.LevelVar)
	if err := level.UnmarshalText([]byte(lc.Level)); err != nil {
		level.Set(slog.LevelInfo)
	}
	opts := &slog.HandlerOptions{Level: level}
	format := lc.Format
	if format == "" || format == config.LogFormatAuto {
		format = config.LogFormatJSON
		if f, ok := w.(*os.File); ok {
			if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
				format = config.LogFormatText
			}
		}
	}
	if format == config.LogFormatText {
		return slog.New(slog.NewTextHandler(w, opts)), level
	}
	return slog.New(slog.NewJSONHandler(w, opts)), level
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
