package sync

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/scimflare/scimflare/sync/cloudflare"
)

// BenchmarkLeaverDuringFullRun: a user deactivated while a scheduled full
// run lists a 2,000-member account, each page of 50 answered after 50 ms
// (a stand-in for Cloudflare's answer time; the whole listing ≈ 2 s).
// Timed from the Touch (the SCIM write's notification) to the DELETE
// leaving for Cloudflare, debounce 50 ms included. Each iteration starts
// the loop afresh, so its start-up run is the full run, deactivates one
// user once three pages are listed, and stops the loop once the full run
// ran again to its end.
// Reported: p50, p99 and max over the iterations (-benchtime Nx).
func BenchmarkLeaverDuringFullRun(b *testing.B) {
	e := newEnv(b, withRealTime())
	slow := &slowListing{next: e.fake.HTTPClient().Transport}
	e.throughTransport(slow, cloudflare.Config{})
	const handMade = 40 * 50
	e.handMade(handMade)
	const most = 1000
	ids := e.users(most, "dev%04d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	slow.delay.Store(int64(50 * time.Millisecond))

	var took []time.Duration
	i := 0
	for b.Loop() {
		if i == most {
			b.Fatalf("at most %d iterations", most)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.r.Run(ctx) }()
		base := slow.listed()
		waitFor(b, 30*time.Second, "the full run did not start listing", func() bool { return slow.listed() >= base+3 })
		slow.mu.Lock()
		deletes := len(slow.deletes)
		slow.mu.Unlock()
		e.deactivate(ids[i])
		start := time.Now()
		e.r.Touch([]string{ids[i]}, nil, nil)
		waitFor(b, 60*time.Second, "no DELETE for the leaver", func() bool {
			slow.mu.Lock()
			defer slow.mu.Unlock()
			return len(slow.deletes) > deletes
		})
		slow.mu.Lock()
		took = append(took, slow.deletes[deletes].Sub(start))
		slow.mu.Unlock()
		// The full run that gave way runs to its end before the next
		// iteration: a full run gives way at most maxPreemptions times in
		// a row.
		waitFor(b, 60*time.Second, "the full run did not run again to its end", func() bool {
			return metricValue(e.m.ReconcileRuns.WithLabelValues(ActorSchedule, OutcomeSuccess)) >= float64(i+1)
		})
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		i++
	}
	slices.Sort(took)
	q := func(p float64) float64 {
		return float64(took[min(len(took)-1, int(p*float64(len(took))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(took[len(took)-1].Microseconds())/1000, "max-ms")
	ceiling(b, "leaver during a full run's listing, p99 ms", q(0.99), ceilingLeaverP99ms)
}
