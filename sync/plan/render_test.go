package plan

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/scimflare/scimflare/mapping"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// samplePlan covers every kind of change, a protected member, a tripped
// guard and drift, through the same pipeline the reconciler runs.
func samplePlan(t *testing.T) (*Changes, map[string]string) {
	t.Helper()
	tab := mapping.Table{
		Accounts: []mapping.Account{{Name: "prod", ID: prod, Environment: "production", GrantShape: mapping.GrantShapeRoles}, {Name: "staging", ID: staging, Environment: "staging"}},
		Mappings: []mapping.Mapping{
			{Group: "cf-deployers", Account: "prod", Roles: []string{"Workers Platform Admin"}},
			{Group: "cf-oncall", Account: "prod", Roles: []string{"Administrator"}, TTL: 12 * 3600e9},
			{Group: "cf-log-readers", Account: "staging", Policies: []mapping.Policy{{PermissionGroups: []string{"Workers Platform (Read-only)"}, ResourceGroups: []string{"staging-workers"}}}},
		},
	}
	cat := mapping.Catalog{
		Roles:            []mapping.Named{{ID: "r-super", Name: mapping.SuperAdministrator}, {ID: "r-admin", Name: "Administrator"}, {ID: "r-wpa", Name: "Workers Platform Admin"}, {ID: "r-billing", Name: "Billing"}},
		PermissionGroups: []mapping.Named{{ID: "pg-wr", Name: "Workers Platform (Read-only)"}, {ID: "pg-dns", Name: "DNS Read"}},
		ResourceGroups:   []mapping.Named{{ID: "rg-sw", Name: "staging-workers"}, {ID: "rg-sz", Name: "staging-zones"}},
	}
	res, ps := mapping.Resolve(tab, map[string]mapping.Catalog{prod: cat, staging: cat})
	if len(ps) != 0 {
		t.Fatalf("resolve: %v", ps)
	}
	dir := newDir().group("dep", "cf-deployers", "").group("oc", "cf-oncall", "").group("lr", "cf-log-readers", "").group("sre", "sre", "")
	for _, u := range []string{"alice", "bob", "dave", "erin", "frank", "gina", "hank"} {
		dir.user(u, u+"@example.com", true, at(-1000))
	}
	dir.member("oc", "sre", at(-100)).member("sre", "alice", at(0)).member("oc", "dave", at(-20)).
		member("dep", "bob", at(0)).member("dep", "dave", at(0)).member("dep", "erin", at(0)).member("dep", "frank", at(0)).
		member("lr", "hank", at(0))
	desired, err := Build(dir, res, nil, nil, at(1))
	if err != nil {
		t.Fatal(err)
	}
	admin, wpa, billing := mapping.RoleKey("r-admin"), mapping.RoleKey("r-wpa"), mapping.RoleKey("r-billing")
	pol := mapping.PolicyKey([]string{"pg-wr"}, []string{"rg-sw"})
	other := mapping.PolicyKey([]string{"pg-dns"}, []string{"rg-sz"})
	super := mapping.RoleKey("r-super")
	member := func(email string, keys ...string) Actual {
		return Actual{MemberID: "id-" + email, Email: email, Status: "accepted", Keys: keys}
	}
	led := func(email string, created bool, managed ...string) LedgerEntry {
		return LedgerEntry{MemberID: "id-" + email, Created: created, Managed: managed}
	}
	in := []AccountInput{
		{
			ID: prod, Name: "prod", Desired: desired.Accounts[prod], Expired: desired.Expired, SuperAdminKey: res.SuperAdminRole[prod],
			Actual: ActualsOf(map[string]Actual{
				"bob@example.com":   member("bob@example.com", billing),
				"carol@example.com": member("carol@example.com", wpa),
				"dave@example.com":  member("dave@example.com", admin, wpa),
				"frank@example.com": member("frank@example.com", wpa, billing),
				"owner@example.com": member("owner@example.com", super),
			}),
			Ledger: LedgerOf(map[string]LedgerEntry{
				"carol@example.com": led("carol@example.com", true, wpa),
				"dave@example.com":  led("dave@example.com", true, admin, wpa),
				"frank@example.com": led("frank@example.com", true, wpa),
			}),
			ManagedGrants: 20,
		},
		{
			ID: staging, Name: "staging", Desired: desired.Accounts[staging], SuperAdminKey: res.SuperAdminRole[staging],
			Actual: ActualsOf(map[string]Actual{
				"ivan@example.com": member("ivan@example.com", other),
				"jill@example.com": member("jill@example.com", other),
				"kim@example.com":  member("kim@example.com", pol),
			}),
			Ledger: LedgerOf(map[string]LedgerEntry{
				"ivan@example.com": led("ivan@example.com", true, other),
				"jill@example.com": led("jill@example.com", true, other),
				"kim@example.com":  led("kim@example.com", true, pol),
			}),
			ManagedGrants: 3,
		},
	}
	c := ApplyPolicies(Plan(in, false),
		ProtectedPolicy([]string{"erin@example.com"}),
		LastSuperAdminPolicy(in),
		GuardPolicy{MaxRemovals: 25, MaxRemovalPercent: 20, ManagedGrants: map[string]int{prod: 20, staging: 3}},
	)
	return c, res.Names
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run with -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from golden file (run with -update if intended)\n got:\n%s\nwant:\n%s", name, got, want)
	}
}

func TestRenderText(t *testing.T) {
	c, names := samplePlan(t)
	var b bytes.Buffer
	if err := RenderText(&b, c, names); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan.txt", b.Bytes())

	b.Reset()
	if err := RenderText(&b, &Changes{Accounts: []AccountChanges{{ID: prod, Name: "prod"}}}, nil); err != nil {
		t.Fatal(err)
	}
	if b.String() != "No changes.\n" {
		t.Errorf("empty plan = %q", b.String())
	}
}

func TestRenderJSON(t *testing.T) {
	c, names := samplePlan(t)
	var b bytes.Buffer
	if err := RenderJSON(&b, c, names, map[string]string{prod: "prod", staging: "staging"}); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan.json", b.Bytes())

	// The shape scripts rely on, independent of the golden file.
	var doc struct {
		Accounts []struct {
			Name, ID string
			Changes  []map[string]any
		}
		Withheld []map[string]any
		Drift    []map[string]string
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for _, a := range doc.Accounts {
		for _, ch := range a.Changes {
			kinds[ch["kind"].(string)] = true
			for _, k := range []string{"email", "before", "after", "reason"} {
				if _, ok := ch[k]; !ok {
					t.Errorf("change lacks %q: %v", k, ch)
				}
			}
			if _, isList := ch["before"].([]any); !isList {
				t.Errorf("before is not a list: %v", ch)
			}
		}
	}
	for _, k := range []Kind{AddMember, UpdateRoles, RemoveMember, ExpireGrant} {
		if !kinds[string(k)] {
			t.Errorf("sample plan lacks %s", k)
		}
	}
	whys := map[string]bool{}
	for _, w := range doc.Withheld {
		whys[w["why"].(string)] = true
	}
	if !whys[WhyProtected] || len(whys) < 2 {
		t.Errorf("withheld whys = %v, want protected and a guard", whys)
	}
	if len(doc.Drift) == 0 || doc.Drift[0]["role"] != "Billing" || doc.Drift[0]["account"] != "prod" {
		t.Errorf("drift = %v, want Billing on prod by name", doc.Drift)
	}
}
