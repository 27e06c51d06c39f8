package mapping

import (
	"slices"
	"strings"
	"testing"
)

func catalog() Catalog {
	return Catalog{
		Roles: []Named{
			{ID: "r-super", Name: SuperAdministrator},
			{ID: "r-admin", Name: "Administrator"},
			{ID: "r-wpa", Name: "Workers Platform Admin"},
			{ID: "r-wpr", Name: "Workers Platform (Read-only)"},
			{ID: "r-billing", Name: "Billing"},
			{ID: "r-dns1", Name: "DNS"},
			{ID: "r-dns2", Name: "dns"},
		},
		PermissionGroups: []Named{{ID: "pg-wr", Name: "Workers Platform (Read-only)"}, {ID: "pg-dns", Name: "DNS Read"}},
		ResourceGroups:   []Named{{ID: "rg-pw", Name: "prod-workers"}, {ID: "rg-pz", Name: "prod-zones"}},
	}
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name    string
		mapping Mapping
		keys    []string
		problem string // substring of the only problem's message; "" = none
		path    string
	}{
		{"exact role", Mapping{Roles: []string{"Administrator"}}, []string{"role:r-admin"}, "", ""},
		{"case-insensitive role", Mapping{Roles: []string{"workers platform admin"}}, []string{"role:r-wpa"}, "", ""},
		{"exact beats folded", Mapping{Roles: []string{"dns"}}, []string{"role:r-dns2"}, "", ""},
		{"ambiguous when folded", Mapping{Roles: []string{"Dns"}}, nil, `role "Dns" is ambiguous in account prod: it matches "DNS" or "dns" ignoring case`, "mappings[0].roles[0]"},
		{"repeated role once", Mapping{Roles: []string{"Billing", "billing"}}, []string{"role:r-billing"}, "", ""},
		{"unknown role with suggestion", Mapping{Roles: []string{"Billing", "Workers Admin"}}, []string{"role:r-billing"},
			`role "Workers Admin" does not exist in account prod; did you mean "Workers Platform Admin"?`, "mappings[0].roles[1]"},
		{"unknown role without suggestion", Mapping{Roles: []string{"Zzzzzzzzzz"}}, nil, `role "Zzzzzzzzzz" does not exist in account prod`, "mappings[0].roles[0]"},
		{"policy", Mapping{Policies: []Policy{{PermissionGroups: []string{"Workers Platform (Read-only)", "dns read"}, ResourceGroups: []string{"prod-workers"}}}},
			[]string{"policy:pg-dns,pg-wr|rg-pw"}, "", ""},
		{"unknown resource group", Mapping{Policies: []Policy{{PermissionGroups: []string{"DNS Read"}, ResourceGroups: []string{"prod-worker"}}}},
			nil, `resource group "prod-worker" does not exist in account prod; did you mean "prod-workers" or "prod-zones"?`, "mappings[0].policies[0].resource_groups[0]"},
		{"role name is not a permission group", Mapping{Policies: []Policy{{PermissionGroups: []string{"Billing"}, ResourceGroups: []string{"prod-zones"}}}},
			nil, `permission group "Billing" does not exist`, "mappings[0].policies[0].permission_groups[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.mapping
			m.Group, m.Account = "g", "prod"
			tab := Table{Accounts: []Account{{Name: "prod", ID: prodID, Environment: "production", GrantShape: GrantShapeRoles}}, Mappings: []Mapping{m}}
			res, ps := Resolve(tab, map[string]Catalog{prodID: catalog()})
			if tc.problem == "" && len(ps) != 0 {
				t.Fatalf("unexpected problems %v", ps)
			}
			if tc.problem != "" {
				if len(ps) != 1 || ps[0].Path != tc.path || !strings.Contains(ps[0].Message, tc.problem) || ps[0].Warning {
					t.Fatalf("problems = %v, want one error at %s containing %q", ps, tc.path, tc.problem)
				}
			}
			if len(res.Mappings) != 1 {
				t.Fatalf("mappings = %d", len(res.Mappings))
			}
			rm := res.Mappings[0]
			if rm.AccountID != prodID || rm.Index != 0 || !slices.Equal(rm.Keys, tc.keys) {
				t.Errorf("resolved = %+v, want keys %v", rm, tc.keys)
			}
		})
	}
}

func TestResolveNamesAndSuperAdmin(t *testing.T) {
	tab := Table{
		Accounts: []Account{{Name: "prod", ID: prodID, Environment: "production"}, {Name: "staging", ID: stagingID, Environment: "staging", GrantShape: GrantShapeRoles}},
		Mappings: []Mapping{
			{Group: "readers", Account: "prod", Policies: []Policy{{PermissionGroups: []string{"Workers Platform (Read-only)"}, ResourceGroups: []string{"prod-workers"}}}},
			{Group: "x", Account: "staging", Roles: []string{"Billing"}},
		},
	}
	staging := Catalog{Roles: []Named{{ID: "r-billing", Name: "Billing"}}}
	res, ps := Resolve(tab, map[string]Catalog{prodID: catalog(), stagingID: staging})
	if len(ps) != 0 {
		t.Fatalf("problems %v", ps)
	}
	if got := res.Names["policy:pg-wr|rg-pw"]; got != "Workers Platform (Read-only) on prod-workers" {
		t.Errorf("policy name = %q", got)
	}
	// Unmapped roles are named too: drift shows names, not ids.
	if got := KeyName("role:r-super", res.Names); got != SuperAdministrator {
		t.Errorf("unmapped role name = %q", got)
	}
	if got := res.SuperAdminRole; len(got) != 1 || got[prodID] != "role:r-super" {
		t.Errorf("SuperAdminRole = %v", got)
	}
}

func TestResolveMissingCatalog(t *testing.T) {
	tab := baseTable()
	res, ps := Resolve(tab, map[string]Catalog{})
	if len(ps) != 1 || ps[0].Path != "mappings[0].account" || !strings.Contains(ps[0].Message, "no roles or groups were listed for account prod") {
		t.Fatalf("problems = %v", ps)
	}
	if len(res.Mappings) != 0 {
		t.Errorf("mapping without catalog resolved: %v", res.Mappings)
	}
}

// On an account that does not keep roles, a role name is granted as the
// permission group of that name on the account scope, and reads as the
// role's name.
func TestResolveRolesAsPolicies(t *testing.T) {
	scope := AccountScope(prodID)
	cat := Catalog{
		PermissionGroups: []Named{
			{ID: "pg-super", Name: SuperAdministrator}, {ID: "pg-admin", Name: "Administrator"},
			{ID: "pg-wpa", Name: "Workers Platform Admin"}, {ID: "pg-dns", Name: "DNS"},
		},
		ResourceGroups: []Named{{ID: "rg-acct", Name: scope}, {ID: "rg-pw", Name: "prod-workers"}},
	}
	tests := []struct {
		name, role, key, problem string
	}{
		{"same name", "Administrator", "policy:pg-admin|rg-acct", ""},
		{"any case", "workers platform admin", "policy:pg-wpa|rg-acct", ""},
		{"renamed by Cloudflare", "Workers Admin", "policy:pg-wpa|rg-acct", ""},
		{"no counterpart names the closest", "DNS Admin", "",
			`role "DNS Admin" has no permission group of that name in account prod, where roles are granted as policies; the closest permission groups are "DNS"`},
		{"no counterpart far from any", "Zzzzzzzzzzzzzz", "", `the closest permission groups are "Administrator", "DNS" or "Workers Platform Admin"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab := Table{Accounts: []Account{{Name: "prod", ID: prodID, Environment: "production"}},
				Mappings: []Mapping{{Group: "g", Account: "prod", Roles: []string{tc.role}}}}
			res, ps := Resolve(tab, map[string]Catalog{prodID: cat})
			if tc.problem != "" {
				if len(ps) != 1 || ps[0].Path != "mappings[0].roles[0]" || !strings.Contains(ps[0].Message, tc.problem) {
					t.Fatalf("problems = %v, want one containing %q", ps, tc.problem)
				}
				return
			}
			if len(ps) != 0 {
				t.Fatalf("problems %v", ps)
			}
			if got := res.Mappings[0].Keys; !slices.Equal(got, []string{tc.key}) {
				t.Fatalf("keys = %v, want %s", got, tc.key)
			}
			want := KeyName(tc.key, res.Names)
			if want != res.Names["permission_group:"+strings.TrimSuffix(strings.TrimPrefix(tc.key, "policy:"), "|rg-acct")] {
				t.Errorf("%s reads as %q", tc.key, want)
			}
			if strings.Contains(want, scope) {
				t.Errorf("an account-wide policy reads as %q: the scope is noise", want)
			}
		})
	}
	res, _ := Resolve(Table{Accounts: []Account{{Name: "prod", ID: prodID, Environment: "production"}}}, map[string]Catalog{prodID: cat})
	if !res.IsSuperAdmin(prodID, "policy:pg-super|rg-acct") || !res.IsSuperAdmin(prodID, "policy:pg-admin,pg-super|rg-acct") {
		t.Error("the Super Administrator permission group on the account scope is not a Super Administrator")
	}
	if res.IsSuperAdmin(prodID, "policy:pg-super|rg-pw") || res.IsSuperAdmin(prodID, "policy:pg-admin|rg-acct") {
		t.Error("a narrower policy counts as a Super Administrator")
	}
	if got := KeyName("policy:pg-super|rg-pw", res.Names); got != SuperAdministrator+" on prod-workers" {
		t.Errorf("a policy on a resource group reads as %q", got)
	}
}
