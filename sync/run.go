package sync

import (
	"context"
	"fmt"
	"time"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/identity"
	"github.com/scimflare/scimflare/sync/plan"
)

type runKind int

const (
	// fullRun lists every account's members: drift, gone members, a fresh
	// member cache.
	fullRun runKind = iota
	// targetedRun plans only the emails SCIM changes (or a grant) touched,
	// against the member cache.
	targetedRun
	// expiryRun plans every email against the member cache, because an
	// expiry or a grant start came due.
	expiryRun
)

func (k runKind) String() string {
	switch k {
	case targetedRun:
		return "targeted"
	case expiryRun:
		return "expiry"
	}
	return "full"
}

type runRequest struct {
	kind    runKind
	actor   string
	force   bool
	dry     bool // read and plan only: write nothing, record nothing
	touched touched
	// live lists every account even when the run would use the member
	// cache (explain --live).
	live bool
}

// Audit actions the reconciler writes besides the change kinds.
const (
	ActionRunAborted    = "run_aborted"
	ActionChangeFailed  = "change_failed"
	ActionMemberGone    = "member_gone"
	ActionGuardTripped  = "guard_tripped"
	ActionGuardOverride = "guard_override"
	// ActionRemovalWithheld: a removal held back because the account's
	// guard is latched (tripped earlier, not yet forced).
	ActionRemovalWithheld = "removal_withheld"
	ActionDrift           = "drift"
	ActionGrant           = "grant"
	ActionRevoke          = "revoke"
)

// run is one reconcile in progress.
type run struct {
	r   *Reconciler
	req runRequest
	// planOnly is the mode this run started in; a reload mid-run takes
	// effect at the next run.
	planOnly bool
	cfg      *Settings
	now      time.Time
	saved    savedStatus
	result   *Result

	res     *mapping.Resolved
	cats    map[string]mapping.Catalog // what res was resolved with
	grants  []store.Grant
	desired *plan.Desired
	// users is what a targeted run plans (nil: everyone), kept to build
	// desired state again should the names change under the run.
	users map[string]bool
	// scope is the identity keys a targeted run plans (nil: every email).
	scope map[string]bool
	// cachedNames is the name cache the run planned with; nil when it
	// resolved names itself.
	cachedNames *nameCache
	// renamed: the run found its cached names stale and resolved them
	// again; every change planned before is planned once more.
	renamed   bool
	reads     []accountRead // by cfg.Accounts index
	inputs    []plan.AccountInput
	byID      map[string]int // account id -> index in inputs
	refreshed map[string]bool
	latched   []string // account ids tripped after this run
	stopped   error    // the state refused a write: apply nothing more
	// ug is what the run read of each user-groups account (usergroups.go);
	// groupAdds are the member adds waiting to go, one request per group.
	ug        map[string]*ugAccount
	groupAdds []plan.Change
}

// execute runs one reconcile; it waits for a running one to end first.
func (r *Reconciler) execute(ctx context.Context, req runRequest) (*Result, error) {
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the running reconcile: %w", ctx.Err())
	}
	defer func() { <-r.sem }()
	started := time.Now()
	rn := r.newRun(req)
	saved, err := r.loadStatus()
	if err != nil {
		rn.abort(err)
	} else {
		rn.saved = saved
		rn.latched = saved.Tripped
		rn.do(ctx)
	}
	if !req.dry {
		r.finish(rn, time.Since(started))
	}
	return rn.result, nil
}

func (r *Reconciler) newRun(req runRequest) *run {
	cfg := r.config()
	planOnly := r.planOnly.Load()
	rn := &run{
		r: r, req: req, cfg: cfg, now: r.now(), planOnly: planOnly,
		byID: map[string]int{}, refreshed: map[string]bool{},
		result: &Result{
			PlanOnly:     planOnly,
			Names:        map[string]string{},
			AccountNames: map[string]string{},
			Changes:      &plan.Changes{},
		},
	}
	for _, a := range cfg.Accounts {
		rn.result.AccountNames[a.ID] = a.Name
	}
	return rn
}

// abort records a failed read: nothing is applied after it.
func (rn *run) abort(err error) {
	rn.result.Aborted = err
	if rn.req.dry {
		return
	}
	rn.r.log.Error("reconcile aborted before any change", "trigger", rn.req.actor, "run", rn.req.kind.String(), "error", err)
	rec := store.AuditRecord{Time: rn.now, Actor: rn.req.actor, Action: ActionRunAborted, Reason: err.Error()}
	if aerr := rn.r.state.AppendAudit(rec); aerr != nil {
		rn.r.log.Error("cannot audit an aborted run", "error", aerr)
	}
}

// do is one reconcile, external-dns's RunOnce: desired state from one
// store snapshot, every read of Cloudflare and the ledger, the plan and its
// policies — and only then, unless the run is dry or plan-only, what the
// reads showed is recorded and the changes are applied one by one. A failed
// read returns before the first write.
func (rn *run) do(ctx context.Context) {
	changes, err := rn.prepare(ctx)
	if !rn.req.dry {
		// Before any Cloudflare call: what expires follows the store, and
		// status should show it while the run's writes are in flight.
		rn.r.refreshExpiries(rn)
	}
	if err != nil {
		rn.abort(err)
		return
	}
	if rn.req.dry {
		return
	}
	if err := rn.recordReads(); err != nil {
		rn.abort(err)
		return
	}
	if rn.req.kind == fullRun {
		rn.recordDrift(changes.Drift)
	}
	rn.guard(changes)
	if rn.planOnly {
		rn.logPlan(changes)
		return
	}
	if err := rn.record(changes.Records); err != nil {
		rn.abort(err)
		return
	}
	var after []plan.Change
	for _, ac := range changes.Accounts {
		moving := movingGroupMembers(ac.Changes)
		for _, ch := range ac.Changes {
			if ch.Kind == plan.RemoveGroupMember && ch.Group != nil && ch.Group.Key == "" && moving[identity.Key(ch.Email)] {
				// Leaving a group no mapping wants while joining another
				// (the mapping's key changed): joined first, so access
				// never dips between the two calls.
				after = append(after, ch)
				continue
			}
			rn.apply(ctx, ch)
		}
	}
	rn.flushGroupAdds(ctx)
	for _, ch := range after {
		rn.apply(ctx, ch)
	}
}

// movingGroupMembers are the people who join an owned group in this plan.
func movingGroupMembers(chs []plan.Change) map[string]bool {
	out := map[string]bool{}
	for _, ch := range chs {
		if ch.Kind == plan.AddGroupMember {
			out[identity.Key(ch.Email)] = true
		}
	}
	return out
}

// prepare reads the state and Cloudflare and plans: every read of a run
// happens here, before any write. explain and report plan with it too.
func (rn *run) prepare(ctx context.Context) (*plan.Changes, error) {
	scope, err := rn.buildDesired(ctx)
	rn.scope = scope
	if err != nil {
		return nil, err
	}
	rn.reads = make([]accountRead, len(rn.cfg.Accounts))
	for i, a := range rn.cfg.Accounts {
		if rn.reads[i], err = rn.readAccount(ctx, a); err != nil {
			return nil, err
		}
	}
	if err := rn.readUserGroups(ctx); err != nil {
		return nil, err
	}
	changes := rn.planChanges()
	rn.result.Changes = changes
	return changes, nil
}

// planChanges diffs desired state against what the reads showed, under
// the ownership ledger, and applies the policies: protected emails, the
// last Super Administrator, the removal guard.
func (rn *run) planChanges() *plan.Changes {
	cfg, desired := rn.cfg, rn.desired
	managed := map[string]int{}
	for i, a := range cfg.Accounts {
		rd := rn.reads[i]
		in := plan.AccountInput{
			ID: a.ID, Name: a.Name,
			Desired: desired.Accounts[a.ID],
			Actual:  rd.actual,
			Ledger:  rd.ledger,
			Scope:   rn.scope,
			Expired: expiredIn(desired, a.ID),
		}
		rn.shape(&in, a)
		for _, l := range rd.ledger {
			in.ManagedGrants += len(l.Managed)
		}
		rn.userGroupInput(&in, a)
		managed[a.ID] = in.ManagedGrants
		rn.byID[a.ID] = len(rn.inputs)
		rn.inputs = append(rn.inputs, in)
	}
	changes := plan.Plan(rn.inputs, cfg.Sync.Unmanaged == UnmanagedRemove)
	rn.planUserGroups(changes)
	changes = plan.ApplyPolicies(changes,
		plan.ProtectedPolicy(cfg.Sync.Protected),
		plan.LastSuperAdminPolicy(rn.inputs),
		plan.GuardPolicy{
			MaxRemovals:       cfg.Sync.Guards.MaxRemovals,
			MaxRemovalPercent: cfg.Sync.Guards.MaxRemovalPercent,
			MinRemovals:       cfg.Sync.Guards.MinRemovals,
			Window:            rn.window(),
			ManagedGrants:     managed,
			Latched:           rn.latched,
			Force:             rn.req.force,
		},
		plan.GroupAddsWaitForPolicies())
	changes.Identity = desired.Problems
	return changes
}

// planLogDetail is how many changes per account a plan-only run logs one by
// one; the rest are counted. A first plan over 100k users would otherwise
// write 100k log lines every schedule tick; `scimflare plan` has them all.
const planLogDetail = 20

func (rn *run) logPlan(c *plan.Changes) {
	names := rn.result.Names
	for _, ac := range c.Accounts {
		kinds := map[string]int{}
		for i, ch := range ac.Changes {
			kinds[string(ch.Kind)]++
			if i < planLogDetail {
				rn.r.log.Info("plan-only: would change", "account", ac.Name, "kind", string(ch.Kind), "email", ch.Email,
					"before", mapping.KeyNames(ch.Before, names), "after", mapping.KeyNames(ch.After, names), "reason", ch.Reason)
			}
		}
		if len(ac.Changes) > planLogDetail {
			rn.r.log.Info("plan-only: more changes not logged one by one; run `scimflare plan` for all", "account", ac.Name,
				"changes", len(ac.Changes), "not_logged", len(ac.Changes)-planLogDetail, "by_kind", kinds)
		}
	}
	for _, w := range c.Withheld {
		rn.r.log.Info("plan-only: would withhold", "account", rn.result.AccountNames[w.Change.AccountID], "kind", string(w.Change.Kind),
			"email", w.Change.Email, "why", w.Why)
	}
}
