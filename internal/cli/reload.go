package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/scimflare/scimflare/internal/terminal"
	syncer "github.com/scimflare/scimflare/sync"
	"github.com/scimflare/scimflare/sync/plan"
)

func init() {
	register("reload", "reload --config FILE", runReloadOffline)
}

// ReloadResult is what an accepted reload changed and the reconcile that
// followed it.
type ReloadResult struct {
	Summary string
	Run     *syncer.Result
}

// ReloadFunc is the running daemon's reload; trigger says who asked
// ("SIGHUP", "scimflare reload").
type ReloadFunc func(ctx context.Context, trigger string) (*ReloadResult, error)

// runReloadOffline is reached only when no daemon answers: the daemon
// handles `reload` itself through RunReload.
func runReloadOffline(ctx context.Context, env *Env, args []string, out, errOut io.Writer) error {
	if err := parse(newFlags("reload", errOut), args); err != nil {
		return err
	}
	return usagef("no scimflare daemon is running on %s: there is nothing to reload (serve reads the config when it starts)", env.Config.Admin.Socket)
}

// RunReload runs `scimflare reload` inside the daemon and returns the exit
// status.
func RunReload(ctx context.Context, reload ReloadFunc, args []string, out, errOut io.Writer) int {
	if err := parse(newFlags("reload", errOut), args); err != nil {
		fmt.Fprintln(errOut, "scimflare: "+err.Error())
		return 1
	}
	res, err := reload(ctx, "scimflare reload")
	if err != nil {
		fmt.Fprintln(errOut, "scimflare: "+terminal.EscapeLines(strings.TrimSuffix(err.Error(), ".")))
		return 1
	}
	fmt.Fprintln(out, esc(res.Summary))
	run := res.Run
	if run == nil {
		return 0
	}
	if run.Aborted != nil {
		fmt.Fprintf(errOut, "scimflare: the new config is in force, but the reconcile after it aborted before any change: %s\n", esc(run.Aborted.Error()))
		return 1
	}
	fmt.Fprintf(out, "reconcile after reload: %d change(s) applied\n", len(run.Applied))
	if err := reportResult(out, run); err != nil {
		fmt.Fprintln(errOut, "scimflare: "+err.Error())
		return 1
	}
	for _, id := range run.Changes.Tripped {
		held := 0
		for _, w := range run.Changes.Withheld {
			if w.Change.AccountID == id && w.By == plan.WithheldByGuard {
				held += w.Change.Removals()
			}
		}
		fmt.Fprintf(out, "removal guard TRIPPED on %s: %d removal(s) withheld until `scimflare apply --force`\n", esc(run.AccountNames[id]), held)
	}
	return 0
}
