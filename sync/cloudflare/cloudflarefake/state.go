package cloudflarefake

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
// Every name is one of Cloudflare's account-scoped roles as its
// documentation lists them (see testdata/BEHAVIOURS.md, "Catalog names").
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

// DefaultPermissionGroups are the permission-group names every account has:
// one per role, of the same name, as Cloudflare exposes each role as a
// permission group ("A PermissionGroup (roles)", developers.cloudflare.com
// /fundamentals/manage-members/policies/). A member granted a role reads back
// with a policy naming the role's permission group.
var DefaultPermissionGroups = slices.Clone(DefaultRoles)

// permissionGroupLabels are the meta labels Cloudflare gives two permission
// groups, as terraform-provider-cloudflare's account_member acceptance test
// looks them up (label "admin" for Administrator, "all_privileges" for Super
// Administrator). Other groups are served without meta rather than with an
// invented label.
var permissionGroupLabels = map[string]string{
	"Administrator":                        "admin",
	"Super Administrator - All Privileges": "all_privileges",
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
	groups     []*UserGroup
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
		s.t.Fatalf("cloudflarefake: no account %q (add it with Options.Accounts or AddAccount)", id)
	}
	return a
}

// mustMember is the account and its member by email, failing the test when
// there is no such member. The caller holds s.mu.
func (s *Server) mustMember(accountID, email string) (*account, *Member) {
	s.t.Helper()
	a := s.mustAccount(accountID)
	m := a.byEmail(email)
	if m == nil {
		s.t.Fatalf("cloudflarefake: %s is not a member of %s", email, accountID)
	}
	return a, m
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

// AddRole adds a role to the account's catalog, with its permission group
// of the same name, and returns the role's id.
func (s *Server) AddRole(accountID, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustAccount(accountID)
	addNamed(&a.permGroups, "permission_group", "", name)
	return addNamed(&a.roles, "role", "", name)
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
	s.t.Fatalf("cloudflarefake: account %s has no %s %q", accountID, what, name)
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
	c.Policies = clonePolicies(m.Policies)
	return c
}

// clonePolicies is a deep copy of ps (nil for none), so a caller's copy of
// a member or group never shares slices with the fake's state.
func clonePolicies(ps []Policy) []Policy {
	if len(ps) == 0 {
		return nil
	}
	out := make([]Policy, len(ps))
	for i, p := range ps {
		out[i] = Policy{ID: p.ID, Access: p.Access,
			PermissionGroups: slices.Clone(p.PermissionGroups), ResourceGroups: slices.Clone(p.ResourceGroups)}
	}
	return out
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
		s.t.Fatalf("cloudflarefake: %s already is a member of %s", m.Email, accountID)
	}
	if m.ID == "" {
		m.ID = s.newMemberID(accountID)
	}
	if m.Status == "" {
		m.Status = "accepted"
	}
	seedPolicies(m.Policies, m.ID)
	stored := cloneMember(&m)
	a.members = append(a.members, &stored)
	return cloneMember(&stored)
}

// seedPolicies gives the policies a test seeds without an id or access
// what Cloudflare would: an id derived from their owner (a member or a
// user group) and their position, and "allow".
func seedPolicies(ps []Policy, owner string) {
	for i := range ps {
		if ps[i].ID == "" {
			ps[i].ID = catalogID("policy", owner, fmt.Sprint(i))
		}
		if ps[i].Access == "" {
			ps[i].Access = "allow"
		}
	}
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
	_, m := s.mustMember(accountID, email)
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
	a.leaveGroups(m.ID)
	return true
}

// GrantRole adds the named role to a member by hand, as someone using the
// dashboard would, and returns the role's id. It fails the test when the
// email is not a member or the account has no such role.
func (s *Server) GrantRole(accountID, email, role string) string {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	a, m := s.mustMember(accountID, email)
	id := ""
	for _, r := range a.roles {
		if r.Name == role {
			id = r.ID
		}
	}
	if id == "" {
		s.t.Fatalf("cloudflarefake: account %s has no role %q", accountID, role)
	}
	if !slices.Contains(m.Roles, id) {
		m.Roles = append(m.Roles, id)
	}
	return id
}

// RevokeRole removes the named role from a member by hand; false when the
// member did not hold it. It fails the test when the email is not a member.
func (s *Server) RevokeRole(accountID, email, role string) bool {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	a, m := s.mustMember(accountID, email)
	for i, id := range m.Roles {
		if nameOf(a.roles, id) == role {
			m.Roles = slices.Delete(m.Roles, i, i+1)
			return true
		}
	}
	return false
}

// AcceptInvite turns a pending member into an accepted one, as when the
// invitee follows the link in Cloudflare's email. It fails the test when
// the email is not a member.
func (s *Server) AcceptInvite(accountID, email string) {
	s.t.Helper()
	s.SetMemberStatus(accountID, email, "accepted")
}

// Wire shapes, as the current API answers (cloudflare-go v7.9.0
// shared.Member and its policies; testdata/BEHAVIOURS.md).

type wireRole struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	Description string         `json:"description"`
	Permissions map[string]any `json:"permissions"`
}

type wireScopeObject struct {
	Key string `json:"key"`
}

type wireScope struct {
	Key     string            `json:"key"`
	Objects []wireScopeObject `json:"objects"`
}

type wireGroup struct {
	ID    string            `json:"id"`
	Name  string            `json:"name"`
	Meta  map[string]string `json:"meta,omitempty"`
	Scope *wireScope        `json:"scope,omitempty"`
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

func idOf(list []Named, name string) string {
	for _, n := range list {
		if n.Name == name {
			return n.ID
		}
	}
	return ""
}

// AccountScope is the key of the resource group that stands for the whole
// account: the scope of every policy Cloudflare derives from a role.
func AccountScope(accountID string) string { return "com.cloudflare.api.account." + accountID }

// wirePermissionGroup is a permission group as Cloudflare shows it in a
// member's policy (cloudflare/cf-terraforming
// testdata/cloudflare/v5/cloudflare_account_member.yaml): a built-in group
// has meta with editable "false" and the account scope, and its label
// where that label is public.
func (a *account) wirePermissionGroup(id string) wireGroup {
	g := wireGroup{ID: id, Name: nameOf(a.permGroups, id)}
	g.Meta = map[string]string{"editable": "false", "scopes": "com.cloudflare.api.account"}
	if l, ok := permissionGroupLabels[g.Name]; ok {
		g.Meta["label"] = l
	}
	return g
}

// wireResourceGroup is a resource group as Cloudflare shows it: every group
// of the fake scopes the whole account (objects "*"); the account-scope
// group itself is built in (meta editable "false").
func (a *account) wireResourceGroup(id string) wireGroup {
	g := wireGroup{ID: id, Name: nameOf(a.resGroups, id),
		Scope: &wireScope{Key: AccountScope(a.id), Objects: []wireScopeObject{{Key: "*"}}}}
	if g.Name == AccountScope(a.id) {
		g.Meta = map[string]string{"editable": "false"}
	}
	return g
}

// wire is the member as GET, list and PUT answer it. A role is read back as
// the role and as a policy Cloudflare derives from it: allow, the role's
// permission group, on the account-scope resource group (behaviour 1a).
func (a *account) wire(m *Member) wireMember {
	w := wireMember{ID: m.ID, Email: m.Email, Status: m.Status, Roles: []wireRole{}, Policies: []wirePolicy{},
		User: wireUser{ID: catalogID("user", "", strings.ToLower(m.Email)), Email: m.Email}}
	accountGroup := idOf(a.resGroups, AccountScope(a.id))
	for _, id := range m.Roles {
		name := nameOf(a.roles, id)
		w.Roles = append(w.Roles, wireRole{ID: id, Name: name, Description: name, Permissions: map[string]any{}})
		pg := idOf(a.permGroups, name)
		if name == "" || pg == "" {
			continue // a retired role: Cloudflare no longer knows what it grants
		}
		w.Policies = append(w.Policies, wirePolicy{
			ID: catalogID("policy", m.ID, "role "+id), Access: "allow",
			PermissionGroups: []wireGroup{a.wirePermissionGroup(pg)},
			ResourceGroups:   []wireGroup{a.wireResourceGroup(accountGroup)},
		})
	}
	for _, p := range m.Policies {
		wp := wirePolicy{ID: p.ID, Access: p.Access, PermissionGroups: []wireGroup{}, ResourceGroups: []wireGroup{}}
		for _, id := range p.PermissionGroups {
			wp.PermissionGroups = append(wp.PermissionGroups, a.wirePermissionGroup(id))
		}
		for _, id := range p.ResourceGroups {
			wp.ResourceGroups = append(wp.ResourceGroups, a.wireResourceGroup(id))
		}
		w.Policies = append(w.Policies, wp)
	}
	return w
}

// wireCreated is the member as POST answers it: without the roles or
// policies it was given (behaviour 1b); a later GET or list shows them.
func (a *account) wireCreated(m *Member) wireMember {
	w := a.wire(m)
	w.Roles, w.Policies = []wireRole{}, []wirePolicy{}
	return w
}

type idRef struct {
	ID string `json:"id"`
}

type memberBody struct {
	Email    string          `json:"email"`
	Status   string          `json:"status"`
	Roles    json.RawMessage `json:"roles"`
	Policies []policyBody    `json:"policies"`
}

// policyBody is a policy as a member or user-group write sends it.
type policyBody struct {
	Access           string  `json:"access"`
	PermissionGroups []idRef `json:"permission_groups"`
	ResourceGroups   []idRef `json:"resource_groups"`
}

func ok(result any) envelope {
	return envelope{Success: true, Errors: []apiMessage{}, Messages: []apiMessage{}, Result: result}
}

func invalid(msg string) (int, any) {
	return http.StatusBadRequest, errorEnvelope(CodeInvalidRequest, "Invalid request: "+msg)
}

// memberOrder sorts a members listing as the order and direction query
// parameters ask; without order, members list in creation order.
func memberOrder(list []*Member, q url.Values) []*Member {
	out := slices.Clone(list)
	key := func(m *Member) string { return strings.ToLower(m.Email) }
	switch q.Get("order") {
	case "":
		if q.Get("direction") == "desc" {
			slices.Reverse(out)
		}
		return out
	case "status":
		key = func(m *Member) string { return m.Status + "\x00" + strings.ToLower(m.Email) }
	}
	// user.first_name and user.last_name: the fake keeps no names, so they
	// order like user.email.
	slices.SortStableFunc(out, func(x, y *Member) int { return strings.Compare(key(x), key(y)) })
	if q.Get("direction") == "desc" {
		slices.Reverse(out)
	}
	return out
}

// listAnswer is a paged listing's envelope, with the listing fault applied.
func listAnswer[T any](all []T, q url.Values, lf ListingFault) (int, any) {
	page, perPage := pageParams(q)
	items, info := paginate(all, page, perPage, lf)
	env := ok(items)
	env.ResultInfo = info
	switch lf {
	case ListingUnsuccessful:
		env.Success = false
	case ListingNullResult:
		env.Result = nil
	}
	return http.StatusOK, env
}

// handle answers one validated request; the caller holds s.mu. lf, when
// set, makes a listing answer wrong in that way.
func (s *Server) handle(method string, tg target, q url.Values, body []byte, lf ListingFault) (int, any) {
	route, accountID, memberID := tg.route, tg.accountID, tg.memberID
	switch route {
	case RouteTokenVerify, RouteAccountTokenVerify:
		return s.verifyToken(route, accountID)
	}
	a, found := s.accounts[accountID]
	if !found {
		return http.StatusNotFound, errorEnvelope(CodeNoRoute, "Could not route to /accounts/"+accountID+", perhaps your object identifier is invalid?")
	}
	switch route {
	case RouteUserGroups, RouteUserGroup, RouteUserGroupMembers, RouteUserGroupMember:
		return s.handleUserGroups(a, method, tg, q, body, lf)
	}
	switch route + " " + method {
	case RouteMembers + " GET":
		if _, perPage := pageParams(q); perPage < 5 || perPage > 50 {
			return invalid("per_page must be between 5 and 50")
		}
		list := []wireMember{}
		for _, m := range memberOrder(a.members, q) {
			if st := q.Get("status"); st != "" && m.Status != st {
				continue
			}
			list = append(list, a.wire(m))
		}
		return listAnswer(list, q, lf)
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
			return http.StatusBadRequest, errorEnvelope(CodeInvalidRequest, "Invalid request: user is already a member of this account")
		}
		m := &Member{ID: s.newMemberID(accountID), Email: b.Email, Status: "pending"}
		if st, msg := s.applyGrants(a, m, b); st != 0 {
			return st, msg
		}
		a.members = append(a.members, m)
		return http.StatusOK, ok(a.wireCreated(m))
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
		a.leaveGroups(memberID)
		return http.StatusOK, ok(idRef{ID: memberID})
	case RouteRoles + " GET":
		all := make([]wireRole, 0, len(a.roles))
		for _, n := range a.roles {
			all = append(all, wireRole{ID: n.ID, Name: n.Name, Description: n.Name, Permissions: map[string]any{}})
		}
		return listAnswer(all, q, lf)
	case RoutePermissionGroups + " GET":
		all := make([]wireGroup, 0, len(a.permGroups))
		for _, n := range a.permGroups {
			all = append(all, a.wirePermissionGroup(n.ID))
		}
		return listAnswer(all, q, lf)
	case RouteResourceGroups + " GET":
		// One page, no result_info: Cloudflare does not page this listing
		// (cloudflare-go v7.9.0 models it as a SinglePage).
		out := make([]wireGroup, 0, len(a.resGroups))
		for _, n := range a.resGroups {
			out = append(out, a.wireResourceGroup(n.ID))
		}
		env := ok(out)
		switch lf {
		case ListingUnsuccessful:
			env.Success = false
		case ListingNullResult:
			env.Result = nil
		}
		return http.StatusOK, env
	}
	return http.StatusMethodNotAllowed, errorEnvelope(CodeNoRoute, "Method not allowed for this route")
}

// applyGrants sets m's roles or policies from a create/update body,
// rejecting ids the account's catalog does not have. A body with both
// roles and policies is taken, and the policies win (behaviour 1e).
func (s *Server) applyGrants(a *account, m *Member, b memberBody) (int, any) {
	hasRoles := len(b.Roles) > 0 && string(b.Roles) != "null"
	if !hasRoles && b.Policies == nil {
		return invalid("one of roles or policies is required")
	}
	if hasRoles && len(b.Policies) == 0 {
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
	ps, st, msg := a.policiesFrom(m.ID, b.Policies)
	if st != 0 {
		return st, msg
	}
	m.Roles, m.Policies = nil, ps
	return 0, nil
}

// policiesFrom reads the policies of a write for owner (a member or user
// group id), rejecting ids the account's catalog does not have.
func (a *account) policiesFrom(owner string, body []policyBody) ([]Policy, int, any) {
	var out []Policy
	for i, p := range body {
		pol := Policy{ID: catalogID("policy", owner, fmt.Sprint(i)), Access: p.Access}
		for _, g := range p.PermissionGroups {
			if nameOf(a.permGroups, g.ID) == "" {
				st, msg := invalid(fmt.Sprintf("permission group %s does not exist in this account", g.ID))
				return nil, st, msg
			}
			pol.PermissionGroups = append(pol.PermissionGroups, g.ID)
		}
		for _, g := range p.ResourceGroups {
			if nameOf(a.resGroups, g.ID) == "" {
				st, msg := invalid(fmt.Sprintf("resource group %s does not exist in this account", g.ID))
				return nil, st, msg
			}
			pol.ResourceGroups = append(pol.ResourceGroups, g.ID)
		}
		out = append(out, pol)
	}
	return out, 0, nil
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
