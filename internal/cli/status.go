package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/scimflare/scimflare/internal/terminal"
)

func init() {
	register("status", "status --config FILE", runStatus)
}

func runStatus(ctx context.Context, env *Env, args []string, out, errOut io.Writer) error {
	fs := newFlags("status", errOut)
	if err := parse(fs, args); err != nil {
		return err
	}
	now := env.Now()
	st := env.Reconciler.Status()
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format(time.RFC3339)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	mode := "enforce"
	if st.PlanOnly {
		mode = "plan-only"
	}
	fmt.Fprintf(tw, "daemon\t%v\n", env.Daemon)
	fmt.Fprintf(tw, "mode\t%s\n", mode)
	fmt.Fprintf(tw, "last reconcile\t%s (%s, %s)\n", ts(st.LastRun), esc(orNone(st.LastTrigger)), esc(orNone(st.LastOutcome)))
	if st.LastError != "" {
		fmt.Fprintf(tw, "last error\t%s\n", esc(st.LastError))
	}
	fmt.Fprintf(tw, "last success\t%s\n", ts(st.LastSuccess))
	next := ts(st.NextRun)
	if st.NextRun.IsZero() {
		// Only a running daemon schedules; without one, say when the
		// schedule would fire.
		if sched, err := cron.ParseStandard(env.Config.Sync.Schedule); err == nil {
			next = "no daemon running (sync.schedule " + env.Config.Sync.Schedule + " would fire at " + sched.Next(now).UTC().Format(time.RFC3339) + ")"
		} else {
			next = "no daemon running"
		}
	}
	fmt.Fprintf(tw, "next run\t%s\n", next)
	guard := "ok"
	if len(st.Tripped) > 0 {
		guard = "TRIPPED on " + strings.Join(terminal.EscapeAll(st.Tripped), ", ") + " (run `scimflare apply --force` after review)"
	}
	fmt.Fprintf(tw, "guard\t%s\n", guard)
	switch {
	case st.PlanOnly && st.BudgetLeft == 0:
		fmt.Fprintf(tw, "cloudflare budget left\tn/a (no Cloudflare client)\n")
	case env.Daemon:
		fmt.Fprintf(tw, "cloudflare budget left\t%d of %d per 5 minutes\n", st.BudgetLeft, env.Config.Cloudflare.RequestBudget)
	default:
		fmt.Fprintf(tw, "cloudflare budget left\tn/a (no daemon running; its budget ends with it)\n")
	}
	if env.CloudflareToken != nil {
		h := env.CloudflareToken()
		state := esc(orNone(h.Status))
		if h.Checked.IsZero() {
			state = "not verified yet"
		}
		exp := "no expiry date"
		if !h.ExpiresOn.IsZero() {
			exp = "expires " + h.ExpiresOn.UTC().Format(time.RFC3339) + " (in " + formatAge(h.ExpiresOn.Sub(now)) + ")"
		}
		fmt.Fprintf(tw, "cloudflare token\t%s, %s, checked %s\n", state, exp, ts(h.Checked))
		for _, w := range h.Warnings(now) {
			fmt.Fprintf(tw, "cloudflare token warning\t%s\n", esc(w))
		}
	}
	if env.Leader != nil {
		l := env.Leader()
		role := "follower"
		if l.Leader {
			role = "leader since " + ts(l.Since)
		}
		fmt.Fprintf(tw, "replica\t%s (%s)\n", l.ReplicaID, role)
		fmt.Fprintf(tw, "reconciler leader\t%s, lease epoch %d\n", orNone(l.LeaderID), l.Epoch)
	}
	fmt.Fprintf(tw, "pending expiries\t%d\n", len(st.PendingExpiries))
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, e := range st.PendingExpiries {
		fmt.Fprintf(out, "  %s  (in %s)  %s  %s  %s  (%s)\n", e.At.UTC().Format(time.RFC3339), e.At.Sub(now).Round(time.Second), esc(e.Account), esc(e.Email), esc(e.Role), esc(e.Source))
	}
	if len(st.Withheld) > 0 {
		fmt.Fprintf(out, "removals withheld by a guard: %d (until `scimflare apply --force`)\n", len(st.Withheld))
		for _, w := range st.Withheld {
			fmt.Fprintf(out, "  since %s  %s  %s  %s\n", w.Since.UTC().Format(time.RFC3339), w.Account, terminal.Escape(w.Email), terminal.Escape(w.Why))
		}
	}
	if len(st.IdentityProblems) > 0 {
		fmt.Fprintf(out, "identity problems: %d (these users get no Cloudflare access, or share one email)\n", len(st.IdentityProblems))
		for _, p := range st.IdentityProblems {
			fmt.Fprintf(out, "  %s  %s  users %s  %s\n", p.Kind, terminal.Escape(p.Email), strings.Join(p.UserIDs, ","), p.Why)
		}
	}
	if len(st.GroupConflicts) > 0 {
		fmt.Fprintf(out, "user group conflicts: %d (groups of scimflare's names it does not own: never changed, leavers in them included)\n", len(st.GroupConflicts))
		for _, c := range st.GroupConflicts {
			fmt.Fprintf(out, "  %s\n", terminal.Escape(c))
		}
	}
	toks, err := env.Store.Tokens()
	if err != nil {
		return fmt.Errorf("read SCIM tokens: %w", err)
	}
	fmt.Fprintf(out, "scim tokens: %d\n", len(toks))
	for _, t := range toks {
		exp := "NEVER EXPIRES"
		if !t.ExpiresAt.IsZero() {
			if now.Before(t.ExpiresAt) {
				exp = "expires " + t.ExpiresAt.UTC().Format(time.RFC3339) + " (in " + formatAge(t.ExpiresAt.Sub(now)) + ")"
			} else {
				exp = "EXPIRED " + t.ExpiresAt.UTC().Format(time.RFC3339)
			}
		}
		flag := ""
		if now.Sub(t.CreatedAt) > tokenAgeLimit {
			flag = "  (older than 90 days: rotate)"
		}
		fmt.Fprintf(out, "  %s  age %s  %s%s\n", esc(t.Name), formatAge(now.Sub(t.CreatedAt)), exp, flag)
	}
	for _, t := range toks {
		if t.ExpiresAt.IsZero() {
			fmt.Fprintln(out, "warning: "+esc(neverExpires(t.Name)))
		}
	}
	return nil
}
