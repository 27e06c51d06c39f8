package plan

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/scimflare/scimflare/sync/identity"
)

// User-groups mode (issue 14, accounts[].model: user_groups): each mapping
// of an account is one Cloudflare user group that scimflare creates, names
// and owns; the mapping's policies are set on the group, and IdP group
// membership becomes group membership. PlanUserGroups is the pure diff for
// that mode; sync/usergroups.go wires it into the reconciler.

// Kinds of user-group change, as plan --json prints them (beside the
// member kinds of plan.go).
const (
	// CreateGroup creates an owned group with its name and policies.
	CreateGroup Kind = "create_group"
	// SetGroupPolicies is one PUT that sets an owned group's name and
	// replaces all its policies.
	SetGroupPolicies Kind = "set_group_policies"
	// AddGroupMember adds an account member to an owned group. The adds of
	// one group may be sent as one request.
	AddGroupMember Kind = "add_group_member"
	// RemoveGroupMember removes an account member from an owned group.
	RemoveGroupMember Kind = "remove_group_member"
)

// UserGroupName is the Cloudflare name of the group that stands for a
// mapping: the account's prefix and the mapping's key (its IdP group).
func UserGroupName(prefix, key string) string { return prefix + key }

// DesiredGroup is one mapping of a user-groups account, as the group it
// should be.
type DesiredGroup struct {
	// Key names the mapping within the account (its IdP group); the group
	// is called UserGroupName(prefix, Key), and the ledger records it.
	Key string
	// Policies are the group's policy keys (a set).
	Policies []string
	// Members are the emails of the people the mapping grants.
	Members []string
}

// ActualGroup is a user group as Cloudflare lists it, with its members
// (a complete listing: a group whose members could not be read must not
// be planned).
type ActualGroup struct {
	ID, Name string
	Policies []string // policy keys
	Members  []GroupMemberRef
}

// GroupMemberRef is one member of a group: the account member id and its
// email.
type GroupMemberRef struct {
	MemberID, Email string
}

// AccountMemberRef is one account member as the group plan needs it.
type AccountMemberRef struct {
	MemberID string
	Status   string // "accepted" or "pending"
}

// UserGroupInput is everything PlanUserGroups needs about one account.
type UserGroupInput struct {
	AccountID string
	Prefix    string
	Desired   []DesiredGroup
	Actual    []ActualGroup
	// Owned is the ledger: the id of every group scimflare created, and
	// the desired key it was created for. A group not in Owned is never
	// changed.
	Owned map[string]string
	// Members are the account's members by identity.Key(email), pending
	// invites included: who can be added to a group, by which id.
	Members map[string]AccountMemberRef
	// PendingMayJoin says whether Cloudflare lets a pending member join a
	// group (not documented; BEHAVIOURS.md 2b). When false, a pending
	// member waits until it has accepted.
	PendingMayJoin bool
}

// GroupChange is one user-group change in one account.
type GroupChange struct {
	Kind      Kind
	AccountID string
	// GroupKey is the desired key the change serves; "" for a member
	// removal from an owned group no mapping wants any more.
	GroupKey string
	// GroupID is the group written; "" for create_group, and for member
	// adds to a group this plan creates (apply resolves it after the
	// create).
	GroupID string
	// Name and Policies are the group's whole name and policy set after a
	// create_group or set_group_policies; PoliciesBefore what it held.
	Name                     string
	Policies, PoliciesBefore []string
	// Email and MemberID name the account member of a member change.
	Email, MemberID string
	// Reach is the group's member count for set_group_policies: the guard
	// counts each policy it drops once per member.
	Reach int
	// Renamed is the group's name before a set_group_policies that
	// renames it ("" when the name stays).
	Renamed string
}

// GroupWaiting is a person a mapping grants who cannot join the group yet.
type GroupWaiting struct {
	GroupKey, Email string
	Why             string // WaitNotMember or WaitPending
}

// Why a person waits.
const (
	// WaitNotMember: not an account member yet; the member plan invites
	// first, and the next run adds.
	WaitNotMember = "not_member"
	// WaitPending: invited, and Cloudflare does not let a pending member
	// join a group; added once the invitation is accepted.
	WaitPending = "pending"
)

// GroupConflict is a desired group whose name a group scimflare does not
// own already has. The group is neither created nor adopted.
type GroupConflict struct {
	AccountID               string
	GroupKey, Name, GroupID string
}

func (c GroupConflict) String() string {
	return fmt.Sprintf("user group %q (id %s) already exists and scimflare does not own it (made by hand or by Cloudflare's own SCIM), so mapping %q gets no group until that group is renamed or the account's user-group prefix changes",
		c.Name, c.GroupID, c.GroupKey)
}

// GroupPlan is the user-group plan of one account. Changes come in the
// order to apply them: creates, member removals, policy changes, member
// adds — so a member never joins a group before its policies shrink to the
// mapping, and a leaver leaves before anything is granted.
type GroupPlan struct {
	Changes   []GroupChange
	Waiting   []GroupWaiting
	Conflicts []GroupConflict
}

// PlanUserGroups diffs the desired groups of an account against the groups
// Cloudflare holds, under the ownership ledger. It only ever names groups
// in Owned (or groups it creates); an owned group that no mapping wants any
// more is emptied of members, so it grants nobody anything.
func PlanUserGroups(in UserGroupInput) GroupPlan {
	var p GroupPlan
	var creates, removes, sets, adds []GroupChange

	actualByID := map[string]*ActualGroup{}
	for i := range in.Actual {
		actualByID[in.Actual[i].ID] = &in.Actual[i]
	}
	// The owned group of each key: the lowest id when the ledger holds
	// several, so the plan is deterministic.
	ownedByKey := map[string]*ActualGroup{}
	for _, id := range slices.Sorted(maps.Keys(in.Owned)) {
		g := actualByID[id]
		if g == nil {
			continue // owned but gone: deleted by hand; created again below
		}
		if _, seen := ownedByKey[in.Owned[id]]; !seen {
			ownedByKey[in.Owned[id]] = g
		}
	}

	desired := slices.Clone(in.Desired)
	slices.SortFunc(desired, func(x, y DesiredGroup) int { return strings.Compare(x.Key, y.Key) })
	wanted := map[string]bool{}
	for _, d := range desired {
		wanted[d.Key] = true
		name := UserGroupName(in.Prefix, d.Key)
		policies := groupKeySet(d.Policies)
		g := ownedByKey[d.Key]
		if g == nil {
			if other := unownedGroupNamed(in.Actual, in.Owned, name); other != nil {
				p.Conflicts = append(p.Conflicts, GroupConflict{AccountID: in.AccountID, GroupKey: d.Key, Name: name, GroupID: other.ID})
				continue
			}
			creates = append(creates, GroupChange{Kind: CreateGroup, AccountID: in.AccountID, GroupKey: d.Key,
				Name: name, Policies: policies})
			adds = append(adds, in.groupMemberAdds(&p, d, "", nil)...)
			continue
		}
		if before := groupKeySet(g.Policies); g.Name != name || !slices.Equal(before, policies) {
			set := GroupChange{Kind: SetGroupPolicies, AccountID: in.AccountID, GroupKey: d.Key,
				GroupID: g.ID, Name: name, Policies: policies, PoliciesBefore: before, Reach: len(g.Members)}
			if g.Name != name {
				set.Renamed = g.Name
			}
			sets = append(sets, set)
		}
		want := map[string]bool{}
		for _, e := range d.Members {
			want[identity.Key(e)] = true
		}
		removes = append(removes, groupMemberRemovals(in.AccountID, d.Key, g, want)...)
		adds = append(adds, in.groupMemberAdds(&p, d, g.ID, g.Members)...)
	}
	// Owned groups no mapping wants: empty them, so their policies reach
	// nobody.
	for _, id := range slices.Sorted(maps.Keys(in.Owned)) {
		g := actualByID[id]
		if g == nil || (wanted[in.Owned[id]] && ownedByKey[in.Owned[id]] == g) {
			continue
		}
		removes = append(removes, groupMemberRemovals(in.AccountID, "", g, nil)...)
	}
	p.Changes = slices.Concat(creates, removes, sets, adds)
	return p
}

// groupMemberAdds are the adds that bring group groupID (or the group being
// created, "") to d's members; people who cannot join yet go to Waiting.
func (in UserGroupInput) groupMemberAdds(p *GroupPlan, d DesiredGroup, groupID string, have []GroupMemberRef) []GroupChange {
	in2 := map[string]bool{}
	for _, m := range have {
		in2[identity.Key(m.Email)] = true
	}
	var out []GroupChange
	seen := map[string]bool{}
	for _, e := range groupKeySet(d.Members) {
		k := identity.Key(e)
		if in2[k] || seen[k] {
			continue
		}
		seen[k] = true
		m, ok := in.Members[k]
		switch {
		case !ok:
			p.Waiting = append(p.Waiting, GroupWaiting{GroupKey: d.Key, Email: k, Why: WaitNotMember})
		case m.Status == "pending" && !in.PendingMayJoin:
			p.Waiting = append(p.Waiting, GroupWaiting{GroupKey: d.Key, Email: k, Why: WaitPending})
		default:
			out = append(out, GroupChange{Kind: AddGroupMember, AccountID: in.AccountID, GroupKey: d.Key,
				GroupID: groupID, Name: UserGroupName(in.Prefix, d.Key), Policies: groupKeySet(d.Policies), Email: k, MemberID: m.MemberID})
		}
	}
	return out
}

// groupMemberRemovals removes from g every member not in want.
func groupMemberRemovals(accountID, key string, g *ActualGroup, want map[string]bool) []GroupChange {
	ms := slices.Clone(g.Members)
	slices.SortFunc(ms, func(x, y GroupMemberRef) int { return strings.Compare(identity.Key(x.Email), identity.Key(y.Email)) })
	var out []GroupChange
	for _, m := range ms {
		if want[identity.Key(m.Email)] {
			continue
		}
		out = append(out, GroupChange{Kind: RemoveGroupMember, AccountID: accountID, GroupKey: key,
			GroupID: g.ID, Name: g.Name, Policies: groupKeySet(g.Policies), Email: identity.Key(m.Email), MemberID: m.MemberID})
	}
	return out
}

// unownedGroupNamed is a group called name that scimflare does not own.
func unownedGroupNamed(groups []ActualGroup, owned map[string]string, name string) *ActualGroup {
	for i := range groups {
		if _, mine := owned[groups[i].ID]; !mine && groups[i].Name == name {
			return &groups[i]
		}
	}
	return nil
}

func groupKeySet(xs []string) []string {
	if len(xs) == 0 {
		return nil
	}
	out := slices.Clone(xs)
	slices.Sort(out)
	return slices.Compact(out)
}
