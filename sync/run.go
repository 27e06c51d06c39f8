package sync

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/scimflare/scimflare/internal/config"
	"github.com/scimflare/scimflare/internal/identity"
	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare"
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
	cfg      *config.Config
	now      time.Time
	saved    savedStatus
	result   *Result

	res     *mapping.Resolved
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

// accountRead is what a run read about one account before planning.
type accountRead struct {
	ledger map[string]plan.LedgerEntry
	// gone are owned members two consecutive complete listings lacked;
	// marks are the ledger entries whose MissingSince the listing sets
	// (first absence) or clears (listed again).
	gone   []store.LedgerEntry
	marks  []store.LedgerEntry
	actual map[string]plan.Actual
	listed []cloudflare.Member
	fresh  bool
	// settle records what the listing says about unconfirmed entries
	// (intents); settled are the changes it shows applied.
	settle  store.SyncCommit
	settled []plan.Change
	// scannedAt is when the cached member list was taken; zero when the
	// run listed the account itself or there is no list.
	scannedAt time.Time
}

func (rn *run) do(ctx context.Context) {
	changes, ok := rn.prepare(ctx)
	if !rn.req.dry {
		// Before any Cloudflare call: what expires follows the store, and
		// status should show it while the run's writes are in flight.
		rn.r.refreshExpiries(rn)
	}
	if !ok || rn.req.dry {
		return
	}
	rn.carryOut(ctx, changes)
}

// prepare reads the state and Cloudflare and plans. Every read happens
// here, before any write; false means the run aborted.
func (rn *run) prepare(ctx context.Context) (*plan.Changes, bool) {
	r, cfg := rn.r, rn.cfg
	scope, err := rn.buildDesired(ctx)
	rn.scope = scope
	if err != nil {
		rn.abort(err)
		return nil, false
	}
	desired := rn.desired

	// Actual state: every read before any write.
	reads := make([]accountRead, len(cfg.Accounts))
	for i, a := range cfg.Accounts {
		rd := &reads[i]
		led, err := r.state.Ledger(a.ID)
		if err != nil {
			rn.abort(fmt.Errorf("read the ledger of account %s: %w", a.Name, err))
			return nil, false
		}
		list := r.cf != nil && (rn.req.kind == fullRun || rn.req.live)
		if !list {
			// A targeted run against a cache never filled would miss
			// removals; list instead.
			at, err := r.state.MemberCacheScannedAt(a.ID)
			if err != nil {
				rn.abort(fmt.Errorf("read the member cache of account %s: %w", a.Name, err))
				return nil, false
			}
			list = r.cf != nil && at.IsZero()
			rd.scannedAt = at
		}
		if list {
			members, err := r.cf.ListMembers(ctx, a.ID)
			if err != nil {
				rn.abort(fmt.Errorf("list members of account %s: %w", a.Name, err))
				return nil, false
			}
			rd.listed, rd.fresh = members, true
			rd.actual = actualFromMembers(members)
		} else {
			cached, err := r.state.CachedMembers(a.ID)
			if err != nil {
				rn.abort(fmt.Errorf("read the member cache of account %s: %w", a.Name, err))
				return nil, false
			}
			if r.cf == nil && len(cached) > 0 {
				// Without a client names stand for themselves, but the
				// cache holds Cloudflare's ids: every role would look
				// both missing and foreign.
				rn.abort(fmt.Errorf("%w: the member list of account %s holds Cloudflare role ids that only the API token can name", ErrNeedToken, a.Name))
				return nil, false
			}
			rd.actual = actualFromCache(cached)
		}
		rd.ledger = map[string]plan.LedgerEntry{}
		var intents, absent []store.LedgerEntry
		for _, e := range led {
			lower := identity.Key(e.Email)
			if rd.fresh && isIntent(e) {
				intents = append(intents, e)
				continue
			}
			_, present := rd.actual[lower]
			switch {
			case rd.fresh && !present:
				absent = append(absent, e)
				continue
			case rd.fresh && !e.MissingSince.IsZero():
				e.MissingSince = time.Time{}
				rd.marks = append(rd.marks, e)
			}
			rd.ledger[lower] = planEntry(e)
		}
		if err := rn.confirmAbsent(ctx, a, rd, absent); err != nil {
			rn.abort(err)
			return nil, false
		}
		if len(intents) > 0 {
			// The intent's own commit left each member in the cache as it
			// was just before the write.
			cached, err := r.state.CachedMembers(a.ID)
			if err != nil {
				rn.abort(fmt.Errorf("read the member cache of account %s: %w", a.Name, err))
				return nil, false
			}
			before := actualFromCache(cached)
			for _, e := range intents {
				lower := identity.Key(e.Email)
				entry, settled := rn.settleIntent(&rd.settle, a.ID, e.Email, planEntry(e), lookup(before, lower), lookup(rd.actual, lower))
				if entry != nil {
					rd.ledger[lower] = *entry
				}
				if settled != nil {
					rd.settled = append(rd.settled, *settled)
				}
			}
		}
	}

	unmanagedRemove := cfg.Sync.Unmanaged == config.UnmanagedRemove
	managed := map[string]int{}
	for i, a := range cfg.Accounts {
		rd := reads[i]
		in := plan.AccountInput{
			ID: a.ID, Name: a.Name,
			Desired:       desired.Accounts[a.ID],
			Actual:        rd.actual,
			Ledger:        rd.ledger,
			Scope:         scope,
			SuperAdminKey: rn.res.SuperAdminRole[a.ID],
		}
		in.Expired = expiredIn(desired, a.ID)
		for _, l := range rd.ledger {
			in.ManagedGrants += len(l.Managed)
		}
		managed[a.ID] = in.ManagedGrants
		for _, act := range rd.actual {
			rn.nameKeys(act.Keys)
		}
		rn.byID[a.ID] = len(rn.inputs)
		rn.inputs = append(rn.inputs, in)
	}

	changes := plan.Plan(rn.inputs, unmanagedRemove)
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
		})
	changes.Identity = desired.Problems
	rn.result.Changes = changes
	rn.reads = reads
	return changes, true
}

// window is the rolling-window guard as of this run. apply --force resets
// the count: removals are counted again after it.
func (rn *run) window() *plan.WindowLimit {
	g := rn.cfg.Sync.Guards
	if rn.req.force {
		rn.saved.Removals = nil
	}
	return &plan.WindowLimit{Max: g.MaxRemovalsPerWindow, Window: g.Window, Removed: windowRemovals(rn.saved.Removals, g.Window, rn.now)}
}

// buildDesired reads the temporary grants and the names, and builds
// desired state from one snapshot of the state: what the run plans toward.
// For a targeted run scope is what it may change.
func (rn *run) buildDesired(ctx context.Context) (scope map[string]bool, err error) {
	r, cfg := rn.r, rn.cfg
	grants, err := r.state.Grants()
	if err != nil {
		return nil, fmt.Errorf("read temporary grants: %w", err)
	}
	rn.grants = grants
	// A full run always reads the names: it is what renews the cache the
	// cheaper runs plan with.
	reuse := rn.req.kind != fullRun && !rn.req.live
	cats, cached, err := r.runCatalogs(ctx, cfg, grants, reuse, rn.now)
	if err != nil {
		return nil, err
	}
	res, temp, err := rn.resolveNames(cats)
	if err != nil && cached != nil {
		// The name may be newer than the cache: ask Cloudflare before
		// calling it unknown.
		r.log.Info("a name does not resolve in the cached catalogs; reading them again", "error", err)
		r.dropNames(cached)
		cached = nil
		if cats, err = r.liveCatalogs(ctx, cfg, rn.now); err == nil {
			res, temp, err = rn.resolveNames(cats)
		}
	}
	if err != nil {
		return nil, err
	}
	rn.cachedNames, rn.res = cached, res
	maps.Copy(rn.result.Names, rn.res.Names)

	// Desired state from one snapshot.
	var desired *plan.Desired
	err = r.state.View(func(rd store.Reader) error {
		var users map[string]bool
		if rn.req.kind == targetedRun {
			var err error
			if users, scope, err = rn.req.touched.scope(rd); err != nil {
				return fmt.Errorf("expand the touched users and groups: %w", err)
			}
		}
		var err error
		desired, err = plan.Build(directory{rd}, rn.res, temp, users, rn.now)
		rn.users = users
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read the state: %w", err)
	}

	rn.desired = desired
	return scope, nil
}

// resolveNames turns the mapping table and the temporary grants into keys
// with cats.
func (rn *run) resolveNames(cats map[string]mapping.Catalog) (*mapping.Resolved, []plan.TempGrant, error) {
	res, err := resolve(rn.cfg, cats)
	if err != nil {
		return nil, nil, err
	}
	temp, err := tempGrants(rn.grants, res, cats, rn.now, true)
	if err != nil {
		return nil, nil, err
	}
	return res, temp, nil
}

func expiredIn(d *plan.Desired, accountID string) []plan.Expired {
	var out []plan.Expired
	for _, e := range d.Expired {
		if e.AccountID == accountID {
			out = append(out, e)
		}
	}
	return out
}

// renewNames drops the cached names the run planned with, reads them from
// Cloudflare and builds desired state again from a fresh snapshot, for the
// same users. Reads only: an error leaves the run's plan as it was.
func (rn *run) renewNames(ctx context.Context) error {
	r := rn.r
	r.dropNames(rn.cachedNames)
	rn.cachedNames = nil
	cats, err := r.liveCatalogs(ctx, rn.cfg, r.now())
	if err != nil {
		return err
	}
	res, temp, err := rn.resolveNames(cats)
	if err != nil {
		return err
	}
	var desired *plan.Desired
	err = r.state.View(func(rd store.Reader) error {
		var err error
		desired, err = plan.Build(directory{rd}, res, temp, rn.users, rn.now)
		return err
	})
	if err != nil {
		return fmt.Errorf("read the state: %w", err)
	}
	rn.res, rn.desired, rn.renamed = res, desired, true
	maps.Copy(rn.result.Names, res.Names)
	for i := range rn.inputs {
		in := &rn.inputs[i]
		in.Desired = desired.Accounts[in.ID]
		in.Expired = expiredIn(desired, in.ID)
		in.SuperAdminKey = res.SuperAdminRole[in.ID]
	}
	return nil
}

// carryOut records what the reads showed and applies the plan.
func (rn *run) carryOut(ctx context.Context, changes *plan.Changes) {
	r, cfg, reads := rn.r, rn.cfg, rn.reads
	// Facts about Cloudflare, recorded whatever the mode.
	for i, a := range cfg.Accounts {
		rd := reads[i]
		if !rd.fresh {
			continue
		}
		// Before the cache is replaced: it holds what settling compares.
		if err := rn.commitSettled(rd.settle, rd.settled); err != nil {
			rn.abort(fmt.Errorf("record the outcome of unconfirmed writes in account %s: %w", a.Name, err))
			return
		}
		if err := r.state.ReplaceMemberCache(a.ID, cacheFromMembers(a.ID, rd.listed), rn.now); err != nil {
			rn.abort(fmt.Errorf("store the member list of account %s: %w", a.Name, err))
			return
		}
		rn.refreshed[a.ID] = true
		if err := rn.mark(a.Name, rd.marks); err != nil {
			rn.abort(err)
			return
		}
		for _, e := range rd.gone {
			if err := rn.memberGone(e); err != nil {
				rn.abort(err)
				return
			}
		}
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
	for _, ac := range changes.Accounts {
		for _, ch := range ac.Changes {
			rn.apply(ctx, ch)
		}
	}
}

func (rn *run) nameKeys(keys []string) {
	for _, k := range keys {
		if rest, ok := strings.CutPrefix(k, denyPrefix); ok {
			rn.result.Names[k] = "deny " + mapping.KeyName(rest, rn.result.Names)
		}
	}
}

func actualFromMembers(ms []cloudflare.Member) map[string]plan.Actual {
	out := make(map[string]plan.Actual, len(ms))
	for _, m := range ms {
		out[identity.Key(m.Email)] = plan.Actual{MemberID: m.ID, Email: m.Email, Status: m.Status, Keys: keysOf(m)}
	}
	return out
}

func actualFromCache(cached map[string]store.CachedMember) map[string]plan.Actual {
	out := make(map[string]plan.Actual, len(cached))
	for _, m := range cached {
		out[identity.Key(m.Email)] = plan.Actual{MemberID: m.MemberID, Email: m.Email, Status: m.Status, Keys: slices.Clone(m.Keys)}
	}
	return out
}

func cacheFromMembers(accountID string, ms []cloudflare.Member) []store.CachedMember {
	out := make([]store.CachedMember, len(ms))
	for i, m := range ms {
		out[i] = cachedMember(accountID, m)
	}
	return out
}

func cachedMember(accountID string, m cloudflare.Member) store.CachedMember {
	return store.CachedMember{AccountID: accountID, MemberID: m.ID, Email: m.Email, Status: m.Status, Keys: keysOf(m)}
}

// maxConfirm bounds the members one listing may lack that are each
// confirmed with a GET; past it the listing is too odd to spend the
// budget on, and the rest wait for the next listing.
const maxConfirm = 20

// confirmAbsent decides what becomes of owned members a complete listing
// lacked. One listing's word is not enough to forget a grant: a member
// already missing from the previous listing is gone; otherwise a GET asks
// Cloudflare directly — 404 means gone, the member itself means the
// listing was not complete and the run aborts before any change; past
// maxConfirm the member is marked missing and still owned.
func (rn *run) confirmAbsent(ctx context.Context, a mapping.Account, rd *accountRead, absent []store.LedgerEntry) error {
	slices.SortFunc(absent, func(x, y store.LedgerEntry) int { return strings.Compare(identity.Key(x.Email), identity.Key(y.Email)) })
	asked := 0
	for _, e := range absent {
		if !e.MissingSince.IsZero() {
			rd.gone = append(rd.gone, e)
			continue
		}
		if asked < maxConfirm {
			asked++
			m, err := rn.r.cf.GetMember(ctx, a.ID, e.MemberID)
			switch {
			case errors.Is(err, cloudflare.ErrNotFound):
				rd.gone = append(rd.gone, e)
				continue
			case err != nil:
				return fmt.Errorf("confirm that member %s (%s) left account %s: %w", e.MemberID, e.Email, a.Name, err)
			default:
				return fmt.Errorf("%w: the listing of account %s lacked %s (member %s), which Cloudflare still has", errIncompleteListing, a.Name, m.Email, e.MemberID)
			}
		}
		e.MissingSince = rn.now
		rd.marks = append(rd.marks, e)
		rd.ledger[identity.Key(e.Email)] = planEntry(e)
	}
	return nil
}

// errIncompleteListing marks a listing that lacked a member Cloudflare
// still has.
var errIncompleteListing = errors.New("incomplete member listing")

// mark records in the ledger which owned members the listing lacked for
// the first time, and which are listed again.
func (rn *run) mark(account string, marks []store.LedgerEntry) error {
	if len(marks) == 0 {
		return nil
	}
	if err := rn.r.state.Commit(store.SyncCommit{PutLedger: marks}); err != nil {
		return fmt.Errorf("record which members the listing of account %s lacked: %w", account, err)
	}
	for _, e := range marks {
		if !e.MissingSince.IsZero() {
			rn.r.log.Warn("a member scimflare granted access is missing from a complete listing; ownership is kept until a second listing confirms it",
				"account", account, "email", e.Email, "member_id", e.MemberID)
		}
	}
	return nil
}

// memberGone drops the ledger entry of a member Cloudflare no longer has
// (someone removed it by hand): scimflare owns nothing there any more.
func (rn *run) memberGone(e store.LedgerEntry) error {
	c := goneCommit(e, rn.req.actor, rn.now, rn.result.Names)
	if err := rn.r.state.Commit(c); err != nil {
		return fmt.Errorf("forget gone member %s in account %s: %w", e.Email, e.AccountID, err)
	}
	rn.r.log.Warn("member removed outside scimflare", "account", rn.result.AccountNames[e.AccountID], "email", e.Email)
	return nil
}

// goneCommit forgets a member Cloudflare no longer has, audited. A removal
// whose answer was lost ends here too, one run later.
func goneCommit(e store.LedgerEntry, actor string, now time.Time, names map[string]string) store.SyncCommit {
	return store.SyncCommit{
		DeleteLedger: []store.LedgerEntry{e},
		DeleteCache:  []store.CachedMember{{AccountID: e.AccountID, Email: e.Email}},
		Audit: []store.AuditRecord{{
			Time: now, Actor: actor, Action: ActionMemberGone, AccountID: e.AccountID, Email: e.Email,
			Before: keyNames(e.Managed, names),
			Reason: "member " + e.MemberID + " no longer exists in Cloudflare; scimflare forgets what it granted there",
		}},
	}
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
			Before: keyNames([]string{d.Key}, rn.result.Names),
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
				Before: keyNames(w.Change.Before, rn.result.Names), After: keyNames(w.Change.After, rn.result.Names),
				Reason: string(w.Change.Kind) + " withheld: " + w.Why,
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
					"before", keyNames(ch.Before, names), "after", keyNames(ch.After, names), "reason", ch.Reason)
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

// apply makes one change in Cloudflare and records it. An answer that
// shows the member cache stale refreshes the account once per run,
// re-plans the email and tries once more.
func (rn *run) apply(ctx context.Context, ch plan.Change) {
	if rn.stopped != nil {
		rn.fail(ch, rn.stopped)
		return
	}
	if rn.renamed {
		// Planned with the names this run found stale.
		next, ok := rn.planOne(ch)
		if !ok {
			return
		}
		ch = next
	}
	if !rn.refreshed[ch.AccountID] && rn.r.cf != nil && rn.removesSuperAdmin(ch) {
		// The cache may count a Super Administrator someone has since
		// removed by hand: judge the last holder on a fresh listing.
		next, ok, err := rn.replan(ctx, ch, false)
		if err != nil {
			rn.fail(ch, fmt.Errorf("list the members of the account before removing a Super Administrator: %w", err))
			return
		}
		if !ok {
			return
		}
		ch = next
	}
	m, err := rn.write(ctx, ch)
	switch {
	case errors.Is(err, errStateRefused):
	case stale(ch, err):
		next, ok, rerr := rn.replan(ctx, ch, errors.Is(err, cloudflare.ErrNotFound))
		if rerr != nil {
			rn.fail(ch, fmt.Errorf("%w (and the refresh that followed failed: %v)", err, rerr))
			return
		}
		if !ok {
			return
		}
		ch = next
		m, err = rn.write(ctx, ch)
	case rn.cachedNames != nil && staleName(ch, err):
		// The cached names may be out of date: read them once, plan the
		// member again and retry. Names that no longer resolve stop the
		// run, so nothing planned with them (removals included) follows.
		rn.r.log.Warn("write refused with the cached names; reading them again", "account", rn.result.AccountNames[ch.AccountID], "email", ch.Email, "error", err)
		if rerr := rn.renewNames(ctx); rerr != nil {
			rn.stopped = fmt.Errorf("%w; the names were read again and %v; no further change is applied in this run", err, rerr)
			rn.fail(ch, rn.stopped)
			return
		}
		next, ok := rn.planOne(ch)
		if !ok {
			return
		}
		ch = next
		m, err = rn.write(ctx, ch)
	}
	if errors.Is(err, errStateRefused) {
		rn.stopped = err
	}
	if err != nil {
		rn.fail(ch, err)
		return
	}
	if err := answerAgrees(ch, m); err != nil {
		// The intent committed before the call stays in the ledger: the
		// next listing settles what Cloudflare really holds, and the next
		// run repairs it. The member cache keeps what it had.
		rn.fail(ch, err)
		return
	}
	if ch.Op == plan.OpCreate {
		ch.MemberID = m.ID
		ch.NewLedger.MemberID = m.ID
	}
	if err := rn.commit(ch, m); err != nil {
		rn.stopped = fmt.Errorf("applied in Cloudflare but not recorded in the state; no further change is applied: %w", err)
		rn.fail(ch, rn.stopped)
		return
	}
	// What a forced run lets through was approved by the operator: the
	// window counts from after it.
	if n := ch.Removals(); n > 0 && !rn.req.dry && !rn.req.force {
		if rn.saved.Removals == nil {
			rn.saved.Removals = map[string][]removalStamp{}
		}
		rn.saved.Removals[ch.AccountID] = append(rn.saved.Removals[ch.AccountID], removalStamp{At: rn.now, N: n})
	}
	rn.result.Applied = append(rn.result.Applied, ch)
	rn.r.m.ChangesApplied.WithLabelValues(string(ch.Kind)).Inc()
	rn.r.log.Info("applied", "account", rn.result.AccountNames[ch.AccountID], "kind", string(ch.Kind), "email", ch.Email,
		"before", keyNames(ch.Before, rn.result.Names), "after", keyNames(ch.After, rn.result.Names), "trigger", rn.req.actor, "reason", ch.Reason)
}

// removesSuperAdmin reports whether ch takes the account's Super
// Administrator role from the member (a removed member included).
func (rn *run) removesSuperAdmin(ch plan.Change) bool {
	key := rn.inputs[rn.byID[ch.AccountID]].SuperAdminKey
	return key != "" && slices.Contains(ch.Before, key) && !slices.Contains(ch.After, key)
}

func (rn *run) fail(ch plan.Change, err error) {
	rn.result.Failed = append(rn.result.Failed, FailedChange{Change: ch, Err: err})
	rn.r.m.ChangesFailed.WithLabelValues(string(ch.Kind)).Inc()
	rn.r.log.Error("change failed", "account", rn.result.AccountNames[ch.AccountID], "kind", string(ch.Kind), "email", ch.Email, "error", err)
	// The trail shows what was attempted and refused, not only what landed:
	// an operator reviewing access must see that a removal did not happen.
	rec := store.AuditRecord{Time: rn.now, Actor: rn.req.actor, Action: ActionChangeFailed, AccountID: ch.AccountID, Email: ch.Email,
		Before: keyNames(ch.Before, rn.result.Names), After: keyNames(ch.After, rn.result.Names),
		Reason: string(ch.Kind) + " failed: " + err.Error()}
	if aerr := rn.r.state.AppendAudit(rec); aerr != nil {
		rn.r.log.Error("cannot audit a failed change", "error", aerr)
	}
}

// ErrAnswerDisagrees marks a write Cloudflare accepted but whose answer
// shows another member or other grants than were sent.
var ErrAnswerDisagrees = errors.New("the answer from Cloudflare disagrees with what was sent")

// answerAgrees checks a successful write's answer against the change. An
// update's answer must show the member with exactly the grants sent (roles
// read back with derived policies are the roles: the client separates
// them); an invite's answer omits its grants, so only the id is checked.
func answerAgrees(ch plan.Change, m cloudflare.Member) error {
	switch ch.Op {
	case plan.OpCreate:
		if m.ID == "" {
			return fmt.Errorf("%w: the invitation of %s came back without a member id", ErrAnswerDisagrees, ch.Email)
		}
	case plan.OpUpdate:
		if m.ID != "" && m.ID != ch.MemberID {
			return fmt.Errorf("%w: updating member %s (%s) answered for member %s", ErrAnswerDisagrees, ch.MemberID, ch.Email, m.ID)
		}
		if got, want := keysOf(m), sortedSet(ch.After); !slices.Equal(got, want) {
			return fmt.Errorf("%w: %s was sent %v and Cloudflare answered with %v", ErrAnswerDisagrees, ch.Email, want, got)
		}
	}
	return nil
}

func stale(ch plan.Change, err error) bool {
	if err == nil {
		return false
	}
	if ch.Op == plan.OpCreate {
		return errors.Is(err, cloudflare.ErrAlreadyMember)
	}
	return errors.Is(err, cloudflare.ErrNotFound)
}

// errStateRefused marks a write not attempted because the state refused
// to record the intent first: nothing more is applied in this run.
var errStateRefused = errors.New("the state refused to record the change before it was made")

// write records the intent of a create or update, makes the call, and
// takes the intent back when Cloudflare's answer proves nothing changed.
// A removal needs no intent: the ledger already says what scimflare owns,
// and a member that vanished is settled as gone.
func (rn *run) write(ctx context.Context, ch plan.Change) (cloudflare.Member, error) {
	if ch.Op == plan.OpDelete {
		return rn.call(ctx, ch)
	}
	in := &rn.inputs[rn.byID[ch.AccountID]]
	lower := identity.Key(ch.Email)
	prev, had := in.Ledger[lower]
	intent, c := intentOf(ch, prev, had, in.Actual[lower], rn.r.now())
	if err := rn.r.state.Commit(c); err != nil {
		return cloudflare.Member{}, fmt.Errorf("%w: %s %s: %w", errStateRefused, ch.Kind, ch.Email, err)
	}
	in.Ledger[lower] = intent
	m, err := rn.call(ctx, ch)
	if err == nil || !notApplied(ch, err) {
		if err != nil {
			rn.r.log.Warn("the outcome of a write is unknown; its intent stays in the ledger and the next listing settles it",
				"account", rn.result.AccountNames[ch.AccountID], "kind", string(ch.Kind), "email", ch.Email, "error", err)
		}
		return m, err
	}
	back := store.SyncCommit{}
	if had {
		back.PutLedger = []store.LedgerEntry{storeEntry(ch.AccountID, ch.Email, prev, rn.r.now())}
	} else {
		back.DeleteLedger = []store.LedgerEntry{{AccountID: ch.AccountID, Email: ch.Email}}
	}
	if cerr := rn.r.state.Commit(back); cerr != nil {
		// The intent stays: it claims keys the member lacks, which the
		// next full run drops. Nothing is lost.
		rn.r.log.Error("cannot take back the intent of a refused write", "account", rn.result.AccountNames[ch.AccountID], "email", ch.Email, "error", cerr)
		return m, err
	}
	if had {
		in.Ledger[lower] = prev
	} else {
		delete(in.Ledger, lower)
	}
	return m, err
}

// call makes ch's one Cloudflare call.
func (rn *run) call(ctx context.Context, ch plan.Change) (cloudflare.Member, error) {
	cf := rn.r.cf
	switch ch.Op {
	case plan.OpCreate, plan.OpUpdate:
		roles, policies, err := shapeOf(ch.After)
		if err != nil {
			return cloudflare.Member{}, fmt.Errorf("%s %s: %w", ch.Kind, ch.Email, err)
		}
		if ch.Op == plan.OpCreate {
			return cf.CreateMember(ctx, ch.AccountID, ch.Email, roles, policies)
		}
		return cf.UpdateMember(ctx, ch.AccountID, ch.MemberID, roles, policies)
	case plan.OpDelete:
		err := cf.DeleteMember(ctx, ch.AccountID, ch.MemberID)
		return cloudflare.Member{ID: ch.MemberID, Email: ch.Email}, err
	}
	return cloudflare.Member{}, fmt.Errorf("change %s of %s: unknown operation %q", ch.Kind, ch.Email, ch.Op)
}

// replan refreshes the account's member list (once per run) and plans the
// one email again. notFound says Cloudflare answered 404 for ch's member:
// only then does the member's absence from the listing drop ownership
// (a listing alone needs a second one to agree, which the next full run
// gives).
func (rn *run) replan(ctx context.Context, ch plan.Change, notFound bool) (plan.Change, bool, error) {
	i, ok := rn.byID[ch.AccountID]
	if !ok {
		return plan.Change{}, false, fmt.Errorf("account %s is not configured", ch.AccountID)
	}
	in := &rn.inputs[i]
	if !rn.refreshed[ch.AccountID] {
		members, err := rn.r.cf.ListMembers(ctx, ch.AccountID)
		if err != nil {
			return plan.Change{}, false, err
		}
		fresh := actualFromMembers(members)
		// Settle before the cache is replaced: it holds what settling
		// compares.
		if err := rn.settleAll(in, fresh); err != nil {
			return plan.Change{}, false, err
		}
		if err := rn.r.state.ReplaceMemberCache(ch.AccountID, cacheFromMembers(ch.AccountID, members), rn.r.now()); err != nil {
			return plan.Change{}, false, fmt.Errorf("store the member list: %w", err)
		}
		in.Actual = fresh
		rn.refreshed[ch.AccountID] = true
		rn.r.log.Info("member cache was stale; refreshed the account's member list", "account", in.Name, "email", ch.Email)
	}
	lower := identity.Key(ch.Email)
	if _, present := in.Actual[lower]; !present && notFound {
		// An intent without a listing to settle it against stays as it is.
		if led, ok := in.Ledger[lower]; ok && led.MemberID != "" {
			delete(in.Ledger, lower)
			e := store.LedgerEntry{AccountID: ch.AccountID, Email: ch.Email, MemberID: led.MemberID, Managed: led.Managed}
			if err := rn.memberGone(e); err != nil {
				return plan.Change{}, false, err
			}
		}
	}
	next, ok := rn.planOne(ch)
	return next, ok, nil
}

// planOne plans ch's email again against the run's current inputs. The new
// change may remove no more than ch did: the guard already judged ch.
func (rn *run) planOne(ch plan.Change) (plan.Change, bool) {
	in := &rn.inputs[rn.byID[ch.AccountID]]
	one := *in
	one.Scope = map[string]bool{identity.Key(ch.Email): true}
	c := plan.Plan([]plan.AccountInput{one}, rn.cfg.Sync.Unmanaged == config.UnmanagedRemove)
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

func emptyLedger(l plan.LedgerEntry) bool {
	return l.MemberID == "" && !l.Created && len(l.Managed) == 0 && len(l.Found) == 0
}

// commit records one applied change in one transaction: ledger, member
// cache and audit record.
func (rn *run) commit(ch plan.Change, m cloudflare.Member) error {
	now := rn.r.now()
	nl := ch.NewLedger
	c := store.SyncCommit{}
	if emptyLedger(nl) {
		c.DeleteLedger = []store.LedgerEntry{{AccountID: ch.AccountID, Email: ch.Email}}
	} else {
		c.PutLedger = []store.LedgerEntry{{
			AccountID: ch.AccountID, Email: ch.Email, MemberID: nl.MemberID, Created: nl.Created,
			Managed: nl.Managed, Found: nl.Found, UpdatedAt: now,
		}}
	}
	var cached store.CachedMember
	if ch.Op == plan.OpDelete {
		c.DeleteCache = []store.CachedMember{{AccountID: ch.AccountID, Email: ch.Email}}
	} else {
		if m.ID == "" {
			m.ID = ch.MemberID
		}
		if m.Email == "" {
			m.Email = ch.Email
		}
		cached = cachedMember(ch.AccountID, m)
		if ch.Op == plan.OpCreate {
			// Cloudflare's answer to an invite omits what it granted (see
			// the README, "What scimflare assumes about Cloudflare"): the
			// cache records what was sent, never the answer's empty lists.
			cached.Keys = slices.Clone(ch.After)
		}
		c.PutCache = []store.CachedMember{cached}
	}
	c.Audit = []store.AuditRecord{{
		Time: now, Actor: rn.req.actor, Action: string(ch.Kind), AccountID: ch.AccountID, Email: ch.Email,
		Before: keyNames(ch.Before, rn.result.Names), After: keyNames(ch.After, rn.result.Names),
		Reason: ch.Reason, Privileged: ch.Privileged,
	}}
	if err := rn.r.state.Commit(c); err != nil {
		return err
	}
	// Later re-plans in this run see the change.
	in := &rn.inputs[rn.byID[ch.AccountID]]
	lower := identity.Key(ch.Email)
	if emptyLedger(nl) {
		delete(in.Ledger, lower)
	} else {
		in.Ledger[lower] = nl
	}
	if ch.Op == plan.OpDelete {
		delete(in.Actual, lower)
	} else {
		in.Actual[lower] = plan.Actual{MemberID: cached.MemberID, Email: cached.Email, Status: cached.Status, Keys: cached.Keys}
	}
	return nil
}
