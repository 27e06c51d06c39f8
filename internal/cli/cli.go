// Package cli implements the scimflare commands that read or change state.
// Each runs the same way inside the daemon (reached over the admin socket)
// and directly on the state file when no daemon runs. It prints user
// mistakes as one sentence and never prints a stored secret.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/internal/terminal"
	"github.com/scimflare/scimflare/store"
	syncer "github.com/scimflare/scimflare/sync"
	"github.com/scimflare/scimflare/sync/cloudflare"
)

// Env is what commands run against.
type Env struct {
	Config *config.Config
	Store  store.Backend
	Now    func() time.Time
	// Reconciler is the daemon's own inside `serve`, else one built for this
	// command (it never runs a schedule).
	Reconciler *syncer.Reconciler
	// Daemon is true inside `serve`.
	Daemon bool
	// CloudflareToken reports the daemon's last verification of its
	// Cloudflare token; nil outside `serve`.
	CloudflareToken func() cloudflare.TokenHealth
	// Leader reports who reconciles when several replicas share a
	// PostgreSQL state; nil with one replica or outside `serve`.
	Leader func() Leadership
}

// Leadership is what status shows about the reconciler lease.
type Leadership struct {
	Leader              bool
	ReplicaID, LeaderID string
	Since               time.Time
	Epoch               uint64
}

type command struct {
	usage string
	run   func(ctx context.Context, env *Env, args []string, out, errOut io.Writer) error
}

var commands = map[string]command{}

func register(name, usage string, run func(ctx context.Context, env *Env, args []string, out, errOut io.Writer) error) {
	commands[name] = command{usage: usage, run: run}
}

// Has reports whether name is a state command handled here.
func Has(name string) bool {
	_, ok := commands[name]
	return ok
}

// Usage lists the state commands.
func Usage() []string {
	var out []string
	for _, c := range commands {
		out = append(out, c.usage)
	}
	sort.Strings(out)
	return out
}

// UsageError is a mistake in the command line.
type UsageError struct{ msg string }

func (e UsageError) Error() string { return e.msg }

// esc makes a value from SCIM or Cloudflare safe for text output.
var esc = terminal.Escape

func usagef(format string, args ...any) error { return UsageError{fmt.Sprintf(format, args...)} }

// ExitError carries a specific exit status (plan --detailed-exitcode).
type ExitError struct{ Code int }

func (e ExitError) Error() string { return fmt.Sprintf("exit %d", e.Code) }

// Run executes args (command name first) and returns the exit status.
func Run(ctx context.Context, env *Env, args []string, out, errOut io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(errOut, "scimflare: no command given")
		return 1
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(errOut, "scimflare: unknown command %q\n", args[0])
		return 1
	}
	err := c.run(ctx, env, args[1:], out, errOut)
	var ee ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.Code
	default:
		fmt.Fprintln(errOut, "scimflare: "+terminal.EscapeLines(strings.TrimSuffix(err.Error(), ".")))
		return 1
	}
}

// newFlags makes a flag set that reports errors instead of exiting, and
// accepts --config (already consumed by the caller) silently.
func newFlags(name string, errOut io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.String("config", "", "config file")
	return fs
}

// parse reads flags and refuses positional arguments.
// ParseFlags parses a command's flags wherever they stand, as every
// command here does; a positional argument is an error.
func ParseFlags(fs *flag.FlagSet, args []string) error { return parse(fs, args) }

func parse(fs *flag.FlagSet, args []string) error {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), pos[0])
	}
	return nil
}

// parseArgs reads flags wherever they stand among the positional
// arguments, which it returns in order: users type `token revoke NAME
// --config F` as often as `token revoke --config F NAME`, and the flag
// package alone stops at the first positional argument. After "--" every
// argument is positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// isConfigFlag reports whether args[i] is the global --config flag and how
// many arguments it spans.
func isConfigFlag(args []string, i int) (int, bool) {
	a := args[i]
	switch {
	case a == "--config" || a == "-config":
		return min(2, len(args)-i), true
	case strings.HasPrefix(a, "--config=") || strings.HasPrefix(a, "-config="):
		return 1, true
	}
	return 0, false
}

// subcommand splits `token --config F revoke NAME` into "revoke" and the
// rest, --config kept: the global flag may stand before the subcommand.
func subcommand(args []string) (string, []string) {
	var global []string
	for i := 0; i < len(args); {
		n, ok := isConfigFlag(args, i)
		if !ok {
			return args[i], slices.Concat(global, args[i+1:])
		}
		global = append(global, args[i:i+n]...)
		i += n
	}
	return "", global
}

// IsHelp reports whether args ask for help (-h, -help or --help before
// any "--").
func IsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// UsageOf is the usage line of the state command name.
func UsageOf(name string) (string, bool) {
	c, ok := commands[name]
	return c.usage, ok
}
