package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/identity"
	"github.com/scimflare/scimflare/sync/plan"
)

// apply makes one change in Cloudflare and records it: the change as the
// run's current knowledge plans it, the write (intent, call, confirm or
// take back), one named retry when the answer shows the run's knowledge
// stale, a check of the answer, and one commit of ledger, cache and audit.
func (rn *run) apply(ctx context.Context, ch plan.Change) {
	if ch.Group != nil {
		rn.applyGroup(ctx, ch)
		return
	}
	if rn.stopped != nil {
		rn.fail(ch, rn.stopped)
		return
	}
	ch, ok, err := rn.current(ctx, ch)
	if err != nil {
		rn.fail(ch, err)
		return
	}
	if !ok {
		return
	}
	m, err := rn.write(ctx, ch)
	switch {
	case errors.Is(err, errStateRefused):
		rn.stopped = err
	case stale(ch, err):
		ch, m, err = rn.retryAfterRefresh(ctx, ch, err)
	case rn.cachedNames != nil && staleName(ch, err):
		ch, m, err = rn.retryWithFreshNames(ctx, ch, err)
	}
	if errors.Is(err, errNothingLeft) {
		return
	}
	if errors.Is(err, errStateRefused) {
		rn.stopped = err
	}
	if err == nil {
		// The intent committed before the call stays in the ledger when
		// the answer disagrees: the next listing settles what Cloudflare
		// really holds, and the next run repairs it.
		err = answerAgrees(ch, m)
	}
	if err != nil {
		rn.fail(ch, err)
		return
	}
	rn.applied(ch, m)
}

// errNothingLeft: planned again, the change has nothing left to do.
var errNothingLeft = errors.New("nothing left to change")

// current is ch as the run's current knowledge plans it: again with the
// names the run renewed, and against a fresh listing before taking a
// Super Administrator role away (the cache may count one someone has since
// removed by hand). ok is false when nothing is left to do.
func (rn *run) current(ctx context.Context, ch plan.Change) (plan.Change, bool, error) {
	if rn.renamed {
		next, ok := rn.planOne(ch)
		if !ok {
			return ch, false, nil
		}
		ch = next
	}
	if rn.refreshed[ch.AccountID] || rn.r.cf == nil || ch.Op == plan.OpCreate {
		return ch, true, nil
	}
	if rn.removesSuperAdmin(ch) {
		next, ok, err := rn.replan(ctx, ch, false)
		if err != nil {
			return ch, false, fmt.Errorf("list the members of the account before removing a Super Administrator: %w", err)
		}
		return next, ok, nil
	}
	return rn.readBeforeWrite(ctx, ch)
}

// readBeforeWrite reads the member an update or removal planned from the
// member cache is about to change, and plans it again when someone changed
// it since the cache was filled. A PUT replaces every role: planned from a
// stale cache it would give back a role removed by hand (a leaver keeping
// it, filed as found) or take away one added by hand (drift scimflare must
// only report).
func (rn *run) readBeforeWrite(ctx context.Context, ch plan.Change) (plan.Change, bool, error) {
	m, err := rn.r.cf.GetMember(ctx, ch.AccountID, ch.MemberID)
	if errors.Is(err, cloudflare.ErrNotFound) {
		return rn.replan(ctx, ch, true)
	}
	if err != nil {
		return ch, false, fmt.Errorf("read member %s (%s) before changing it: %w", ch.MemberID, ch.Email, err)
	}
	in := &rn.inputs[rn.byID[ch.AccountID]]
	key := identity.Key(ch.Email)
	if m.Email == "" {
		m.Email = ch.Email
	}
	fresh := plan.Actual{MemberID: m.ID, Email: m.Email, Status: m.Status, Keys: keysOf(m)}
	learned := rn.learnRoles(ch.AccountID, m)
	if old, ok := in.Actual[key]; ok && old.Status == fresh.Status && slices.Equal(sortedSet(old.Keys), fresh.Keys) {
		if !learned {
			return ch, true, nil
		}
		// The member holds a legacy role the plan could not convert yet.
		next, ok := rn.planOne(ch)
		return next, ok, nil
	}
	rn.r.log.Info("member changed since the last listing; planning it again", "account", in.Name, "email", ch.Email)
	in.Actual[key] = fresh
	if err := rn.r.state.Commit(store.SyncCommit{PutCache: []store.CachedMember{cachedMember(ch.AccountID, m)}}); err != nil {
		return ch, false, fmt.Errorf("%w: store member %s as read: %w", errStateRefused, ch.Email, err)
	}
	if err := rn.seeEveryHolder(rn.byID[ch.AccountID]); err != nil {
		return ch, false, err
	}
	next, ok := rn.planOne(ch)
	return next, ok, nil
}

// retryAfterRefresh handles an answer that shows the member cache stale
// (an invite for a member that exists, an update of one that is gone):
// the account is listed once per run, the email planned again, and the
// write tried once more.
func (rn *run) retryAfterRefresh(ctx context.Context, ch plan.Change, cause error) (plan.Change, cloudflare.Member, error) {
	next, ok, err := rn.replan(ctx, ch, errors.Is(cause, cloudflare.ErrNotFound))
	if err != nil {
		return ch, cloudflare.Member{}, fmt.Errorf("%w (and the refresh that followed failed: %v)", cause, err)
	}
	if !ok {
		return ch, cloudflare.Member{}, errNothingLeft
	}
	m, err := rn.write(ctx, next)
	return next, m, err
}

// retryWithFreshNames handles a write refused with the cached names: they
// are read once, the member planned again and the write retried. Names
// that no longer resolve stop the run, so nothing planned with them
// (removals included) follows.
func (rn *run) retryWithFreshNames(ctx context.Context, ch plan.Change, cause error) (plan.Change, cloudflare.Member, error) {
	rn.r.log.Warn("write refused with the cached names; reading them again", "account", rn.result.AccountNames[ch.AccountID], "email", ch.Email, "error", cause)
	if err := rn.renewNames(ctx); err != nil {
		rn.stopped = fmt.Errorf("%w; the names were read again and %v; no further change is applied in this run", cause, err)
		return ch, cloudflare.Member{}, rn.stopped
	}
	next, ok := rn.planOne(ch)
	if !ok {
		return ch, cloudflare.Member{}, errNothingLeft
	}
	m, err := rn.write(ctx, next)
	return next, m, err
}

// applied records a change Cloudflare made: ledger, cache and audit in one
// commit, the rolling-window count, the result, the metric and the log.
func (rn *run) applied(ch plan.Change, m cloudflare.Member) {
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
		"before", mapping.KeyNames(ch.Before, rn.result.Names), "after", mapping.KeyNames(ch.After, rn.result.Names), "trigger", rn.req.actor,
		"reason", ch.Reason)
}

// removesSuperAdmin reports whether ch takes the account's Super
// Administrator role from the member (a removed member included).
func (rn *run) removesSuperAdmin(ch plan.Change) bool {
	return rn.inputs[rn.byID[ch.AccountID]].RemovesSuperAdmin(ch)
}

func (rn *run) fail(ch plan.Change, err error) {
	rn.result.Failed = append(rn.result.Failed, FailedChange{Change: ch, Err: err})
	rn.r.m.ChangesFailed.WithLabelValues(string(ch.Kind)).Inc()
	rn.r.log.Error("change failed", "account", rn.result.AccountNames[ch.AccountID], "kind", string(ch.Kind), "email", ch.Email, "error", err)
	// The trail shows what was attempted and refused, not only what landed:
	// an operator reviewing access must see that a removal did not happen.
	rec := store.AuditRecord{Time: rn.now, Actor: rn.req.actor, Action: ActionChangeFailed, AccountID: ch.AccountID, Email: ch.Email,
		Before: mapping.KeyNames(ch.Before, rn.result.Names), After: mapping.KeyNames(ch.After, rn.result.Names),
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
		// A removal needs no intent, but with several replicas it needs the
		// term: a deposed leader must not remove anyone.
		if f, ok := rn.r.state.(Fencer); ok {
			if err := f.Fence(); err != nil {
				return cloudflare.Member{}, fmt.Errorf("%w: %s %s: %w", errStateRefused, ch.Kind, ch.Email, err)
			}
		}
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
	if m, done, err := rn.callWithoutGrants(ctx, ch); done {
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
		rn.learnRoles(ch.AccountID, members...)
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
		Before: mapping.KeyNames(ch.Before, rn.result.Names), After: mapping.KeyNames(ch.After, rn.result.Names),
		Reason: ch.Reason, Privileged: ch.Privileged, Sources: rn.auditSources(ch.AccountID, ch.Email, ch.After),
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
