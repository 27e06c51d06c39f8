package mapping

import (
	"fmt"
	"strings"
	"unicode"
)

// DefaultUserGroupPrefix starts the name of every user group scimflare
// creates on a user-groups account unless user_group_prefix says
// otherwise.
const DefaultUserGroupPrefix = "scimflare-"

// UserGroups reports whether the account holds mapped access in user
// groups (model: user_groups).
func (a Account) UserGroups() bool { return a.Model == ModelUserGroups }

// GroupPrefix is the name prefix of the account's user groups.
func (a Account) GroupPrefix() string {
	if a.UserGroupPrefix != "" {
		return a.UserGroupPrefix
	}
	return DefaultUserGroupPrefix
}

// UserGroupKey is the key a mapping's user group is known by within its
// account: the IdP group's display name, or its external id.
func (m Mapping) UserGroupKey() string {
	if m.Group != "" {
		return m.Group
	}
	return m.GroupExternalID
}

// HeldAsGroup reports whether a mapping of a user-groups account is held
// as a user group: a standing mapping is; a ttl mapping ends per member,
// so it stays a per-member policy and its expiry never touches a group.
func (m Mapping) HeldAsGroup() bool { return m.TTL == 0 }

// validateUserGroups checks what user-groups mode adds: the prefix, the
// shape, and that no two mappings of one account would name one group.
func validateUserGroups(t Table) []Problem {
	var ps []Problem
	for i, a := range t.Accounts {
		p := fmt.Sprintf("accounts[%d]", i)
		if a.UserGroupPrefix != "" && !a.UserGroups() {
			ps = append(ps, Problem{Path: p + ".user_group_prefix", Message: "user_group_prefix applies only to an account with model: user_groups"})
		}
		if strings.TrimSpace(a.UserGroupPrefix) != a.UserGroupPrefix || strings.IndexFunc(a.UserGroupPrefix, unicode.IsControl) >= 0 || len(a.UserGroupPrefix) > 64 {
			ps = append(ps, Problem{Path: p + ".user_group_prefix", Message: fmt.Sprintf("user_group_prefix %q must be at most 64 characters, without control characters or surrounding spaces", a.UserGroupPrefix)})
		}
		if a.UserGroups() && a.KeepsRoles() {
			ps = append(ps, Problem{Path: p + ".grant_shape", Message: "an account with model: user_groups is granted policies (a user group holds no legacy roles); drop grant_shape: roles"})
		}
	}
	named := map[string]int{}
	for i, m := range t.Mappings {
		a, ok := t.AccountByName(m.Account)
		if !ok || !a.UserGroups() || !m.HeldAsGroup() || m.UserGroupKey() == "" {
			continue
		}
		name := a.GroupPrefix() + m.UserGroupKey()
		id := a.ID + "\x00" + strings.ToLower(name)
		if j, dup := named[id]; dup {
			ps = append(ps, Problem{Path: fmt.Sprintf("mappings[%d].group", i),
				Message: fmt.Sprintf("mappings[%d] and mappings[%d] both map to user group %q on account %q, but one user group stands for one mapping: merge them into one mapping", j, i, name, a.Name)})
			continue
		}
		named[id] = i
	}
	return ps
}
