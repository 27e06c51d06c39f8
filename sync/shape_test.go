package sync

import (
	"context"
	"net/http"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
	"github.com/scimflare/scimflare/sync/plan"
)

// shapeYAML maps cf-deployers and cf-oncall to roles on prod, which keeps
// roles when shape is "roles" and is granted policies otherwise.
func shapeYAML(shape string) string {
	line := ""
	if shape != "" {
		line = ", grant_shape: " + shape
	}
	return `
sync:
  schedule: "@every 1h"
  debounce: 50ms
accounts:
  - {name: prod, id: ` + prodID + `, environment: production` + line + `}
mappings:
  - group: cf-deployers
    account: prod
    roles: [Workers Platform Admin]
  - group: cf-oncall
    account: prod
    roles: [Administrator]
`
}

// effective is what a member may do, as the fake's change names it: a
// role grants its permission group on the account scope (BEHAVIOURS.md
// 1a), a policy each of its permission groups on each of its resource
// groups.
func effective(accountID string, grants []string) map[string]bool {
	out := map[string]bool{}
	for _, g := range grants {
		pgs, rgs, isPolicy := strings.Cut(g, " on ")
		if !isPolicy {
			out[g+" on "+mapping.AccountScope(accountID)] = true
			continue
		}
		for _, pg := range strings.Split(pgs, "+") {
			for _, rg := range strings.Split(rgs, "+") {
				out[pg+" on "+rg] = true
			}
		}
	}
	return out
}

// TestMigrateShapeOf1000MembersNeverDipsAccess moves an account of 1,000
// members granted roles (one of them adopted with a role of its own) to
// policies. Every write the fake accepts is checked as it lands: the
// member may do at least what it could before. The run converts each
// member by exactly one PUT, inside the request budget, trips no guard
// (a conversion is no removal), remaps the ledger (managed stay managed,
// found stay found), audits each conversion, and ends with exactly the
// mapped policies and no role anywhere.
func TestMigrateShapeOf1000MembersNeverDipsAccess(t *testing.T) {
	const n = 1000
	var mu gosync.Mutex
	var watching bool
	dips := 0
	perMember := map[string]int{}
	check := func(c cftest.Change) {
		mu.Lock()
		defer mu.Unlock()
		if !watching {
			return
		}
		perMember[c.Email]++
		before, after := effective(c.AccountID, c.Before), effective(c.AccountID, c.After)
		for k := range before {
			if !after[k] {
				dips++
				if dips <= 5 {
					t.Errorf("write to %s took away %q: %v -> %v", c.Email, k, c.Before, c.After)
				}
			}
		}
	}
	e := newEnv(t, withYAML(shapeYAML("roles")), func(o *envOpts) { o.onChange = check })
	ids := e.users(n, "user%04d@example.com")
	e.group("cf-deployers", ids...)
	e.group("cf-oncall", ids[:100]...)
	// An adopted member: Billing was there before scimflare.
	e.fake.AddMember(prodID, cftest.Member{Email: "user0500@example.com", Roles: []string{e.roleID(prodID, "Billing")}})
	e.mustApply(RunOptions{Actor: ActorApply})
	if got, _ := e.memberRoles(prodID, "user0500@example.com"); !slices.Equal(got, []string{"Billing", "Workers Platform Admin"}) {
		t.Fatalf("adopted member holds %v under roles", got)
	}
	before := map[string][]string{}
	for _, m := range e.fake.Members(prodID) {
		if len(m.Roles) == 0 || len(m.Policies) != 0 {
			t.Fatalf("%s is not a role member before the migration: %+v", m.Email, m)
		}
		roles, _ := e.memberRoles(prodID, m.Email)
		before[m.Email] = roles
	}

	e.r.Reload(parseConfig(t, shapeYAML("")))
	e.fake.ResetCounters()
	mu.Lock()
	watching = true
	mu.Unlock()
	start := e.clock.Now()
	res := e.mustApply(RunOptions{Actor: ActorApply})
	mu.Lock()
	watching = false
	mu.Unlock()

	if dips > 0 {
		t.Fatalf("%d writes took access away during the migration", dips)
	}
	if len(res.Changes.Tripped) != 0 || len(res.Changes.Withheld) != 0 {
		t.Fatalf("the migration tripped a guard or was withheld: tripped %v, withheld %d", res.Changes.Tripped, len(res.Changes.Withheld))
	}
	for _, ch := range res.Applied {
		if ch.Kind != plan.MigrateShape || ch.Removals() != 0 || ch.Privileged {
			t.Fatalf("change %s %s: removals %d privileged %v", ch.Kind, ch.Email, ch.Removals(), ch.Privileged)
		}
	}
	if len(res.Applied) != n {
		t.Fatalf("%d members converted, want %d", len(res.Applied), n)
	}
	if p, d, post := e.fake.Calls(http.MethodPut, cftest.RouteMember), e.fake.Calls(http.MethodDelete, cftest.RouteMember), e.fake.Calls(http.MethodPost, cftest.RouteMembers); p != n || d != 0 || post != 0 {
		t.Errorf("writes: %d PUT, %d DELETE, %d POST; want %d PUT only", p, d, post, n)
	}
	for email, k := range perMember {
		if k != 1 {
			t.Errorf("%s was written %d times, want one PUT", email, k)
		}
	}
	if got := e.fake.Calls(http.MethodGet, cftest.RouteRoles); got != 0 {
		t.Errorf("the policies run listed roles %d times", got)
	}
	// Inside the budget: 1,000 writes at 600 requests per rolling 5
	// minutes cannot land in one window.
	var at []time.Time
	for _, w := range e.fake.Writes() {
		at = append(at, w.At)
	}
	for i := range at {
		j := i
		for j < len(at) && at[j].Sub(at[i]) < 5*time.Minute {
			j++
		}
		if j-i > 600 {
			t.Fatalf("%d writes within 5 minutes from %s: over request_budget 600", j-i, at[i])
		}
	}
	t.Logf("1,000 members converted in %s of fake time", e.clock.Now().Sub(start))

	// Exactly the mapped ones, as policies on the account scope.
	scope := e.fake.ResourceGroupID(prodID, mapping.AccountScope(prodID))
	pg := func(name string) string { return e.fake.PermissionGroupID(prodID, name) }
	led := map[string]store0{}
	entries, err := e.st.Ledger(prodID)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range entries {
		led[l.Email] = store0{managed: l.Managed, found: l.Found}
	}
	for _, m := range e.fake.Members(prodID) {
		want := []string{pg("Workers Platform Admin")}
		if before[m.Email][0] == "Administrator" {
			want = append(want, pg("Administrator"))
		}
		var found []string
		if m.Email == "user0500@example.com" {
			found = []string{mapping.PolicyKey([]string{pg("Billing")}, []string{scope})}
			want = append(want, pg("Billing"))
		}
		var got []string
		for _, p := range m.Policies {
			if p.Access != "allow" || len(p.PermissionGroups) != 1 || !slices.Equal(p.ResourceGroups, []string{scope}) {
				t.Fatalf("%s holds %+v, not one permission group on the account scope", m.Email, p)
			}
			got = append(got, p.PermissionGroups[0])
		}
		slices.Sort(got)
		slices.Sort(want)
		if len(m.Roles) != 0 || !slices.Equal(got, want) {
			t.Fatalf("%s holds roles %v, policies %v; want no role and %v", m.Email, m.Roles, got, want)
		}
		var managed []string
		for _, id := range want {
			if id != pg("Billing") {
				managed = append(managed, mapping.PolicyKey([]string{id}, []string{scope}))
			}
		}
		slices.Sort(managed)
		if l := led[m.Email]; !slices.Equal(l.managed, managed) || !slices.Equal(l.found, found) {
			t.Fatalf("ledger of %s: managed %v found %v; want managed %v found %v", m.Email, l.managed, l.found, managed, found)
		}
	}
	recs := e.audit(string(plan.MigrateShape))
	if len(recs) != n {
		t.Fatalf("%d migrate_shape audit records, want %d", len(recs), n)
	}
	r := recs[0]
	if r.Privileged || !slices.Equal(r.Before, r.After) || len(r.After) == 0 || strings.Contains(strings.Join(r.After, ","), "com.cloudflare") {
		t.Errorf("audit record %+v: want the same names before and after, not flagged", r)
	}

	// Converged: the next run has nothing to do.
	e.fake.ResetCounters()
	res = e.mustApply(RunOptions{Actor: ActorApply})
	if len(res.Applied) != 0 || e.fake.Calls(http.MethodPut, cftest.RouteMember) != 0 {
		t.Errorf("a second run changed %s", kinds(res.Applied))
	}
}

type store0 struct{ managed, found []string }

// TestMigrateShapePlanIsItsOwnKind: plan shows a conversion as
// migrate_shape with role names before and after, not as a removal.
func TestMigrateShapePlanIsItsOwnKind(t *testing.T) {
	e := newEnv(t, withYAML(shapeYAML("roles")))
	e.group("cf-deployers", e.user("alice@example.com"))
	e.mustApply(RunOptions{Actor: ActorApply})
	e.r.Reload(parseConfig(t, shapeYAML("policies")))
	res, err := e.r.Plan(context.Background())
	if err != nil || res.Aborted != nil {
		t.Fatalf("plan: %v %v", err, res.Aborted)
	}
	var text, js strings.Builder
	if err := plan.RenderText(&text, res.Changes, res.Names); err != nil {
		t.Fatal(err)
	}
	if err := plan.RenderJSON(&js, res.Changes, res.Names, res.AccountNames); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"> migrate_shape alice@example.com", "before: Workers Platform Admin", "after:  Workers Platform Admin", "1 to migrate from roles to policies"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("plan text lacks %q:\n%s", want, text.String())
		}
	}
	if !strings.Contains(js.String(), `"kind": "migrate_shape"`) || !strings.Contains(js.String(), `"before": [
            "Workers Platform Admin"
          ]`) {
		t.Errorf("plan --json:\n%s", js.String())
	}
}

// TestPoliciesAccountNeverListsRoles: on an account granted policies,
// roles are resolved through permission groups; the deprecated roles
// listing is read only for an account that keeps roles. A temporary grant
// of a role follows the account's shape.
func TestPoliciesAccountNeverListsRoles(t *testing.T) {
	e := newEnv(t, withYAML(shapeYAML("")))
	alice := e.user("alice@example.com")
	e.user("bob@example.com")
	e.group("cf-deployers", alice)
	e.mustApply(RunOptions{Actor: ActorApply})
	e.targeted([]string{alice}, nil, nil)
	_, gres, err := e.r.Grant(context.Background(), GrantRequest{Email: "bob@example.com", Account: "prod", Role: "administrator", For: time.Hour, Reason: "incident"})
	if err != nil || gres.Aborted != nil {
		t.Fatalf("grant: %v", err)
	}
	if got := e.fake.Calls(http.MethodGet, cftest.RouteRoles); got != 0 {
		t.Errorf("a policies account listed roles %d times", got)
	}
	scope := e.fake.ResourceGroupID(prodID, mapping.AccountScope(prodID))
	for email, pgName := range map[string]string{"alice@example.com": "Workers Platform Admin", "bob@example.com": "Administrator"} {
		m, ok := e.fake.Member(prodID, email)
		if !ok || len(m.Roles) != 0 || len(m.Policies) != 1 || !slices.Equal(m.Policies[0].PermissionGroups, []string{e.fake.PermissionGroupID(prodID, pgName)}) ||
			!slices.Equal(m.Policies[0].ResourceGroups, []string{scope}) {
			t.Errorf("%s holds %+v, want %s as a policy on the account scope", email, m, pgName)
		}
	}

	// The same table on an account that keeps roles reads the roles listing.
	r := newEnv(t, withYAML(shapeYAML("roles")))
	r.group("cf-deployers", r.user("alice@example.com"))
	r.mustApply(RunOptions{Actor: ActorApply})
	if got := r.fake.Calls(http.MethodGet, cftest.RouteRoles); got == 0 {
		t.Error("an account with grant_shape: roles did not list its roles")
	}
	if got, _ := r.memberRoles(prodID, "alice@example.com"); !slices.Equal(got, []string{"Workers Platform Admin"}) {
		t.Errorf("roles account granted %v", got)
	}
}

// TestLastSuperAdminHeldThroughAPolicyIsNeverRemoved: Super Administrator
// granted as a policy (the permission group on the account scope) counts
// like the role: its last holder is never removed, and another holder
// through a hand-made policy lets the removal through.
func TestLastSuperAdminHeldThroughAPolicyIsNeverRemoved(t *testing.T) {
	e := newEnv(t, withYAML(`
sync:
  schedule: "@every 1h"
accounts:
  - {name: prod, id: `+prodID+`, environment: production}
mappings:
  - group: cf-owners
    account: prod
    roles: [Super Administrator - All Privileges]
`))
	alice := e.user("alice@example.com")
	e.group("cf-owners", alice)
	e.mustApply(RunOptions{Actor: ActorApply})
	e.fake.AcceptInvite(prodID, "alice@example.com")
	m, _ := e.fake.Member(prodID, "alice@example.com")
	if len(m.Roles) != 0 || len(m.Policies) != 1 {
		t.Fatalf("alice holds %+v, want the Super Administrator policy", m)
	}
	e.deactivate(alice)
	res := e.mustApply(RunOptions{Actor: ActorApply})
	if _, ok := e.fake.Member(prodID, "alice@example.com"); !ok {
		t.Fatal("the last Super Administrator, held through a policy, was removed")
	}
	if len(res.Changes.Withheld) != 1 || res.Changes.Withheld[0].By != plan.WithheldByLastSuperAdmin {
		t.Fatalf("withheld %+v, want alice's removal held as the last super administrator", res.Changes.Withheld)
	}
	// Bob is made Super Administrator by hand, as a policy: alice may go.
	scope := e.fake.ResourceGroupID(prodID, mapping.AccountScope(prodID))
	e.fake.AddMember(prodID, cftest.Member{Email: "bob@example.com", Policies: []cftest.Policy{{
		PermissionGroups: []string{e.fake.PermissionGroupID(prodID, mapping.SuperAdministrator)}, ResourceGroups: []string{scope}}}})
	e.mustApply(RunOptions{Actor: ActorApply})
	if _, ok := e.fake.Member(prodID, "alice@example.com"); ok {
		t.Error("alice kept access although bob holds Super Administrator through a policy")
	}
}
