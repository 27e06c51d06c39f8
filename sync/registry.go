package sync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/identity"
	"github.com/scimflare/scimflare/sync/plan"
)

// registry is the per-change protocol of one run, external-dns's registry
// wrapper: it reads an account (Read) and makes one change at a time
// (Apply) — intent, call, confirm or take back, one commit of ledger,
// cache and audit — with a named retry when an answer shows the run's
// knowledge stale. It owns what that protocol needs: the Cloudflare client,
// the state, what the run knows of each account (its reads and the plan
// inputs they became, kept current as changes land), the intent and
// removal bookkeeping, and the user groups it writes. When what it learns
// changes the plan, it asks the planner, never the run as a whole.
type registry struct {
	cf      Cloudflare
	state   State
	log     *slog.Logger
	m       *Metrics
	clock   func() time.Time // the reconciler's clock, read at each write
	legacy  *legacyRoles
	ugroups *userGroupCache
	planner planner

	req      runRequest
	accounts []mapping.Account // configuration order, as reads
	now      time.Time         // when the run started
	window   time.Duration     // sync.guards.window
	result   *Result
	// saved is the run status as loaded; Apply adds its removals to the
	// rolling window.
	saved savedStatus
	// scope is the identity keys a targeted run plans (nil: every email).
	scope map[string]bool

	reads     []accountRead // by accounts index
	inputs    []plan.AccountInput
	byID      map[string]int // account id -> index in inputs
	refreshed map[string]bool
	// renamed: the run found its cached names stale and resolved them
	// again; every change planned before is planned once more.
	renamed bool
	stopped error // the state refused a write: apply nothing more
	// ug is what the run read of each user-groups account (usergroups.go);
	// groupAdds are the member adds waiting to go, one request per group.
	ug        map[string]*ugAccount
	groupAdds []plan.Change
}

// planner is what the registry asks of the run when a change's protocol
// learns something the plan depends on.
type planner interface {
	// planOne plans ch's email again against the current inputs.
	planOne(ch plan.Change) (plan.Change, bool)
	// renewNames reads the names again and rebuilds desired state.
	renewNames(ctx context.Context) error
	// namesCached: the run planned with cached names.
	namesCached() bool
	// reshape sets input i's grant shape again (a legacy role learned).
	reshape(i int)
	// mayBeSuperAdmin is whether a key may make its holder a Super
	// Administrator of a, before a's plan input exists.
	mayBeSuperAdmin(a mapping.Account) func(string) bool
	// wanted is email's desired state in the account (nil: none).
	wanted(accountID, email string) *plan.DesiredMember
}

func newRegistry(r *Reconciler, req runRequest, cfg *Settings, now time.Time, result *Result, p planner) *registry {
	return &registry{
		cf: r.cf, state: r.state, log: r.log, m: r.m, clock: r.now,
		legacy: &r.legacyRoles, ugroups: &r.ugroups, planner: p,
		req: req, accounts: cfg.Accounts, now: now, window: cfg.Sync.Guards.Window, result: result,
		byID: map[string]int{}, refreshed: map[string]bool{},
	}
}

// Apply makes one change in Cloudflare and records it: the change as the
// run's current knowledge plans it, the write (intent, call, confirm or
// take back), one named retry when the answer shows the run's knowledge
// stale, a check of the answer, and one commit of ledger, cache and audit.
func (reg *registry) Apply(ctx context.Context, ch plan.Change) {
	if ch.Group != nil {
		reg.applyGroup(ctx, ch)
		return
	}
	if reg.stopped != nil {
		reg.fail(ch, reg.stopped)
		return
	}
	ch, ok, err := reg.current(ctx, ch)
	if err != nil {
		reg.fail(ch, err)
		return
	}
	if !ok {
		return
	}
	m, err := reg.write(ctx, ch)
	switch {
	case errors.Is(err, errStateRefused):
		reg.stopped = err
	case stale(ch, err):
		ch, m, err = reg.retryAfterRefresh(ctx, ch, err)
	case reg.planner.namesCached() && staleName(ch, err):
		ch, m, err = reg.retryWithFreshNames(ctx, ch, err)
	}
	if errors.Is(err, errNothingLeft) {
		return
	}
	if errors.Is(err, errStateRefused) {
		reg.stopped = err
	}
	if err == nil {
		// The intent committed before the call stays in the ledger when
		// the answer disagrees: the next listing settles what Cloudflare
		// really holds, and the next run repairs it.
		err = answerAgrees(ch, m)
	}
	if err != nil {
		reg.fail(ch, err)
		return
	}
	reg.applied(ch, m)
}

// errNothingLeft: planned again, the change has nothing left to do.
var errNothingLeft = errors.New("nothing left to change")

// current is ch as the run's current knowledge plans it: again with the
// names the run renewed, and against a fresh listing before taking a
// Super Administrator role away (the cache may count one someone has since
// removed by hand). ok is false when nothing is left to do.
func (reg *registry) current(ctx context.Context, ch plan.Change) (plan.Change, bool, error) {
	if reg.renamed {
		next, ok := reg.planner.planOne(ch)
		if !ok {
			return ch, false, nil
		}
		ch = next
	}
	if reg.refreshed[ch.AccountID] || reg.cf == nil || ch.Op == plan.OpCreate {
		return ch, true, nil
	}
	if reg.removesSuperAdmin(ch) {
		next, ok, err := reg.replan(ctx, ch, false)
		if err != nil {
			return ch, false, fmt.Errorf("list the members of the account before removing a Super Administrator: %w", err)
		}
		return next, ok, nil
	}
	return reg.readBeforeWrite(ctx, ch)
}

// readBeforeWrite reads the member an update or removal planned from the
// member cache is about to change, and plans it again when someone changed
// it since the cache was filled. A PUT replaces every role: planned from a
// stale cache it would give back a role removed by hand (a leaver keeping
// it, filed as found) or take away one added by hand (drift scimflare must
// only report).
func (reg *registry) readBeforeWrite(ctx context.Context, ch plan.Change) (plan.Change, bool, error) {
	m, err := reg.cf.GetMember(ctx, ch.AccountID, ch.MemberID)
	if errors.Is(err, cloudflare.ErrNotFound) {
		return reg.replan(ctx, ch, true)
	}
	if err != nil {
		return ch, false, fmt.Errorf("read member %s (%s) before changing it: %w", ch.MemberID, ch.Email, err)
	}
	in := &reg.inputs[reg.byID[ch.AccountID]]
	key := identity.Key(ch.Email)
	if !usableEmail(m.Email) {
		// The member the ledger or the listing named by this id.
		m.Email = ch.Email
	}
	fresh := plan.Actual{MemberID: m.ID, Email: m.Email, Status: m.Status, Keys: keysOf(m)}
	learned := reg.learnRoles(ch.AccountID, m)
	if old, ok := in.Actual.Get(key); ok && old.Status == fresh.Status && slices.Equal(sortedSet(old.Keys), fresh.Keys) {
		if !learned {
			return ch, true, nil
		}
		// The member holds a legacy role the plan could not convert yet.
		next, ok := reg.planner.planOne(ch)
		return next, ok, nil
	}
	reg.log.Info("member changed since the last listing; planning it again", "account", in.Name, "email", ch.Email)
	in.Actual.Set(key, fresh)
	if err := reg.state.Commit(store.SyncCommit{PutCache: []store.CachedMember{cachedMember(ch.AccountID, m)}}); err != nil {
		return ch, false, fmt.Errorf("%w: store member %s as read: %w", errStateRefused, ch.Email, err)
	}
	if err := reg.seeEveryHolder(reg.byID[ch.AccountID]); err != nil {
		return ch, false, err
	}
	next, ok := reg.planner.planOne(ch)
	return next, ok, nil
}

// retryAfterRefresh handles an answer that shows the member cache stale
// (an invite for a member that exists, an update of one that is gone):
// the account is listed once per run, the email planned again, and the
// write tried once more.
func (reg *registry) retryAfterRefresh(ctx context.Context, ch plan.Change, cause error) (plan.Change, cloudflare.Member, error) {
	next, ok, err := reg.replan(ctx, ch, errors.Is(cause, cloudflare.ErrNotFound))
	if err != nil {
		return ch, cloudflare.Member{}, fmt.Errorf("%w (and the refresh that followed failed: %v)", cause, err)
	}
	if !ok {
		return ch, cloudflare.Member{}, errNothingLeft
	}
	m, err := reg.write(ctx, next)
	return next, m, err
}

// retryWithFreshNames handles a write refused with the cached names: they
// are read once, the member planned again and the write retried. Names
// that no longer resolve stop the run, so nothing planned with them
// (removals included) follows.
func (reg *registry) retryWithFreshNames(ctx context.Context, ch plan.Change, cause error) (plan.Change, cloudflare.Member, error) {
	reg.log.Warn("write refused with the cached names; reading them again", "account", reg.result.AccountNames[ch.AccountID], "email", ch.Email, "error", cause)
	if err := reg.planner.renewNames(ctx); err != nil {
		reg.stopped = fmt.Errorf("%w; the names were read again and %v; no further change is applied in this run", cause, err)
		return ch, cloudflare.Member{}, reg.stopped
	}
	next, ok := reg.planner.planOne(ch)
	if !ok {
		return ch, cloudflare.Member{}, errNothingLeft
	}
	m, err := reg.write(ctx, next)
	return next, m, err
}

// applied records a change Cloudflare made: ledger, cache and audit in one
// commit, the rolling-window count, the result, the metric and the log.
func (reg *registry) applied(ch plan.Change, m cloudflare.Member) {
	if ch.Op == plan.OpCreate {
		ch.MemberID = m.ID
		ch.NewLedger.MemberID = m.ID
	}
	if err := reg.commit(ch, m); err != nil {
		reg.stopped = fmt.Errorf("applied in Cloudflare but not recorded in the state; no further change is applied: %w", err)
		reg.fail(ch, reg.stopped)
		return
	}
	reg.stampRemovals(ch)
	reg.result.Applied = append(reg.result.Applied, ch)
	reg.m.ChangesApplied.WithLabelValues(string(ch.Kind)).Inc()
	reg.log.Info("applied", "account", reg.result.AccountNames[ch.AccountID], "kind", string(ch.Kind), "email", ch.Email,
		"before", mapping.KeyNames(ch.Before, reg.result.Names), "after", mapping.KeyNames(ch.After, reg.result.Names), "trigger", reg.req.actor,
		"reason", ch.Reason)
}

// removesSuperAdmin reports whether ch takes the account's Super
// Administrator role from the member (a removed member included).
func (reg *registry) removesSuperAdmin(ch plan.Change) bool {
	return reg.inputs[reg.byID[ch.AccountID]].RemovesSuperAdmin(ch)
}

func (reg *registry) fail(ch plan.Change, err error) {
	reg.result.Failed = append(reg.result.Failed, FailedChange{Change: ch, Err: err})
	reg.m.ChangesFailed.WithLabelValues(string(ch.Kind)).Inc()
	reg.log.Error("change failed", "account", reg.result.AccountNames[ch.AccountID], "kind", string(ch.Kind), "email", ch.Email, "error", err)
	// The trail shows what was attempted and refused, not only what landed:
	// an operator reviewing access must see that a removal did not happen.
	rec := store.AuditRecord{Time: reg.now, Actor: reg.req.actor, Action: ActionChangeFailed, AccountID: ch.AccountID, Email: ch.Email,
		Before: mapping.KeyNames(ch.Before, reg.result.Names), After: mapping.KeyNames(ch.After, reg.result.Names),
		Reason: string(ch.Kind) + " failed: " + err.Error()}
	if aerr := reg.state.AppendAudit(rec); aerr != nil {
		reg.log.Error("cannot audit a failed change", "error", aerr)
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
func (reg *registry) write(ctx context.Context, ch plan.Change) (cloudflare.Member, error) {
	if ch.Op == plan.OpDelete {
		// A removal needs no intent, but with several replicas it needs the
		// term: a deposed leader must not remove anyone.
		if f, ok := reg.state.(Fencer); ok {
			if err := f.Fence(); err != nil {
				return cloudflare.Member{}, fmt.Errorf("%w: %s %s: %w", errStateRefused, ch.Kind, ch.Email, err)
			}
		}
		return reg.call(ctx, ch)
	}
	in := &reg.inputs[reg.byID[ch.AccountID]]
	lower := identity.Key(ch.Email)
	prev, had := in.Ledger.Get(lower)
	act, _ := in.Actual.Get(lower)
	intent, c := intentOf(ch, prev, had, act, reg.clock())
	if err := reg.state.Commit(c); err != nil {
		return cloudflare.Member{}, fmt.Errorf("%w: %s %s: %w", errStateRefused, ch.Kind, ch.Email, err)
	}
	in.Ledger.Set(lower, intent)
	m, err := reg.call(ctx, ch)
	if err == nil || !notApplied(ch, err) {
		if err != nil {
			reg.log.Warn("the outcome of a write is unknown; its intent stays in the ledger and the next listing settles it",
				"account", reg.result.AccountNames[ch.AccountID], "kind", string(ch.Kind), "email", ch.Email, "error", err)
		}
		return m, err
	}
	back := store.SyncCommit{}
	if had {
		back.PutLedger = []store.LedgerEntry{storeEntry(ch.AccountID, ch.Email, prev, reg.clock())}
	} else {
		back.DeleteLedger = []store.LedgerEntry{{AccountID: ch.AccountID, Email: ch.Email}}
	}
	if cerr := reg.state.Commit(back); cerr != nil {
		// The intent stays: it claims keys the member lacks, which the
		// next full run drops. Nothing is lost.
		reg.log.Error("cannot take back the intent of a refused write", "account", reg.result.AccountNames[ch.AccountID], "email", ch.Email, "error", cerr)
		return m, err
	}
	if had {
		in.Ledger.Set(lower, prev)
	} else {
		in.Ledger.Delete(lower)
	}
	return m, err
}

// call makes ch's one Cloudflare call.
func (reg *registry) call(ctx context.Context, ch plan.Change) (cloudflare.Member, error) {
	cf := reg.cf
	if m, done, err := reg.callWithoutGrants(ctx, ch); done {
		return m, err
	}
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
func (reg *registry) replan(ctx context.Context, ch plan.Change, notFound bool) (plan.Change, bool, error) {
	i, ok := reg.byID[ch.AccountID]
	if !ok {
		return plan.Change{}, false, fmt.Errorf("account %s is not configured", ch.AccountID)
	}
	in := &reg.inputs[i]
	if !reg.refreshed[ch.AccountID] {
		// The change's own read (a Super Administrator's removal, a
		// member gone): it may use the budget's reserve.
		l, err := reg.listMembers(cloudflare.Urgent(ctx), ch.AccountID, reg.learnRoles)
		if err != nil {
			return plan.Change{}, false, err
		}
		fresh := l.actual
		// Settle before the cache is replaced: it holds what settling
		// compares.
		if err := reg.settleAll(in, fresh); err != nil {
			return plan.Change{}, false, err
		}
		if err := reg.state.ReplaceMemberCache(ch.AccountID, cache(ch.AccountID, fresh, l.order), reg.clock()); err != nil {
			return plan.Change{}, false, fmt.Errorf("store the member list: %w", err)
		}
		in.Actual = fresh
		reg.refreshed[ch.AccountID] = true
		reg.log.Info("member cache was stale; refreshed the account's member list", "account", in.Name, "email", ch.Email)
	}
	lower := identity.Key(ch.Email)
	if !in.Actual.Has(lower) && notFound {
		// An intent without a listing to settle it against stays as it is.
		if led, ok := in.Ledger.Get(lower); ok && led.MemberID != "" {
			in.Ledger.Delete(lower)
			e := store.LedgerEntry{AccountID: ch.AccountID, Email: ch.Email, MemberID: led.MemberID, Managed: led.Managed}
			if err := reg.memberGone(e); err != nil {
				return plan.Change{}, false, err
			}
		}
	}
	next, ok := reg.planner.planOne(ch)
	return next, ok, nil
}

func emptyLedger(l plan.LedgerEntry) bool {
	return l.MemberID == "" && !l.Created && len(l.Managed) == 0 && len(l.Found) == 0
}

// commit records one applied change in one transaction: ledger, member
// cache and audit record.
func (reg *registry) commit(ch plan.Change, m cloudflare.Member) error {
	now := reg.clock()
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
		Time: now, Actor: reg.req.actor, Action: string(ch.Kind), AccountID: ch.AccountID, Email: ch.Email,
		Before: mapping.KeyNames(ch.Before, reg.result.Names), After: mapping.KeyNames(ch.After, reg.result.Names),
		Reason: ch.Reason, Privileged: ch.Privileged, Sources: reg.auditSources(ch.AccountID, ch.Email, ch.After),
	}}
	if err := reg.state.Commit(c); err != nil {
		return err
	}
	// Later re-plans in this run see the change.
	in := &reg.inputs[reg.byID[ch.AccountID]]
	lower := identity.Key(ch.Email)
	if emptyLedger(nl) {
		in.Ledger.Delete(lower)
	} else {
		in.Ledger.Set(lower, nl)
	}
	if ch.Op == plan.OpDelete {
		in.Actual.Delete(lower)
	} else {
		in.Actual.Set(lower, cachedActual(cached))
	}
	return nil
}
