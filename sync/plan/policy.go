package plan

import (
	"fmt"
	"slices"
	"time"

	"github.com/scimflare/scimflare/sync/identity"
)

// Policy holds back changes that must not happen, like external-dns's
// plan policies. Apply returns a new plan and leaves its argument as it
// was. Order matters: run Protected and LastSuperAdmin before the guard, so
// the guard counts only removals that could actually happen.
type Policy interface {
	Apply(*Changes) *Changes
}

// ApplyPolicies runs policies in order.
func ApplyPolicies(c *Changes, policies ...Policy) *Changes {
	for _, p := range policies {
		c = p.Apply(c)
	}
	return c
}

// Why texts for withheld changes.
const (
	WhyProtected      = "protected"
	WhyLastSuperAdmin = "last super administrator"
)

// shallow is a new plan sharing c's slices, each clipped so that an
// append to either copies: a policy that withholds nothing copies no
// change (a first full run at a million users plans a million additions,
// ~400 bytes each, and four policies copied them all).
func (c *Changes) shallow() *Changes {
	out := *c
	out.Withheld, out.Drift, out.Tripped = slices.Clip(c.Withheld), slices.Clip(c.Drift), slices.Clip(c.Tripped)
	out.Records, out.Identity, out.GroupConflicts = slices.Clip(c.Records), slices.Clip(c.Identity), slices.Clip(c.GroupConflicts)
	out.Accounts = make([]AccountChanges, len(c.Accounts))
	for i, a := range c.Accounts {
		a.Changes = slices.Clip(a.Changes)
		out.Accounts[i] = a
	}
	return &out
}

// filter keeps the changes keep accepts and withholds the rest with why,
// as policy by. An account's changes are copied only once one is
// withheld.
func (c *Changes) filter(by string, keep func(Change) (bool, string)) *Changes {
	out := c.shallow()
	for i := range out.Accounts {
		all := out.Accounts[i].Changes
		var kept []Change // nil while every change so far is kept
		for j, ch := range all {
			ok, why := keep(ch)
			switch {
			case !ok:
				if kept == nil {
					kept = append(make([]Change, 0, len(all)-1), all[:j]...)
				}
				out.Withheld = append(out.Withheld, Withheld{Change: ch, By: by, Why: why})
			case kept != nil:
				kept = append(kept, ch)
			}
		}
		if kept != nil {
			out.Accounts[i].Changes = slices.Clip(kept)
		}
		if len(out.Accounts[i].Changes) == 0 {
			out.Accounts[i].Changes = nil
		}
	}
	return out
}

type protectedPolicy map[string]bool

// ProtectedPolicy withholds every change to the given emails, whatever a
// mapping says: no key added, changed or removed.
func ProtectedPolicy(emails []string) Policy {
	p := protectedPolicy{}
	for _, e := range emails {
		p[identity.Key(e)] = true
	}
	return p
}

func (p protectedPolicy) Apply(c *Changes) *Changes {
	if len(p) == 0 {
		return c.shallow()
	}
	return c.filter(WithheldByProtected, func(ch Change) (bool, string) {
		return !p[identity.Key(ch.Email)], WhyProtected
	})
}

type lastSuperAdminPolicy struct {
	accounts map[string]*AccountInput   // account id ->
	holders  map[string]map[string]bool // account id -> lower emails
}

// LastSuperAdminPolicy withholds any change that would leave an account
// with no accepted member holding Super Administrator: the role
// (SuperAdminKey) or, with SuperAdmin set, the permission group on the
// account scope as a policy, a legacy role converted or not. Pending
// invites do not count as holders: they cannot log in to repair anything.
func LastSuperAdminPolicy(in []AccountInput) Policy {
	p := lastSuperAdminPolicy{accounts: map[string]*AccountInput{}, holders: map[string]map[string]bool{}}
	for _, a := range in {
		if a.SuperAdminKey == "" && a.SuperAdmin == nil {
			continue
		}
		p.accounts[a.ID] = &a
		h := map[string]bool{}
		for email, m := range a.Actual.All() {
			if m.Status != "pending" && (slices.ContainsFunc(m.Keys, a.IsSuperAdmin) ||
				len(a.UserGroups) > 0 && slices.ContainsFunc(a.heldThroughGroups(identity.Key(email)), a.IsSuperAdmin)) {
				h[identity.Key(email)] = true
			}
		}
		p.holders[a.ID] = h
	}
	return p
}

func (p lastSuperAdminPolicy) Apply(c *Changes) *Changes {
	// Holders shrink as changes are accepted, in plan order; additions are
	// not counted because they may fail to apply.
	left := map[string]map[string]bool{}
	for id, h := range p.holders {
		left[id] = map[string]bool{}
		for e := range h {
			left[id][e] = true
		}
	}
	return c.filter(WithheldByLastSuperAdmin, func(ch Change) (bool, string) {
		a, ok := p.accounts[ch.AccountID]
		if !ok {
			return true, ""
		}
		h := left[ch.AccountID]
		if ch.Kind == SetGroupPolicies && ch.Group != nil && a.RemovesSuperAdmin(ch) {
			// Every member holding it through the group loses it at once.
			losing := a.groupSuperAdmins(ch.Group.ID)
			others := 0
			for e := range h {
				if !slices.Contains(losing, e) {
					others++
				}
			}
			if others < 1 {
				return false, WhyLastSuperAdmin
			}
			for _, e := range losing {
				delete(h, e)
			}
			return true, ""
		}
		if ch.Kind != RemoveMember && !a.RemovesSuperAdmin(ch) {
			return true, "" // most changes: no key, no email to read
		}
		email := identity.Key(ch.Email)
		// A member removed from the account leaves its groups too.
		viaGroups := ch.Kind == RemoveMember && slices.ContainsFunc(a.heldThroughGroups(email), a.IsSuperAdmin)
		if !a.RemovesSuperAdmin(ch) && !viaGroups {
			return true, ""
		}
		others := len(h)
		if h[email] {
			others--
		}
		if others < 1 {
			return false, WhyLastSuperAdmin
		}
		delete(h, email)
		return true, ""
	})
}

// GuardPolicy holds back mass removals. When an account's removals (keys
// taken away, a removed member counting each of its keys) exceed
// MaxRemovals or MaxRemovalPercent of ManagedGrants[account], every removal
// in that account is withheld; a change that also adds keys keeps its
// additions. Force lets the removals through once; the account is still
// listed in Tripped.
//
// A negative limit is off. Zero means no removal at all is allowed, so the
// zero GuardPolicy is the safe one; the config loader supplies SPEC.md's
// defaults.
//
// The percent limit applies only to a run removing more than MinRemovals
// grants (sync.guards.min_removals): in a small account one or two leavers
// are already "over 20% of the managed grants", and withholding those
// removals is exactly the failure (a leaver keeping access) the guard
// exists to avoid. Mass removals are what it catches.
//
// Window, when set, bounds the account's removals over a rolling window
// (sync.guards.max_removals_per_window): the removals this run would make
// plus those already made in the window. It catches a mass removal
// trickled in over many small runs, which no per-run limit sees.
//
// Latched lists accounts whose guard tripped in an earlier run and was not
// cleared by a forced apply: SPEC holds every removal there until `apply
// --force`, however small, so each is withheld with WhyLatched. A latched
// account is not listed in Tripped again (it did not trip in this run).
type GuardPolicy struct {
	MaxRemovals       int
	MaxRemovalPercent float64
	MinRemovals       int
	Window            *WindowLimit
	ManagedGrants     map[string]int
	Latched           []string
	Force             bool
}

// WindowLimit is the rolling-window guard: Max removals per account within
// the window, of which Removed[account] were already made.
type WindowLimit struct {
	Max     int
	Window  time.Duration // for the message only
	Removed map[string]int
}

// WhyLatched prefixes the why of a removal withheld because the account's
// guard tripped earlier and has not been forced since.
const WhyLatched = "guard: tripped earlier; removals are withheld until `scimflare apply --force`"

func (g GuardPolicy) trip(account string, removals int) string {
	if removals == 0 {
		return ""
	}
	if g.MaxRemovals >= 0 && removals > g.MaxRemovals {
		return fmt.Sprintf("guard: %d removals exceed sync.guards.max_removals %d", removals, g.MaxRemovals)
	}
	base := g.ManagedGrants[account]
	if g.MaxRemovalPercent >= 0 && removals > g.MinRemovals && float64(removals)*100 > g.MaxRemovalPercent*float64(base) {
		return fmt.Sprintf("guard: %d removals exceed sync.guards.max_removal_percent %g%% of %d managed grants", removals, g.MaxRemovalPercent, base)
	}
	if w := g.Window; w != nil && w.Max >= 0 && w.Removed[account]+removals > w.Max {
		return fmt.Sprintf("guard: %d removals, with the %d made in the last %s, exceed sync.guards.max_removals_per_window %d",
			removals, w.Removed[account], w.Window, w.Max)
	}
	return ""
}

func (g GuardPolicy) Apply(c *Changes) *Changes {
	out := c.shallow()
	for i, a := range out.Accounts {
		removals, removes := 0, false
		for _, ch := range a.Changes {
			removals += ch.Removals()
			removes = removes || withholdable(ch)
		}
		why := g.trip(a.ID, removals)
		if why == "" {
			if !removes || g.Force || !slices.Contains(g.Latched, a.ID) {
				continue
			}
			why = WhyLatched
		} else {
			if !slices.Contains(out.Tripped, a.ID) {
				out.Tripped = append(out.Tripped, a.ID)
			}
			if g.Force {
				continue
			}
		}
		var kept []Change
		for _, ch := range a.Changes {
			if !withholdable(ch) {
				kept = append(kept, ch)
				continue
			}
			add, hold := splitRemovals(ch)
			if add != nil {
				kept = append(kept, *add)
			}
			out.Withheld = append(out.Withheld, Withheld{Change: hold, By: WithheldByGuard, Why: why})
		}
		out.Accounts[i].Changes = kept
	}
	out.Tripped = slices.Sorted(slices.Values(out.Tripped)) // a copy: the slice may be c's
	return out
}

// withholdable reports whether the guard holds ch back when it trips: a
// change that takes keys away, and any removal of a member from the
// account. A user-groups member scimflare invited holds nothing of its
// own, so its removal counts no key, yet it ends everything the member
// holds through its groups (those removals are counted on the group-member
// changes planned beside it): a tripped guard must hold it too, or a mass
// deactivation walks past the guard one zero-count DELETE at a time.
func withholdable(ch Change) bool {
	return ch.Removals() > 0 || ch.Kind == RemoveMember
}

// splitRemovals separates a change into the part that only adds (nil when
// it adds nothing) and the part that removes.
func splitRemovals(ch Change) (*Change, Change) {
	if ch.Kind == SetGroupPolicies && ch.Group != nil && len(ch.Added) > 0 {
		// The group gets what the mapping adds now (one PUT of the
		// policies before and after), and drops the rest once the guard
		// lets it: its members, like a member's own change, never wait
		// for an addition because of a removal.
		add := ch
		add.Before, add.After = ch.Before, setOf(ch.Before, ch.Added).sorted()
		add.Removed, add.RemovedUnmanaged = nil, nil
		hold := ch
		hold.Before, hold.Added, hold.Privileged = add.After, nil, false
		return &add, hold
	}
	if (len(ch.Added) == 0 && ch.converted == nil) || ch.Group != nil {
		// Any other group write waits whole.
		return nil, ch
	}
	kept := setOf(ch.Before, ch.Added)
	add := ch
	add.Kind, add.Op = UpdateRoles, OpUpdate
	if ch.converted != nil {
		// The conversion is no removal: it goes through, roles replaced
		// by their policies, and only the removals wait.
		kept = setOf(ch.converted, ch.Added)
		if len(ch.Added) == 0 {
			add.Kind = MigrateShape
		}
	}
	add.After = kept.sorted()
	add.Removed, add.RemovedUnmanaged, add.stillHeld = nil, nil, nil
	add.NewLedger.Managed = setOf(ch.NewLedger.Managed, ch.Removed).sorted()
	add.Reason = ch.addReason

	hold := ch
	hold.converted = nil
	hold.Before = add.After
	hold.Added = nil
	hold.Privileged = false
	hold.Reason = ch.removeReason
	return &add, hold
}
