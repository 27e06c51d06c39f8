package cloudflarefake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// UserGroup is an account's user group as the fake stores it: a named set
// of account members that all hold the group's policies
// (testdata/BEHAVIOURS.md, 2).
type UserGroup struct {
	ID       string
	Name     string
	Policies []Policy
	// Members are account member ids, in the order they joined.
	Members []string
	// SCIM marks a group made by Cloudflare's own SCIM provisioning: the
	// API refuses to rename it, change its members or delete it (unless
	// Options.AllowSCIMGroupChanges). Cloudflare shows no field for this;
	// the wire answer is the same as for any group.
	SCIM                  bool
	CreatedOn, ModifiedOn time.Time
}

// Codes and words of the user-group refusals. Cloudflare documents that it
// refuses these changes but not with which answer: the fake answers them in
// the members API's "Invalid request" family (HTTP 400, code 1001), and the
// words name the reason ("SCIM", "pending"), which is what a client may
// rely on (BEHAVIOURS.md, 2b and 2c).
const (
	msgSCIMGroup     = "Invalid request: this user group is managed by SCIM provisioning; its name, members and existence can only be changed by the identity provider"
	msgPendingMember = "Invalid request: account member %s is pending: it has not accepted its invitation and cannot join a user group"
)

func cloneGroup(g *UserGroup) UserGroup {
	c := *g
	c.Members = slices.Clone(g.Members)
	c.Policies = clonePolicies(g.Policies)
	return c
}

func (a *account) groupByID(id string) (int, *UserGroup) {
	for i, g := range a.groups {
		if g.ID == id {
			return i, g
		}
	}
	return -1, nil
}

// leaveGroups drops a member that left the account from every user group:
// a group member is an account member (BEHAVIOURS.md, 2e).
func (a *account) leaveGroups(memberID string) {
	for _, g := range a.groups {
		if i := slices.Index(g.Members, memberID); i >= 0 {
			g.Members = slices.Delete(g.Members, i, i+1)
		}
	}
}

func (s *Server) newGroupID(accountID string) string {
	s.seq++
	return catalogID("user_group", accountID, fmt.Sprint(s.seq))
}

// AddUserGroup puts a user group in the account by hand, as someone using
// the dashboard would (a group scimflare does not own). An empty ID is
// generated; Members are emails of account members, and the test fails
// when one is not a member. Policies without an id or access get one and
// "allow".
func (s *Server) AddUserGroup(accountID string, g UserGroup, emails ...string) UserGroup {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustAccount(accountID)
	if g.ID == "" {
		g.ID = s.newGroupID(accountID)
	}
	now := s.clock.Now()
	g.CreatedOn, g.ModifiedOn = now, now
	for _, e := range emails {
		m := a.byEmail(e)
		if m == nil {
			s.t.Fatalf("cloudflarefake: %s is not a member of %s", e, accountID)
			return UserGroup{}
		}
		if !slices.Contains(g.Members, m.ID) {
			g.Members = append(g.Members, m.ID)
		}
	}
	seedPolicies(g.Policies, g.ID)
	stored := cloneGroup(&g)
	a.groups = append(a.groups, &stored)
	return cloneGroup(&stored)
}

// AddSCIMGroup puts a user group in the account as Cloudflare's own SCIM
// provisioning makes it: named after the IdP group, with the given members
// (emails) and no policies. The API refuses to rename it, change its
// members or delete it.
func (s *Server) AddSCIMGroup(accountID, name string, emails ...string) UserGroup {
	s.t.Helper()
	return s.AddUserGroup(accountID, UserGroup{Name: name, SCIM: true}, emails...)
}

// UserGroups lists the account's user groups in creation order.
func (s *Server) UserGroups(accountID string) []UserGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustAccount(accountID)
	out := make([]UserGroup, 0, len(a.groups))
	for _, g := range a.groups {
		out = append(out, cloneGroup(g))
	}
	return out
}

// UserGroup finds a user group by id, or else by name (the first of that
// name).
func (s *Server) UserGroup(accountID, idOrName string) (UserGroup, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustAccount(accountID)
	if _, g := a.groupByID(idOrName); g != nil {
		return cloneGroup(g), true
	}
	for _, g := range a.groups {
		if g.Name == idOrName {
			return cloneGroup(g), true
		}
	}
	return UserGroup{}, false
}

// UserGroupMembers are the emails of a user group's members, sorted; the
// test fails when there is no such group.
func (s *Server) UserGroupMembers(accountID, groupID string) []string {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustAccount(accountID)
	_, g := a.groupByID(groupID)
	if g == nil {
		s.t.Fatalf("cloudflarefake: account %s has no user group %s", accountID, groupID)
		return nil
	}
	var out []string
	for _, id := range g.Members {
		if _, m := a.byID(id); m != nil {
			out = append(out, strings.ToLower(m.Email))
		}
	}
	slices.Sort(out)
	return out
}

// SetUserGroupMembership adds (in true) or removes a member, by email, to
// or from a user group by hand, as someone in the dashboard would. It
// fails the test when there is no such group or member.
func (s *Server) SetUserGroupMembership(accountID, groupID, email string, in bool) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	a, m := s.mustMember(accountID, email)
	_, g := a.groupByID(groupID)
	if g == nil {
		s.t.Fatalf("cloudflarefake: account %s has no user group %s", accountID, groupID)
		return
	}
	i := slices.Index(g.Members, m.ID)
	switch {
	case in && i < 0:
		g.Members = append(g.Members, m.ID)
	case !in && i >= 0:
		g.Members = slices.Delete(g.Members, i, i+1)
	}
}

// Access is one permission group held on one resource group, by name.
type Access struct {
	PermissionGroup, ResourceGroup string
}

func (x Access) String() string { return x.PermissionGroup + " on " + x.ResourceGroup }

// EffectiveAccess is what the member holds, by whatever path, as
// Cloudflare documents it: "the union of all of their individual
// permissions, plus the permissions for all of the User Groups they are a
// member of" (BEHAVIOURS.md, 2d). It takes the member's roles (each as its
// permission group on the account scope), its own allow policies and the
// allow policies of every user group it belongs to; a deny policy, on the
// member or a group, removes what it names. Sorted; nil when the email is
// not a member. The member's status is not considered: a pending member
// holds what it will get on accepting.
func (s *Server) EffectiveAccess(accountID, email string) []Access {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustAccount(accountID)
	m := a.byEmail(email)
	if m == nil {
		return nil
	}
	return a.effective(m, a.groupsByMember())
}

// EffectiveAccessAll is EffectiveAccess for every member of the account at
// one instant, by lower-cased email: one consistent snapshot, for checking
// an invariant after every write (Options.AfterWrite).
func (s *Server) EffectiveAccessAll(accountID string) map[string][]Access {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.mustAccount(accountID)
	byMember := a.groupsByMember()
	out := make(map[string][]Access, len(a.members))
	for _, m := range a.members {
		out[strings.ToLower(m.Email)] = a.effective(m, byMember)
	}
	return out
}

// groupsByMember indexes the account's groups by member id.
func (a *account) groupsByMember() map[string][]*UserGroup {
	out := map[string][]*UserGroup{}
	for _, g := range a.groups {
		for _, id := range g.Members {
			out[id] = append(out[id], g)
		}
	}
	return out
}

func (a *account) effective(m *Member, groupsOf map[string][]*UserGroup) []Access {
	allow, deny := map[Access]bool{}, map[Access]bool{}
	add := func(p Policy) {
		set := allow
		if p.Access == "deny" {
			set = deny
		}
		for _, pg := range p.PermissionGroups {
			for _, rg := range p.ResourceGroups {
				set[Access{nameOf(a.permGroups, pg), nameOf(a.resGroups, rg)}] = true
			}
		}
	}
	scope := AccountScope(a.id)
	for _, id := range m.Roles {
		if name := nameOf(a.roles, id); name != "" && idOf(a.permGroups, name) != "" {
			allow[Access{name, scope}] = true
		}
	}
	for _, p := range m.Policies {
		add(p)
	}
	for _, g := range groupsOf[m.ID] {
		for _, p := range g.Policies {
			add(p)
		}
	}
	out := []Access{}
	for x := range allow {
		if !deny[x] {
			out = append(out, x)
		}
	}
	slices.SortFunc(out, func(x, y Access) int { return strings.Compare(x.String(), y.String()) })
	return out
}

// Wire shapes of user groups (cloudflare-go v7.9.0 iam.UserGroup* and
// iam.UserGroupMember*; testdata/BEHAVIOURS.md, 2).

type wireUserGroup struct {
	ID         string       `json:"id"`
	Name       string       `json:"name"`
	CreatedOn  string       `json:"created_on"`
	ModifiedOn string       `json:"modified_on"`
	Policies   []wirePolicy `json:"policies,omitempty"`
	// Status is a field Cloudflare sends and no client reads (developers
	// .cloudflare.com/fundamentals/manage-members/user-groups/, the list
	// example: "status": "V").
	Status string `json:"status"`
}

type wireGroupMember struct {
	ID     string `json:"id"`
	Email  string `json:"email,omitempty"`
	Status string `json:"status,omitempty"`
}

type wireGroupMemberDetail struct {
	wireGroupMember
	User struct {
		ID    string `json:"id"`
		Email string `json:"email"`
	} `json:"user"`
}

// wireGroup is the group as GET, list, POST and PUT answer it. A group
// without policies is answered without the field, as Cloudflare's own
// example shows.
func (a *account) wireGroup(g *UserGroup) wireUserGroup {
	w := wireUserGroup{ID: g.ID, Name: g.Name, Status: "V",
		CreatedOn: g.CreatedOn.UTC().Format(time.RFC3339Nano), ModifiedOn: g.ModifiedOn.UTC().Format(time.RFC3339Nano)}
	for _, p := range g.Policies {
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

func (a *account) wireGroupMember(id string) wireGroupMember {
	w := wireGroupMember{ID: id}
	if _, m := a.byID(id); m != nil {
		w.Email, w.Status = m.Email, m.Status
	}
	return w
}

type userGroupBody struct {
	Name     *string      `json:"name"`
	Policies []policyBody `json:"policies"`
}

var (
	errNoGroup  = errorEnvelope(CodeUserGroupNotFound, "User group not found")
	errNoMember = errorEnvelope(CodeMemberNotFound, "Member not found")
)

// handleUserGroups answers the user-group routes; the caller holds s.mu.
func (s *Server) handleUserGroups(a *account, method string, tg target, q url.Values, body []byte, lf ListingFault) (int, any) {
	now := s.clock.Now()
	var g *UserGroup
	if tg.groupID != "" {
		if _, g = a.groupByID(tg.groupID); g == nil {
			return http.StatusNotFound, errNoGroup
		}
	}
	locked := g != nil && g.SCIM && !s.opts.AllowSCIMGroupChanges
	switch tg.route + " " + method {
	case RouteUserGroups + " GET":
		if _, perPage := pageParams(q); perPage < 5 || perPage > 50 {
			return invalid("per_page must be between 5 and 50")
		}
		list := []wireUserGroup{}
		for _, g := range sortedGroups(a.groups, q.Get("direction") == "desc") {
			if id := q.Get("id"); id != "" && g.ID != id {
				continue
			}
			if n := q.Get("name"); n != "" && g.Name != n {
				continue
			}
			if f := q.Get("fuzzyName"); f != "" && !strings.Contains(strings.ToLower(g.Name), strings.ToLower(f)) {
				continue
			}
			list = append(list, a.wireGroup(g))
		}
		return listAnswer(list, q, lf)
	case RouteUserGroups + " POST":
		var b userGroupBody
		if err := json.Unmarshal(body, &b); err != nil || b.Name == nil || strings.TrimSpace(*b.Name) == "" {
			return invalid("a user group needs a name")
		}
		ng := &UserGroup{ID: s.newGroupID(a.id), Name: *b.Name, CreatedOn: now, ModifiedOn: now}
		ps, st, msg := a.policiesFrom(ng.ID, b.Policies)
		if st != 0 {
			return st, msg
		}
		ng.Policies = ps
		a.groups = append(a.groups, ng)
		return http.StatusOK, ok(a.wireGroup(ng))
	case RouteUserGroup + " GET":
		return http.StatusOK, ok(a.wireGroup(g))
	case RouteUserGroup + " PUT":
		var b userGroupBody
		if err := json.Unmarshal(body, &b); err != nil {
			return invalid("malformed JSON body")
		}
		if b.Name != nil && *b.Name != g.Name && locked {
			return http.StatusBadRequest, errorEnvelope(CodeInvalidRequest, msgSCIMGroup)
		}
		next := cloneGroup(g)
		if b.Name != nil {
			if strings.TrimSpace(*b.Name) == "" {
				return invalid("a user group needs a name")
			}
			next.Name = *b.Name
		}
		if b.Policies != nil {
			ps, st, msg := a.policiesFrom(g.ID, b.Policies)
			if st != 0 {
				return st, msg
			}
			next.Policies = ps
		}
		next.ModifiedOn = now
		*g = next
		return http.StatusOK, ok(a.wireGroup(g))
	case RouteUserGroup + " DELETE":
		if locked {
			return http.StatusBadRequest, errorEnvelope(CodeInvalidRequest, msgSCIMGroup)
		}
		i, _ := a.groupByID(g.ID)
		a.groups = slices.Delete(a.groups, i, i+1)
		return http.StatusOK, ok(idRef{ID: g.ID})
	case RouteUserGroupMembers + " GET":
		if _, perPage := pageParams(q); perPage < 5 || perPage > 50 {
			return invalid("per_page must be between 5 and 50")
		}
		list := []wireGroupMember{}
		for _, id := range g.Members {
			w := a.wireGroupMember(id)
			if f := q.Get("fuzzyEmail"); f != "" && !strings.Contains(strings.ToLower(w.Email), strings.ToLower(f)) {
				continue
			}
			list = append(list, w)
		}
		slices.SortStableFunc(list, func(x, y wireGroupMember) int {
			return strings.Compare(strings.ToLower(x.Email), strings.ToLower(y.Email))
		})
		if q.Get("direction") == "desc" {
			slices.Reverse(list)
		}
		return listAnswer(list, q, lf)
	case RouteUserGroupMembers + " POST", RouteUserGroupMembers + " PUT":
		if locked {
			return http.StatusBadRequest, errorEnvelope(CodeInvalidRequest, msgSCIMGroup)
		}
		var refs []idRef
		if err := json.Unmarshal(body, &refs); err != nil {
			return invalid("the body must be a list of members, each {\"id\": …}")
		}
		// All or nothing: every member is checked before any joins.
		var ids []string
		for _, r := range refs {
			_, m := a.byID(r.ID)
			if m == nil {
				return http.StatusNotFound, errNoMember
			}
			if m.Status == "pending" && s.opts.RefusePendingGroupMembers {
				return http.StatusBadRequest, errorEnvelope(CodeInvalidRequest, fmt.Sprintf(msgPendingMember, m.ID))
			}
			if !slices.Contains(ids, m.ID) {
				ids = append(ids, m.ID)
			}
		}
		if method == http.MethodPut {
			g.Members = ids
		} else {
			for _, id := range ids {
				if !slices.Contains(g.Members, id) {
					g.Members = append(g.Members, id)
				}
			}
		}
		g.ModifiedOn = now
		out := []wireGroupMember{}
		for _, id := range ids {
			out = append(out, a.wireGroupMember(id))
		}
		return http.StatusOK, ok(out)
	case RouteUserGroupMember + " GET":
		if !slices.Contains(g.Members, tg.memberID) {
			return http.StatusNotFound, errNoMember
		}
		w := wireGroupMemberDetail{wireGroupMember: a.wireGroupMember(tg.memberID)}
		w.User.ID, w.User.Email = catalogID("user", "", strings.ToLower(w.Email)), w.Email
		return http.StatusOK, ok(w)
	case RouteUserGroupMember + " DELETE":
		if locked {
			return http.StatusBadRequest, errorEnvelope(CodeInvalidRequest, msgSCIMGroup)
		}
		i := slices.Index(g.Members, tg.memberID)
		if i < 0 {
			return http.StatusNotFound, errNoMember
		}
		w := a.wireGroupMember(tg.memberID)
		g.Members = slices.Delete(g.Members, i, i+1)
		g.ModifiedOn = now
		return http.StatusOK, ok(w)
	}
	return http.StatusMethodNotAllowed, errorEnvelope(CodeNoRoute, "Method not allowed for this route")
}

// sortedGroups orders groups by name, as Cloudflare lists them (ascending
// unless direction=desc), creation order breaking ties.
func sortedGroups(groups []*UserGroup, desc bool) []*UserGroup {
	out := slices.Clone(groups)
	slices.SortStableFunc(out, func(x, y *UserGroup) int { return strings.Compare(x.Name, y.Name) })
	if desc {
		slices.Reverse(out)
	}
	return out
}

// SetRefusePendingGroupMembers switches Options.RefusePendingGroupMembers
// from the next request on, for a test that runs both answers in turn.
func (s *Server) SetRefusePendingGroupMembers(refuse bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.RefusePendingGroupMembers = refuse
}

// SetAllowSCIMGroupChanges switches Options.AllowSCIMGroupChanges from the
// next request on.
func (s *Server) SetAllowSCIMGroupChanges(allow bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.AllowSCIMGroupChanges = allow
}
