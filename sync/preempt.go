package sync

import (
	"context"
	"errors"
	"time"
)

// A scheduled full run reads every account before it plans, and a big
// account's listing takes minutes (50 members a page, within
// cloudflare.request_budget). Runs go one at a time, so a leaver
// deactivated meanwhile would wait for all of it — and for the full run's
// writes — before the targeted run that removes them. Instead, while a
// scheduled full run is still reading, a targeted run (touches past their
// debounce) or an expiry that falls due stops it: nothing was written
// yet, the urgent run goes first, and the full run starts again right
// after it. A full run gives way at most maxPreemptions times in a row,
// so a steady stream of SCIM changes cannot keep drift from being
// repaired.

// maxPreemptions bounds how many times in a row a scheduled full run
// gives way before it runs to its end whatever falls due.
const maxPreemptions = 3

// errPreempted ends a full run's reads when an urgent run falls due.
var errPreempted = errors.New("a targeted run or an expiry fell due while the full run was reading; the full run starts again after it")

// urgentDue is when the first urgent run is due: the pending touches'
// debounce (unless they stand for everything: that run is a full run
// itself) or the next expiry; zero when there is none.
func (r *Reconciler) urgentDue(debounce time.Duration) time.Time {
	due := time.Time{}
	r.mu.Lock()
	all := r.pending.all
	expiry := r.nextExpiry
	r.mu.Unlock()
	if !all {
		due = r.debounceDue(debounce)
	}
	if !expiry.IsZero() && (due.IsZero() || expiry.Before(due)) {
		due = expiry
	}
	return due
}

// yieldTo returns ctx, cancelled with errPreempted as soon as an urgent
// run is due by the reconciler's clock — the pending touches', an
// expiry's, or taken, when the touches the run took at its start fall due;
// stop ends the watch (and the context: it is for the reads only).
func (r *Reconciler) yieldTo(ctx context.Context, debounce time.Duration, taken time.Time) (readCtx context.Context, stop func()) {
	readCtx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		for {
			due := r.urgentDue(debounce)
			if !taken.IsZero() && (due.IsZero() || taken.Before(due)) {
				due = taken
			}
			now := r.now()
			if !due.IsZero() && !now.Before(due) {
				cancel(errPreempted)
				return
			}
			wait := time.Hour
			if !due.IsZero() {
				wait = due.Sub(now)
			}
			timer.Reset(wait)
			select {
			case <-done:
				return
			case <-readCtx.Done():
				return
			case <-r.watch: // a Touch: the debounce moved
			case <-timer.C:
			}
		}
	}()
	return readCtx, func() {
		close(done)
		cancel(nil)
	}
}

// preempted reports whether err ended a run's reads because readCtx gave
// way to an urgent run.
func preempted(readCtx context.Context, err error) bool {
	return err != nil && errors.Is(context.Cause(readCtx), errPreempted)
}
