package cftest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

// The user-group behaviours of testdata/BEHAVIOURS.md (section 2), each as
// the wire shows it, every request and answer checked against the schema.

type wireUserGroup struct {
	ID       string       `json:"id"`
	Name     string       `json:"name"`
	Policies []wirePolicy `json:"policies"`
}

func userGroup(t *testing.T, a answer) wireUserGroup {
	t.Helper()
	if a.status != 200 {
		t.Fatalf("answer %d %s", a.status, a.raw)
	}
	var g wireUserGroup
	if err := json.Unmarshal(a.env.Result, &g); err != nil {
		t.Fatalf("result is not a user group: %s", a.raw)
	}
	return g
}

func groupMemberIDs(t *testing.T, a answer) []string {
	t.Helper()
	var ms []struct {
		ID     string `json:"id"`
		Email  string `json:"email"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(a.env.Result, &ms); err != nil {
		t.Fatalf("result is not a member list: %s", a.raw)
	}
	var out []string
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func accountPolicy(srv *cftest.Server, pg string) string {
	return fmt.Sprintf(`{"access":"allow","permission_groups":[{"id":%q}],"resource_groups":[{"id":%q}]}`,
		srv.PermissionGroupID(acct, pg), srv.ResourceGroupID(acct, cftest.AccountScope(acct)))
}

// TestUserGroupLifecycle: create with policies on the account scope, read,
// rename and replace policies with one PUT, add members in bulk, list them,
// remove one, delete the group. Policies read back like member policies.
func TestUserGroupLifecycle(t *testing.T) {
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}})
	a1 := srv.AddMember(acct, cftest.Member{Email: "a@example.com"})
	a2 := srv.AddMember(acct, cftest.Member{Email: "b@example.com"})
	base := "/accounts/" + acct + "/iam/user_groups"

	g := userGroup(t, send(t, srv, "POST", base, `{"name":"scimflare-ops","policies":[`+accountPolicy(srv, "Administrator")+`]}`, "x"))
	if g.Name != "scimflare-ops" || len(g.Policies) != 1 || g.Policies[0].PermissionGroups[0].Name != "Administrator" ||
		g.Policies[0].ResourceGroups[0].Scope.Key != cftest.AccountScope(acct) {
		t.Fatalf("created group = %+v", g)
	}
	if got := userGroup(t, send(t, srv, "GET", base+"/"+g.ID, "", "x")); got.ID != g.ID {
		t.Fatalf("GET = %+v", got)
	}
	put := userGroup(t, send(t, srv, "PUT", base+"/"+g.ID, `{"name":"scimflare-oncall","policies":[`+accountPolicy(srv, "DNS")+`]}`, "x"))
	if put.Name != "scimflare-oncall" || len(put.Policies) != 1 || put.Policies[0].PermissionGroups[0].Name != "DNS" {
		t.Fatalf("PUT answer = %+v", put)
	}

	add := send(t, srv, "POST", base+"/"+g.ID+"/members", `[{"id":"`+a1.ID+`"},{"id":"`+a2.ID+`"}]`, "x")
	if add.status != 200 || len(groupMemberIDs(t, add)) != 2 {
		t.Fatalf("add = %d %s", add.status, add.raw)
	}
	list := send(t, srv, "GET", base+"/"+g.ID+"/members?per_page=50", "", "x")
	if ids := groupMemberIDs(t, list); !slices.Equal(ids, []string{a1.ID, a2.ID}) || list.env.ResultInfo.TotalCount != 2 {
		t.Fatalf("members = %v (%s)", ids, list.raw)
	}
	if strings.Contains(string(list.raw), "total_pages") {
		t.Errorf("listing carries total_pages (BEHAVIOURS 1c): %s", list.raw)
	}
	if del := send(t, srv, "DELETE", base+"/"+g.ID+"/members/"+a1.ID, "", "x"); del.status != 200 {
		t.Fatalf("remove member = %d %s", del.status, del.raw)
	}
	if got := srv.UserGroupMembers(acct, g.ID); !slices.Equal(got, []string{"b@example.com"}) {
		t.Fatalf("members after removal = %v", got)
	}
	if again := send(t, srv, "DELETE", base+"/"+g.ID+"/members/"+a1.ID, "", "x"); again.status != 404 {
		t.Fatalf("removing a non-member = %d, want 404", again.status)
	}
	if del := send(t, srv, "DELETE", base+"/"+g.ID, "", "x"); del.status != 200 {
		t.Fatalf("delete group = %d %s", del.status, del.raw)
	}
	if gone := send(t, srv, "GET", base+"/"+g.ID, "", "x"); gone.status != 404 || gone.env.Errors[0].Code != cftest.CodeUserGroupNotFound {
		t.Fatalf("deleted group GET = %d %s", gone.status, gone.raw)
	}
	for _, r := range []string{cftest.RouteUserGroups, cftest.RouteUserGroup, cftest.RouteUserGroupMembers, cftest.RouteUserGroupMember} {
		if srv.Calls("GET", r)+srv.Calls("POST", r)+srv.Calls("PUT", r)+srv.Calls("DELETE", r) == 0 {
			t.Errorf("no calls counted on %s", r)
		}
	}
	if n := srv.Calls("POST", cftest.RouteUserGroupMembers); n != 1 {
		t.Errorf("bulk add counted %d calls, want 1", n)
	}
}

// TestUserGroupWithoutPoliciesOmitsField: a group with no policies is
// answered without "policies", as Cloudflare's example shows; a PUT with
// "policies": [] empties them.
func TestUserGroupWithoutPoliciesOmitsField(t *testing.T) {
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}})
	base := "/accounts/" + acct + "/iam/user_groups"
	a := send(t, srv, "POST", base, `{"name":"bare"}`, "x")
	if a.status != 200 || strings.Contains(string(a.env.Result), "policies") {
		t.Fatalf("create = %d %s", a.status, a.env.Result)
	}
	g := userGroup(t, a)
	send(t, srv, "PUT", base+"/"+g.ID, `{"policies":[`+accountPolicy(srv, "DNS")+`]}`, "x")
	emptied := send(t, srv, "PUT", base+"/"+g.ID, `{"policies":[]}`, "x")
	if got := userGroup(t, emptied); len(got.Policies) != 0 || got.Name != "bare" {
		t.Fatalf("after policies [] = %+v", got)
	}
}

// TestUserGroupListsPagedAt50: both listings take per_page 5 to 50 and
// page without total_pages.
func TestUserGroupListsPagedAt50(t *testing.T) {
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}, AllowInvalid: true})
	var emails []string
	for i := range 60 {
		emails = append(emails, srv.AddMember(acct, cftest.Member{Email: fmt.Sprintf("u%02d@example.com", i)}).Email)
	}
	g := srv.AddUserGroup(acct, cftest.UserGroup{Name: "big"}, emails...)
	base := "/accounts/" + acct + "/iam/user_groups"
	p2 := send(t, srv, "GET", base+"/"+g.ID+"/members?page=2&per_page=50", "", "x")
	if n := len(groupMemberIDs(t, p2)); n != 10 || p2.env.ResultInfo.TotalCount != 60 {
		t.Fatalf("page 2 = %d members, total %d", n, p2.env.ResultInfo.TotalCount)
	}
	for _, path := range []string{base + "?per_page=51", base + "/" + g.ID + "/members?per_page=100", base + "/" + g.ID + "/members?per_page=4"} {
		if a := send(t, srv, "GET", path, "", "x"); a.status != 400 || a.env.Errors[0].Code != cftest.CodeInvalidRequest {
			t.Errorf("%s = %d %s, want 400/1001", path, a.status, a.raw)
		}
	}
}

// TestPendingMemberJoinsGroupBothAnswers: by default a pending member may
// join a group; with RefusePendingGroupMembers the whole add is refused
// (400, 1001, "pending") and nobody joins.
func TestPendingMemberJoinsGroupBothAnswers(t *testing.T) {
	for _, refuse := range []bool{false, true} {
		t.Run(fmt.Sprint("refuse=", refuse), func(t *testing.T) {
			srv := cftest.New(t, cftest.Options{Accounts: []string{acct}, RefusePendingGroupMembers: refuse})
			ok := srv.AddMember(acct, cftest.Member{Email: "ok@example.com"})
			inv := srv.AddMember(acct, cftest.Member{Email: "inv@example.com", Status: "pending"})
			g := srv.AddUserGroup(acct, cftest.UserGroup{Name: "g"})
			a := send(t, srv, "POST", "/accounts/"+acct+"/iam/user_groups/"+g.ID+"/members",
				`[{"id":"`+ok.ID+`"},{"id":"`+inv.ID+`"}]`, "x")
			got := srv.UserGroupMembers(acct, g.ID)
			if !refuse {
				if a.status != 200 || len(got) != 2 {
					t.Fatalf("add = %d %s, members %v", a.status, a.raw, got)
				}
				return
			}
			if a.status != 400 || a.env.Errors[0].Code != cftest.CodeInvalidRequest || !strings.Contains(a.env.Errors[0].Message, "pending") {
				t.Fatalf("add = %d %s, want 400/1001 naming pending", a.status, a.raw)
			}
			if len(got) != 0 {
				t.Fatalf("a refused add still added %v", got)
			}
			srv.SetRefusePendingGroupMembers(false)
			if a := send(t, srv, "POST", "/accounts/"+acct+"/iam/user_groups/"+g.ID+"/members", `[{"id":"`+inv.ID+`"}]`, "x"); a.status != 200 {
				t.Fatalf("after switching to the other answer: %d %s", a.status, a.raw)
			}
		})
	}
}

// TestSCIMGroupRefusedBothAnswers: a group made by Cloudflare's SCIM
// cannot be renamed, re-membered or deleted over the API, yet its policies
// can be set; with AllowSCIMGroupChanges everything goes through.
func TestSCIMGroupRefusedBothAnswers(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprint("allow=", allow), func(t *testing.T) {
			srv := cftest.New(t, cftest.Options{Accounts: []string{acct}, AllowSCIMGroupChanges: allow})
			m := srv.AddMember(acct, cftest.Member{Email: "m@example.com"})
			other := srv.AddMember(acct, cftest.Member{Email: "o@example.com"})
			g := srv.AddSCIMGroup(acct, "Okta Engineers", "m@example.com")
			base := "/accounts/" + acct + "/iam/user_groups/" + g.ID
			if a := send(t, srv, "PUT", base, `{"name":"Okta Engineers","policies":[`+accountPolicy(srv, "DNS")+`]}`, "x"); a.status != 200 {
				t.Fatalf("setting policies on a SCIM group = %d %s, want 200", a.status, a.raw)
			}
			for _, w := range []struct{ method, path, body string }{
				{"PUT", base, `{"name":"renamed"}`},
				{"POST", base + "/members", `[{"id":"` + other.ID + `"}]`},
				{"DELETE", base + "/members/" + m.ID, ""},
				{"PUT", base + "/members", `[]`},
				{"DELETE", base, ""},
			} {
				a := send(t, srv, w.method, w.path, w.body, "x")
				if allow {
					if a.status != 200 {
						t.Errorf("%s %s = %d %s, want 200", w.method, w.path, a.status, a.raw)
					}
					continue
				}
				if a.status != 400 || a.env.Errors[0].Code != cftest.CodeInvalidRequest || !strings.Contains(a.env.Errors[0].Message, "SCIM") {
					t.Errorf("%s %s = %d %s, want 400/1001 naming SCIM", w.method, w.path, a.status, a.raw)
				}
			}
			if !allow {
				if got, ok := srv.UserGroup(acct, g.ID); !ok || got.Name != "Okta Engineers" || len(got.Members) != 1 {
					t.Fatalf("refused writes changed the group: %+v", got)
				}
			}
		})
	}
}

// TestEffectiveAccessUnion: what a member holds is its roles, its own
// policies and the policies of every group it is in; leaving the account
// drops it from every group, and a deny removes what it names.
func TestEffectiveAccessUnion(t *testing.T) {
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}})
	scope := cftest.AccountScope(acct)
	m := srv.AddMember(acct, cftest.Member{Email: "e@example.com", Roles: []string{srv.RoleID(acct, "DNS")},
		Policies: []cftest.Policy{{PermissionGroups: []string{srv.PermissionGroupID(acct, "Billing")},
			ResourceGroups: []string{srv.ResourceGroupID(acct, "prod-workers")}}}})
	g1 := srv.AddUserGroup(acct, cftest.UserGroup{Name: "g1", Policies: []cftest.Policy{{
		PermissionGroups: []string{srv.PermissionGroupID(acct, "Administrator")}, ResourceGroups: []string{srv.ResourceGroupID(acct, scope)}}}}, m.Email)
	srv.AddUserGroup(acct, cftest.UserGroup{Name: "g2", Policies: []cftest.Policy{{Access: "deny",
		PermissionGroups: []string{srv.PermissionGroupID(acct, "Billing")}, ResourceGroups: []string{srv.ResourceGroupID(acct, "prod-workers")}}}}, m.Email)
	srv.AddUserGroup(acct, cftest.UserGroup{Name: "not mine", Policies: []cftest.Policy{{
		PermissionGroups: []string{srv.PermissionGroupID(acct, "Firewall")}, ResourceGroups: []string{srv.ResourceGroupID(acct, scope)}}}})
	want := []cftest.Access{{PermissionGroup: "Administrator", ResourceGroup: scope}, {PermissionGroup: "DNS", ResourceGroup: scope}}
	if got := srv.EffectiveAccess(acct, m.Email); !slices.Equal(got, want) {
		t.Fatalf("effective = %v, want %v", got, want)
	}
	if a := send(t, srv, "DELETE", "/accounts/"+acct+"/members/"+m.ID, "", "x"); a.status != http.StatusOK {
		t.Fatalf("remove member = %d", a.status)
	}
	if got := srv.UserGroupMembers(acct, g1.ID); len(got) != 0 {
		t.Fatalf("a removed account member is still in a group: %v", got)
	}
	if got := srv.EffectiveAccess(acct, m.Email); got != nil {
		t.Fatalf("a removed member still holds %v", got)
	}
}

// TestAfterWriteSeesEveryPoint: AfterWrite runs after each write took
// effect, before the client has its answer, so EffectiveAccessAll there
// is the state at that point — what a "superset at every point" check
// needs.
func TestAfterWriteSeesEveryPoint(t *testing.T) {
	var mu sync.Mutex
	var points [][]cftest.Access
	var srv *cftest.Server
	srv = cftest.New(t, cftest.Options{Accounts: []string{acct}, AfterWrite: func(w cftest.Write) {
		at := srv.EffectiveAccessAll(acct)["m@example.com"]
		mu.Lock()
		defer mu.Unlock()
		points = append(points, at)
	}})
	m := srv.AddMember(acct, cftest.Member{Email: "M@example.com"})
	scope := cftest.AccountScope(acct)
	base := "/accounts/" + acct + "/iam/user_groups"
	g := userGroup(t, send(t, srv, "POST", base, `{"name":"g","policies":[`+accountPolicy(srv, "DNS")+`]}`, "x"))
	send(t, srv, "POST", base+"/"+g.ID+"/members", `[{"id":"`+m.ID+`"}]`, "x")
	send(t, srv, "PUT", base+"/"+g.ID, `{"name":"g","policies":[`+accountPolicy(srv, "DNS")+`,`+accountPolicy(srv, "Billing")+`]}`, "x")
	send(t, srv, "DELETE", base+"/nope", "", "x")
	send(t, srv, "DELETE", "/accounts/"+acct+"/members/"+m.ID, "", "x")
	dns, billing := cftest.Access{PermissionGroup: "DNS", ResourceGroup: scope}, cftest.Access{PermissionGroup: "Billing", ResourceGroup: scope}
	want := [][]cftest.Access{{}, {dns}, {billing, dns}, {billing, dns}, nil}
	mu.Lock()
	defer mu.Unlock()
	if len(points) != len(want) {
		t.Fatalf("AfterWrite ran %d times for 5 writes: %v", len(points), points)
	}
	for i := range want {
		if !slices.Equal(points[i], want[i]) {
			t.Errorf("point %d: %v, want %v", i, points[i], want[i])
		}
	}
}

// TestOnChangeDescribesUserGroupWrites: `serve --dev` prints what the fake
// accepted, user-group writes included: a create with its policies, a
// member joining and leaving, a policy change, a delete.
func TestOnChangeDescribesUserGroupWrites(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}, OnChange: func(c cftest.Change) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, c.String())
	}})
	a1 := srv.AddMember(acct, cftest.Member{Email: "a@example.com"})
	base := "/accounts/" + acct + "/iam/user_groups"
	g := userGroup(t, send(t, srv, "POST", base, `{"name":"scimflare-ops","policies":[`+accountPolicy(srv, "Administrator")+`]}`, "x"))
	send(t, srv, "POST", base+"/"+g.ID+"/members", `[{"id":"`+a1.ID+`"}]`, "x")
	send(t, srv, "PUT", base+"/"+g.ID, `{"name":"scimflare-ops","policies":[`+accountPolicy(srv, "DNS")+`]}`, "x")
	send(t, srv, "DELETE", base+"/"+g.ID+"/members/"+a1.ID, "", "x")
	send(t, srv, "DELETE", base+"/"+g.ID, "", "x")
	scope := " on " + cftest.AccountScope(acct)
	head := "account " + acct + ": user group scimflare-ops"
	want := []string{
		head + " created with [Administrator" + scope + "]",
		head + ": policies [Administrator" + scope + "] -> [Administrator" + scope + "], members [] -> [a@example.com]",
		head + ": policies [Administrator" + scope + "] -> [DNS" + scope + "], members [a@example.com] -> [a@example.com]",
		head + ": policies [DNS" + scope + "] -> [DNS" + scope + "], members [a@example.com] -> []",
		head + " deleted",
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("changes:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}
