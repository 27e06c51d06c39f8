package mapping

import (
	"strings"
	"testing"
	"time"
)

func ugTable() Table {
	return Table{
		Accounts: []Account{{Name: "prod", ID: "0123456789abcdef0123456789abcdef", Environment: EnvProduction, Model: ModelUserGroups}},
		Mappings: []Mapping{
			{Group: "cf-ops", Account: "prod", Roles: []string{"DNS"}},
			{Group: "cf-dev", Account: "prod", Roles: []string{"DNS"}},
		},
	}
}

func problemAt(ps []Problem, path string) (Problem, bool) {
	for _, p := range ps {
		if p.Path == path {
			return p, true
		}
	}
	return Problem{}, false
}

// TestValidateUserGroups: the one-sentence errors user-groups mode adds,
// the shared-group-name lint first among them.
func TestValidateUserGroups(t *testing.T) {
	for _, tc := range []struct {
		name, path, want string
		edit             func(*Table)
	}{
		{"two mappings, one group name", "mappings[2].group", `mappings[0] and mappings[2] both map to user group "scimflare-CF-OPS" on account "prod", but one user group stands for one mapping`,
			func(t *Table) {
				t.Mappings = append(t.Mappings, Mapping{Group: "CF-OPS", Account: "prod", Roles: []string{"Billing"}})
			}},
		{"prefix makes two names one", "mappings[1].group", `both map to user group "x-a-b"`,
			func(t *Table) {
				t.Accounts[0].UserGroupPrefix = "x-"
				t.Mappings = []Mapping{{Group: "a-b", Account: "prod", Roles: []string{"DNS"}}, {GroupExternalID: "a-b", Account: "prod", Roles: []string{"DNS"}}}
			}},
		{"prefix on a member-policies account", "accounts[0].user_group_prefix", "applies only to an account with model: user_groups",
			func(t *Table) { t.Accounts[0].Model, t.Accounts[0].UserGroupPrefix = "", "x-" }},
		{"prefix with spaces", "accounts[0].user_group_prefix", "without control characters or surrounding spaces",
			func(t *Table) { t.Accounts[0].UserGroupPrefix = " x-" }},
		{"roles shape", "accounts[0].grant_shape", "a user group holds no legacy roles",
			func(t *Table) { t.Accounts[0].GrantShape = GrantShapeRoles }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := ugTable()
			tc.edit(&tb)
			p, ok := problemAt(Validate(tb, 24*time.Hour), tc.path)
			if !ok || p.Warning || !strings.Contains(p.Message, tc.want) {
				t.Fatalf("problem at %s = %+v (found %v), want an error containing %q", tc.path, p, ok, tc.want)
			}
		})
	}
	// A ttl mapping of the same group is a per-member grant, no group: no clash.
	tb := ugTable()
	tb.Mappings = append(tb.Mappings, Mapping{Group: "cf-ops", Account: "prod", Roles: []string{"Billing"}, TTL: time.Hour})
	for _, p := range Validate(tb, 24*time.Hour) {
		if strings.HasPrefix(p.Path, "mappings") {
			t.Fatalf("a ttl mapping beside a standing one of the same group: %v", p)
		}
	}
}
