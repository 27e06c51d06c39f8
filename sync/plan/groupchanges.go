package plan

import (
	"slices"

	"github.com/scimflare/scimflare/sync/identity"
)

// GroupRef names the user group a change writes: its id ("" until a
// create_group of this plan made it), the mapping key it stands for, and
// its name.
type GroupRef struct {
	ID, Key, Name string
	// Reach is how many members the group has: a set_group_policies
	// change takes each policy it drops from every one of them.
	Reach int
	// Renamed is the name a set_group_policies change renames the group
	// from ("" when the name stays).
	Renamed string
}

// HeldGroup is an owned user group as the policies need it: the keys it
// grants and its members (identity.Key of their emails).
type HeldGroup struct {
	Keys    []string
	Members []string
	// member is Members as a set (NewHeldGroup): the policies ask, for
	// every member of the account, whether each group holds it.
	member map[string]bool
}

// NewHeldGroup is a HeldGroup that answers Has without a walk of its
// members.
func NewHeldGroup(keys, members []string) HeldGroup {
	h := HeldGroup{Keys: keys, Members: members, member: make(map[string]bool, len(members))}
	for _, m := range members {
		h.member[m] = true
	}
	return h
}

// Has reports whether email (identity.Key) is a member.
func (h HeldGroup) Has(email string) bool {
	if h.member != nil {
		return h.member[email]
	}
	return slices.Contains(h.Members, email)
}

// GroupReasons say, for one group change, why: the mapping's reason for
// the group itself, and each member's (by identity.Key) for a member add.
type GroupReasons struct {
	Group   string
	Members map[string]string
}

// IsGroupKind reports whether k is one of the user-group kinds.
func IsGroupKind(k Kind) bool {
	switch k {
	case CreateGroup, SetGroupPolicies, AddGroupMember, RemoveGroupMember:
		return true
	}
	return false
}

// GroupChanges turns a group plan into changes the policies and the
// renderers take like member changes: a member add or removal carries the
// group's policies as what the member gains or loses (a removal counts
// them for the guard, as a member's keys do), and a policy change its
// before and after. why gives each change its reason, by group key.
func GroupChanges(p GroupPlan, why map[string]GroupReasons) []Change {
	out := make([]Change, 0, len(p.Changes))
	for _, g := range p.Changes {
		ref := &GroupRef{ID: g.GroupID, Key: g.GroupKey, Name: g.Name, Reach: g.Reach, Renamed: g.Renamed}
		ch := Change{Kind: g.Kind, AccountID: g.AccountID, Op: string(g.Kind), Group: ref, Reason: why[g.GroupKey].Group}
		switch g.Kind {
		case CreateGroup:
			ch.After, ch.Added = g.Policies, g.Policies
			ch.Privileged = len(g.Policies) > 0
		case SetGroupPolicies:
			before, after := setOf(g.PoliciesBefore), setOf(g.Policies)
			ch.Before, ch.After = g.PoliciesBefore, g.Policies
			ch.Added, ch.Removed = after.minus(before).sorted(), before.minus(after).sorted()
			ch.Privileged = len(ch.Added) > 0
		case AddGroupMember:
			ch.Email, ch.MemberID = g.Email, g.MemberID
			ch.After, ch.Added = g.Policies, g.Policies
			ch.Privileged = true
			if r := why[g.GroupKey].Members[identity.Key(g.Email)]; r != "" {
				ch.Reason = r
			}
		case RemoveGroupMember:
			ch.Email, ch.MemberID = g.Email, g.MemberID
			ch.Before, ch.Removed = g.Policies, g.Policies
			ch.Reason = "no longer granted by the group's mapping"
			if g.GroupKey == "" {
				ch.Reason = "the group's mapping is gone from the config"
			}
		}
		out = append(out, ch)
	}
	return out
}

// heldThroughGroups is every key email holds through owned user groups.
func (a AccountInput) heldThroughGroups(email string) []string {
	var out []string
	for _, g := range a.UserGroups {
		if g.Has(email) {
			out = append(out, g.Keys...)
		}
	}
	return out
}

// groupSuperAdmins are the members of group id who are Super
// Administrators through it.
func (a AccountInput) groupSuperAdmins(id string) []string {
	g, ok := a.UserGroups[id]
	if !ok || !slices.ContainsFunc(g.Keys, a.IsSuperAdmin) {
		return nil
	}
	return g.Members
}

// WithheldByGroupPolicies withholds a member add to a user group whose
// set_group_policies change (dropping policies) another policy held back.
const WithheldByGroupPolicies = "group_policies"

type groupAddsWaitPolicy struct{}

// GroupAddsWaitForPolicies withholds every member add to a user group
// whose policy change drops policies and was withheld (by the guard, the
// last Super Administrator): the group still holds what the mapping no
// longer grants, and a joiner would get it. Run it after every other
// policy. The joiner joins once the group's policies are the mapping's.
func GroupAddsWaitForPolicies() Policy { return groupAddsWaitPolicy{} }

func (groupAddsWaitPolicy) Apply(c *Changes) *Changes {
	held := map[[2]string]string{} // account, group id -> why
	for _, w := range c.Withheld {
		ch := w.Change
		if ch.Kind == SetGroupPolicies && ch.Group != nil && len(ch.Removed) > 0 {
			held[[2]string{ch.AccountID, ch.Group.ID}] = w.By + ": " + w.Why
		}
	}
	if len(held) == 0 {
		return c
	}
	return c.filter(WithheldByGroupPolicies, func(ch Change) (bool, string) {
		if ch.Kind != AddGroupMember || ch.Group == nil {
			return true, ""
		}
		why, ok := held[[2]string{ch.AccountID, ch.Group.ID}]
		if !ok {
			return true, ""
		}
		return false, "waits to join user group " + ch.Group.Name + " until it drops the policies its mapping no longer grants (withheld by " + why + ")"
	})
}
