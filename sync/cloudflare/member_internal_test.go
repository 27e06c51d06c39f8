package cloudflare

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/cloudflare/cloudflare-go/v7/shared"
)

// TestMemberFromSeparatesDerivedPolicies reads members as Cloudflare sends
// them, without I/O: a policy one of the member's roles explains is
// derived, anything else stays a policy of the member's own (drift).
func TestMemberFromSeparatesDerivedPolicies(t *testing.T) {
	const acct = "0123456789abcdef0123456789abcdef"
	scope := "com.cloudflare.api.account." + acct
	rg := func(key, object string) string {
		return fmt.Sprintf(`{"id":"rg1","name":%q,"scope":{"key":%q,"objects":[{"key":%q}]}}`, key, key, object)
	}
	pol := func(access string, pgs, rgs string) string {
		return fmt.Sprintf(`{"id":"p","access":%q,"permission_groups":[%s],"resource_groups":[%s]}`, access, pgs, rgs)
	}
	admin := `{"id":"pg-admin","name":"Administrator"}`
	dns := `{"id":"pg-dns","name":"DNS"}`
	roles := `[{"id":"r-admin","name":"Administrator","description":"","permissions":{}}]`
	for _, tc := range []struct {
		name           string
		roles, body    string
		derived, owned int
	}{
		{"the role's own policy", roles, pol("allow", admin, rg(scope, "*")), 1, 0},
		{"group name in another case", roles, pol("allow", `{"id":"pg-admin","name":"ADMINISTRATOR"}`, rg(scope, "*")), 1, 0},
		{"no objects means the whole scope", roles, pol("allow", admin, fmt.Sprintf(`{"id":"rg1","scope":{"key":%q,"objects":[]}}`, scope)), 1, 0},
		{"deny is never derived", roles, pol("deny", admin, rg(scope, "*")), 0, 1},
		{"a group no role is named after", roles, pol("allow", dns, rg(scope, "*")), 0, 1},
		{"two permission groups", roles, pol("allow", admin+","+dns, rg(scope, "*")), 0, 1},
		{"another account's scope", roles, pol("allow", admin, rg("com.cloudflare.api.account.ffffffffffffffffffffffffffffffff", "*")), 0, 1},
		{"narrowed to one zone", roles, pol("allow", admin, rg(scope, "com.cloudflare.api.account.zone.23f8d65290b24279ba6f44721b3eaad5")), 0, 1},
		{"two resource groups", roles, pol("allow", admin, rg(scope, "*")+","+rg(scope, "*")), 0, 1},
		{"no role to explain it", `[]`, pol("allow", admin, rg(scope, "*")), 0, 1},
		{"a role without a name", `[{"id":"r-admin","name":"","description":"","permissions":{}}]`, pol("allow", admin, rg(scope, "*")), 0, 1},
		{"derived and hand-made side by side", roles, pol("allow", admin, rg(scope, "*")) + "," + pol("allow", dns, rg(scope, "*")), 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := fmt.Sprintf(`{"id":"m1","email":"a@example.com","status":"accepted","roles":%s,"policies":[%s],"user":{"email":"a@example.com"}}`, tc.roles, tc.body)
			var sm shared.Member
			if err := json.Unmarshal([]byte(raw), &sm); err != nil {
				t.Fatal(err)
			}
			m := memberFrom(sm, acct)
			if len(m.DerivedPolicies) != tc.derived || len(m.Policies) != tc.owned {
				t.Fatalf("derived %+v, policies %+v; want %d derived, %d own", m.DerivedPolicies, m.Policies, tc.derived, tc.owned)
			}
			if tc.owned == 1 && tc.derived == 1 && m.Policies[0].PermissionGroups[0] != "pg-dns" {
				t.Fatalf("the hand-made policy was taken for the derived one: %+v", m.Policies)
			}
			if tc.derived == 1 && (m.DerivedPolicies[0].PermissionGroups[0] != "pg-admin" || m.DerivedPolicies[0].ResourceGroups[0] != "rg1") {
				t.Fatalf("derived policy read wrong: %+v", m.DerivedPolicies[0])
			}
		})
	}
	// Without its account, nothing can be proved derived.
	var sm shared.Member
	_ = json.Unmarshal([]byte(fmt.Sprintf(`{"id":"m1","roles":%s,"policies":[%s]}`, roles, pol("allow", admin, rg(scope, "*")))), &sm)
	if m := memberFrom(sm, ""); len(m.DerivedPolicies) != 0 || len(m.Policies) != 1 {
		t.Fatalf("no account id: %+v", m)
	}
}
