package sync

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/identity"
	"github.com/scimflare/scimflare/sync/plan"
)

// window is the rolling-window guard as of this run. apply --force resets
// the count: removals are counted again after it.
func (rn *run) window() *plan.WindowLimit {
	g := rn.cfg.Sync.Guards
	if rn.req.force {
		rn.saved.Removals = nil
	}
	return &plan.WindowLimit{Max: g.MaxRemovalsPerWindow, Window: g.Window, Removed: windowRemovals(rn.saved.Removals, g.Window, rn.now)}
}

// recordDrift audits drift the previous full run did not already report,
// so that a hand-added role is one audit record, not one per schedule tick.
func (rn *run) recordDrift(drift []plan.Drift) {
	seen := map[string]bool{}
	for _, d := range rn.saved.Drift {
		seen[d] = true
	}
	var now []string
	var recs []store.AuditRecord
	for _, d := range drift {
		id := d.AccountID + "\x00" + identity.Key(d.Email) + "\x00" + d.Key
		now = append(now, id)
		if seen[id] {
			continue
		}
		recs = append(recs, store.AuditRecord{
			Time: rn.now, Actor: rn.req.actor, Action: ActionDrift, AccountID: d.AccountID, Email: d.Email,
			Before: mapping.KeyNames([]string{d.Key}, rn.result.Names),
			Reason: "found in Cloudflare but not granted by scimflare (sync.unmanaged: " + rn.cfg.Sync.Unmanaged + ")",
		})
	}
	slices.Sort(now)
	rn.saved.Drift = now
	rn.r.m.DriftFound.Set(float64(len(drift)))
	if len(recs) == 0 {
		return
	}
	if err := rn.r.state.AppendAudit(recs...); err != nil {
		rn.r.log.Error("cannot audit drift", "error", err)
	}
}

// guard latches tripped accounts until `apply --force` (readiness, the
// gauge and status show it), audits each new trip and each override.
// While latched, every removal in the account is withheld in every kind
// of run (GuardPolicy.Latched), as SPEC promises, without a new trip.
func (rn *run) guard(c *plan.Changes) {
	was := slices.Clone(rn.latched)
	var recs []store.AuditRecord
	withheld := map[string]int{}
	for _, w := range c.Withheld {
		if w.By == plan.WithheldByGuard {
			withheld[w.Change.AccountID] += w.Change.Removals()
		}
	}
	if rn.req.force {
		for _, id := range union(was, c.Tripped) {
			recs = append(recs, store.AuditRecord{
				Time: rn.now, Actor: rn.req.actor, Action: ActionGuardOverride, AccountID: id,
				Reason: "apply --force: removals the guard would hold back are applied once, and the tripped state is cleared",
			})
		}
		rn.latched = nil
	} else if len(c.Tripped) > 0 && !rn.planOnly {
		rn.r.m.GuardTrips.Inc()
		for _, id := range c.Tripped {
			if slices.Contains(was, id) {
				continue
			}
			why := ""
			for _, w := range c.Withheld {
				if w.Change.AccountID == id && w.By == plan.WithheldByGuard {
					why = w.Why
					break
				}
			}
			recs = append(recs, store.AuditRecord{
				Time: rn.now, Actor: rn.req.actor, Action: ActionGuardTripped, AccountID: id,
				Reason: fmt.Sprintf("%s; %d removal(s) withheld until `scimflare apply --force`", why, withheld[id]),
			})
			rn.r.log.Warn("removal guard tripped", "account", rn.result.AccountNames[id], "withheld", withheld[id], "why", why)
		}
		rn.latched = union(was, c.Tripped)
	}
	if !rn.req.force && !rn.planOnly && rn.req.kind != fullRun {
		// A leaver's removal held back by the latch must show in the trail:
		// the operator reviewing access has to see it did not happen. Full
		// runs repeat the same withheld set every tick; status and plan
		// show it there.
		for _, w := range c.Withheld {
			if w.Why != plan.WhyLatched {
				continue
			}
			recs = append(recs, store.AuditRecord{
				Time: rn.now, Actor: rn.req.actor, Action: ActionRemovalWithheld, AccountID: w.Change.AccountID, Email: w.Change.Email,
				Before: mapping.KeyNames(w.Change.Before, rn.result.Names), After: mapping.KeyNames(w.Change.After, rn.result.Names),
				Reason: string(w.Change.Kind) + " withheld: " + w.Why, WithheldBy: w.By,
			})
		}
	}
	if len(recs) == 0 {
		return
	}
	if err := rn.r.state.AppendAudit(recs...); err != nil {
		rn.r.log.Error("cannot audit the removal guard", "error", err)
	}
}

func union(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// removalStamp is one applied change's removals, for the rolling-window
// guard (sync.guards.max_removals_per_window).
type removalStamp struct {
	At time.Time `json:"at"`
	N  int       `json:"n"`
}

// WithheldRemoval is a removal a guard holds back: who waits, in which
// account, since when, and why. Status, /readyz and the log show them.
type WithheldRemoval struct {
	Account string    `json:"account"` // account name
	Email   string    `json:"email"`
	Since   time.Time `json:"since"`
	Why     string    `json:"why"`
}

// savedWithheld is a WithheldRemoval as the state keeps it (account id).
type savedWithheld struct {
	AccountID string    `json:"account"`
	Email     string    `json:"email"`
	Since     time.Time `json:"since"`
	Why       string    `json:"why"`
}

// stampRemovals counts ch's removals in the account's rolling window
// (sync.guards.max_removals_per_window). What a forced run lets through
// was approved by the operator: the window counts from after it. A
// removal counts from when it was applied (its answer came), not from the
// run's start: a full run lists for minutes before it writes, and dated
// at its start its removals left the window that much early.
func (reg *registry) stampRemovals(ch plan.Change) {
	if n := ch.Removals(); n > 0 && !reg.req.dry && !reg.req.force {
		at := reg.now
		if c := reg.clock(); c.After(at) {
			at = c
		}
		reg.saved.Removals = addRemovals(reg.saved.Removals, ch.AccountID, n, at, reg.window)
	}
}

// removalSlots is how many slices of the window an account's removal
// stamps are kept in.
const removalSlots = 100

// addRemovals counts n removals applied in account at now. Removals are
// counted per slice of the window (a hundredth of it, 36 s of an hour),
// each stamp dated at the end of its slice:
//   - the guard is never looser than its limit: a removal counts from
//     when it was applied until the window has passed since its slice's
//     end, so at most window/100 longer than the window itself;
//   - an account holds at most 101 stamps in its window however many
//     removals it saw, so the status record every run reads and writes
//     does not grow with them (one stamp per removal had grown it to
//     74 KB on a benchmark state, 3 ms of decoding and encoding a run).
//
// The map and its slices are copied, not written in place: the run's
// status is handed to Status() readers when it ends, and a status once
// handed out never changes under them.
func addRemovals(stamps map[string][]removalStamp, account string, n int, now time.Time, window time.Duration) map[string][]removalStamp {
	at := now
	if slot := window / removalSlots; slot > 0 {
		if at = now.Truncate(slot); at.Before(now) {
			at = at.Add(slot)
		}
	}
	out := maps.Clone(stamps)
	if out == nil {
		out = map[string][]removalStamp{}
	}
	ss := slices.Clone(out[account])
	if k := len(ss) - 1; k >= 0 && ss[k].At.Equal(at) {
		ss[k].N += n
	} else {
		ss = append(ss, removalStamp{At: at, N: n})
	}
	out[account] = ss
	return out
}

// windowRemovals counts each account's removals within the window ending
// at now.
func windowRemovals(stamps map[string][]removalStamp, window time.Duration, now time.Time) map[string]int {
	out := map[string]int{}
	for id, ss := range stamps {
		for _, s := range ss {
			if now.Sub(s.At) < window {
				out[id] += s.N
			}
		}
	}
	return out
}

// pruneRemovals drops the stamps that left the window.
func pruneRemovals(stamps map[string][]removalStamp, window time.Duration, now time.Time) map[string][]removalStamp {
	out := map[string][]removalStamp{}
	for id, ss := range stamps {
		var kept []removalStamp
		for _, s := range ss {
			if now.Sub(s.At) < window {
				kept = append(kept, s)
			}
		}
		if len(kept) > 0 {
			out[id] = kept
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// nextWithheld is the list of guard-withheld removals after a run: a run
// over every email replaces it, a targeted one replaces its scope. A
// removal withheld before keeps its first Since.
func nextWithheld(old []savedWithheld, c *plan.Changes, scope map[string]bool, now time.Time) []savedWithheld {
	since := map[string]time.Time{}
	id := func(account, email string) string { return account + "\x00" + identity.Key(email) }
	for _, w := range old {
		since[id(w.AccountID, w.Email)] = w.Since
	}
	var out []savedWithheld
	if scope != nil {
		for _, w := range old {
			if !scope[identity.Key(w.Email)] {
				out = append(out, w)
			}
		}
	}
	for _, w := range c.Withheld {
		if w.By != plan.WithheldByGuard {
			continue
		}
		s, ok := since[id(w.Change.AccountID, w.Change.Email)]
		if !ok {
			s = now
		}
		// Cloned: the plan's emails point into the run's member table,
		// which this status would otherwise keep after the run.
		out = append(out, savedWithheld{AccountID: w.Change.AccountID, Email: strings.Clone(w.Change.Email), Since: s, Why: w.Why})
	}
	slices.SortFunc(out, func(a, b savedWithheld) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return strings.Compare(id(a.AccountID, a.Email), id(b.AccountID, b.Email))
	})
	return slices.CompactFunc(out, func(a, b savedWithheld) bool { return id(a.AccountID, a.Email) == id(b.AccountID, b.Email) })
}
