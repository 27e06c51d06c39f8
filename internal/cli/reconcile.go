package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/scimflare/scimflare/internal/config"
	syncer "github.com/scimflare/scimflare/sync"
	"github.com/scimflare/scimflare/sync/plan"
)

func init() {
	register("plan", "plan --config FILE [--json] [--detailed-exitcode]", runPlan)
	register("apply", "apply --config FILE [--force]", runApply)
	register("grant", "grant --config FILE --user EMAIL --account NAME (--role R | --mapping G) --for DURATION --reason TEXT", runGrant)
	register("revoke", "revoke --config FILE --grant ID", runRevoke)
}

func runPlan(ctx context.Context, env *Env, args []string, out, errOut io.Writer) error {
	fs := newFlags("plan", errOut)
	asJSON := fs.Bool("json", false, "print JSON")
	detailed := fs.Bool("detailed-exitcode", false, "exit 2 when there are changes")
	if err := parse(fs, args); err != nil {
		return err
	}
	res, err := env.Reconciler.Plan(ctx)
	if err != nil {
		return err
	}
	if res.Aborted != nil {
		return fmt.Errorf("plan aborted: %v", res.Aborted)
	}
	if *asJSON {
		err = plan.RenderJSON(out, res.Changes, res.Names, res.AccountNames)
	} else {
		if res.PlanOnly {
			fmt.Fprintln(out, "(plan-only: no Cloudflare token, or sync.mode is plan-only)")
		}
		err = plan.RenderText(out, res.Changes, res.Names)
	}
	if err != nil {
		return err
	}
	if *detailed && res.Changes.HasChanges() {
		return ExitError{Code: 2}
	}
	return nil
}

func runApply(ctx context.Context, env *Env, args []string, out, errOut io.Writer) error {
	fs := newFlags("apply", errOut)
	force := fs.Bool("force", false, "override a tripped removal guard once (audited)")
	if err := parse(fs, args); err != nil {
		return err
	}
	actor := "apply"
	if *force {
		actor = "apply --force"
	}
	res, err := env.Reconciler.Apply(ctx, syncer.RunOptions{Actor: actor, Force: *force})
	if err != nil {
		return err
	}
	if res.Aborted != nil {
		return fmt.Errorf("apply aborted before any removal: %v", res.Aborted)
	}
	if res.PlanOnly {
		fmt.Fprintln(out, "plan-only: nothing was applied; this is what a reconcile would do:")
		return plan.RenderText(out, res.Changes, res.Names)
	}
	applied := &plan.Changes{Withheld: res.Changes.Withheld, Drift: res.Changes.Drift, Tripped: res.Changes.Tripped}
	byAccount := map[string]int{}
	for _, c := range res.Applied {
		i, ok := byAccount[c.AccountID]
		if !ok {
			applied.Accounts = append(applied.Accounts, plan.AccountChanges{ID: c.AccountID, Name: res.AccountNames[c.AccountID]})
			i = len(applied.Accounts) - 1
			byAccount[c.AccountID] = i
		}
		applied.Accounts[i].Changes = append(applied.Accounts[i].Changes, c)
	}
	fmt.Fprintf(out, "applied %d change(s)\n", len(res.Applied))
	if err := plan.RenderText(out, applied, res.Names); err != nil {
		return err
	}
	if len(res.Failed) > 0 {
		for _, f := range res.Failed {
			fmt.Fprintf(errOut, "failed: %s %s on %s: %s\n", f.Change.Kind, esc(f.Change.Email), esc(res.AccountNames[f.Change.AccountID]), esc(f.Err.Error()))
		}
		return fmt.Errorf("%d change(s) failed; the next run retries them", len(res.Failed))
	}
	return nil
}

func runGrant(ctx context.Context, env *Env, args []string, out, errOut io.Writer) error {
	fs := newFlags("grant", errOut)
	user := fs.String("user", "", "email")
	account := fs.String("account", "", "account name")
	role := fs.String("role", "", "role name")
	mapping := fs.String("mapping", "", "mapping group")
	dur := fs.String("for", "", "duration, e.g. 2h")
	reason := fs.String("reason", "", "why")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *user == "" || *account == "":
		return usagef("grant: --user and --account are required")
	case (*role == "") == (*mapping == ""):
		return usagef("grant: give exactly one of --role or --mapping")
	case strings.TrimSpace(*reason) == "":
		return usagef("grant: --reason is required; it goes into the audit trail")
	}
	d, err := config.ParseDuration(*dur)
	if err != nil || d <= 0 {
		return usagef("grant: --for %q is not a duration such as 2h", *dur)
	}
	g, res, err := env.Reconciler.Grant(ctx, syncer.GrantRequest{
		Email: *user, Account: *account, Role: *role, Mapping: *mapping, For: d, Reason: *reason, Actor: "grant",
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "granted %s (grant %s) until %s\n", esc(*user), esc(g.ID), g.End.UTC().Format(time.RFC3339))
	return reportResult(out, res)
}

func runRevoke(ctx context.Context, env *Env, args []string, out, errOut io.Writer) error {
	fs := newFlags("revoke", errOut)
	id := fs.String("grant", "", "grant id")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *id == "" {
		return usagef("revoke: --grant ID is required")
	}
	res, err := env.Reconciler.Revoke(ctx, *id, "revoke")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "revoked grant %s\n", esc(*id))
	return reportResult(out, res)
}

func reportResult(out io.Writer, res *syncer.Result) error {
	if res == nil {
		return nil
	}
	if res.Aborted != nil {
		return fmt.Errorf("the change is stored but could not be applied yet: %v", res.Aborted)
	}
	if res.PlanOnly {
		fmt.Fprintln(out, "plan-only: Cloudflare was not changed")
	}
	for _, c := range res.Applied {
		fmt.Fprintf(out, "  %s %s on %s\n", c.Kind, esc(c.Email), esc(res.AccountNames[c.AccountID]))
	}
	for _, f := range res.Failed {
		fmt.Fprintf(out, "  FAILED %s %s: %s\n", f.Change.Kind, esc(f.Change.Email), esc(f.Err.Error()))
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
