package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

// TestE2EMoveToPoliciesAsAnOperatorSeesIt: an account granted roles is
// moved to policies by dropping grant_shape: roles, with the daemon
// stopped so the plan can be read first. Driven through main with
// --config as an operator types it: plan (text and --json) shows the
// conversion as migrate_shape with the role's name on both sides, apply
// makes it with one PUT and no listing of roles, and explain, report
// access and the audit trail name the policy as the role it stands for.
// validate --online names the closest permission groups for a role that
// has none.
func TestE2EMoveToPoliciesAsAnOperatorSeesIt(t *testing.T) {
	e := startE2E(t, e2eOptions{})
	alice := e.createUser("alice@example.com")
	e.addMembers(e.createGroup("cf-deployers"), alice)
	e.waitFor(5*time.Second, "alice invited with the role", func() bool {
		m, ok := e.member("alice@example.com")
		return ok && slices.Equal(m.Roles, []string{e.roleID("Workers Platform Admin")})
	})

	e.stop()
	e.rewriteConfig(func(s string) string { return strings.Replace(s, "    grant_shape: roles\n", "", 1) })
	code, out, errOut := e.cli("plan")
	t.Logf("scimflare plan:\n%s%s", out, errOut)
	for _, want := range []string{"> migrate_shape alice@example.com", "before: Workers Platform Admin", "after:  Workers Platform Admin",
		"legacy roles replaced by the equivalent policies", "1 to migrate from roles to policies"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("plan lacks %q", want)
		}
	}
	code, out, _ = e.cli("plan", "--json")
	var p struct {
		Accounts []struct {
			Changes []struct {
				Kind          string
				Email         string
				Before, After []string
			}
		}
		Withheld []any
	}
	if err := json.Unmarshal([]byte(out), &p); code != 0 || err != nil || len(p.Accounts) != 1 || len(p.Accounts[0].Changes) != 1 {
		t.Fatalf("plan --json: %d %v\n%s", code, err, out)
	}
	ch := p.Accounts[0].Changes[0]
	if ch.Kind != "migrate_shape" || ch.Email != "alice@example.com" || !slices.Equal(ch.Before, []string{"Workers Platform Admin"}) ||
		!slices.Equal(ch.After, []string{"Workers Platform Admin"}) || len(p.Withheld) != 0 {
		t.Errorf("plan --json change %+v", ch)
	}

	rolesBefore, putsBefore := e.fake.Calls(http.MethodGet, cftest.RouteRoles), e.fake.Calls(http.MethodPut, cftest.RouteMember)
	if code, out, errOut := e.cli("apply"); code != 0 {
		t.Fatalf("apply: %d %s %s", code, out, errOut)
	}
	if got := e.fake.Calls(http.MethodGet, cftest.RouteRoles) - rolesBefore; got != 0 {
		t.Errorf("apply on a policies account listed roles %d times", got)
	}
	if got := e.fake.Calls(http.MethodPut, cftest.RouteMember) - putsBefore; got != 1 {
		t.Errorf("the conversion took %d PUTs, want 1", got)
	}
	m, _ := e.member("alice@example.com")
	scope := e.fake.ResourceGroupID(e2eAccount, cftest.AccountScope(e2eAccount))
	if len(m.Roles) != 0 || len(m.Policies) != 1 || !slices.Equal(m.Policies[0].PermissionGroups, []string{e.fake.PermissionGroupID(e2eAccount, "Workers Platform Admin")}) ||
		!slices.Equal(m.Policies[0].ResourceGroups, []string{scope}) {
		t.Fatalf("alice holds %+v after the conversion", m)
	}

	code, out, _ = e.cli("explain", "--user", "alice@example.com")
	t.Logf("scimflare explain:\n%s", out)
	if code != 0 || !strings.Contains(strings.Join(strings.Fields(out), " "), "Workers Platform Admin yes yes granted group cf-deployers") || strings.Contains(out, "com.cloudflare.api.account") {
		t.Errorf("explain: %d\n%s", code, out)
	}
	code, out, _ = e.cli("report", "access", "--csv")
	if code != 0 || !strings.Contains(out, "alice@example.com,prod,Workers Platform Admin,group cf-deployers") || strings.Contains(out, "com.cloudflare") {
		t.Errorf("report access: %d\n%s", code, out)
	}
	code, out, _ = e.cli("audit")
	if code != 0 || !strings.Contains(strings.Join(strings.Fields(out), " "), "apply migrate_shape prod alice@example.com [Workers Platform Admin] -> [Workers Platform Admin] legacy roles replaced") {
		t.Errorf("audit: %d\n%s", code, out)
	}

	// A role with no permission group of its name: one sentence naming
	// the closest ones.
	typo := filepath.Join(t.TempDir(), "typo.yaml")
	raw, _ := os.ReadFile(e.cfgPath)
	if err := os.WriteFile(typo, []byte(strings.Replace(string(raw), "[Workers Platform Admin]", "[Workers Admin Platform]", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	var o, eo strings.Builder
	code = run([]string{"validate", "--config", typo, "--online"}, &o, &eo)
	t.Logf("scimflare validate --online (no counterpart):\n%s%s", o.String(), eo.String())
	if code != 1 || !strings.Contains(eo.String(), `role "Workers Admin Platform" has no permission group of that name in account prod, where roles are granted as policies; the closest permission groups are "Workers Platform Admin"`) {
		t.Errorf("validate --online: %d %s %s", code, o.String(), eo.String())
	}
	// A name Cloudflare renamed resolves through the documented table.
	if err := os.WriteFile(typo, []byte(strings.Replace(string(raw), "[Workers Platform Admin]", "[Workers Admin]", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	o.Reset()
	eo.Reset()
	if code = run([]string{"validate", "--config", typo, "--online"}, &o, &eo); code != 0 {
		t.Errorf("validate --online with the renamed role: %d %s %s", code, o.String(), eo.String())
	}
}

// TestE2EConfigShapeErrors: an unknown grant_shape or model, and policies
// on an account that keeps roles, are one sentence naming file and key.
func TestE2EConfigShapeErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, account, mapping, want string }{
		{"shape", "    grant_shape: role\n", "    roles: [DNS]\n", `accounts[0].grant_shape: grant_shape "role" is not one of policies, roles`},
		{"model", "    model: groups\n", "    roles: [DNS]\n", `accounts[0].model: model "groups" is not one of member_policies, user_groups`},
		{"user_groups_roles", "    model: user_groups\n    grant_shape: roles\n", "    roles: [DNS]\n", `accounts[0].grant_shape: an account with model: user_groups is granted policies`},
		{"mixed", "    grant_shape: roles\n", "    policies:\n      - {permission_groups: [DNS], resource_groups: [prod-workers]}\n",
			`mappings[0].policies: account "prod" has grant_shape: roles, which cannot take policies`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".yaml")
			yaml := "state:\n  path: " + filepath.Join(dir, "s.db") + "\naccounts:\n  - name: prod\n    id: 0123456789abcdef0123456789abcdef\n    environment: production\n" +
				tc.account + "mappings:\n  - group: g\n    account: prod\n" + tc.mapping
			if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			var o, eo strings.Builder
			code := run([]string{"validate", "--config", path}, &o, &eo)
			if code != 1 || !strings.Contains(eo.String(), path+":") || !strings.Contains(eo.String(), tc.want) {
				t.Errorf("validate: %d\nstdout %s\nstderr %s\nwant %q", code, o.String(), eo.String(), tc.want)
			}
		})
	}
}
