package sync

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare"
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
	// previewRun reads and plans as the next reconcile would — every
	// email, against the member cache unless live — and writes nothing:
	// explain and report.
	previewRun
)

func (k runKind) String() string {
	switch k {
	case targetedRun:
		return "targeted"
	case expiryRun:
		return "expiry"
	case previewRun:
		return "preview"
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
	// preemptible: the run's reads give way to an urgent run that falls
	// due meanwhile (preempt.go); only a scheduled full run's do.
	preemptible bool
	// takenDue is when the touches a preemptible run took at its start
	// fall due: it gives way then too (zero: none).
	takenDue time.Time
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

// run is one reconcile in progress: it orchestrates read → plan →
// policies → guard bookkeeping → apply, and plans again when its registry
// asks. The registry it embeds makes every read of an account and every
// change.
type run struct {
	*registry
	r *Reconciler
	// planOnly is the mode this run started in; a reload mid-run takes
	// effect at the next run.
	planOnly bool
	cfg      *Settings
	// calls counts the Cloudflare calls made under the run's context.
	calls atomic.Int64

	res     *mapping.Resolved
	cats    map[string]mapping.Catalog // what res was resolved with
	grants  []store.Grant
	desired *plan.Desired
	// users is what a targeted run plans (nil: everyone), kept to build
	// desired state again should the names change under the run.
	users map[string]bool
	// cachedNames is the name cache the run planned with; nil when it
	// resolved names itself.
	cachedNames *nameCache
	latched     []string // account ids tripped after this run
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
		rn.reconcile(cloudflare.CountCalls(ctx, &rn.calls))
	}
	if !req.dry {
		r.finish(rn, time.Since(started))
	}
	return rn.result, nil
}

// newPreviewRun is the entry point of explain (actor "explain") and
// report: a run that reads and plans at now and never writes.
func (r *Reconciler) newPreviewRun(actor string, live bool, now time.Time) *run {
	rn := r.newRun(runRequest{kind: previewRun, actor: actor, dry: true, live: live})
	rn.now = now
	return rn
}

func (r *Reconciler) newRun(req runRequest) *run {
	cfg := r.config()
	planOnly := r.planOnly.Load()
	result := &Result{
		PlanOnly:     planOnly,
		Names:        map[string]string{},
		AccountNames: map[string]string{},
		Changes:      &plan.Changes{},
	}
	rn := &run{r: r, cfg: cfg, planOnly: planOnly}
	rn.registry = newRegistry(r, req, cfg, r.now(), result, rn)
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

// reconcile is one run, external-dns's RunOnce: desired state from one
// store snapshot, every read of Cloudflare and the ledger, the plan and its
// policies — and only then, unless the run is dry or plan-only, what the
// reads showed is recorded and the changes are applied one by one. A failed
// read returns before the first write.
func (rn *run) reconcile(ctx context.Context) {
	changes, err := rn.readAndPlan(ctx)
	if !rn.req.dry {
		// Before any Cloudflare call: what expires follows the store, and
		// status should show it while the run's writes are in flight.
		rn.r.refreshExpiries(rn)
	}
	if errors.Is(err, errPreempted) {
		rn.result.Aborted, rn.result.Preempted = err, true
		rn.r.log.Info("full run gives way to a run that fell due while it was reading; it starts again after it", "trigger", rn.req.actor)
		return
	}
	if err != nil {
		rn.abort(err)
		return
	}
	if rn.req.dry {
		return
	}
	if err := rn.registry.recordReads(); err != nil {
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
	if err := rn.registry.record(changes.Records); err != nil {
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
			rn.registry.Apply(ctx, ch)
		}
	}
	rn.registry.flushGroupAdds(ctx)
	for _, ch := range after {
		rn.registry.Apply(ctx, ch)
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

// readAndPlan reads the state and Cloudflare and plans: every read of a run
// happens here, before any write. explain and report plan with it too.
func (rn *run) readAndPlan(ctx context.Context) (*plan.Changes, error) {
	scope, err := rn.buildDesired(ctx)
	rn.scope = scope
	if err != nil {
		return nil, err
	}
	readCtx := ctx
	if rn.req.preemptible {
		var stop func()
		readCtx, stop = rn.r.yieldTo(ctx, rn.cfg.Sync.Debounce, rn.req.takenDue)
		defer stop()
	}
	rn.reads = make([]accountRead, len(rn.cfg.Accounts))
	for i, a := range rn.cfg.Accounts {
		if rn.reads[i], err = rn.registry.Read(readCtx, a); err != nil {
			if preempted(readCtx, err) {
				return nil, errPreempted
			}
			return nil, err
		}
	}
	if err := rn.registry.readUserGroups(readCtx); err != nil {
		if preempted(readCtx, err) {
			return nil, errPreempted
		}
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
		if rd.partial {
			in.ManagedGrants = rd.managed
		} else {
			for _, l := range rd.ledger.All() {
				in.ManagedGrants += len(l.Managed)
			}
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

// The run is its registry's planner.

// planOne plans ch's email again against the run's current inputs. The new
// change may remove no more than ch did: the guard already judged ch.
func (rn *run) planOne(ch plan.Change) (plan.Change, bool) {
	in := &rn.inputs[rn.byID[ch.AccountID]]
	one := *in
	one.Scope = map[string]bool{identity.Key(ch.Email): true}
	c := plan.Plan([]plan.AccountInput{one}, rn.cfg.Sync.Unmanaged == UnmanagedRemove)
	c = plan.ApplyPolicies(c,
		plan.ProtectedPolicy(rn.cfg.Sync.Protected),
		plan.LastSuperAdminPolicy([]plan.AccountInput{*in}),
		plan.GuardPolicy{MaxRemovals: ch.Removals(), MaxRemovalPercent: -1, Force: rn.req.force})
	rn.result.Changes.Withheld = append(rn.result.Changes.Withheld, c.Withheld...)
	if len(c.Accounts) == 0 || len(c.Accounts[0].Changes) == 0 {
		return plan.Change{}, false
	}
	return c.Accounts[0].Changes[0], true
}

func (rn *run) namesCached() bool { return rn.cachedNames != nil }

func (rn *run) reshape(i int) {
	if a, ok := accountByID(rn.cfg, rn.inputs[i].ID); ok {
		rn.shape(&rn.inputs[i], a)
	}
}

func (rn *run) wanted(accountID, email string) *plan.DesiredMember {
	if rn.desired == nil {
		return nil
	}
	return memberOf(rn.desired.Accounts[accountID], identity.Key(email))
}
