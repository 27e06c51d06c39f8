package sync

import (
	"context"
	"errors"
	"time"

	"github.com/robfig/cron/v3"
)

// Touch tells the reconciler which users SCIM changed. A targeted run
// follows sync.debounce after the last touch (and no later than
// maxDebounceFactor debounces after the first, so a steady trickle of
// changes cannot starve it). userIDs may name groups (untyped member
// references); groupIDs stand for every user in them, nested included;
// emails are identities that no longer belong to a user and must be
// planned too.
func (r *Reconciler) Touch(userIDs, groupIDs, emails []string) {
	if len(userIDs) == 0 && len(groupIDs) == 0 && len(emails) == 0 {
		return
	}
	now := r.now()
	r.mu.Lock()
	if r.pending.empty() {
		r.firstTouch = now
	}
	r.pending.add(userIDs, groupIDs, emails)
	r.pending = r.pending.bounded()
	r.lastTouch = now
	r.mu.Unlock()
	r.poke()
}

// TouchAll asks for a full run after the debounce, as when changes may
// have been missed (another replica's notifications were lost).
func (r *Reconciler) TouchAll() {
	now := r.now()
	r.mu.Lock()
	if r.pending.empty() {
		r.firstTouch = now
	}
	r.pending = allTouched()
	r.lastTouch = now
	r.mu.Unlock()
	r.poke()
}

// Running reports whether Run is running: on a replica that does not lead,
// it is not, and status is read from the state the leader writes.
func (r *Reconciler) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running
}

// maxDebounceFactor bounds how long touches can keep postponing a run.
const maxDebounceFactor = 6

// takePending hands the pending touches to a run.
func (r *Reconciler) takePending() touched {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.pending
	r.pending = newTouched()
	return t
}

// requeue puts the touches of a failed targeted run back, to be retried
// no sooner than retryDelay.
func (r *Reconciler) requeue(t touched) {
	now := r.now()
	r.mu.Lock()
	if r.pending.empty() {
		r.firstTouch = now
		r.lastTouch = now
	}
	if t.all {
		r.pending = allTouched()
	} else {
		r.pending.merge(t)
		r.pending = r.pending.bounded()
	}
	r.holdUntil = now.Add(retryDelay)
	r.mu.Unlock()
}

// takeForFullRun hands the pending touches to a scheduled full run, with
// when they were first and last touched (to put them back as they were,
// should the run give way) and when they fall due: the run gives way then,
// as it would to touches that come during its reads — a leaver touched
// just before the run must not wait for its whole listing. due is zero
// when nothing is pending or the touches stand for everything (that is a
// full run, this one).
func (r *Reconciler) takeForFullRun(debounce time.Duration) (t touched, first, last, due time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, first, last = r.pending, r.firstTouch, r.lastTouch
	if !t.all {
		due = r.debounceDueLocked(debounce)
	}
	r.pending = newTouched()
	return t, first, last, due
}

// putBack returns touches a full run took but did not get to (it gave
// way): they are due as they were, with no retry delay. "All" is not put
// back: the full run that gave way covers it and runs again next; pending,
// it would turn the urgent targeted run into a full run that cannot give
// way, and everything would be listed twice.
func (r *Reconciler) putBack(t touched, first, last time.Time) {
	if t.empty() || t.all {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pending.empty() {
		r.firstTouch, r.lastTouch = first, last
	} else {
		if first.Before(r.firstTouch) {
			r.firstTouch = first
		}
		if last.After(r.lastTouch) {
			r.lastTouch = last
		}
	}
	r.pending.merge(t)
	r.pending = r.pending.bounded()
}

// pendingAll reports whether the pending touches stand for everything.
func (r *Reconciler) pendingAll() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pending.all
}

// debounceDue is when the pending touches are due, zero if none.
func (r *Reconciler) debounceDue(debounce time.Duration) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.debounceDueLocked(debounce)
}

func (r *Reconciler) debounceDueLocked(debounce time.Duration) time.Time {
	if r.pending.empty() {
		return time.Time{}
	}
	due := r.lastTouch.Add(debounce)
	if limit := r.firstTouch.Add(maxDebounceFactor * debounce); limit.Before(due) {
		due = limit
	}
	if r.holdUntil.After(due) {
		due = r.holdUntil
	}
	return due
}

// Run reconciles at once, then on sync.schedule, sync.debounce after SCIM
// changes and at each expiry, one run at a time, until ctx ends.
func (r *Reconciler) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return errors.New("the reconciler is already running")
	}
	r.running = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running, r.nextRun = false, time.Time{}
		r.mu.Unlock()
	}()
	if r.planOnly.Load() {
		r.log.Warn("plan-only mode: scimflare computes and logs plans but never writes to Cloudflare")
	}

	r.preemptions = 0 // a replica that leads again starts afresh
	// owed: a scheduled full run gave way to an urgent run and is due
	// again right after it. mayExpiry, mayDebounce: which urgent runs may
	// still go before it — each once per time it gave way, so that SCIM
	// changes that come faster than targeted runs apply them cannot keep
	// it waiting (it went first on its schedule before it gave way).
	owed := r.scheduledRun(ctx)
	mayExpiry, mayDebounce := owed, owed

	spec := ""
	var sched cron.Schedule
	var cronNext time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if ctx.Err() != nil {
			return nil
		}
		cfg := r.config()
		if cfg.Sync.Schedule != spec || sched == nil {
			s, err := cron.ParseStandard(cfg.Sync.Schedule)
			if err != nil {
				// config.Load rejects this; keep a sane period anyway.
				r.log.Error("sync.schedule does not parse; reconciling every 5m", "schedule", cfg.Sync.Schedule, "error", err)
				s = cron.Every(5 * time.Minute)
			}
			spec, sched = cfg.Sync.Schedule, s
			cronNext = sched.Next(r.now())
		}
		r.mu.Lock()
		r.nextRun = cronNext
		if owed {
			r.nextRun = r.now() // the full run that gave way, right after what goes first
		}
		expiryAt := r.nextExpiry
		r.mu.Unlock()
		debounceAt := r.debounceDue(cfg.Sync.Debounce)

		// One clock: every deadline is a time of r.now's clock, and the
		// timer waits for the first of them. When it fires, whatever is due
		// by that clock runs (a full run first: it covers every touch and
		// expiry); if nothing is — a clock that does not follow real time,
		// as in tests — the deadline the timer waited for runs.
		now := r.now()
		next := nextEvent(cronNext, expiryAt, debounceAt)
		if owed {
			next = deadline{eventSchedule, now}
		}
		timer.Reset(max(next.at.Sub(now), 0))
		select {
		case <-ctx.Done():
			return nil
		case <-r.kick:
			timer.Stop()
			continue
		case <-timer.C:
		}

		now = r.now()
		event := next.kind
		due := func(t time.Time) bool { return !t.IsZero() && !now.Before(t) }
		switch {
		// A full run that gave way lets what fell due go first.
		case owed && mayExpiry && due(expiryAt):
			event = eventExpiry
		case owed && mayDebounce && due(debounceAt) && !r.pendingAll():
			// ("All" waits for the owed full run: it covers it.)
			event = eventDebounce
		case owed || due(cronNext):
			event = eventSchedule
		case due(expiryAt):
			event = eventExpiry
		case due(debounceAt):
			event = eventDebounce
		}
		switch event {
		case eventSchedule:
			if owed = r.scheduledRun(ctx); !owed {
				cronNext = sched.Next(r.now())
			}
			mayExpiry, mayDebounce = owed, owed
		case eventExpiry:
			mayExpiry = false
			r.runOnce(ctx, runRequest{kind: expiryRun, actor: ActorExpiry})
		case eventDebounce:
			mayDebounce = false
			if r.pendingAll() {
				// Everything touched (an import past maxTouched, missed
				// notifications): a full run, which gives way like a
				// scheduled one and is then owed the same way.
				owed = r.fullRun(ctx, ActorIdPPush)
				mayExpiry, mayDebounce = owed, owed
				continue
			}
			t := r.takePending()
			if t.empty() {
				continue
			}
			req := runRequest{kind: targetedRun, actor: ActorIdPPush, touched: t}
			if t.all { // everything was touched since pendingAll
				req = runRequest{kind: fullRun, actor: ActorIdPPush}
			}
			res := r.runOnce(ctx, req)
			// A failed read is retried soon; a refused write waits for the
			// next full run, as retrying a 4xx at once would only repeat it.
			if res == nil || res.Aborted != nil {
				r.requeue(t)
			}
		}
	}
}

// The events the loop waits for.
type loopEvent int

const (
	eventSchedule loopEvent = iota // sync.schedule: a full run
	eventExpiry                    // the next expiry
	eventDebounce                  // sync.debounce after SCIM changes
)

// deadline is one event's time.
type deadline struct {
	kind loopEvent
	at   time.Time
}

// nextEvent is the first of the schedule, the next expiry and the
// debounce (zero times: none); a tie goes to the full run, which covers
// the others.
func nextEvent(cronNext, expiryAt, debounceAt time.Time) deadline {
	next := deadline{eventSchedule, cronNext}
	for _, d := range []deadline{{eventExpiry, expiryAt}, {eventDebounce, debounceAt}} {
		if !d.at.IsZero() && d.at.Before(next.at) {
			next = d
		}
	}
	return next
}

// scheduledRun runs a scheduled full reconcile, which covers every pending
// touch. An aborted one applied nothing, so its touches go back: a
// leaver's removal is retried by a targeted run instead of waiting for the
// next tick. It reports whether the run gave way to an urgent one
// (preempt.go) and so is still owed.
func (r *Reconciler) scheduledRun(ctx context.Context) (owed bool) {
	return r.fullRun(ctx, ActorSchedule)
}

// fullRun is scheduledRun under any actor: the schedule's, or a SCIM push
// that touched everything.
func (r *Reconciler) fullRun(ctx context.Context, actor string) (owed bool) {
	t, first, last, due := r.takeForFullRun(r.config().Sync.Debounce)
	req := runRequest{kind: fullRun, actor: actor, preemptible: r.preemptions < maxPreemptions, takenDue: due}
	res := r.runOnce(ctx, req)
	if res != nil && res.Preempted {
		r.preemptions++
		r.putBack(t, first, last)
		return true
	}
	r.preemptions = 0
	if (res == nil || res.Aborted != nil) && !t.empty() {
		r.requeue(t)
	}
	return false
}

func (r *Reconciler) runOnce(ctx context.Context, req runRequest) *Result {
	res, err := r.execute(ctx, req)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Error("reconcile did not run", "trigger", req.actor, "error", err)
		}
		return nil
	}
	return res
}
