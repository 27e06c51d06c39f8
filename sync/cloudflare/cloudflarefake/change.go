package cloudflarefake

import (
	"fmt"
	"net/http"
	"strings"
)

// Change is one member write the fake accepted, as a person watching the
// account would describe it: who, and what they hold before and after.
type Change struct {
	AccountID string
	Email     string
	// Before and After are the member's status and grants by name ("" and
	// nil when the member did not exist before, or was removed).
	BeforeStatus, AfterStatus string
	Before, After             []string
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
