package sync

// The independent oracle of TestLeaverNeverKeepsAccess: a small model of
// SCIM users, groups, mapping variants, temporary grants and hand-made
// Cloudflare access, and the desired state computed from it straight from
// SPEC.md ("Reconcile semantics"), without the production planner. Plus the
// test's SCIM client and the hand edits it makes in the fake.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
	"github.com/scimflare/scimflare/sync/identity"
)

// Names the property test uses. Role, permission-group and resource-group
// names must exist in cftest's default catalog; when the fake switches to
// Cloudflare's real names, this block is the one place to follow.
const (
	propRoleWPA      = "Workers Platform Admin"
	propRoleAdmin    = "Administrator"
	propRoleDNS      = "DNS"
	propRoleAnalytic = "Analytics"
	propRoleBilling  = "Billing"
	propRoleFirewall = "Firewall"
	propRoleSuper    = "Super Administrator - All Privileges"
	propPGWorkersRO  = "Workers Platform (Read-only)"
	propPGAnalytics  = "Analytics"
	propPGDNS        = "DNS"
	propRGStaging    = "staging-workers"
	propRGProd       = "prod-workers"

	propBreakglass = "breakglass@example.com" // sync.protected; a hand-made Super Administrator
)

// propEmails is the address pool: users, renames and hand-made members
// draw from it, so identities collide on purpose (a rename onto an address
// a hand-made member or a deleted user had).
var propEmails = []string{
	"ann@example.com", "bob@example.com", "cat@example.com", "dan@example.com",
	"eve@example.com", "fay@example.com", "gus@example.com", "hal@example.com",
}

// propGroups are the SCIM group names steps create, fill, nest and delete.
var propGroups = []string{"cf-deployers", "cf-oncall", "cf-log-readers", "cf-readers", "platform", "team-a"}

type propPolicy struct{ pgs, rgs []string }

// key is the oracle's name for an allow policy: permission groups and
// resource groups by name, each sorted.
func (p propPolicy) key() string { return policyKeyOf(p.pgs, p.rgs) }

func policyKeyOf(pgs, rgs []string) string {
	a, b := slices.Clone(pgs), slices.Clone(rgs)
	slices.Sort(a)
	slices.Sort(b)
	return "allow:" + strings.Join(a, ",") + "@" + strings.Join(b, ",")
}

// propMapping is one mapping of a variant; prod mappings grant roles,
// staging mappings policies (configYAML's account shapes).
type propMapping struct {
	group, account string // account: "prod" or "staging"
	roles          []string
	policies       []propPolicy
	ttl            time.Duration
}

func (m propMapping) keys() []string {
	out := slices.Clone(m.roles)
	for _, p := range m.policies {
		out = append(out, p.key())
	}
	return out
}

// propVariants are the mapping tables a reload switches between. Every
// variant maps cf-log-readers on staging: a live temporary grant of a
// mapping that a reload removed makes every run abort by design (status.go
// tempGrants, strict), which is not what this test is about.
var propVariants = [][]propMapping{
	{
		{group: "cf-deployers", account: "prod", roles: []string{propRoleWPA}},
		{group: "cf-oncall", account: "prod", roles: []string{propRoleAdmin}, ttl: 30 * time.Minute},
		{group: "cf-log-readers", account: "staging", policies: []propPolicy{{[]string{propPGWorkersRO}, []string{propRGStaging}}}},
	},
	{
		{group: "cf-deployers", account: "prod", roles: []string{propRoleWPA, propRoleDNS}},
		{group: "cf-oncall", account: "prod", roles: []string{propRoleAdmin}, ttl: 45 * time.Minute},
		{group: "cf-readers", account: "prod", roles: []string{propRoleAnalytic}},
		{group: "cf-log-readers", account: "staging", policies: []propPolicy{{[]string{propPGWorkersRO}, []string{propRGStaging}}}},
		{group: "platform", account: "staging", policies: []propPolicy{{[]string{propPGAnalytics}, []string{propRGStaging}}}},
	},
	{
		{group: "cf-deployers", account: "prod", roles: []string{propRoleDNS}},
		{group: "cf-oncall", account: "prod", roles: []string{propRoleAdmin, propRoleBilling}, ttl: 20 * time.Minute},
		{group: "cf-log-readers", account: "staging", policies: []propPolicy{{[]string{propPGWorkersRO}, []string{propRGStaging, propRGProd}}}},
		{group: "team-a", account: "prod", roles: []string{propRoleFirewall}},
	},
}

// propConfigYAML renders a variant as the operator's config file. Guards
// are as loose as validation allows: they are a separate promise, and a
// trip is handled the way an operator would (apply --force, logged).
//
// prodRoles keeps prod on the legacy roles shape (grant_shape: roles);
// otherwise prod is granted policies, its mapped roles as their permission
// groups on the account scope. Staging always maps policies.
func propConfigYAML(variant int, remove, prodRoles bool) string {
	shape := ""
	if prodRoles {
		shape = ", grant_shape: roles"
	}
	unmanaged := "report"
	if remove {
		unmanaged = "remove"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `
sync:
  schedule: "@every 1h"
  debounce: 50ms
  max_grant_duration: 24h
  protected: [%s]
  unmanaged: %s
  guards: {max_removals: 1000, max_removal_percent: 100}
accounts:
  - {name: prod, id: %s, environment: production%s}
  - {name: staging, id: %s, environment: staging}
mappings:
`, propBreakglass, unmanaged, prodID, shape, stagingID)
	q := func(ss []string) string {
		out := make([]string, len(ss))
		for i, s := range ss {
			out[i] = fmt.Sprintf("%q", s)
		}
		return "[" + strings.Join(out, ", ") + "]"
	}
	for _, m := range propVariants[variant] {
		fmt.Fprintf(&b, "  - group: %s\n    account: %s\n", m.group, m.account)
		if len(m.roles) > 0 {
			fmt.Fprintf(&b, "    roles: %s\n", q(m.roles))
		}
		if len(m.policies) > 0 {
			b.WriteString("    policies:\n")
			for _, p := range m.policies {
				fmt.Fprintf(&b, "      - permission_groups: %s\n        resource_groups: %s\n", q(p.pgs), q(p.rgs))
			}
		}
		if m.ttl > 0 {
			fmt.Fprintf(&b, "    ttl: %s\n", m.ttl)
		}
	}
	return b.String()
}

func propAccountID(name string) string {
	if name == "prod" {
		return prodID
	}
	return stagingID
}

func propAccountName(id string) string {
	if id == prodID {
		return "prod"
	}
	return "staging"
}

// fold is the oracle's identity rule for the ASCII pool: Cloudflare
// compares emails case-insensitively.
func fold(email string) string { return strings.ToLower(email) }

type propUser struct {
	id          string // SCIM id ("" in the generator's model)
	email       string // userName as sent (identity.email_from: userName)
	exists      bool
	active      bool
	activeSince time.Time
}

type propGroup struct {
	id      string
	exists  bool
	members map[string]time.Time // "u<slot>" or "g<name>" -> since the edge was stored
}

type propGrant struct {
	id             string
	email, account string // account name
	role, mapping  string // one of them
	start, end     time.Time
	revoked        time.Time
	stored         bool
}

// Hand-made access marks: what someone did in the dashboard.
const (
	handKept   = 1 // must still be there at the end
	handEither = 2 // may be gone: it coincided with a desired key (ownership is then ambiguous) or unmanaged: remove was in force
)

// propModel is the oracle's world. The generator runs one without ids or
// times to pick meaningful steps; the runner keeps one with both.
type propModel struct {
	users   []*propUser
	groups  map[string]*propGroup
	grants  []*propGrant
	variant int
	remove  bool
	// hand: account id \x00 fold(email) \x00 key -> handKept/handEither.
	hand map[string]int
	// everDesired: account id \x00 fold(email) for every email the model
	// wanted in that account after some step.
	everDesired map[string]bool
}

func newPropModel() *propModel {
	m := &propModel{groups: map[string]*propGroup{}, hand: map[string]int{}, everDesired: map[string]bool{}}
	for _, g := range propGroups {
		m.groups[g] = &propGroup{members: map[string]time.Time{}}
	}
	return m
}

func userRef(slot int) string     { return fmt.Sprintf("u%d", slot) }
func groupRef(name string) string { return "g" + name }

func (m *propModel) liveUsers(pred func(*propUser) bool) []int {
	var out []int
	for i, u := range m.users {
		if u.exists && (pred == nil || pred(u)) {
			out = append(out, i)
		}
	}
	return out
}

func (m *propModel) liveGroups() []string {
	var out []string
	for _, g := range propGroups {
		if m.groups[g].exists {
			out = append(out, g)
		}
	}
	return out
}

// emailTaken: some existing user holds this identity (userName is unique
// case-insensitively in SCIM).
func (m *propModel) emailTaken(email string, except int) bool {
	for i, u := range m.users {
		if i != except && u.exists && fold(u.email) == fold(email) {
			return true
		}
	}
	return false
}

// createUser puts a new user in slot (len(users) when generating); a
// shrunk sequence may leave earlier slots unused, kept as placeholders.
func (m *propModel) createUser(slot int, email, id string, now time.Time) int {
	for len(m.users) <= slot {
		m.users = append(m.users, &propUser{})
	}
	m.users[slot] = &propUser{id: id, email: email, exists: true, active: true, activeSince: now}
	return slot
}

// applicable says whether a step still makes sense in this model: always
// for a generated sequence, not always once the shrinker dropped steps.
func (m *propModel) applicable(s propStep) bool {
	user := func(slot int) bool { return slot < len(m.users) && m.users[slot].exists }
	group := func(name string) bool { return m.groups[name] != nil && m.groups[name].exists }
	switch s.kind {
	case kUserCreate:
		return (s.slot >= len(m.users) || m.users[s.slot].id == "" && !m.users[s.slot].exists) && !m.emailTaken(s.email, -1)
	case kUserDeactivate, kUserReactivate, kUserDelete, kGrant:
		return user(s.slot)
	case kUserRename, kUserRecase, kUserRenameOdd:
		return user(s.slot) && !m.emailTaken(s.email, s.slot)
	case kGroupCreate:
		for _, u := range s.members {
			if !user(u) {
				return false
			}
		}
		return !group(s.group)
	case kGroupDelete:
		return group(s.group)
	case kGroupAddUser:
		return group(s.group) && user(s.slot)
	case kGroupRemoveUsr:
		_, in := m.groups[s.group].members[userRef(s.slot)]
		return group(s.group) && user(s.slot) && in
	case kGroupNest:
		return group(s.group) && group(s.other) && s.group != s.other && !m.reaches(s.other, s.group, map[string]bool{})
	case kGroupUnnest:
		_, in := m.groups[s.group].members[groupRef(s.other)]
		return group(s.group) && group(s.other) && in
	}
	return true
}

func (m *propModel) setActive(slot int, on bool, now time.Time) {
	u := m.users[slot]
	if on && !u.active {
		u.activeSince = now
	}
	if !on {
		u.activeSince = time.Time{}
	}
	u.active = on
}

func (m *propModel) deleteUser(slot int) {
	m.users[slot].exists = false
	for _, g := range m.groups {
		delete(g.members, userRef(slot))
	}
}

func (m *propModel) createGroup(name, id string, members []int, now time.Time) {
	g := m.groups[name]
	g.id, g.exists, g.members = id, true, map[string]time.Time{}
	for _, s := range members {
		g.members[userRef(s)] = now
	}
}

func (m *propModel) deleteGroup(name string) {
	m.groups[name].exists = false
	m.groups[name].members = map[string]time.Time{}
	for _, g := range m.groups {
		delete(g.members, groupRef(name))
	}
}

func (m *propModel) addEdge(group, ref string, now time.Time) {
	if _, ok := m.groups[group].members[ref]; !ok {
		m.groups[group].members[ref] = now // an existing edge keeps its time
	}
}

// reaches: from group g, is group target below (or g itself)?
func (m *propModel) reaches(g, target string, seen map[string]bool) bool {
	if g == target {
		return true
	}
	if seen[g] {
		return false
	}
	seen[g] = true
	for ref := range m.groups[g].members {
		if strings.HasPrefix(ref, "g") && m.reaches(ref[1:], target, seen) {
			return true
		}
	}
	return false
}

// starts is every user slot reachable from group root with the moment it
// became an effective member: over one path the latest edge on it, over
// several the earliest of those (SPEC: a ttl starts when the membership
// was stored; nested groups are flattened).
func (m *propModel) starts(root string, visited map[string]bool, acc time.Time, out map[int]time.Time) {
	g := m.groups[root]
	if !g.exists || visited[root] {
		return
	}
	visited[root] = true
	defer delete(visited, root)
	for ref, since := range g.members {
		t := acc
		if since.After(t) {
			t = since
		}
		if strings.HasPrefix(ref, "u") {
			var slot int
			fmt.Sscanf(ref, "u%d", &slot)
			if old, ok := out[slot]; !ok || t.Before(old) {
				out[slot] = t
			}
			continue
		}
		m.starts(ref[1:], visited, t, out)
	}
}

// activeEmail: some existing active user has this identity.
func (m *propModel) activeEmail(email string) bool {
	for _, u := range m.users {
		if u.exists && u.active && identity.Valid(u.email) && fold(u.email) == fold(email) {
			return true
		}
	}
	return false
}

// desired is SPEC's desired state at now: account id -> fold(email) ->
// keys. For each active user, the union of the grants of every mapping
// whose group they are in (nested included), minus ended ttls; plus live
// temporary grants of an email an active user has.
func (m *propModel) desired(now time.Time) map[string]map[string]map[string]bool {
	out := map[string]map[string]map[string]bool{prodID: {}, stagingID: {}}
	add := func(account, email string, keys []string) {
		a := out[propAccountID(account)]
		if a[fold(email)] == nil {
			a[fold(email)] = map[string]bool{}
		}
		for _, k := range keys {
			a[fold(email)][k] = true
		}
	}
	for _, mp := range propVariants[m.variant] {
		if !m.groups[mp.group].exists {
			continue
		}
		st := map[int]time.Time{}
		m.starts(mp.group, map[string]bool{}, time.Time{}, st)
		for slot, t := range st {
			u := m.users[slot]
			// The identity rule: an address that is not plain is granted
			// nothing.
			if !u.exists || !u.active || !identity.Valid(u.email) {
				continue
			}
			if u.activeSince.After(t) {
				t = u.activeSince
			}
			if mp.ttl > 0 && !now.Before(t.Add(mp.ttl)) {
				continue
			}
			add(mp.account, u.email, mp.keys())
		}
	}
	for _, g := range m.grants {
		if !g.stored {
			continue
		}
		end := g.end
		if !g.revoked.IsZero() && g.revoked.Before(end) {
			end = g.revoked
		}
		if now.Before(g.start) || !now.Before(end) || !m.activeEmail(g.email) {
			continue
		}
		if g.role != "" {
			add(g.account, g.email, []string{g.role})
			continue
		}
		for _, mp := range propVariants[m.variant] {
			if mp.account == g.account && mp.group == g.mapping {
				add(g.account, g.email, mp.keys())
			}
		}
	}
	return out
}

func handKey(accountID, email, key string) string {
	return accountID + "\x00" + fold(email) + "\x00" + key
}

// settle updates the hand-made marks and everDesired after a step.
func (m *propModel) settle(now time.Time) {
	d := m.desired(now)
	for acct, byEmail := range d {
		for email, keys := range byEmail {
			if len(keys) > 0 {
				m.everDesired[acct+"\x00"+email] = true
			}
			for k := range keys {
				if _, ok := m.hand[handKey(acct, email, k)]; ok {
					m.hand[handKey(acct, email, k)] = handEither
				}
			}
		}
	}
	if m.remove {
		for k := range m.hand {
			m.hand[k] = handEither
		}
	}
}

func (m *propModel) forgetHand(accountID, email string) {
	prefix := accountID + "\x00" + fold(email) + "\x00"
	for k := range m.hand {
		if strings.HasPrefix(k, prefix) {
			delete(m.hand, k)
		}
	}
}

// handOf is the marks of one member: key -> mark.
func (m *propModel) handOf(accountID, email string) map[string]int {
	out := map[string]int{}
	prefix := accountID + "\x00" + fold(email) + "\x00"
	for k, v := range m.hand {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			out[rest] = v
		}
	}
	return out
}

// describeUser says what the model knows about an email, for a violation.
func (m *propModel) describeUser(email string) string {
	var parts []string
	for i, u := range m.users {
		if fold(u.email) != fold(email) {
			continue
		}
		state := "active"
		switch {
		case !u.exists:
			state = "deleted"
		case !u.active:
			state = "inactive"
		}
		var groups []string
		for _, g := range propGroups {
			if _, ok := m.groups[g].members[userRef(i)]; ok {
				groups = append(groups, g)
			}
		}
		parts = append(parts, fmt.Sprintf("user #%d %s, direct groups %v", i, state, groups))
	}
	if len(parts) == 0 {
		return "no SCIM user has this email (renamed away, or never one)"
	}
	return strings.Join(parts, "; ")
}

// --- Cloudflare as the oracle reads it (names, not ids) ---

// cfKeys is every member of an account as oracle keys: roles by name on
// prod (the roles account), policies on staging (the policies account).
// Role ids the catalog does not name show as "role-id:<id>".
func cfKeys(fake *cftest.Server, accountID string) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	roles, pgs, rgs := fake.Roles(accountID), fake.PermissionGroups(accountID), fake.ResourceGroups(accountID)
	name := func(list []cftest.Named, id string) string {
		for _, n := range list {
			if n.ID == id {
				return n.Name
			}
		}
		return "id:" + id
	}
	// What a member may do, whatever the shape: a role is its name; an
	// allow policy on the account scope alone is each of its permission
	// groups, named as the role it stands for (a role and its permission
	// group share their name); any other policy is its own key.
	for _, mem := range fake.Members(accountID) {
		keys := map[string]bool{}
		for _, id := range mem.Roles {
			keys[name(roles, id)] = true
		}
		for _, p := range mem.Policies {
			var pg, rg []string
			for _, id := range p.PermissionGroups {
				pg = append(pg, name(pgs, id))
			}
			for _, id := range p.ResourceGroups {
				rg = append(rg, name(rgs, id))
			}
			if p.Access == "allow" && len(rg) == 1 && rg[0] == cftest.AccountScope(accountID) {
				for _, n := range pg {
					keys[n] = true
				}
				continue
			}
			k := policyKeyOf(pg, rg)
			if p.Access != "allow" {
				k = p.Access + strings.TrimPrefix(k, "allow")
			}
			keys[k] = true
		}
		out[fold(mem.Email)] = keys
	}
	return out
}

func sortedKeys(s map[string]bool) []string { return slices.Sorted(maps.Keys(s)) }

// handPolicies are the staging policies hand edits add.
var handPolicies = []propPolicy{
	{[]string{propPGDNS}, []string{propRGStaging}},
	{[]string{propPGWorkersRO}, []string{propRGStaging}},
	{[]string{propPGAnalytics}, []string{propRGStaging}},
}

// handRoles are the prod roles hand edits add; some are ones mappings
// grant, so hand-made and scimflare-granted access meet.
var handRoles = []string{propRoleDNS, propRoleAnalytic, propRoleBilling, propRoleFirewall, propRoleAdmin, propRoleWPA}

// handReplace rewrites a member as someone in the dashboard would: same
// id, same status, the given grants.
// TODO(after merge with the realistic fake): use its hand-edit hooks (add or
// remove a role on a member) instead of delete + re-add, which moves the
// member to the end of the listing order.
func handReplace(fake *cftest.Server, accountID string, mem cftest.Member) {
	fake.RemoveMember(accountID, mem.Email)
	fake.AddMember(accountID, mem)
}

// prodRolePolicy is role granted as a policy on prod: its permission group
// on the account scope, as a person would grant it in the dashboard.
func prodRolePolicy(fake *cftest.Server, role string) cftest.Policy {
	return cftest.Policy{Access: "allow", PermissionGroups: []string{fake.PermissionGroupID(prodID, role)},
		ResourceGroups: []string{fake.ResourceGroupID(prodID, cftest.AccountScope(prodID))}}
}

func handPolicyOf(fake *cftest.Server, p propPolicy) cftest.Policy {
	pol := cftest.Policy{Access: "allow"}
	for _, n := range p.pgs {
		pol.PermissionGroups = append(pol.PermissionGroups, fake.PermissionGroupID(stagingID, n))
	}
	for _, n := range p.rgs {
		pol.ResourceGroups = append(pol.ResourceGroups, fake.ResourceGroupID(stagingID, n))
	}
	return pol
}

// --- the IdP's side: SCIM over real HTTP ---

const (
	propSCIMToken = "prop-scim-token-0123456789abcdef"
	propSCIMBase  = "/scim/v2"
	propUserURN   = "urn:ietf:params:scim:schemas:core:2.0:User"
	propGroupURN  = "urn:ietf:params:scim:schemas:core:2.0:Group"
	propPatchURN  = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
)

type propSCIM struct {
	t    testing.TB
	base string // server URL + base path
	hc   *http.Client
}

// do sends one SCIM request and fails the test unless the status is want
// (for 200, a 204 too: PATCH may answer without the resource):
// every request the generator makes is valid, so a refusal is a bug in
// the test or in scim/, not a case to model.
func (s *propSCIM) do(method, path string, body any, want int) map[string]any {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+propSCIMToken)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := s.hc.Do(req)
	if err != nil {
		s.t.Fatalf("SCIM %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want && !(want == http.StatusOK && resp.StatusCode == http.StatusNoContent) {
		s.t.Fatalf("SCIM %s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, raw)
	}
	out := map[string]any{}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &out)
	}
	return out
}

func (s *propSCIM) createUser(userName string) string {
	s.t.Helper()
	res := s.do(http.MethodPost, "/Users", map[string]any{
		"schemas": []string{propUserURN}, "userName": userName, "active": true,
	}, http.StatusCreated)
	id, _ := res["id"].(string)
	if id == "" {
		s.t.Fatalf("SCIM create %s: no id in %v", userName, res)
	}
	return id
}

func (s *propSCIM) patch(path string, ops ...map[string]any) {
	s.t.Helper()
	s.do(http.MethodPatch, path, map[string]any{"schemas": []string{propPatchURN}, "Operations": ops}, http.StatusOK)
}

func (s *propSCIM) createGroup(name string, memberIDs []string) string {
	s.t.Helper()
	members := []map[string]string{}
	for _, id := range memberIDs {
		members = append(members, map[string]string{"value": id})
	}
	res := s.do(http.MethodPost, "/Groups", map[string]any{
		"schemas": []string{propGroupURN}, "displayName": name, "members": members,
	}, http.StatusCreated)
	id, _ := res["id"].(string)
	if id == "" {
		s.t.Fatalf("SCIM create group %s: no id in %v", name, res)
	}
	return id
}
