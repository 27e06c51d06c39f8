package sync

import (
	"context"
	"log/slog"
	"runtime"
	gosync "sync"
	"time"
	"weak"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// logRun writes the one summary line every reconcile ends with, nothing
// to do included, so an operator sees that runs happen and what they cost:
// kind, trigger, outcome, changes planned and applied, withheld removals,
// failures, duration, and the Cloudflare calls made since the previous
// run's summary (the reconciler's calls, plus the daemon's hourly token
// check when one fell in between).
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
		"duration", took.Round(time.Millisecond).String(), "cloudflare_calls", r.callsSinceLastRun(),
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

// callTotals remembers each reconciler's Cloudflare call count at its last
// summary line. Keys are weak, and a reconciler's entry goes with it, so
// the map holds no reconciler alive (tests make hundreds).
var callTotals gosync.Map // weak.Pointer[Reconciler] -> float64

func (r *Reconciler) callsSinceLastRun() int {
	total := sumCounter(r.m.CloudflareCalls)
	key := weak.Make(r)
	prev, loaded := callTotals.Swap(key, total)
	if !loaded {
		runtime.AddCleanup(r, func(k weak.Pointer[Reconciler]) { callTotals.Delete(k) }, key)
	}
	p, _ := prev.(float64)
	return int(total - p)
}

// sumCounter adds up every series of a counter vector.
func sumCounter(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	var sum float64
	for m := range ch {
		var pb dto.Metric
		if m.Write(&pb) == nil && pb.Counter != nil {
			sum += pb.Counter.GetValue()
		}
	}
	return sum
}
