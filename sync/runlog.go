package sync

import (
	"context"
	"log/slog"
	"time"
)

// logRun writes the one summary line every reconcile ends with, nothing
// to do included, so an operator sees that runs happen and what they cost:
// kind, trigger, outcome, changes planned and applied, withheld removals,
// failures, duration, and the Cloudflare calls the run made (retries
// included; not those of explain, plan or the daemon's token check, which
// share the client).
func (r *Reconciler) logRun(rn *run, outcome string, took time.Duration) {
	res := rn.result
	planned, withheld := 0, 0
	if res.Changes != nil {
		for _, ac := range res.Changes.Accounts {
			planned += len(ac.Changes)
		}
		withheld = len(res.Changes.Withheld)
	}
	attrs := []any{"kind", rn.req.kind.String(), "trigger", rn.req.actor, "outcome", outcome,
		"changes", planned, "applied", len(res.Applied), "withheld", withheld, "failed", len(res.Failed),
		"duration", took.Round(time.Millisecond).String(), "cloudflare_calls", rn.calls.Load(),
		"plan_only", rn.planOnly}
	if res.Aborted != nil {
		attrs = append(attrs, "error", res.Aborted.Error())
	}
	level := slog.LevelInfo
	if outcome != OutcomeSuccess && outcome != OutcomePreempted {
		level = slog.LevelWarn
	}
	r.log.Log(context.Background(), level, "reconcile finished", attrs...)
}
