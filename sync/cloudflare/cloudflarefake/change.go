package cloudflarefake

import (
	"fmt"
	"net/http"
	"strings"
)

// Change is one member or user-group write the fake accepted, as a person
// watching the account would describe it: who, and what they hold before
// and after.
type Change struct {
	AccountID string
	Email     string
	// Before and After are the member's status and grants by name ("" and
	// nil when the member did not exist before, or was removed).
	BeforeStatus, AfterStatus string
	Before, After             []string
	// Group is set for a user-group write: Before and After are then the
	// group's policies, and the members are emails.
	Group *GroupChange
}

// GroupChange is a user-group write: the group's name, and its members
// before and after (nil, with Existed false, when it did not exist).
type GroupChange struct {
	Name                        string
	Existed, Exists             bool
	BeforeMembers, AfterMembers []string
}

// groupState is a user group as OnChange describes it.
type groupState struct {
	exists            bool
	name              string
	policies, members []string
}

func isGroupRoute(route string) bool {
	switch route {
	case RouteUserGroups, RouteUserGroup, RouteUserGroupMembers, RouteUserGroupMember:
		return true
	}
	return false
}

// groupSnapshot is the user group a write names (or, for a create, none);
// the caller holds s.mu.
func (s *Server) groupSnapshot(accountID, groupID string) groupState {
	a := s.accounts[accountID]
	if a == nil {
		return groupState{}
	}
	_, g := a.groupByID(groupID)
	if g == nil {
		return groupState{}
	}
	st := groupState{exists: true, name: g.Name, policies: a.grantNames(&Member{Policies: g.Policies}), members: []string{}}
	for _, id := range g.Members {
		if _, m := a.byID(id); m != nil {
			st.members = append(st.members, m.Email)
		}
	}
	return st
}

// groupChange describes an accepted user-group write; the caller holds
// s.mu. A create names no group before it: the new group is the last.
func (s *Server) groupChange(method, route, accountID, groupID string, before groupState) *Change {
	a := s.accounts[accountID]
	if a == nil {
		return nil
	}
	if method == http.MethodPost && route == RouteUserGroups && len(a.groups) > 0 {
		groupID = a.groups[len(a.groups)-1].ID
	}
	after := s.groupSnapshot(accountID, groupID)
	name := after.name
	if name == "" {
		name = before.name
	}
	return &Change{AccountID: accountID, Before: before.policies, After: after.policies, Group: &GroupChange{
		Name: name, Existed: before.exists, Exists: after.exists, BeforeMembers: before.members, AfterMembers: after.members,
	}}
}

// grantNames names what m holds: role names, or each policy as its
// permission groups "on" its resource groups.
func (a *account) grantNames(m *Member) []string {
	out := []string{}
	for _, id := range m.Roles {
		out = append(out, nameOf(a.roles, id))
	}
	for _, p := range m.Policies {
		var pgs, rgs []string
		for _, id := range p.PermissionGroups {
			pgs = append(pgs, nameOf(a.permGroups, id))
		}
		for _, id := range p.ResourceGroups {
			rgs = append(rgs, nameOf(a.resGroups, id))
		}
		out = append(out, strings.Join(pgs, "+")+" on "+strings.Join(rgs, "+"))
	}
	return out
}

// snapshot is the member a write is about to touch, for Options.OnChange;
// the caller holds s.mu.
func (s *Server) snapshot(route, accountID, memberID string) (email, status string, grants []string) {
	a := s.accounts[accountID]
	if a == nil || route != RouteMember {
		return "", "", nil
	}
	if _, m := a.byID(memberID); m != nil {
		return m.Email, m.Status, a.grantNames(m)
	}
	return "", "", nil
}

// change describes an accepted member write; the caller holds s.mu.
func (s *Server) change(method, route, accountID, memberID, email, status string, grants []string) *Change {
	a := s.accounts[accountID]
	if a == nil {
		return nil
	}
	c := &Change{AccountID: accountID, Email: email, BeforeStatus: status, Before: grants}
	var m *Member
	switch {
	case method == http.MethodPost && route == RouteMembers && len(a.members) > 0:
		m = a.members[len(a.members)-1]
	case method == http.MethodPut && route == RouteMember:
		_, m = a.byID(memberID)
	case method == http.MethodDelete && route == RouteMember:
	default:
		return nil
	}
	if m != nil {
		c.Email, c.AfterStatus, c.After = m.Email, m.Status, a.grantNames(m)
	}
	return c
}

// String is the change as one line: "account A: alice@example.com invited
// (pending) [Workers Platform Admin]", "… roles [X] -> [Y]", "… removed".
func (c Change) String() string {
	if g := c.Group; g != nil {
		head := "account " + c.AccountID + ": user group " + g.Name
		switch {
		case !g.Existed:
			return fmt.Sprintf("%s created with %s", head, list(c.After))
		case !g.Exists:
			return fmt.Sprintf("%s deleted", head)
		}
		return fmt.Sprintf("%s: policies %s -> %s, members %s -> %s", head, list(c.Before), list(c.After), list(g.BeforeMembers), list(g.AfterMembers))
	}
	head := "account " + c.AccountID + ": " + c.Email
	switch {
	case c.BeforeStatus == "" && c.AfterStatus != "":
		return fmt.Sprintf("%s invited (%s) %s", head, c.AfterStatus, list(c.After))
	case c.AfterStatus == "":
		return fmt.Sprintf("%s removed (held %s)", head, list(c.Before))
	}
	return fmt.Sprintf("%s %s -> %s", head, list(c.Before), list(c.After))
}

func list(names []string) string { return "[" + strings.Join(names, ", ") + "]" }
