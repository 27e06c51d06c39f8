package cftest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// Named is a catalog entry: role, permission group or resource group.
type Named struct {
	ID, Name string
}

// Member is an account member as the fake stores it.
type Member struct {
	ID     string
	Email  string
	Status string // "accepted" or "pending"
	Roles  []string
	// Policies is the other shape a member can have; a member holds roles
	// or policies, as the API takes one per request.
	Policies []Policy
}

// Policy is one member policy.
type Policy struct {
	ID               string
	Access           string
	PermissionGroups []string
	ResourceGroups   []string
}

// DefaultRoles are the role names every account made by New or AddAccount
// has. Role ids derive from the name alone, so they are stable across runs.
var DefaultRoles = []string{
	"Super Administrator - All Privileges",
	"Administrator",
	"Administrator Read Only",
	"Analytics",
	"Audit Logs Viewer",
	"Billing",
	"Cloudflare Access",
	"Cloudflare Zero Trust",
	"DNS",
	"Firewall",
	"Load Balancer",
	"Minimal Account Access",
	"Workers Platform Admin",
	"Workers Platform (Read-only)",
}

// DefaultPermissionGroups are the permission-group names every account has.
var DefaultPermissionGroups = []string{
	"Administrator",
	"Administrator Read Only",
	"Analytics",
	"Billing",
	"DNS",
	"Load Balancer",
	"Workers Platform Admin",
	"Workers Platform (Read-only)",
	"Zero Trust",
}

// DefaultResourceGroups are the resource-group names every account has, plus
// the account-wide group Cloudflare names "com.cloudflare.api.account.<id>".
var DefaultResourceGroups = []string{"prod-workers", "staging-workers"}

type account struct {
	id         string
	roles      []Named
	permGroups []Named
	resGroups  []Named
	members    []*Member // in creation order, which is list order
}

// catalogID derives a stable 32-hex id; kind keeps roles, permission groups
// and resource groups in different id spaces, as in Cloudflare.
func catalogID(kind, scope, name string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + scope + "\x00" + name))
	return hex.EncodeToString(sum[:16])
}

// AddAccount creates an account with the default catalog; a no-op when it
// exists.
func (s *Server) AddAccount(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.accounts[id]; ok {
		return
	}
	a := &account{id: id}
	for _, n := range DefaultRoles {
		a.roles = append(a.roles, Named{ID: catalogID("role", "", n), Name: n})
	}
	for _, n := range DefaultPermissionGroups {
		a.permGroups = append(a.permGroups, Named{ID: catalogID("permission_group", "", n), Name: n})
	}
	for _, n := range append([]string{"com.cloudflare.api.account." + id}, DefaultResourceGroups...) {
		a.resGroups = append(a.resGroups, Named{ID: catalogID("resource_group", id, n), Name: n})
	}
	s.accounts[id] = a
}

func (s *Server) mustAccount(id string) *account {
	a, ok := s.accounts[id]
	if !ok {
		s.t.Fatalf("cftest: no account %q (add it with Options.Accounts or AddAccount)", id)
	}
	return a
}

func addNamed(list *[]Named, kind, scope, name string) string {
	for _, n := range *list {
		if n.Name == name {
			return n.ID
		}
	}
	id := catalogID(kind, scope, name)
	*list = append(*list, Named{ID: id, Name: name})
	return id
}

// AddRole adds a role to the account's catalog and returns its id.
func (s *Server) AddRole(accountID, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return addNamed(&s.mustAccount(accountID).roles, "role", "", name)
}

// AddPermissionGroup adds a permission group and returns its id.
func (s *Server) AddPermissionGroup(accountID, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return addNamed(&s.mustAccount(accountID).permGroups, "permission_group", "", name)
}

// AddResourceGroup adds a resource group and returns its id.
func (s *Server) AddResourceGroup(accountID, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return addNamed(&s.mustAccount(accountID).resGroups, "resource_group", accountID, name)
}

// Roles lists the account's roles.
func (s *Server) Roles(accountID string) []Named {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mustAccount(accountID).roles)
}

// PermissionGroups lists the account's permission groups.
func (s *Server) PermissionGroups(accountID string) []Named {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mustAccount(accountID).permGroups)
}

// ResourceGroups lists the account's resource groups.
func (s *Server) ResourceGroups(accountID string) []Named {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.mustAccount(accountID).resGroups)
}

// idByName is the id of the entry of list called name, failing the test
// when there is none; what names the kind of entry in that failure.
func (s *Server) idByName(accountID, what string, list []Named, name string) string {
	s.t.Helper()
	for _, n := range list {
		if n.Name == name {
			return n.ID
		}
	}
	s.t.Fatalf("cftest: account %s has no %s %q", accountID, what, name)
	return ""
}

// RoleID is the id of the named role, failing the test when there is none.
func (s *Server) RoleID(accountID, name string) string {
	s.t.Helper()
	return s.idByName(accountID, "role", s.Roles(accountID), name)
}

// PermissionGroupID is the id of the named permission group.
func (s *Server) PermissionGroupID(accountID, name string) string {
	s.t.Helper()
	return s.idByName(accountID, "permission group", s.PermissionGroups(accountID), name)
}

// ResourceGroupID is the id of the named resource group.
func (s *Server) ResourceGroupID(accountID, name string) string {
	s.t.Helper()
	return s.idByName(accountID, "resource group", s.ResourceGroups(accountID), name)
}

func (s *Server) newMemberID(accountID string) string {
	s.seq++
	return catalogID("member", accountID, fmt.Sprint(s.seq))
}

func (a *account) byEmail(email string) *Member {
	for _, m := range a.members {
		if strings.EqualFold(m.Email, email) {
			return m
		}
	}
	return nil
}

func (a *account) byID(id string) (int, *Member) {
	for i, m := range a.members {
		if m.ID == id {
			return i, m
		}
	}
	return -1, nil
}

func cloneMember(m *Member) Member {
	c := *m
	c.Roles = slices.Clone(m.Roles)
	c.Policies = make([]Policy, len(m.Policies))
	for i, p := range m.Policies {
		c.Policies[i] = Policy{ID: p.ID, Access: p.Access,
			PermissionGroups: slices.Clone(p.PermissionGroups), ResourceGroups: slices.Clone(p.ResourceGroups)}
	}
	if len(c.Policies) == 0 {
		c.Policies = nil
	}
	return c
}

// AddMember puts a member in the account by hand, as someone using the
// dashboard would (drift, adoption). Status defaults to "accepted"; an empty
// ID is generated. It fails the test when the email already is a member.
func (s *Server) AddMember(accountID string, m Member) Member {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustAccount(accountID)
	if a.byEmail(m.Email) != nil {
		s.t.Fatalf("cftest: %s already is a member of %s", m.Email, accountID)
	}
	if m.ID == "" {
		m.ID = s.newMemberID(accountID)
	}
	if m.Status == "" {
		m.Status = "accepted"
	}
	for i := range m.Policies {
		if m.Policies[i].ID == "" {
			m.Policies[i].ID = catalogID("policy", m.ID, fmt.Sprint(i))
		}
		if m.Policies[i].Access == "" {
			m.Policies[i].Access = "allow"
		}
	}
	stored := cloneMember(&m)
	a.members = append(a.members, &stored)
	return cloneMember(&stored)
}

// Members lists the account's members sorted by email.
func (s *Server) Members(accountID string) []Member {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustAccount(accountID)
	out := make([]Member, 0, len(a.members))
	for _, m := range a.members {
		out = append(out, cloneMember(m))
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Email) < strings.ToLower(out[j].Email) })
	return out
}

// Member finds a member by email, case-insensitively.
func (s *Server) Member(accountID, email string) (Member, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mustAccount(accountID).byEmail(email)
	if m == nil {
		return Member{}, false
	}
	return cloneMember(m), true
}

// SetMemberStatus sets a member's status ("accepted" when an invite is
// accepted), failing the test when the email is not a member.
func (s *Server) SetMemberStatus(accountID, email, status string) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.mustAccount(accountID).byEmail(email)
	if m == nil {
		s.t.Fatalf("cftest: %s is not a member of %s", email, accountID)
	}
	m.Status = status
}

// RemoveMember deletes a member by hand; false when it was not there.
func (s *Server) RemoveMember(accountID, email string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustAccount(accountID)
	m := a.byEmail(email)
	if m == nil {
		return false
	}
	i, _ := a.byID(m.ID)
	a.members = slices.Delete(a.members, i, i+1)
	return true
}

// Wire shapes, as the current API answers.

type wireRole struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Permissions map[string]any `json:"permissions"`
}

type wireGroup struct {
	ID   string            `json:"id"`
	Name string            `json:"name"`
	Meta map[string]string `json:"meta"`
}

type wirePolicy struct {
	ID               string      `json:"id"`
	Access           string      `json:"access"`
	PermissionGroups []wireGroup `json:"permission_groups"`
	ResourceGroups   []wireGroup `json:"resource_groups"`
}

type wireUser struct {
	ID        string  `json:"id"`
	Email     string  `json:"email"`
	FirstName *string `json:"first_name"`
	LastName  *string `json:"last_name"`
	TwoFA     bool    `json:"two_factor_authentication_enabled"`
}

type wireMember struct {
	ID       string       `json:"id"`
	Email    string       `json:"email"`
	Status   string       `json:"status"`
	Roles    []wireRole   `json:"roles"`
	Policies []wirePolicy `json:"policies"`
	User     wireUser     `json:"user"`
}

func nameOf(list []Named, id string) string {
	for _, n := range list {
		if n.ID == id {
			return n.Name
		}
	}
	return ""
}

func (a *account) wire(m *Member) wireMember {
	w := wireMember{ID: m.ID, Email: m.Email, Status: m.Status, Roles: []wireRole{}, Policies: []wirePolicy{},
		User: wireUser{ID: catalogID("user", "", strings.ToLower(m.Email)), Email: m.Email}}
	for _, id := range m.Roles {
		w.Roles = append(w.Roles, wireRole{ID: id, Name: nameOf(a.roles, id), Description: nameOf(a.roles, id), Permissions: map[string]any{}})
	}
	for _, p := range m.Policies {
		wp := wirePolicy{ID: p.ID, Access: p.Access, PermissionGroups: []wireGroup{}, ResourceGroups: []wireGroup{}}
		for _, id := range p.PermissionGroups {
			wp.PermissionGroups = append(wp.PermissionGroups, wireGroup{ID: id, Name: nameOf(a.permGroups, id), Meta: map[string]string{}})
		}
		for _, id := range p.ResourceGroups {
			wp.ResourceGroups = append(wp.ResourceGroups, wireGroup{ID: id, Name: nameOf(a.resGroups, id), Meta: map[string]string{}})
		}
		w.Policies = append(w.Policies, wp)
	}
	return w
}

type idRef struct {
	ID string `json:"id"`
}

type memberBody struct {
	Email    string          `json:"email"`
	Status   string          `json:"status"`
	Roles    json.RawMessage `json:"roles"`
	Policies []struct {
		Access           string  `json:"access"`
		PermissionGroups []idRef `json:"permission_groups"`
		ResourceGroups   []idRef `json:"resource_groups"`
	} `json:"policies"`
}

func ok(result any) envelope {
	return envelope{Success: true, Errors: []apiMessage{}, Messages: []apiMessage{}, Result: result}
}

func invalid(msg string) (int, any) {
	return http.StatusBadRequest, errorEnvelope(CodeInvalidRequest, "Invalid request: "+msg)
}

// handle answers one validated request; the caller holds s.mu.
func (s *Server) handle(method, route, accountID, memberID string, q url.Values, body []byte) (int, any) {
	switch route {
	case RouteTokenVerify, RouteAccountTokenVerify:
		return s.verifyToken(route, accountID)
	}
	a, found := s.accounts[accountID]
	if !found {
		return http.StatusNotFound, errorEnvelope(CodeNoRoute, "Could not route to /accounts/"+accountID+", perhaps your object identifier is invalid?")
	}
	switch route + " " + method {
	case RouteMembers + " GET":
		page, perPage := pageParams(q)
		if perPage > 50 {
			return invalid("per_page must be at most 50")
		}
		var list []wireMember
		for _, m := range a.members {
			if st := q.Get("status"); st != "" && m.Status != st {
				continue
			}
			list = append(list, a.wire(m))
		}
		items, info := paginate(list, page, perPage)
		env := ok(items)
		env.ResultInfo = info
		return http.StatusOK, env
	case RouteMembers + " POST":
		var b memberBody
		if err := json.Unmarshal(body, &b); err != nil {
			return invalid("malformed JSON body")
		}
		if b.Status == "accepted" {
			// Cloudflare refuses to skip the invitation.
			return invalid("automatic verification of new members is not allowed")
		}
		if a.byEmail(b.Email) != nil {
			return http.StatusConflict, errorEnvelope(CodeInvalidRequest, "Invalid request: user is already a member of this account")
		}
		m := &Member{ID: s.newMemberID(accountID), Email: b.Email, Status: "pending"}
		if st, msg := s.applyGrants(a, m, b); st != 0 {
			return st, msg
		}
		a.members = append(a.members, m)
		return http.StatusOK, ok(a.wire(m))
	case RouteMember + " GET":
		_, m := a.byID(memberID)
		if m == nil {
			return http.StatusNotFound, errorEnvelope(CodeMemberNotFound, "Member not found")
		}
		return http.StatusOK, ok(a.wire(m))
	case RouteMember + " PUT":
		_, m := a.byID(memberID)
		if m == nil {
			return http.StatusNotFound, errorEnvelope(CodeMemberNotFound, "Member not found")
		}
		var b memberBody
		if err := json.Unmarshal(body, &b); err != nil {
			return invalid("malformed JSON body")
		}
		next := cloneMember(m)
		if st, msg := s.applyGrants(a, &next, b); st != 0 {
			return st, msg
		}
		*m = next
		return http.StatusOK, ok(a.wire(m))
	case RouteMember + " DELETE":
		i, m := a.byID(memberID)
		if m == nil {
			return http.StatusNotFound, errorEnvelope(CodeMemberNotFound, "Member not found")
		}
		a.members = slices.Delete(a.members, i, i+1)
		return http.StatusOK, ok(idRef{ID: memberID})
	case RouteRoles + " GET":
		return listNamed(a.roles, q, func(n Named) any {
			return wireRole{ID: n.ID, Name: n.Name, Description: n.Name, Permissions: map[string]any{}}
		})
	case RoutePermissionGroups + " GET":
		return listNamed(a.permGroups, q, func(n Named) any {
			return wireGroup{ID: n.ID, Name: n.Name, Meta: map[string]string{}}
		})
	case RouteResourceGroups + " GET":
		// Served as a single page, as cloudflare-go models this listing.
		out := make([]any, 0, len(a.resGroups))
		for _, n := range a.resGroups {
			out = append(out, map[string]any{
				"id": n.ID, "name": n.Name, "meta": map[string]string{},
				"scope": map[string]any{"key": "com.cloudflare.api.account." + accountID, "objects": []map[string]string{{"key": "*"}}},
			})
		}
		return http.StatusOK, ok(out)
	}
	return http.StatusMethodNotAllowed, errorEnvelope(CodeNoRoute, "Method not allowed for this route")
}

func listNamed(list []Named, q url.Values, wire func(Named) any) (int, any) {
	page, perPage := pageParams(q)
	all := make([]any, 0, len(list))
	for _, n := range list {
		all = append(all, wire(n))
	}
	items, info := paginate(all, page, perPage)
	env := ok(items)
	env.ResultInfo = info
	return http.StatusOK, env
}

// applyGrants sets m's roles or policies from a create/update body,
// rejecting ids the account's catalog does not have.
func (s *Server) applyGrants(a *account, m *Member, b memberBody) (int, any) {
	hasRoles := len(b.Roles) > 0 && string(b.Roles) != "null"
	if hasRoles == (b.Policies != nil) {
		return invalid("exactly one of roles or policies is required")
	}
	if hasRoles {
		// Create sends role ids, update sends role objects {"id": …}.
		var ids []string
		if err := json.Unmarshal(b.Roles, &ids); err != nil {
			ids = nil
			var refs []idRef
			if err := json.Unmarshal(b.Roles, &refs); err != nil {
				return invalid("roles must be ids or objects with an id")
			}
			for _, r := range refs {
				ids = append(ids, r.ID)
			}
		}
		for _, id := range ids {
			if nameOf(a.roles, id) == "" {
				// Cloudflare's words; the id is not named.
				return invalid("Invalid role assignments found")
			}
		}
		m.Roles, m.Policies = ids, nil
		return 0, nil
	}
	m.Roles, m.Policies = nil, nil
	for i, p := range b.Policies {
		pol := Policy{ID: catalogID("policy", m.ID, fmt.Sprint(i)), Access: p.Access}
		for _, g := range p.PermissionGroups {
			if nameOf(a.permGroups, g.ID) == "" {
				return invalid(fmt.Sprintf("permission group %s does not exist in this account", g.ID))
			}
			pol.PermissionGroups = append(pol.PermissionGroups, g.ID)
		}
		for _, g := range p.ResourceGroups {
			if nameOf(a.resGroups, g.ID) == "" {
				return invalid(fmt.Sprintf("resource group %s does not exist in this account", g.ID))
			}
			pol.ResourceGroups = append(pol.ResourceGroups, g.ID)
		}
		m.Policies = append(m.Policies, pol)
	}
	return 0, nil
}

// verifyToken answers the verify endpoints; the caller holds s.mu.
func (s *Server) verifyToken(route, accountID string) (int, any) {
	info := s.tokenInf
	if (route == RouteTokenVerify) != (info.AccountID == "") || (route == RouteAccountTokenVerify && accountID != info.AccountID) {
		return http.StatusUnauthorized, errorEnvelope(CodeInvalidToken, "Invalid API Token")
	}
	res := map[string]string{"id": catalogID("token", info.AccountID, "fake"), "status": "active"}
	if info.Status != "" {
		res["status"] = info.Status
	}
	if !info.ExpiresOn.IsZero() {
		res["expires_on"] = info.ExpiresOn.UTC().Format(time.RFC3339)
	}
	return http.StatusOK, ok(res)
}
