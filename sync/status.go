package sync

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/plan"
)

// statusKey is where the reconciler keeps its run status in the state, so
// that `scimflare status` without a daemon and a restarted daemon see it.
const statusKey = "reconciler"

type savedStatus struct {
	LastRun     time.Time `json:"last_run"`
	LastSuccess time.Time `json:"last_success"`
	LastOutcome string    `json:"last_outcome,omitempty"`
	LastTrigger string    `json:"last_trigger,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	// Tripped lists the account ids whose removal guard tripped and has not
	// been overridden with apply --force.
	Tripped []string `json:"tripped,omitempty"`
	// Drift identifies the drift the last full run found, so that only new
	// drift is audited.
	Drift []string `json:"drift,omitempty"`
	// Identity is what the last run over every user found wrong with
	// users' addresses (invalid, shared): kept so status shows it and so
	// each problem is logged once, not on every run.
	Identity []plan.IdentityProblem `json:"identity,omitempty"`
	// Removals are the removals applied per account id within the guard
	// window, what max_removals_per_window counts; apply --force clears
	// them.
	Removals map[string][]removalStamp `json:"removals,omitempty"`
	// Withheld are the removals a guard holds back, with since when.
	Withheld []savedWithheld `json:"withheld,omitempty"`
	// GroupConflicts are the user groups of scimflare's names that it does
	// not own, as the last full run found them (user-groups accounts).
	GroupConflicts []plan.GroupConflict `json:"group_conflicts,omitempty"`
}

// cachedStatus is the status the last run recorded, from memory once it
// was read: readiness probes must not wait on the state behind a long
// reconcile's read transaction.
func (r *Reconciler) cachedStatus() (savedStatus, error) {
	// Only the replica whose reconciler runs writes the status; any other
	// (a follower, an offline command) reads what the leader recorded.
	if s := r.saved.Load(); s != nil && r.Running() {
		return *s, nil
	}
	raw, err := r.state.Status(statusKey)
	if err != nil {
		return savedStatus{}, fmt.Errorf("read reconciler status: %w", err)
	}
	// A follower's probes read the record each time; decoding it (the
	// removal window may hold hundreds of stamps) is done once per version
	// of the record, not once per probe. Callers only read what they get.
	if c := r.readStatus.Load(); c != nil && bytes.Equal(c.raw, raw) {
		return c.s, nil
	}
	s, err := decodeStatus(raw)
	if err == nil {
		r.saved.CompareAndSwap(nil, &s)
		r.readStatus.Store(&decodedStatus{raw: raw, s: s})
	}
	return s, err
}

// decodedStatus is a status record as read and its decoding.
type decodedStatus struct {
	raw []byte
	s   savedStatus
}

// Withheld lists the removals a guard holds back, oldest first, from the
// last runs: what /readyz and status show.
func (r *Reconciler) Withheld() []WithheldRemoval {
	s, err := r.cachedStatus()
	if err != nil {
		return nil
	}
	return withheldOf(r.config(), s.Withheld)
}

func withheldOf(cfg *Settings, ws []savedWithheld) []WithheldRemoval {
	var out []WithheldRemoval
	for _, w := range ws {
		out = append(out, WithheldRemoval{Account: accountName(cfg, w.AccountID), Email: w.Email, Since: w.Since, Why: w.Why})
	}
	return out
}

// PlanOnly reports whether runs currently start in plan-only mode.
func (r *Reconciler) PlanOnly() bool { return r.planOnly.Load() }

func (r *Reconciler) loadStatus() (savedStatus, error) {
	raw, err := r.state.Status(statusKey)
	if err != nil {
		return savedStatus{}, fmt.Errorf("read reconciler status: %w", err)
	}
	return decodeStatus(raw)
}

func decodeStatus(raw []byte) (savedStatus, error) {
	var s savedStatus
	if raw == nil {
		return s, nil
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, fmt.Errorf("read reconciler status: %w", err)
	}
	return s, nil
}

// finish records a run's outcome: status, metrics, grant GC and the next
// expiry.
func (r *Reconciler) finish(rn *run, took time.Duration) {
	res := rn.result
	outcome := OutcomeSuccess
	switch {
	case res.Preempted:
		outcome = OutcomePreempted
	case res.Aborted != nil:
		outcome = OutcomeAborted
	case len(res.Failed) > 0:
		outcome = OutcomeFailed
	}
	r.m.ReconcileRuns.WithLabelValues(rn.req.actor, outcome).Inc()
	r.m.ReconcileDuration.WithLabelValues(rn.req.actor).Observe(took.Seconds())

	s := rn.saved
	s.LastRun, s.LastTrigger, s.LastOutcome, s.LastError = rn.now, rn.req.actor, outcome, ""
	switch outcome {
	case OutcomeSuccess:
		s.LastSuccess = rn.now
	case OutcomeAborted:
		s.LastError = res.Aborted.Error()
	case OutcomePreempted:
		// Not an error, and not the last word: the run starts again at once.
		s.LastRun, s.LastTrigger, s.LastOutcome = rn.saved.LastRun, rn.saved.LastTrigger, rn.saved.LastOutcome
		s.LastError = rn.saved.LastError
	case OutcomeFailed:
		s.LastError = fmt.Sprintf("%d change(s) failed, first: %v", len(res.Failed), res.Failed[0].Err)
	}
	if res.Aborted == nil {
		s.Tripped = rn.latched
		if !rn.planOnly {
			before := len(s.Withheld)
			s.Withheld = nextWithheld(s.Withheld, res.Changes, rn.scope, rn.now)
			for _, w := range s.Withheld {
				if w.Since.Equal(rn.now) {
					r.log.Warn("removal withheld by a guard", "account", accountName(rn.cfg, w.AccountID), "email", w.Email,
						"since", w.Since, "why", w.Why)
				}
			}
			if before > 0 && len(s.Withheld) == 0 {
				r.log.Info("no removal is withheld any more")
			}
		}
	}
	s.Removals = pruneRemovals(s.Removals, rn.cfg.Sync.Guards.Window, rn.now)
	r.m.RemovalsWithheld.Set(float64(len(s.Withheld)))
	if rn.desired != nil {
		s.Identity = r.noteIdentity(s.Identity, rn.desired.Problems, rn.req.kind != targetedRun)
	}
	if res.Aborted == nil && rn.req.kind == fullRun {
		s.GroupConflicts = r.noteGroupConflicts(rn.cfg, s.GroupConflicts, res.Changes.GroupConflicts)
	}
	if raw, err := json.Marshal(s); err != nil {
		r.log.Error("cannot encode reconciler status", "error", err)
	} else if err := r.state.PutStatus(statusKey, raw); err != nil {
		r.log.Error("cannot store reconciler status", "error", err)
	}
	r.saved.Store(&s)
	if !s.LastSuccess.IsZero() {
		r.m.LastSuccess.Set(float64(s.LastSuccess.Unix()))
	}
	r.m.GuardTripped.Set(0)
	if len(s.Tripped) > 0 {
		r.m.GuardTripped.Set(1)
	}
	r.setPlanOnly(r.planOnly.Load())
	r.logRun(rn, outcome, took)

	// Ended grants stay a day so that plans and audit can still name them.
	if n, err := r.state.GCGrants(rn.now.Add(-grantRetention)); err != nil {
		r.log.Error("cannot drop ended grants", "error", err)
	} else if n > 0 {
		r.log.Info("dropped ended temporary grants", "count", n)
	}

	var exp []Expiry
	var next time.Time
	if idx := r.expiryIndex(); idx != nil {
		exp, next = idx.List, idx.Next
	} else if e, n, err := r.computeExpiries(rn.cfg, r.now()); err != nil {
		r.log.Error("cannot compute pending expiries", "error", err)
		next = r.now().Add(retryDelay)
	} else {
		exp, next = e, n
		if err := r.keepExpiries(&expiryIndex{List: exp, Next: next}); err != nil {
			r.log.Error("cannot keep pending expiries", "error", err)
		}
	}
	r.m.PendingExpiries.Set(float64(len(exp)))
	if rn.req.kind == expiryRun && outcome == OutcomeAborted {
		// The expiry did not land: try again soon, not at the next one.
		if retry := r.now().Add(retryDelay); next.IsZero() || retry.Before(next) {
			next = retry
		}
	}
	r.mu.Lock()
	r.nextExpiry = next
	r.mu.Unlock()
}

const (
	grantRetention = 24 * time.Hour
	// retryDelay is how soon a failed event-driven run is tried again.
	retryDelay = 30 * time.Second
)

// tempGrants turns stored grants into plan input. A revoked grant ends at
// its revocation. With strict, a live or future grant whose role or mapping
// no longer resolves is an error: dropping it would look like an expiry.
func tempGrants(grants []store.Grant, cfg *Settings, res *mapping.Resolved, cats map[string]mapping.Catalog, now time.Time, strict bool) ([]plan.TempGrant, error) {
	var out []plan.TempGrant
	for _, g := range grants {
		end := g.End
		if !g.RevokedAt.IsZero() && g.RevokedAt.Before(end) {
			end = g.RevokedAt
		}
		if end.Before(g.Start) {
			continue
		}
		keys, err := grantKeys(g, cfg, res, cats)
		if err != nil {
			if strict && end.After(now) {
				return nil, err
			}
			continue
		}
		out = append(out, plan.TempGrant{
			ID: g.ID, Email: g.Email, AccountID: g.AccountID, Keys: keys,
			Start: g.Start, End: end, Reason: g.Reason, Actor: g.Actor,
		})
	}
	return out, nil
}

// computeExpiries derives every pending expiry from the state alone (no
// Cloudflare call: names stand for themselves), building desired state for
// every user. Only a state without an expiry index (written before it was
// kept) pays for it, once. next is the soonest moment desired state
// changes by the clock.
func (r *Reconciler) computeExpiries(cfg *Settings, now time.Time) ([]Expiry, time.Time, error) {
	grants, err := r.state.Grants()
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read temporary grants: %w", err)
	}
	cats := identityCatalogs(cfg, grants)
	res, err := resolve(cfg, cats)
	if err != nil {
		return nil, time.Time{}, err
	}
	temp, _ := tempGrants(grants, cfg, res, cats, now, false)
	var d *plan.Desired
	err = r.state.View(func(rd store.Reader) error {
		var err error
		d, err = plan.Build(directory{rd}, res, temp, nil, now)
		return err
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read the state: %w", err)
	}
	return expiriesOf(d, cfg, res.Names), d.NextExpiry, nil
}

func expirySource(cfg *Settings, r plan.Reason) string {
	if r.Kind == plan.ReasonGrant {
		return "temporary grant " + r.GrantID
	}
	if r.MappingIndex >= 0 && r.MappingIndex < len(cfg.Mappings) && cfg.Mappings[r.MappingIndex].TTL > 0 {
		return fmt.Sprintf("ttl %s of group %s (mappings[%d])", cfg.Mappings[r.MappingIndex].TTL, r.Group, r.MappingIndex)
	}
	return fmt.Sprintf("expires_at of group %s (mappings[%d])", r.Group, r.MappingIndex)
}

// Status reads the persisted run status and derives pending expiries. It
// works without Run: a CLI without daemon sees what the daemon recorded.
func (r *Reconciler) Status() Status {
	cfg := r.config()
	now := r.now()
	st := Status{PlanOnly: r.planOnly.Load()}
	s, err := r.cachedStatus()
	if err != nil {
		st.LastError = err.Error()
	}
	st.LastRun, st.LastSuccess = s.LastRun, s.LastSuccess
	st.LastOutcome, st.LastTrigger = s.LastOutcome, s.LastTrigger
	if st.LastError == "" {
		st.LastError = s.LastError
	}
	for _, id := range s.Tripped {
		st.Tripped = append(st.Tripped, accountName(cfg, id))
	}
	if r.cf != nil {
		st.BudgetLeft = r.cf.BudgetLeft()
	}
	r.mu.Lock()
	st.NextRun = r.nextRun
	r.mu.Unlock()
	exp, _, err := r.pendingExpiries(cfg, now)
	if err != nil && st.LastError == "" {
		st.LastError = "pending expiries: " + err.Error()
	}
	st.PendingExpiries = exp
	st.IdentityProblems = s.Identity
	for _, c := range s.GroupConflicts {
		st.GroupConflicts = append(st.GroupConflicts, accountName(cfg, c.AccountID)+": "+c.String())
	}
	st.Withheld = withheldOf(cfg, s.Withheld)
	return st
}

// noteIdentity logs each identity problem the first time a run finds it
// and returns what status keeps: a run over every user replaces the list,
// a targeted one only adds to it.
func (r *Reconciler) noteIdentity(known, found []plan.IdentityProblem, whole bool) []plan.IdentityProblem {
	id := func(p plan.IdentityProblem) string {
		return p.Kind + "\x00" + p.Email + "\x00" + strings.Join(p.UserIDs, ",")
	}
	seen := map[string]bool{}
	for _, p := range known {
		seen[id(p)] = true
	}
	out := found
	if !whole {
		out = slices.Clone(known)
	}
	for _, p := range found {
		if seen[id(p)] {
			continue
		}
		r.log.Warn("a SCIM user's address gives no Cloudflare access or is shared; fix it in the IdP",
			"problem", p.Kind, "email", p.Email, "users", p.UserIDs, "why", p.Why)
		if !whole {
			out = append(out, p)
		}
	}
	counts := map[string]int{plan.ProblemInvalidEmail: 0, plan.ProblemSharedEmail: 0}
	for _, p := range out {
		counts[p.Kind]++
	}
	for kind, n := range counts {
		r.m.IdentityProblems.WithLabelValues(kind).Set(float64(n))
	}
	return out
}

// noteGroupConflicts logs each user-group conflict the first time a full
// run finds it — a group of scimflare's name it does not own: made by hand,
// by Cloudflare's SCIM, or scimflare's own from before a restored backup,
// whose members scimflare then never changes, leavers included — and
// returns what status keeps: what this run found.
func (r *Reconciler) noteGroupConflicts(cfg *Settings, known, found []plan.GroupConflict) []plan.GroupConflict {
	for _, c := range found {
		if !slices.Contains(known, c) {
			r.log.Warn("a user group of scimflare's name is not scimflare's: it is never changed, and its mapping gets no group; rename the group or change the account's user_group_prefix",
				"account", accountName(cfg, c.AccountID), "group", c.Name, "group_id", c.GroupID, "mapping", c.GroupKey)
		}
	}
	r.m.UserGroupConflicts.Set(float64(len(found)))
	return slices.Clone(found)
}

func accountName(cfg *Settings, id string) string {
	if a, ok := accountByID(cfg, id); ok {
		return a.Name
	}
	return id
}

// Ready reports whether the last reconcile succeeded within three schedule
// intervals and no removal guard is tripped. Plan-only mode is listed as a
// reason but does not make scimflare unready.
func (r *Reconciler) Ready() (bool, []string) {
	cfg := r.config()
	now := r.now()
	ok := true
	var reasons []string
	if r.planOnly.Load() {
		reasons = append(reasons, "plan-only: scimflare computes plans but never writes to Cloudflare (no API token, or sync.mode: plan-only)")
	}
	s, err := r.cachedStatus()
	if err != nil {
		return false, append(reasons, err.Error())
	}
	window := 3 * scheduleInterval(cfg.Sync.Schedule, now)
	switch {
	case s.LastSuccess.IsZero():
		ok = false
		reasons = append(reasons, "no reconcile has succeeded yet")
	case now.Sub(s.LastSuccess) > window:
		ok = false
		reasons = append(reasons, fmt.Sprintf("the last successful reconcile was at %s, more than 3 schedule intervals (%s) ago",
			s.LastSuccess.UTC().Format(time.RFC3339), window))
	}
	if s.LastOutcome != "" && s.LastOutcome != OutcomeSuccess && s.LastError != "" {
		reasons = append(reasons, "last run "+s.LastOutcome+": "+s.LastError)
	}
	if len(s.Withheld) > 0 {
		reasons = append(reasons, fmt.Sprintf("%d removal(s) withheld by a guard, the oldest since %s (see `scimflare status`)",
			len(s.Withheld), s.Withheld[0].Since.UTC().Format(time.RFC3339)))
	}
	if len(s.Tripped) > 0 {
		ok = false
		var names []string
		for _, id := range s.Tripped {
			names = append(names, accountName(cfg, id))
		}
		reasons = append(reasons, fmt.Sprintf("removal guard tripped in %s: removals are withheld until `scimflare apply --force`", strings.Join(names, ", ")))
	}
	return ok, reasons
}

// scheduleInterval measures the schedule's period from the cron spec: the
// gap between its next two firings.
func scheduleInterval(spec string, now time.Time) time.Duration {
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return 5 * time.Minute
	}
	a := s.Next(now)
	if d := s.Next(a).Sub(a); d > 0 {
		return d
	}
	return 5 * time.Minute
}
