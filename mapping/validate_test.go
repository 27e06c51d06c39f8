package mapping

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const (
	prodID    = "0123456789abcdef0123456789abcdef"
	stagingID = "fedcba9876543210fedcba9876543210"
)

func baseTable() Table {
	return Table{
		Accounts: []Account{
			{Name: "prod", ID: prodID, Environment: "production"},
			{Name: "staging", ID: stagingID, Environment: "staging"},
		},
		Mappings: []Mapping{
			{Group: "cf-deployers", Account: "prod", Roles: []string{"Workers Platform Read"}},
		},
	}
}

// TestYAMLTags decodes the example config's table section, so a renamed tag
// shows up here rather than as an "unknown key" in production.
func TestYAMLTags(t *testing.T) {
	src := `
accounts:
  - name: prod
    id: 0123456789abcdef0123456789abcdef
    environment: production
mappings:
  - group: cf-log-readers
    account: prod
    policies:
      - permission_groups: [Workers Platform (Read-only)]
        resource_groups: [prod-workers]
  - group_external_id: ext-1
    account: prod
    roles: [Administrator]
    ttl: 12h
    allow_cross_environment: true
  - group: contractors
    account: prod
    roles: [Billing]
    expires_at: 2027-03-31T00:00:00Z
`
	var tab Table
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&tab); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if got := tab.Mappings[0].Policies[0].ResourceGroups[0]; got != "prod-workers" {
		t.Errorf("resource group = %q", got)
	}
	m := tab.Mappings[1]
	if m.GroupExternalID != "ext-1" || m.TTL != 12*time.Hour || !m.AllowCrossEnvironment {
		t.Errorf("mapping 1 = %+v", m)
	}
	if want := time.Date(2027, 3, 31, 0, 0, 0, 0, time.UTC); tab.Mappings[2].ExpiresAt == nil || !tab.Mappings[2].ExpiresAt.Equal(want) {
		t.Errorf("expires_at = %v", tab.Mappings[2].ExpiresAt)
	}
}

func TestValidate(t *testing.T) {
	day := 24 * time.Hour
	when := time.Date(2027, 3, 31, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		edit   func(*Table)
		path   string // "" = expect no problem at all
		warn   bool
		substr string
	}{
		{"valid", func(*Table) {}, "", false, ""},
		{"unknown account", func(t *Table) { t.Mappings[0].Account = "prd" }, "mappings[0].account", false, `account "prd" is not defined`},
		{"missing account", func(t *Table) { t.Mappings[0].Account = "" }, "mappings[0].account", false, "account is required"},
		{"policies on a roles account", func(t *Table) {
			t.Accounts[0].GrantShape = GrantShapeRoles
			t.Mappings = append(t.Mappings, Mapping{Group: "readers", Account: "prod", Policies: []Policy{{PermissionGroups: []string{"Read"}, ResourceGroups: []string{"all"}}}})
		}, "mappings[1].policies", false, `account "prod" has grant_shape: roles, which cannot take policies`},
		{"roles and policies on a policies account", func(t *Table) {
			t.Mappings[0].Policies = []Policy{{PermissionGroups: []string{"Read"}, ResourceGroups: []string{"all"}}}
			t.Mappings = append(t.Mappings, Mapping{Group: "readers", Account: "prod", Policies: []Policy{{PermissionGroups: []string{"Read"}, ResourceGroups: []string{"all"}}}})
		}, "", false, ""},
		{"unknown grant_shape", func(t *Table) { t.Accounts[0].GrantShape = "role" }, "accounts[0].grant_shape", false, `grant_shape "role" is not one of policies, roles`},
		{"unknown model", func(t *Table) { t.Accounts[0].Model = "groups" }, "accounts[0].model", false, `model "groups" is not one of member_policies, user_groups`},
		{"neither roles nor policies", func(t *Table) { t.Mappings[0].Roles = nil }, "mappings[0]", false, "set roles or policies"},
		{"both roles and policies on a roles account", func(t *Table) {
			t.Accounts[0].GrantShape = GrantShapeRoles
			t.Mappings[0].Policies = []Policy{{PermissionGroups: []string{"Read"}, ResourceGroups: []string{"all"}}}
		}, "mappings[0].policies", false, "cannot take policies"},
		{"policy without resource groups", func(t *Table) {
			t.Mappings[0].Roles = nil
			t.Mappings[0].Policies = []Policy{{PermissionGroups: []string{"Read"}}}
		}, "mappings[0].policies[0].resource_groups", false, "at least one resource group"},
		{"policy without permission groups", func(t *Table) {
			t.Mappings[0].Roles = nil
			t.Mappings[0].Policies = []Policy{{ResourceGroups: []string{"all"}}}
		}, "mappings[0].policies[0].permission_groups", false, "at least one permission group"},
		{"empty role name", func(t *Table) { t.Mappings[0].Roles = []string{" "} }, "mappings[0].roles[0]", false, "empty"},
		{"no group", func(t *Table) { t.Mappings[0].Group = "" }, "mappings[0]", false, "set group or group_external_id"},
		{"group and external id", func(t *Table) { t.Mappings[0].GroupExternalID = "x" }, "mappings[0]", false, "only one of group and group_external_id"},
		{"external id alone", func(t *Table) { t.Mappings[0].Group, t.Mappings[0].GroupExternalID = "", "abc" }, "", false, ""},
		{"negative ttl", func(t *Table) { t.Mappings[0].TTL = -time.Hour }, "mappings[0].ttl", false, "negative"},
		{"ttl above max", func(t *Table) { t.Mappings[0].TTL = 25 * time.Hour }, "mappings[0].ttl", false, "above sync.max_grant_duration 24h0m0s"},
		{"ttl at max", func(t *Table) { t.Mappings[0].TTL = day }, "", false, ""},
		{"ttl and expires_at", func(t *Table) { t.Mappings[0].TTL, t.Mappings[0].ExpiresAt = time.Hour, &when }, "mappings[0]", false, "ttl or expires_at, not both"},
		{"duplicate account name", func(t *Table) { t.Accounts[1].Name = "PROD" }, "accounts[1].name", false, "already used by accounts[0]"},
		{"duplicate account id", func(t *Table) { t.Accounts[1].ID = prodID }, "accounts[1].id", false, "already used by accounts[0]"},
		{"short account id", func(t *Table) { t.Accounts[0].ID = "0123" }, "accounts[0].id", false, "not 32 lower-case hex"},
		{"upper-case account id", func(t *Table) { t.Accounts[0].ID = strings.ToUpper(prodID) }, "accounts[0].id", false, "not 32 lower-case hex"},
		{"unknown environment", func(t *Table) { t.Accounts[0].Environment = "prod" }, "accounts[0].environment", false, "not one of production, staging, development"},
		{"missing environment", func(t *Table) { t.Accounts[0].Environment = "" }, "accounts[0].environment", false, "required"},
		{"group on production and staging", func(t *Table) {
			t.Mappings = append(t.Mappings, Mapping{Group: "CF-Deployers", Account: "staging", Roles: []string{"Read"}, AllowCrossEnvironment: true})
		}, "mappings[0].group", true, `on production account "prod" and on staging account "staging"`},
		{"cross environment allowed on both", func(t *Table) {
			t.Mappings[0].AllowCrossEnvironment = true
			t.Mappings = append(t.Mappings, Mapping{Group: "cf-deployers", Account: "staging", Roles: []string{"Read"}, AllowCrossEnvironment: true})
		}, "", false, ""},
		{"same group on two non-production accounts", func(t *Table) {
			t.Accounts = append(t.Accounts, Account{Name: "dev", ID: strings.Repeat("a", 32), Environment: "development"})
			t.Mappings[0].Account = "staging"
			t.Mappings = append(t.Mappings, Mapping{Group: "cf-deployers", Account: "dev", Roles: []string{"Read"}})
		}, "", false, ""},
		{"admin in role", func(t *Table) { t.Mappings[0].Roles = []string{"Workers Platform ADMIN"} }, "mappings[0].roles[0]", true, `contains "admin"`},
		{"admin in group", func(t *Table) { t.Mappings[0].Group = "cf-admins" }, "mappings[0].group", true, `contains "admin"`},
		{"admin in permission group", func(t *Table) {
			t.Mappings[0].Roles = nil
			t.Mappings[0].Policies = []Policy{{PermissionGroups: []string{"DNS Administrator"}, ResourceGroups: []string{"zone"}}}
		}, "mappings[0].policies[0].permission_groups[0]", true, `contains "admin"`},
		{"admin in resource group", func(t *Table) {
			t.Mappings[0].Roles = nil
			t.Mappings[0].Policies = []Policy{{PermissionGroups: []string{"DNS Read"}, ResourceGroups: []string{"admin-zones"}}}
		}, "mappings[0].policies[0].resource_groups[0]", true, `contains "admin"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tab := baseTable()
			tc.edit(&tab)
			ps := Validate(tab, day)
			if tc.path == "" {
				if len(ps) != 0 {
					t.Fatalf("want no problems, got %v", ps)
				}
				return
			}
			for _, p := range ps {
				if p.Path == tc.path && p.Warning == tc.warn && strings.Contains(p.Message, tc.substr) {
					if strings.Count(p.Message, ". ") > 0 || strings.HasSuffix(p.Message, ".") {
						t.Errorf("message is not one sentence: %q", p.Message)
					}
					return
				}
			}
			t.Fatalf("want problem at %s (warning=%v) containing %q, got %v", tc.path, tc.warn, tc.substr, ps)
		})
	}
}

func TestProblemString(t *testing.T) {
	p := Problem{Path: "mappings[0].roles[0]", Message: "role x", Warning: true}
	if got := p.String(); got != "warning: mappings[0].roles[0]: role x" {
		t.Errorf("String() = %q", got)
	}
	if HasErrors([]Problem{p}) {
		t.Error("a warning counted as an error")
	}
}
