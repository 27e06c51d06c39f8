package sync

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/identity"
	"github.com/scimflare/scimflare/sync/plan"
)

// accountRead is what a run read about one account before planning.
type accountRead struct {
	ledger *plan.Ledger
	// gone are owned members two consecutive complete listings lacked;
	// marks are the ledger entries whose MissingSince the listing sets
	// (first absence) or clears (listed again).
	gone   []store.LedgerEntry
	marks  []store.LedgerEntry
	actual *plan.Actuals
	// listed is the order of a fresh listing (the members' rows in
	// actual), from which the member cache is written when the run
	// records its reads; Cloudflare's answer itself (roles, policies,
	// derived policies, role names per member) is not kept through the
	// run: at a million members it was the run's largest input.
	listed []uint32 // rows of actual
	fresh  bool
	// settle records what the listing says about unconfirmed entries
	// (intents); settled are the changes it shows applied.
	settle  store.SyncCommit
	settled []plan.Change
	// scannedAt is when the cached member list was taken; zero when the
	// run listed the account itself or there is no list.
	scannedAt time.Time
	// partial: ledger and actual hold the run's scope only (readScoped),
	// and managed is the whole ledger's count of managed keys, the
	// guard's base, as the store keeps it.
	partial bool
	managed int
	// whole: the rest of the member cache was added since (seeEveryHolder).
	whole bool
}

// listing is an account's listing as a run keeps it, taken page by page:
// the members keyed by identity, and the order they came in. The member
// cache is written from the two after the plan (cache), not kept as a
// list of its own through the run: a list beside the map held every
// member twice. The members of an account mostly hold the same few keys:
// the member table keeps each distinct key list once, or a listing of a
// million members would keep a million copies of each policy key live
// through the run.
type listing struct {
	actual *plan.Actuals
	// order is the members' rows in actual, as listed (a key listed
	// twice is here twice): 4 bytes a member, where a list of their keys
	// kept each decoded email alive beside the table's copy.
	order []uint32
	// unnamed are the listed members without a usable email, by member
	// id (see adopt).
	unnamed map[string]cloudflare.Member
}

// usableEmail: an email a member can be matched and kept by. Cloudflare
// always gives one; a listing that does not is malformed there.
func usableEmail(email string) bool {
	return email != "" && len(email) <= store.MaxIndexedLen
}

// start makes room for total members and drops what was taken: the
// listing starts (over).
func (l *listing) start(total int) {
	l.actual, l.order = plan.NewActuals(total), make([]uint32, 0, total)
	l.unnamed = nil
}

// page takes one page of members.
func (l *listing) page(ms []cloudflare.Member) {
	for _, m := range ms {
		if !usableEmail(m.Email) {
			if l.unnamed == nil {
				l.unnamed = map[string]cloudflare.Member{}
			}
			l.unnamed[m.ID] = m
			continue
		}
		key := identity.Key(m.Email)
		l.order = append(l.order, l.actual.Put(key, plan.Actual{MemberID: m.ID, Email: m.Email, Status: m.Status, Keys: keysOf(m)}))
	}
}

// cache is the listing as the member cache keeps it, in listing order.
// Members whose emails share an identity key are one member in actual,
// the last listed, as they are one in the store (keyed by the coarser
// store.Fold, the last written kept): that member is written in each
// place, and the store keeps it.
func cache(accountID string, actual *plan.Actuals, order []uint32) []store.CachedMember {
	out := make([]store.CachedMember, len(order))
	for i, r := range order {
		_, m, present := actual.At(r)
		if !present {
			m = plan.Actual{} // as Get answers for a key deleted since
		}
		out[i] = store.CachedMember{AccountID: accountID, MemberID: m.MemberID, Email: m.Email, Status: m.Status, Keys: m.Keys}
	}
	return out
}

// listMembers lists an account into a listing; the client's members are
// never all held at once. learn is shown each page first (the role names
// it names).
func (reg *registry) listMembers(ctx context.Context, accountID string, learn func(string, ...cloudflare.Member) bool) (*listing, error) {
	l := &listing{}
	err := reg.cf.ListMembersPages(ctx, accountID, l.start, func(ms []cloudflare.Member) {
		learn(accountID, ms...)
		l.page(ms)
	})
	if err != nil {
		return nil, err
	}
	if len(l.unnamed) > 0 {
		led, err := reg.state.Ledger(accountID)
		if err != nil {
			return nil, fmt.Errorf("read the ledger: %w", err)
		}
		// An update's intent holds no member id (isIntent): the member
		// cache kept the member's, and an intent whose member is not
		// taken in here would be settled as gone.
		var cached map[string]store.CachedMember
		for _, e := range led {
			if isIntent(e) {
				if cached, err = reg.state.CachedMembers(accountID); err != nil {
					return nil, fmt.Errorf("read the member cache: %w", err)
				}
				break
			}
		}
		if left := l.adopt(led, cached); len(left) > 0 {
			reg.log.Warn("members listed without an email are left alone: no identity matches them", "account", reg.result.AccountNames[accountID],
				"count", len(left), "member_ids", left[:min(len(left), 10)])
		}
	}
	return l, nil
}

// adopt takes in each member listed without a usable email whose id the
// ledger holds, under the ledger's email: scimflare created it, and by
// its id it can still be changed and removed. Left out, an owned member
// would look gone (ownership dropped after a second listing: a leaver
// keeping access); kept as it was, its empty email failed the member
// cache's write and with it every full run. It returns the ids of the
// others, which nothing plans, caches or removes: no identity matches
// them, and removing an unknown member could lock someone out. An intent
// (no member id) is matched by the id the member cache keeps for its
// email (an update's intent keeps the member there as it was).
func (l *listing) adopt(led map[string]store.LedgerEntry, cached map[string]store.CachedMember) (left []string) {
	for k, e := range led {
		id := e.MemberID
		if id == "" {
			if c, ok := cached[k]; ok && identity.Key(c.Email) == identity.Key(e.Email) {
				id = c.MemberID
			}
		}
		m, ok := l.unnamed[id]
		if !ok || id == "" {
			continue
		}
		key := identity.Key(e.Email)
		if l.actual.Has(key) {
			continue // the email is listed already, by another member
		}
		l.order = append(l.order, l.actual.Put(key, plan.Actual{MemberID: m.ID, Email: e.Email, Status: m.Status, Keys: keysOf(m)}))
		delete(l.unnamed, id)
	}
	for id := range l.unnamed {
		left = append(left, id)
	}
	slices.Sort(left)
	return left
}

func actualFromCache(cached map[string]store.CachedMember) *plan.Actuals {
	out := plan.NewActuals(len(cached))
	for _, m := range cached {
		out.Set(identity.Key(m.Email), cachedActual(m))
	}
	return out
}

// cachedActual is a member as the member cache keeps it.
func cachedActual(m store.CachedMember) plan.Actual {
	return plan.Actual{MemberID: m.MemberID, Email: m.Email, Status: m.Status, Keys: m.Keys}
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
func (reg *registry) confirmAbsent(ctx context.Context, a mapping.Account, rd *accountRead, absent []store.LedgerEntry) error {
	slices.SortFunc(absent, func(x, y store.LedgerEntry) int { return strings.Compare(identity.Key(x.Email), identity.Key(y.Email)) })
	asked := 0
	for _, e := range absent {
		if !e.MissingSince.IsZero() {
			rd.gone = append(rd.gone, e)
			continue
		}
		if asked < maxConfirm {
			asked++
			m, err := reg.cf.GetMember(ctx, a.ID, e.MemberID)
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
		e.MissingSince = reg.now
		rd.marks = append(rd.marks, e)
		rd.ledger.Set(identity.Key(e.Email), planEntry(e))
	}
	return nil
}

// errIncompleteListing marks a listing that lacked a member Cloudflare
// still has.
var errIncompleteListing = errors.New("incomplete member listing")

// mark records in the ledger which owned members the listing lacked for
// the first time, and which are listed again.
func (reg *registry) mark(account string, marks []store.LedgerEntry) error {
	if len(marks) == 0 {
		return nil
	}
	if err := reg.state.Commit(store.SyncCommit{PutLedger: marks}); err != nil {
		return fmt.Errorf("record which members the listing of account %s lacked: %w", account, err)
	}
	for _, e := range marks {
		if !e.MissingSince.IsZero() {
			reg.log.Warn("a member scimflare granted access is missing from a complete listing; ownership is kept until a second listing confirms it",
				"account", account, "email", e.Email, "member_id", e.MemberID)
		}
	}
	return nil
}

// memberGone drops the ledger entry of a member Cloudflare no longer has
// (someone removed it by hand): scimflare owns nothing there any more.
func (reg *registry) memberGone(e store.LedgerEntry) error {
	c := goneCommit(e, reg.req.actor, reg.now, reg.result.Names)
	if err := reg.state.Commit(c); err != nil {
		return fmt.Errorf("forget gone member %s in account %s: %w", e.Email, e.AccountID, err)
	}
	reg.log.Warn("member removed outside scimflare", "account", reg.result.AccountNames[e.AccountID], "email", e.Email)
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
			Before: mapping.KeyNames(e.Managed, names),
			Reason: "member " + e.MemberID + " no longer exists in Cloudflare; scimflare forgets what it granted there",
		}},
	}
}

// Read reads one account before planning: the ledger, Cloudflare's
// members (listed in a full run, from the member cache otherwise), the
// owned members a listing lacked, and the intents the listing settles.
func (reg *registry) Read(ctx context.Context, a mapping.Account) (accountRead, error) {
	if rd, ok, err := reg.readScoped(a); ok || err != nil {
		return rd, err
	}
	var rd accountRead
	led, err := reg.state.Ledger(a.ID)
	if err != nil {
		return rd, fmt.Errorf("read the ledger of account %s: %w", a.Name, err)
	}
	list := reg.cf != nil && (reg.req.kind == fullRun || reg.req.live)
	if !list {
		// A targeted run against a cache never filled would miss
		// removals; list instead.
		at, err := reg.state.MemberCacheScannedAt(a.ID)
		if err != nil {
			return rd, fmt.Errorf("read the member cache of account %s: %w", a.Name, err)
		}
		list = reg.cf != nil && at.IsZero()
		rd.scannedAt = at
	}
	if list {
		lctx := ctx
		if reg.req.kind == targetedRun || reg.req.kind == expiryRun {
			// A cache never filled: the listing is the urgent run's own
			// read, not a full run's; it may use the budget's reserve.
			lctx = cloudflare.Urgent(ctx)
		}
		l, err := reg.listMembers(lctx, a.ID, reg.legacy.learn)
		if err != nil {
			return rd, fmt.Errorf("list members of account %s: %w", a.Name, err)
		}
		rd.fresh = true
		rd.actual, rd.listed = l.actual, l.order
	} else {
		cached, err := reg.state.CachedMembers(a.ID)
		if err != nil {
			return rd, fmt.Errorf("read the member cache of account %s: %w", a.Name, err)
		}
		if reg.cf == nil && len(cached) > 0 {
			// Without a client names stand for themselves, but the cache
			// holds Cloudflare's ids: every role would look both missing
			// and foreign.
			return rd, fmt.Errorf("%w: the member list of account %s holds Cloudflare role ids that only the API token can name", ErrNeedToken, a.Name)
		}
		rd.actual = actualFromCache(cached)
	}
	rd.ledger = plan.NewLedgerBeside(rd.actual, len(led))
	var intents, absent []store.LedgerEntry
	for _, e := range led {
		key := identity.Key(e.Email)
		if rd.fresh && isIntent(e) {
			intents = append(intents, e)
			continue
		}
		present := rd.actual.Has(key)
		switch {
		case rd.fresh && !present:
			absent = append(absent, e)
			continue
		case rd.fresh && !e.MissingSince.IsZero():
			e.MissingSince = time.Time{}
			rd.marks = append(rd.marks, e)
		}
		// Beside the member list: the table keeps the member's key and
		// id once for both.
		rd.ledger.Set(key, planEntry(e))
	}
	if err := reg.confirmAbsent(ctx, a, &rd, absent); err != nil {
		return rd, err
	}
	if len(intents) == 0 {
		return rd, nil
	}
	// The intent's own commit left each member in the cache as it was just
	// before the write.
	cached, err := reg.state.CachedMembers(a.ID)
	if err != nil {
		return rd, fmt.Errorf("read the member cache of account %s: %w", a.Name, err)
	}
	before := actualFromCache(cached)
	for _, e := range intents {
		key := identity.Key(e.Email)
		entry, settled := reg.settleIntent(&rd.settle, a.ID, e.Email, planEntry(e), lookup(before, key), lookup(rd.actual, key))
		if entry != nil {
			rd.ledger.Set(key, *entry)
		}
		if settled != nil {
			rd.settled = append(rd.settled, *settled)
		}
	}
	return rd, nil
}

// readScoped reads what a targeted run plans against the member cache —
// the ledger entries and cached members of the emails in scope, and the
// account's count of managed keys — without reading the rest of the
// account, so the run costs the change and not the directory. ok is false
// where the whole account is needed, and Read reads it as before:
// a run that lists (a full or live run, a cache never filled), one
// without a Cloudflare client (it must know whether the cache holds role
// ids at all), and an account where a member in scope holds the Super
// Administrator role (the last-super-admin policy counts every holder).
func (reg *registry) readScoped(a mapping.Account) (rd accountRead, ok bool, err error) {
	if reg.req.kind != targetedRun || reg.scope == nil || reg.req.live || reg.cf == nil {
		return rd, false, nil
	}
	addrs := make([]string, 0, len(reg.scope))
	for key := range reg.scope {
		addrs = append(addrs, identity.Addr(key))
	}
	got, err := reg.state.AccountEmails(a.ID, addrs)
	if err != nil {
		return rd, false, fmt.Errorf("read the ledger and member cache of account %s: %w", a.Name, err)
	}
	if got.ScannedAt.IsZero() {
		return rd, false, nil
	}
	rd = accountRead{
		scannedAt: got.ScannedAt, partial: true, managed: got.ManagedGrants,
		ledger: plan.NewLedger(len(got.Ledger)),
		actual: plan.NewActuals(len(got.Cached)),
	}
	// Keyed as a whole read keys them; store.Fold is a coarser fold than
	// identity.Key, so an entry outside the scope may come along: drop it.
	for _, m := range got.Cached {
		if key := identity.Key(m.Email); reg.scope[key] {
			rd.actual.Set(key, cachedActual(m))
		}
	}
	if holdsSuperAdmin(rd.actual, reg.planner.mayBeSuperAdmin(a)) {
		return accountRead{}, false, nil
	}
	for _, e := range got.Ledger {
		if key := identity.Key(e.Email); reg.scope[key] {
			rd.ledger.Set(key, planEntry(e))
		}
	}
	return rd, true, nil
}

// holdsSuperAdmin reports whether a member of actual holds a key isSuper
// says makes its holder a Super Administrator.
func holdsSuperAdmin(actual *plan.Actuals, isSuper func(string) bool) bool {
	for _, m := range actual.All() {
		if slices.ContainsFunc(m.Keys, isSuper) {
			return true
		}
	}
	return false
}

// mayBeSuperAdmin is, before the account's plan input exists, whether a
// key may make its holder a Super Administrator: the role or the
// permission group on the account scope, and — on an account granted
// policies — any legacy role, whose name the run may not know yet.
func (rn *run) mayBeSuperAdmin(a mapping.Account) func(string) bool {
	return func(key string) bool {
		if rn.res.IsSuperAdmin(a.ID, key) {
			return true
		}
		return mapping.IsRoleKey(key) && !a.KeepsRoles()
	}
}

// recordReads records what fresh listings showed, whatever the mode:
// settled intents, the member cache, members missing once, members gone.
// The member cache is written from the run's member map: nothing may
// change that map between the listing and here (Apply, which does, runs
// after), or the cache would record what Cloudflare never listed.
func (reg *registry) recordReads() error {
	for i, a := range reg.accounts {
		rd := reg.reads[i]
		if !rd.fresh {
			continue
		}
		// Before the cache is replaced: it holds what settling compares.
		if err := reg.commitSettled(rd.settle, rd.settled); err != nil {
			return fmt.Errorf("record the outcome of unconfirmed writes in account %s: %w", a.Name, err)
		}
		if err := reg.state.ReplaceMemberCache(a.ID, cache(a.ID, rd.actual, rd.listed), reg.now); err != nil {
			return fmt.Errorf("store the member list of account %s: %w", a.Name, err)
		}
		reg.refreshed[a.ID] = true
		if err := reg.mark(a.Name, rd.marks); err != nil {
			return err
		}
		for _, e := range rd.gone {
			if err := reg.memberGone(e); err != nil {
				return err
			}
		}
	}
	return nil
}
