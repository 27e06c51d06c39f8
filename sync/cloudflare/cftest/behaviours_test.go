package cftest_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

// The behaviours of testdata/BEHAVIOURS.md, each as the wire shows it.

type wirePolicy struct {
	ID               string `json:"id"`
	Access           string `json:"access"`
	PermissionGroups []struct {
		ID   string            `json:"id"`
		Name string            `json:"name"`
		Meta map[string]string `json:"meta"`
	} `json:"permission_groups"`
	ResourceGroups []struct {
		ID    string `json:"id"`
		Name  string `json:"name"`
		Scope struct {
			Key     string `json:"key"`
			Objects []struct {
				Key string `json:"key"`
			} `json:"objects"`
		} `json:"scope"`
	} `json:"resource_groups"`
}

type wireMember struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Roles []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"roles"`
	Policies []wirePolicy `json:"policies"`
}

func member(t *testing.T, a answer) wireMember {
	t.Helper()
	var m wireMember
	if err := json.Unmarshal(a.env.Result, &m); err != nil {
		t.Fatalf("result is not a member: %s", a.env.Result)
	}
	return m
}

func members(t *testing.T, a answer) []wireMember {
	t.Helper()
	var ms []wireMember
	if err := json.Unmarshal(a.env.Result, &ms); err != nil {
		t.Fatalf("result is not a member list: %s", a.raw)
	}
	return ms
}

// checkDerived asserts m holds exactly the roles named and, for each, the
// policy Cloudflare derives: allow, the role's permission group, on the
// account-scope resource group.
func checkDerived(t *testing.T, srv *cftest.Server, where string, m wireMember, roles ...string) {
	t.Helper()
	if len(m.Roles) != len(roles) || len(m.Policies) != len(roles) {
		t.Fatalf("%s: roles %+v policies %+v, want %d of each", where, m.Roles, m.Policies, len(roles))
	}
	scope := cftest.AccountScope(acct)
	for i, name := range roles {
		p := m.Policies[i]
		if m.Roles[i].Name != name || p.Access != "allow" || len(p.PermissionGroups) != 1 || len(p.ResourceGroups) != 1 {
			t.Fatalf("%s: role %d = %+v, policy %+v", where, i, m.Roles[i], p)
		}
		pg, rg := p.PermissionGroups[0], p.ResourceGroups[0]
		if pg.Name != name || pg.ID != srv.PermissionGroupID(acct, name) {
			t.Errorf("%s: permission group %+v, want %q", where, pg, name)
		}
		if rg.ID != srv.ResourceGroupID(acct, scope) || rg.Name != scope || rg.Scope.Key != scope ||
			len(rg.Scope.Objects) != 1 || rg.Scope.Objects[0].Key != "*" {
			t.Errorf("%s: resource group %+v, want the account scope %s", where, rg, scope)
		}
	}
}

func TestRolesReadBackWithDerivedPolicies(t *testing.T) {
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}})
	admin, dns := srv.RoleID(acct, "Administrator"), srv.RoleID(acct, "DNS")
	a := send(t, srv, "POST", "/accounts/"+acct+"/members", `{"email":"r@example.com","roles":["`+admin+`","`+dns+`"]}`, "x")
	if a.status != 200 {
		t.Fatalf("invite: %d %s", a.status, a.raw)
	}
	id := member(t, a).ID
	got := member(t, send(t, srv, "GET", "/accounts/"+acct+"/members/"+id, "", "x"))
	checkDerived(t, srv, "GET", got, "Administrator", "DNS")
	if l := got.Policies[0].PermissionGroups[0].Meta["label"]; l != "admin" {
		t.Errorf("Administrator group label %q, want admin", l)
	}
	list := members(t, send(t, srv, "GET", "/accounts/"+acct+"/members", "", "x"))
	if len(list) != 1 {
		t.Fatalf("list = %+v", list)
	}
	checkDerived(t, srv, "list", list[0], "Administrator", "DNS")
	put := send(t, srv, "PUT", "/accounts/"+acct+"/members/"+id, `{"roles":[{"id":"`+dns+`"}]}`, "x")
	checkDerived(t, srv, "PUT answer", member(t, put), "DNS")
	// Only the labels Cloudflare is seen to use are served.
	if meta := member(t, put).Policies[0].PermissionGroups[0].Meta; meta["label"] != "" || meta["editable"] != "false" {
		t.Errorf("DNS group meta %v; want built-in, no invented label", meta)
	}

	// The fake's state keeps the shape that was written.
	if st, _ := srv.Member(acct, "r@example.com"); len(st.Roles) != 1 || st.Policies != nil {
		t.Errorf("stored member = %+v", st)
	}
}

func TestCreateAnswersWithoutGrants(t *testing.T) {
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}})
	pg, rg := srv.PermissionGroupID(acct, "DNS"), srv.ResourceGroupID(acct, "prod-workers")
	for _, body := range []string{
		`{"email":"r@example.com","roles":["` + srv.RoleID(acct, "DNS") + `"]}`,
		`{"email":"p@example.com","policies":[{"access":"allow","permission_groups":[{"id":"` + pg + `"}],"resource_groups":[{"id":"` + rg + `"}]}]}`,
	} {
		a := send(t, srv, "POST", "/accounts/"+acct+"/members", body, "x")
		m := member(t, a)
		if a.status != 200 || len(m.Roles) != 0 || len(m.Policies) != 0 || m.ID == "" {
			t.Fatalf("POST answer %d %s, want the member without roles or policies", a.status, a.raw)
		}
		got := member(t, send(t, srv, "GET", "/accounts/"+acct+"/members/"+m.ID, "", "x"))
		if len(got.Roles)+len(got.Policies) == 0 {
			t.Errorf("GET after POST shows no grants: %+v", got)
		}
	}
}

func TestListingsPageLikeCloudflare(t *testing.T) {
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}, AllowInvalid: true})
	for i := range 7 {
		srv.AddMember(acct, cftest.Member{Email: string(rune('g'-i)) + "@example.com", Roles: []string{srv.RoleID(acct, "DNS")}})
	}
	a := send(t, srv, "GET", "/accounts/"+acct+"/members?page=2&per_page=5", "", "x")
	var info map[string]any
	var env struct {
		ResultInfo map[string]any `json:"result_info"`
	}
	_ = json.Unmarshal(a.raw, &env)
	info = env.ResultInfo
	if a.status != 200 || info["count"] != 2.0 || info["page"] != 2.0 || info["per_page"] != 5.0 || info["total_count"] != 7.0 {
		t.Fatalf("result_info = %v (%d)", info, a.status)
	}
	if _, has := info["total_pages"]; has {
		t.Errorf("result_info has total_pages: %v", info)
	}
	// per_page is 5-50 on every paged listing, roles included.
	for _, path := range []string{"/members", "/roles", "/iam/permission_groups"} {
		for _, pp := range []string{"4", "51"} {
			if a := send(t, srv, "GET", "/accounts/"+acct+path+"?per_page="+pp, "", "x"); a.status != 400 {
				t.Errorf("%s per_page=%s: %d, want 400", path, pp, a.status)
			}
		}
		for _, pp := range []string{"5", "50"} {
			if a := send(t, srv, "GET", "/accounts/"+acct+path+"?per_page="+pp, "", "x"); a.status != 200 {
				t.Errorf("%s per_page=%s: %d %s", path, pp, a.status, a.raw)
			}
		}
	}
	if n := len(srv.InvalidRequests()); n != 6 {
		t.Errorf("invalid requests = %d, want the 6 out-of-range ones", n)
	}
	// The resource-groups listing is one page without result_info.
	a = send(t, srv, "GET", "/accounts/"+acct+"/iam/resource_groups", "", "x")
	if a.status != 200 || strings.Contains(string(a.raw), "result_info") {
		t.Errorf("resource groups: %d %s", a.status, a.raw)
	}
	// Ordered by email, ascending or descending.
	list := members(t, send(t, srv, "GET", "/accounts/"+acct+"/members?order=user.email&direction=asc&per_page=50", "", "x"))
	var emails []string
	for _, m := range list {
		emails = append(emails, m.Email)
	}
	if !slices.IsSorted(emails) || len(emails) != 7 {
		t.Errorf("order=user.email: %v", emails)
	}
	list = members(t, send(t, srv, "GET", "/accounts/"+acct+"/members?order=user.email&direction=desc&per_page=50", "", "x"))
	if list[0].Email != "g@example.com" {
		t.Errorf("direction=desc starts with %s", list[0].Email)
	}
}

func TestRolesAndPoliciesBodyPoliciesWin(t *testing.T) {
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}})
	role := srv.RoleID(acct, "Administrator")
	pg, rg := srv.PermissionGroupID(acct, "DNS"), srv.ResourceGroupID(acct, "prod-workers")
	policies := `[{"access":"allow","permission_groups":[{"id":"` + pg + `"}],"resource_groups":[{"id":"` + rg + `"}]}]`
	a := send(t, srv, "POST", "/accounts/"+acct+"/members", `{"email":"b@example.com","roles":["`+role+`"],"policies":`+policies+`}`, "x")
	if a.status != 200 {
		t.Fatalf("both shapes on create: %d %s", a.status, a.raw)
	}
	m, _ := srv.Member(acct, "b@example.com")
	if len(m.Roles) != 0 || len(m.Policies) != 1 || m.Policies[0].PermissionGroups[0] != pg {
		t.Fatalf("after create with both: %+v, want the policies only", m)
	}
	a = send(t, srv, "PUT", "/accounts/"+acct+"/members/"+m.ID, `{"roles":[{"id":"`+role+`"}],"policies":`+policies+`}`, "x")
	if got := member(t, a); a.status != 200 || len(got.Roles) != 0 || len(got.Policies) != 1 {
		t.Fatalf("both shapes on update: %d %s", a.status, a.raw)
	}
}

func TestMalformedTokenIs6003(t *testing.T) {
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}, Token: "good-token"})
	for _, path := range []string{"/user/tokens/verify", "/accounts/" + acct + "/tokens/verify", "/accounts/" + acct + "/members"} {
		for _, tok := range []string{"", "has space", "ünïcode", "a\"b"} {
			a := send(t, srv, "GET", path, "", tok)
			var env struct {
				Errors []struct {
					Code       int `json:"code"`
					ErrorChain []struct {
						Code int `json:"code"`
					} `json:"error_chain"`
				} `json:"errors"`
			}
			_ = json.Unmarshal(a.raw, &env)
			if a.status != http.StatusBadRequest || len(env.Errors) != 1 || env.Errors[0].Code != cftest.CodeInvalidHeaders ||
				len(env.Errors[0].ErrorChain) != 1 || env.Errors[0].ErrorChain[0].Code != cftest.CodeInvalidAuthorization {
				t.Errorf("GET %s with token %q: %d %s", path, tok, a.status, a.raw)
			}
		}
	}
	// A well-formed but wrong token is still 403 / 10000.
	if a := send(t, srv, "GET", "/accounts/"+acct+"/members", "", "wrong_token-1.2~3+4/5=="); a.status != http.StatusForbidden {
		t.Errorf("well-formed wrong token: %d", a.status)
	}
}

func TestListingFaults(t *testing.T) {
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}})
	for i := range 12 {
		srv.AddMember(acct, cftest.Member{Email: string(rune('a'+i)) + "@example.com", Roles: []string{srv.RoleID(acct, "DNS")}})
	}
	path := "/accounts/" + acct + "/members?per_page=5"
	check := func(lf cftest.ListingFault, page string, f func(a answer)) {
		t.Helper()
		srv.Inject(cftest.Fault{Route: cftest.RouteMembers, Listing: lf})
		f(send(t, srv, "GET", path+"&page="+page, "", "x"))
		// It fired once: the next answer is right again.
		if a := send(t, srv, "GET", path+"&page="+page, "", "x"); !a.env.Success || len(members(t, a)) != 5 || a.env.ResultInfo.TotalCount != 12 {
			t.Errorf("fault %d fired more than once: %s", lf, a.raw)
		}
	}
	check(cftest.ListingUnsuccessful, "1", func(a answer) {
		if a.status != 200 || a.env.Success {
			t.Errorf("unsuccessful: %d %s", a.status, a.raw)
		}
	})
	check(cftest.ListingNullResult, "1", func(a answer) {
		if a.status != 200 || string(a.env.Result) != "null" {
			t.Errorf("null result: %d %s", a.status, a.raw)
		}
	})
	check(cftest.ListingShortPage, "1", func(a answer) {
		if n := len(members(t, a)); n != 4 || a.env.ResultInfo.TotalCount != 12 || a.env.ResultInfo.Count != 4 {
			t.Errorf("short page: %d members, %+v", n, a.env.ResultInfo)
		}
	})
	check(cftest.ListingTotalChanged, "2", func(a answer) {
		if a.env.ResultInfo.TotalCount != 13 {
			t.Errorf("total changed: %+v", a.env.ResultInfo)
		}
	})
	first := members(t, send(t, srv, "GET", path+"&page=1", "", "x"))
	check(cftest.ListingDuplicate, "2", func(a answer) {
		if got := members(t, a); len(got) != 5 || got[0].ID != first[4].ID {
			t.Errorf("duplicate: page 2 starts with %s, want page 1's last %s", got[0].Email, first[4].Email)
		}
	})
	if len(srv.InvalidResponses()) != 0 {
		t.Errorf("fault answers were response-validated: %+v", srv.InvalidResponses())
	}
}

func TestHandEdits(t *testing.T) {
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}})
	srv.AddMember(acct, cftest.Member{Email: "h@example.com", Status: "pending", Roles: []string{srv.RoleID(acct, "DNS")}})
	id := srv.GrantRole(acct, "h@example.com", "Billing")
	if m, _ := srv.Member(acct, "h@example.com"); len(m.Roles) != 2 || m.Roles[1] != id {
		t.Fatalf("after GrantRole: %+v", m)
	}
	if !srv.RevokeRole(acct, "h@example.com", "DNS") || srv.RevokeRole(acct, "h@example.com", "DNS") {
		t.Fatal("RevokeRole did not remove exactly once")
	}
	srv.AcceptInvite(acct, "h@example.com")
	m, _ := srv.Member(acct, "h@example.com")
	if m.Status != "accepted" || len(m.Roles) != 1 || m.Roles[0] != id {
		t.Fatalf("after RevokeRole and AcceptInvite: %+v", m)
	}
	checkDerived(t, srv, "GET", member(t, send(t, srv, "GET", "/accounts/"+acct+"/members/"+m.ID, "", "x")), "Billing")
	if !srv.RemoveMember(acct, "h@example.com") {
		t.Fatal("RemoveMember")
	}
	if a := send(t, srv, "GET", "/accounts/"+acct+"/members/"+m.ID, "", "x"); a.status != 404 {
		t.Fatalf("GET of a removed member: %d", a.status)
	}
}

func TestCatalogUsesCloudflareNames(t *testing.T) {
	srv := cftest.New(t, cftest.Options{Accounts: []string{acct}})
	// Every role has its permission group of the same name (1a), an added
	// role included.
	srv.AddRole(acct, "Cache Purge")
	pgs := map[string]bool{}
	for _, g := range srv.PermissionGroups(acct) {
		pgs[g.Name] = true
	}
	for _, r := range srv.Roles(acct) {
		if !pgs[r.Name] {
			t.Errorf("role %q has no permission group of its name", r.Name)
		}
	}
	if srv.PermissionGroupID(acct, "Administrator") == srv.RoleID(acct, "Administrator") {
		t.Error("role and permission group share an id space")
	}
}
