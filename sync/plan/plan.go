package plan

import (
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	gosync "sync"
	"sync/atomic"
	"time"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/sync/identity"
)

// Actual is a member as Cloudflare reports it. A pending invite is a member.
type Actual struct {
	MemberID, Email, Status string
	Keys                    []string
}

// LedgerEntry is scimflare's record of one member: whether it invited the
// member, the keys it granted (Managed), and the keys the member already
// held when scimflare adopted it (Found), which scimflare never touches.
type LedgerEntry struct {
	MemberID string
	Created  bool
	Managed  []string
	Found    []string
}

// AccountInput is everything Plan needs about one account.
type AccountInput struct {
	ID, Name string
	Desired  *Wanted // by identity.Key(email)
	Expired  []Expired
	// Actual holds every member of the account by identity.Key(email): a
	// full run's fresh listing, or the member cache of the last one (with
	// the members a targeted run read since).
	Actual *Actuals
	Ledger *Ledger // lower(email) ->
	// ManagedGrants counts the managed keys in the whole account before the
	// run: the guard's percent base.
	ManagedGrants int
	// Scope is nil for a full run; else only these emails (identity.Key)
	// are planned.
	Scope         map[string]bool
	SuperAdminKey string
	// SuperAdmin, when set, reports whether a key makes its holder a Super
	// Administrator of the account (the role, or the permission group on
	// the account scope); nil means the key SuperAdminKey only.
	SuperAdmin func(key string) bool
	// Equivalent is set on an account granted policies (grant_shape
	// policies): it maps a legacy role key to the policy key that grants
	// the same access, the role's permission group on the account scope.
	// A member holding such roles is converted by one write that replaces
	// them with their equivalents (MigrateShape). A role key it lacks is
	// planned as it is.
	Equivalent map[string]string
	// KeepMember is set on a user-groups account (accounts[].model:
	// user_groups): the emails (identity.Key) a user group of the account
	// wants, each with why. Such a person is invited, with no grants of its
	// own, when not yet a member, and is never removed for holding nothing
	// of its own. A member scimflare created that holds nothing and is not
	// kept is removed.
	KeepMember map[string]string
	// UserGroups are the account's owned user groups by id, with the keys
	// each grants and its members: the last-Super-Administrator rule
	// counts access held through them.
	UserGroups map[string]HeldGroup
}

// IsSuperAdmin reports whether key makes its holder a Super Administrator
// of the account, a legacy role through its equivalent policy included.
func (a AccountInput) IsSuperAdmin(key string) bool {
	if a.SuperAdmin == nil {
		return key != "" && key == a.SuperAdminKey
	}
	if a.SuperAdmin(key) {
		return true
	}
	eq, ok := a.Equivalent[key]
	return ok && a.SuperAdmin(eq)
}

// RemovesSuperAdmin reports whether ch leaves its member without any key
// that makes it a Super Administrator of the account while it had one.
func (a AccountInput) RemovesSuperAdmin(ch Change) bool {
	return slices.ContainsFunc(ch.Before, a.IsSuperAdmin) && !slices.ContainsFunc(ch.After, a.IsSuperAdmin)
}

// Kind of change.
type Kind string

// Kinds of change, as plan --json prints them.
const (
	AddMember    Kind = "add_member"
	UpdateRoles  Kind = "update_roles"
	RemoveMember Kind = "remove_member"
	ExpireGrant  Kind = "expire_grant"
	// MigrateShape replaces a member's legacy roles with the equivalent
	// policies in one write: the same access, in the shape Cloudflare keeps.
	// It is no removal.
	MigrateShape Kind = "migrate_shape"
)

// API calls a change needs.
const (
	OpCreate = "create"
	OpUpdate = "update"
	OpDelete = "delete"
)

// Change is one member's change in one account. Before and After are the
// member's whole key sets, sorted (nil when empty). Added are keys scimflare
// grants; Removed are managed keys it takes away; RemovedUnmanaged are keys
// it did not grant that go only because sync.unmanaged is remove. NewLedger
// is the ledger entry to store once the change is applied: for add_member
// its MemberID is the one Cloudflare returns, and after a member is removed
// the entry is deleted.
type Change struct {
	Kind             Kind
	AccountID        string
	Email, MemberID  string
	Before, After    []string
	Reason           string
	Added, Removed   []string
	RemovedUnmanaged []string
	Op               string
	Privileged       bool
	NewLedger        LedgerEntry

	// The halves of Reason, so a guard that splits the change can explain
	// each part.
	addReason, removeReason string
	// converted is Before with legacy roles as their equivalent policies,
	// set when the change migrates the member's shape: a guard that
	// splits it keeps the conversion in the part it lets through.
	converted []string

	// stillHeld are Removed keys the member keeps through an owned user
	// group: not removals for the guard.
	stillHeld []string

	// Group is set on the user-group kinds (usergroups.go): the group the
	// change writes. Before and After are then the group's policies as
	// the member (or, for the group's own kinds, the group) holds them.
	Group *GroupRef
}

// Converts reports whether the change replaces legacy roles with their
// equivalent policies (alone, as MigrateShape, or with other changes).
func (c Change) Converts() bool { return c.converted != nil }

// Removals counts the keys this change takes away, the guard's unit; an
// own key the member keeps through an owned user group is not one. A
// policy a user group drops is taken from every member of the group at
// once, so it counts once per member (Group.Reach): a mapping change that
// takes a role from 500 people is 500 removals in either access model, and
// the guard never lets it through as "one write".
func (c Change) Removals() int {
	n := len(c.Removed) - len(c.stillHeld) + len(c.RemovedUnmanaged)
	if c.Kind == SetGroupPolicies && c.Group != nil && c.Group.Reach > 1 {
		n *= c.Group.Reach
	}
	return n
}

// Drift is a key on a Cloudflare member that scimflare neither granted nor
// found at adoption.
type Drift struct{ AccountID, Email, Key string }

// Withheld is a change a policy held back, which policy (By), and why.
type Withheld struct {
	Change Change
	By     string // WithheldByProtected, WithheldByLastSuperAdmin or WithheldByGuard
	Why    string
}

// The policies that withhold changes.
const (
	WithheldByProtected      = "protected"
	WithheldByLastSuperAdmin = "last_super_admin"
	WithheldByGuard          = "guard"
)

// Changes is a plan. Accounts has one entry per input account, in input
// order, even when it has no change. Tripped lists the accounts whose
// removal guard tripped (also when Force let the removals through, so the
// override can be audited).
type Changes struct {
	Accounts []AccountChanges
	Withheld []Withheld
	Drift    []Drift
	Tripped  []string
	// Records are ledger entries to rewrite although Cloudflare needs no
	// change: the ledger names keys the member no longer holds, or another
	// member id. Only meaningful when Actual is a fresh listing; policies
	// pass them through.
	Records []Record
	// Identity lists the users the identity rule grants nothing and the
	// emails several users share (Desired.Problems); reported, not applied.
	Identity []IdentityProblem
	// GroupConflicts are mappings of user-groups accounts that get no
	// group because a group scimflare does not own has its name.
	GroupConflicts []GroupConflict
}

// Record is the ledger entry one member should have, by account and the
// email as shown.
type Record struct {
	AccountID, Email string
	Entry            LedgerEntry
}

// AccountChanges is one account's changes, ordered by email.
type AccountChanges struct {
	ID, Name string
	Changes  []Change
}

// HasChanges reports whether applying the plan would call Cloudflare.
// Withheld changes and drift do not count.
func (c *Changes) HasChanges() bool {
	for _, a := range c.Accounts {
		if len(a.Changes) > 0 {
			return true
		}
	}
	return false
}

// Plan diffs desired against actual under the ownership ledger. It is the
// pure diff: policies and guards are applied afterwards. With
// unmanagedRemove, keys and members scimflare did not grant are removed
// rather than only reported.
func Plan(in []AccountInput, unmanagedRemove bool) *Changes {
	c := &Changes{}
	for _, a := range in {
		p := planAccount(a, unmanagedRemove)
		c.Accounts = append(c.Accounts, p.changes)
		c.Drift = append(c.Drift, p.drift...)
		c.Records = append(c.Records, p.records...)
	}
	return c
}

// accountPlan is one account's part of a plan.
type accountPlan struct {
	changes AccountChanges
	drift   []Drift
	records []Record
}

// planAccount diffs one account (see Plan).
func planAccount(a AccountInput, unmanagedRemove bool) accountPlan {
	return planAccountWith(a, unmanagedRemove, planWorkers(a))
}

// planAccountWith is planAccount on workers goroutines.
func planAccountWith(a AccountInput, unmanagedRemove bool, workers int) accountPlan {
	ac := AccountChanges{ID: a.ID, Name: a.Name}
	var p accountPlan
	expired := map[string]map[string]Expired{}
	for _, e := range a.Expired {
		lower := identity.Key(e.Email)
		if expired[lower] == nil {
			expired[lower] = map[string]Expired{}
		}
		expired[lower][e.Key] = e
	}
	// Every email is planned, in any order; only those with something
	// to say are sorted (a full plan of a million members sorted them
	// all, for the 1% that change).
	// One list per worker of eachEmail; sorted into one below.
	outs := make([][]planned, workers)
	eachEmail(a, len(outs), func(w int, m inputs) {
		email := m.email
		ch, drift, rec := planMember(a, m, expired[email], unmanagedRemove)
		if ch != nil && ch.Kind != RemoveMember && len(ch.Removed) > 0 && len(a.UserGroups) > 0 {
			// An own key the member also holds through an owned group
			// is no access lost (a group that drops it, or a removal
			// from the group, counts it there).
			via := setOf(a.heldThroughGroups(email))
			for _, k := range ch.Removed {
				if via[k] {
					ch.stillHeld = append(ch.stillHeld, k)
				}
			}
		}
		if ch != nil || drift != nil || rec != nil {
			outs[w] = append(outs[w], planned{email, ch, drift, rec})
		}
	})
	out := slices.Concat(outs...)
	slices.SortFunc(out, func(x, y planned) int { return strings.Compare(x.email, y.email) })
	n := 0
	for _, p := range out {
		if p.ch != nil {
			n++
		}
	}
	// Sized once: a first run at a million members plans a million
	// additions, and a Change is ~400 bytes to copy on every growth.
	if n > 0 {
		ac.Changes = make([]Change, 0, n)
	}
	for _, o := range out {
		for _, k := range o.drift {
			p.drift = append(p.drift, Drift{AccountID: a.ID, Email: displayEmail(a, o.email), Key: k})
		}
		if o.ch != nil {
			ac.Changes = append(ac.Changes, *o.ch)
		}
		if o.rec != nil {
			p.records = append(p.records, Record{AccountID: a.ID, Email: displayEmail(a, o.email), Entry: *o.rec})
		}
	}
	p.changes = ac
	return p
}

// planned is one email's plan: its change, drift and record.
type planned struct {
	email string
	ch    *Change
	drift []string
	rec   *LedgerEntry
}

// inputs are one email as an account's inputs have it.
type inputs struct {
	email    string
	d        DesiredMember
	wanted   bool // d is set: a member of the desired state
	act      Actual
	present  bool // in Cloudflare
	led      LedgerEntry
	inLedger bool
}

// parallelPlanMin is the number of desired members from which an account
// is planned on several cores: below it a goroutine costs more than it
// saves (a targeted run plans a handful).
const parallelPlanMin = 10_000

// planWorkers is how many goroutines plan a's desired members.
func planWorkers(a AccountInput) int {
	if a.Scope != nil || a.Desired.Len() < parallelPlanMin {
		return 1
	}
	return max(1, runtime.GOMAXPROCS(0))
}

// eachEmail calls fn once for every email a plans — the scope, or every
// email desired, in Cloudflare or in the ledger — in no set order, from
// up to workers goroutines at once (w, below workers, tells them apart).
// The union is taken by lookups in the maps there are: no set map, which
// at a million members is a large table grown step by step; and each email
// is looked up once per map (twice was a full plan's biggest cost after the
// build: random reads in three maps of a million). Those lookups are most
// of a plan, and they only read: an account of a million members spreads
// them over the cores.
func eachEmail(a AccountInput, workers int, fn func(w int, m inputs)) {
	if a.Scope != nil {
		for e := range a.Scope {
			m := inputs{email: e}
			m.d, m.wanted = a.Desired.Get(e)
			m.act, m.present, m.led, m.inLedger = lookup(a.Actual, a.Ledger, e)
			fn(0, m)
		}
		return
	}
	// Counted as they are met, so that a map whose every email was met
	// already is not walked again (the steady state: every member is
	// wanted and recorded).
	actualMet, ledgerMet := eachDesired(a, workers, fn)
	if actualMet < a.Actual.Len() {
		for e, act := range a.Actual.All() {
			if !a.Desired.Has(e) {
				m := inputs{email: e, act: act, present: true}
				m.led, m.inLedger = a.Ledger.Get(e)
				ledgerMet += b2i(m.inLedger)
				fn(0, m)
			}
		}
	}
	if ledgerMet < a.Ledger.Len() {
		for e, led := range a.Ledger.All() {
			desired := a.Desired.Has(e)
			if actual := a.Actual.Has(e); !desired && !actual {
				fn(0, inputs{email: e, led: led, inLedger: true})
			}
		}
	}
}

// eachDesired is eachEmail's walk of the desired members; it counts those
// met in Cloudflare and in the ledger.
func eachDesired(a AccountInput, workers int, fn func(w int, m inputs)) (actualMet, ledgerMet int) {
	visit := func(w int, e string, d DesiredMember) (present, inLedger bool) {
		m := inputs{email: e, d: d, wanted: true}
		m.act, m.present, m.led, m.inLedger = lookup(a.Actual, a.Ledger, e)
		fn(w, m)
		return m.present, m.inLedger
	}
	if workers <= 1 {
		for e, d := range a.Desired.All() {
			p, l := visit(0, e, d)
			actualMet += b2i(p)
			ledgerMet += b2i(l)
		}
		return actualMet, ledgerMet
	}
	// The rows are handed out in batches by number; the workers look each
	// member up and plan it.
	const batch = 1024
	var next atomic.Int64
	rows := a.Desired.Len()
	met := make([][2]int, workers)
	var wg gosync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				lo := int(next.Add(batch)) - batch
				if lo >= rows {
					return
				}
				for r := lo; r < min(rows, lo+batch); r++ {
					e, d := a.Desired.at(r)
					p, l := visit(w, e, d)
					met[w][0] += b2i(p)
					met[w][1] += b2i(l)
				}
			}
		})
	}
	wg.Wait()
	for _, m := range met {
		actualMet += m[0]
		ledgerMet += m[1]
	}
	return actualMet, ledgerMet
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func displayEmail(a AccountInput, lower string) string {
	if act, ok := a.Actual.Get(lower); ok && act.Email != "" {
		return act.Email
	}
	if d, ok := a.Desired.Get(lower); ok && d.Email != "" {
		return d.Email
	}
	return lower
}

type set map[string]bool

func setOf(keys ...[]string) set {
	s := set{}
	for _, ks := range keys {
		for _, k := range ks {
			s[k] = true
		}
	}
	return s
}

// sorted lists the set in order; an empty set is nil, so equal plans
// compare equal however they were reached.
func (s set) sorted() []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(s))
}

func (s set) minus(o set) set {
	r := set{}
	for k := range s {
		if !o[k] {
			r[k] = true
		}
	}
	return r
}

// sameLedger compares two entries with their key lists as sets.
func sameLedger(a, b LedgerEntry) bool {
	return a.MemberID == b.MemberID && a.Created == b.Created &&
		sameKeys(a.Managed, b.Managed) && sameKeys(a.Found, b.Found)
}

// sameKeys compares key lists as sets; equal lists (the usual case: both
// sorted, as the ledger stores them) need no set built.
func sameKeys(a, b []string) bool {
	return slices.Equal(a, b) || slices.Equal(setOf(a).sorted(), setOf(b).sorted())
}

// planMember plans one email: the change Cloudflare needs (nil: none), the
// drift found, and, when Cloudflare needs nothing but the ledger is not
// what the member shows, the entry to record.
func planMember(a AccountInput, m inputs, expired map[string]Expired, unmanagedRemove bool) (*Change, []string, *LedgerEntry) {
	email, d := m.email, m.d
	reasons := d.Keys
	act, present := m.act, m.present
	led, inLedger := m.led, m.inLedger
	if present && inLedger && unchanged(act, led, reasons) {
		return nil, nil, nil
	}
	stored := led  // as the state holds it, legacy role keys included
	shown := email // displayEmail, from what m holds
	if present && act.Email != "" {
		shown = act.Email
	} else if m.wanted && d.Email != "" {
		shown = d.Email
	}

	keep, kept := a.KeepMember[email]
	if !present {
		keys := reasons.KeyList() // sorted: no set needed
		if len(keys) == 0 && kept {
			return &Change{
				Kind: AddMember, Op: OpCreate, AccountID: a.ID, Email: shown,
				Reason: keep, NewLedger: LedgerEntry{Created: true},
			}, nil, nil
		}
		if len(keys) == 0 {
			return nil, nil, nil
		}
		return &Change{
			Kind: AddMember, Op: OpCreate, AccountID: a.ID, Email: shown,
			After: keys, Added: keys, Privileged: true,
			Reason:    describeAdded(keys, reasons),
			NewLedger: LedgerEntry{Created: true, Managed: keys},
		}, nil, nil
	}

	var desired set
	if m.wanted {
		desired = set{}
		for _, w := range d.Keys {
			if len(w.Reasons) > 0 {
				desired[w.Key] = true
			}
		}
	}
	current := setOf(act.Keys)
	// On a policies account, legacy roles are planned as their equivalent
	// policies: keeping a role is keeping its policy, so converting one is
	// neither an addition nor a removal.
	migrating := false
	if a.Equivalent != nil && (inLedger || len(desired) > 0) {
		// Only a member scimflare manages is converted; another is
		// reported as found.
		translated, changed, whole := translate(act.Keys, a.Equivalent)
		if whole {
			migrating, current = changed, setOf(translated)
			if inLedger {
				led.Managed, _, _ = translate(led.Managed, a.Equivalent)
				led.Found, _, _ = translate(led.Found, a.Equivalent)
			}
		}
	}
	if !inLedger {
		if len(desired) == 0 && !kept {
			// Neither granted nor wanted by scimflare: report, and remove
			// only when told to.
			drift := current.sorted()
			if !unmanagedRemove || drift == nil {
				return nil, drift, nil
			}
			return &Change{
				Kind: RemoveMember, Op: OpDelete, AccountID: a.ID, Email: shown, MemberID: act.MemberID,
				Before: drift, RemovedUnmanaged: drift,
				Reason: unmanagedReason, removeReason: unmanagedReason,
			}, drift, nil
		}
		// Adopt: what is there now is Found and stays untouched.
		led = LedgerEntry{MemberID: act.MemberID, Found: current.sorted()}
	}
	managed, found := setOf(led.Managed), setOf(led.Found)
	drift := current.minus(managed).minus(found).minus(desired)

	target := set{}
	for k := range current {
		// A deny policy only ever narrows access: removing it as drift would
		// widen what the member may do, so it stays even with unmanagedRemove.
		if found[k] || (drift[k] && (!unmanagedRemove || mapping.IsDenyKey(k))) {
			target[k] = true
		}
	}
	for k := range desired {
		target[k] = true
	}
	// Managed keys no longer desired drop out of target by omission.

	added := target.minus(current)
	gone := current.minus(target)
	var removed, removedUnmanaged []string
	for _, k := range gone.sorted() {
		if drift[k] {
			removedUnmanaged = append(removedUnmanaged, k)
		} else {
			removed = append(removed, k)
		}
	}
	newLedger := LedgerEntry{
		MemberID: act.MemberID,
		Created:  led.Created,
		Managed:  desired.minus(found).sorted(),
		Found:    found.minus(found.minus(current)).sorted(),
	}
	if migrating && len(target) > 0 {
		// The write replaces the roles with their policies; what else
		// changes rides along in the same write.
		ch := &Change{
			AccountID: a.ID, Email: shown, MemberID: act.MemberID,
			Before: setOf(act.Keys).sorted(), After: target.sorted(),
			Added: added.sorted(), Removed: removed, RemovedUnmanaged: removedUnmanaged,
			Privileged: len(added) > 0, NewLedger: newLedger,
			Kind: MigrateShape, Op: OpUpdate, converted: current.sorted(),
		}
		if len(added) > 0 || len(gone) > 0 {
			ch.Kind = UpdateRoles
		}
		expiredHere := map[string]Expired{}
		for _, k := range removed {
			if e, ok := expired[k]; ok {
				expiredHere[k] = e
			}
		}
		if len(expiredHere) > 0 {
			ch.Kind = ExpireGrant
		}
		ch.addReason = joinReason(migrateReason, describeAdded(ch.Added, reasons))
		ch.removeReason = describeRemoved(ch.Removed, expiredHere)
		if len(removedUnmanaged) > 0 {
			ch.removeReason = joinReason(ch.removeReason, unmanagedReason)
		}
		ch.Reason = joinReason(ch.addReason, ch.removeReason)
		return ch, drift.sorted(), nil
	}
	if a.KeepMember != nil && !kept && inLedger && led.Created && len(target) == 0 && len(current) == 0 {
		// A member scimflare invited for its user groups, wanted by none
		// of them now and holding nothing of its own: removed, which also
		// takes it out of every group.
		return &Change{
			Kind: RemoveMember, Op: OpDelete, AccountID: a.ID, Email: shown, MemberID: act.MemberID,
			Reason: "no longer in any user group or grant of the account", removeReason: "no longer in any user group or grant of the account",
		}, drift.sorted(), nil
	}
	if len(added) == 0 && len(gone) == 0 {
		// An adoption that adds nothing is not recorded: until scimflare
		// grants something, what the member holds stays unowned, and is
		// reported as drift once the email is no longer wanted. A ledger
		// that still names legacy roles the member no longer holds is
		// rewritten with their policies: once the roles are gone from the
		// account nothing could translate them, and a managed policy filed
		// under a role key would read as drift, which a leaver keeps.
		if !inLedger || sameLedger(stored, newLedger) {
			return nil, drift.sorted(), nil
		}
		return nil, drift.sorted(), &newLedger
	}
	ch := &Change{
		AccountID: a.ID, Email: shown, MemberID: act.MemberID,
		Before: setOf(act.Keys).sorted(), After: target.sorted(),
		Added: added.sorted(), Removed: removed, RemovedUnmanaged: removedUnmanaged,
		Privileged: len(added) > 0, NewLedger: newLedger,
	}
	expiredHere := map[string]Expired{}
	for _, k := range removed {
		if e, ok := expired[k]; ok {
			expiredHere[k] = e
		}
	}
	switch {
	case len(target) == 0 && kept:
		// Its user groups still want it: it stays, holding nothing of its
		// own.
		ch.Kind, ch.Op = UpdateRoles, OpUpdate
	case len(target) == 0:
		ch.Kind, ch.Op = RemoveMember, OpDelete
		ch.NewLedger = LedgerEntry{}
	default:
		ch.Kind, ch.Op = UpdateRoles, OpUpdate
	}
	if len(expiredHere) > 0 {
		ch.Kind = ExpireGrant
	}
	ch.addReason = describeAdded(ch.Added, reasons)
	ch.removeReason = describeRemoved(ch.Removed, expiredHere)
	if len(removedUnmanaged) > 0 {
		ch.removeReason = joinReason(ch.removeReason, unmanagedReason)
	}
	ch.Reason = joinReason(ch.addReason, ch.removeReason)
	return ch, drift.sorted(), nil
}

// unchanged reports, without building a set, the common case of a full
// plan: a member scimflare owns who holds exactly the keys it granted (at
// least one), found none, and is wanted with exactly those. planMember's
// general path answers the same for it (no change, no drift, no record),
// at the price of some eight small maps per member. A member holding
// nothing of its own is never this case: in user-groups mode that is every
// member, and one that nothing wants any more must go.
func unchanged(act Actual, led LedgerEntry, want Wants) bool {
	if len(act.Keys) == 0 || len(led.Found) != 0 || led.MemberID != act.MemberID || len(act.Keys) != len(want) ||
		!slices.Equal(act.Keys, led.Managed) {
		return false
	}
	// want is in key order without repeats: equal keys mean equal sets.
	for i, w := range want {
		if w.Key != act.Keys[i] || len(w.Reasons) == 0 {
			return false
		}
	}
	return true
}

const unmanagedReason = "not granted by scimflare (sync.unmanaged: remove)"

const migrateReason = "legacy roles replaced by the equivalent policies (grant_shape: policies)"

// translate replaces each key that has an equivalent by it, and reports
// whether any did. Keys are translated all or none: whole is false, and
// keys come back as they were, when a role has no equivalent (a retired
// role), since one write cannot hold a role and a policy.
func translate(keys []string, eq map[string]string) (out []string, changed, whole bool) {
	out = make([]string, 0, len(keys))
	for _, k := range keys {
		if e, ok := eq[k]; ok {
			k, changed = e, true
		} else if mapping.IsRoleKey(k) {
			return keys, false, false
		}
		out = append(out, k)
	}
	if !changed {
		return keys, false, true
	}
	return setOf(out).sorted(), true, true
}

func joinReason(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// describeAdded says why keys arrive: every distinct reason, in key order.
func describeAdded(added []string, reasons Wants) string {
	var parts []string
	for _, k := range added {
		for _, r := range reasons.Reasons(k) {
			if s := r.String(); !slices.Contains(parts, s) {
				parts = append(parts, s)
			}
		}
	}
	return strings.Join(parts, "; ")
}

// describeRemoved says why managed keys go.
func describeRemoved(removed []string, expired map[string]Expired) string {
	var parts []string
	for _, k := range removed {
		s := "no longer granted by any mapping or grant"
		if e, ok := expired[k]; ok {
			s = e.Reason.endedString()
		}
		if !slices.Contains(parts, s) {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "; ")
}

// String is the reason in words, for plans and audit.
func (r Reason) String() string {
	var s string
	switch r.Kind {
	case ReasonGrant:
		s = "temporary grant " + r.GrantID
	default:
		s = fmt.Sprintf("member of %s (mappings[%d])", strings.Join(r.Path, " > "), r.MappingIndex)
	}
	if !r.Expires.IsZero() {
		s += " until " + r.Expires.UTC().Format(time.RFC3339)
	}
	return s
}

func (r Reason) endedString() string {
	switch r.Kind {
	case ReasonGrant:
		return "temporary grant " + r.GrantID + " ended " + r.Expires.UTC().Format(time.RFC3339)
	default:
		return fmt.Sprintf("grant from %s (mappings[%d]) ended %s", r.Group, r.MappingIndex, r.Expires.UTC().Format(time.RFC3339))
	}
}
