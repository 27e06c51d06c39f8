package cli

import (
	"maps"
	"slices"
	"time"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync"
	"github.com/scimflare/scimflare/sync/identity"
	"github.com/scimflare/scimflare/sync/plan"
)

// Access through user groups (accounts[].model: user_groups), rebuilt from
// the audit trail: every user-group record names its group as data (a
// source of kind sync.AuditSourceUserGroup). A member of an owned group
// holds each role the group grants; scimflare owns those groups whole, so
// the trail is their history (a hand edit is repaired by the next full
// run, and shows up there as a change).

type heldGroup struct {
	roles   []string
	members map[string]heldGroupMember // identity.Key(email) ->
}

type heldGroupMember struct {
	email string
	since time.Time
}

type groupKey struct{ account, group string }

func groupOfRecord(r store.AuditRecord) string {
	for _, s := range r.Sources {
		if s.Kind == sync.AuditSourceUserGroup {
			return s.Group
		}
	}
	return ""
}

// replayGroup applies one audit record to the group holdings; it reports
// whether the record was a user-group record.
func (h *Held) replayGroup(r store.AuditRecord) bool {
	if h.groups == nil {
		h.groups = map[groupKey]*heldGroup{}
	}
	kind := plan.Kind(r.Action)
	if r.Action == "remove_member" || r.Action == "member_gone" {
		// Removed from the account: out of every group too.
		for k, g := range h.groups {
			if k.account == r.AccountID {
				delete(g.members, identity.Key(r.Email))
			}
		}
		return false
	}
	if !plan.IsGroupKind(kind) {
		return false
	}
	name := groupOfRecord(r)
	if name == "" {
		return true
	}
	k := groupKey{r.AccountID, name}
	g := h.groups[k]
	if g == nil {
		g = &heldGroup{members: map[string]heldGroupMember{}}
		h.groups[k] = g
	}
	switch kind {
	case plan.CreateGroup, plan.SetGroupPolicies:
		g.roles = slices.Clone(r.After)
		for _, s := range r.Sources {
			// Renamed (a new user_group_prefix): its members, recorded
			// under the old name, are the group's.
			old := groupKey{r.AccountID, s.Group}
			if s.Kind != sync.AuditSourceUserGroupRenamed || old == k || h.groups[old] == nil {
				continue
			}
			for e, m := range h.groups[old].members {
				if _, in := g.members[e]; !in {
					g.members[e] = m
				}
			}
			delete(h.groups, old)
		}
	case plan.AddGroupMember:
		if len(r.After) > 0 {
			g.roles = slices.Clone(r.After)
		}
		if _, in := g.members[identity.Key(r.Email)]; !in {
			g.members[identity.Key(r.Email)] = heldGroupMember{email: r.Email, since: r.Time}
		}
	case plan.RemoveGroupMember:
		delete(g.members, identity.Key(r.Email))
	}
	return true
}

// groupRows are the rows of access held through user groups, in
// accountLabel's words for the account.
func (h *Held) groupRows(account func(id string) string, only string) []AccessRow {
	var rows []AccessRow
	for _, k := range slices.SortedFunc(maps.Keys(h.groups), func(a, b groupKey) int {
		if a.account != b.account {
			if a.account < b.account {
				return -1
			}
			return 1
		}
		if a.group < b.group {
			return -1
		}
		if a.group > b.group {
			return 1
		}
		return 0
	}) {
		if only != "" && k.account != only {
			continue
		}
		g := h.groups[k]
		for _, m := range g.members {
			for _, role := range g.roles {
				rows = append(rows, AccessRow{Email: m.email, Account: account(k.account), Role: role, Source: "user group " + k.group, GrantedAt: m.since})
			}
		}
	}
	return rows
}
