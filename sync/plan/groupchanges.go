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
}

// HeldGroup is an owned user group as the policies need it: the keys it
// grants and its members (identity.Key of their emails).
type HeldGroup struct {
	Keys    []string
	Members []string
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
		ref := &GroupRef{ID: g.GroupID, Key: g.GroupKey, Name: g.Name}
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
		if slices.Contains(g.Members, email) {
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
