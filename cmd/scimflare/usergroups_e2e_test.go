package main

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

// ugConfig turns the e2e config's prod account into a user-groups account
// with the prefix idp-.
func ugConfig(s string) string {
	return strings.Replace(s, "    grant_shape: roles\n", "    model: user_groups\n    user_group_prefix: idp-\n", 1)
}

// TestUserGroupsThroughMain: a user-groups account as an operator drives
// it, every command through main with --config: validate accepts it, plan
// (text and --json) shows the group kinds, apply creates the owned group
// and puts alice in it, and explain, report access and audit show access
// that comes through the group.
func TestUserGroupsThroughMain(t *testing.T) {
	dir := t.TempDir()
	fake := cftest.New(t, cftest.Options{Accounts: []string{e2eAccount}, Token: e2eCFToken})
	cfg := writeE2EConfig(t, dir, fake, e2eOptions{editConfig: ugConfig})
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	u, err := st.CreateUser(now, store.User{UserName: "alice@example.com", Email: "alice@example.com", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateGroup(now, store.Group{DisplayName: "cf-deployers"}, []store.MemberRef{{ID: u.ID, Type: store.MemberUser}}); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	must := func(want string, args ...string) string {
		t.Helper()
		code, out, errOut := runMain(args...)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("scimflare %s: exit %d, want %q in stdout\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, want, out, errOut)
		}
		return out
	}

	must("is valid", "validate", "--config", cfg)
	out := must("create_group idp-cf-deployers", "plan", "--config", cfg)
	for _, want := range []string{"add_member alice@example.com", "add_group_member alice@example.com (user group idp-cf-deployers)", "Workers Platform Admin"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	var plan struct {
		Accounts []struct {
			Changes []struct {
				Kind  string   `json:"kind"`
				Email string   `json:"email"`
				After []string `json:"after"`
				Group *struct {
					Name string `json:"name"`
				} `json:"group"`
			} `json:"changes"`
		} `json:"accounts"`
	}
	if err := json.Unmarshal([]byte(must("{", "plan", "--json", "--config", cfg)), &plan); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, c := range plan.Accounts[0].Changes {
		kinds = append(kinds, c.Kind)
		if strings.HasSuffix(c.Kind, "_group") || strings.HasSuffix(c.Kind, "_group_member") {
			if c.Group == nil || c.Group.Name != "idp-cf-deployers" || !slices.Equal(c.After, []string{"Workers Platform Admin"}) {
				t.Errorf("plan --json change %+v does not name its group and policies", c)
			}
		}
	}
	if !slices.Equal(kinds, []string{"add_member", "create_group", "add_group_member"}) {
		t.Fatalf("plan --json kinds = %v", kinds)
	}

	must("applied", "apply", "--config", cfg)
	g, ok := fake.UserGroup(e2eAccount, "idp-cf-deployers")
	if !ok || !slices.Equal(fake.UserGroupMembers(e2eAccount, g.ID), []string{"alice@example.com"}) {
		t.Fatalf("after apply the fake holds groups %+v", fake.UserGroups(e2eAccount))
	}
	if m, _ := fake.Member(e2eAccount, "alice@example.com"); len(m.Roles)+len(m.Policies) != 0 {
		t.Fatalf("alice holds grants of her own: %+v", m)
	}
	must("No changes.", "plan", "--config", cfg)
	out = must("held through user group idp-cf-deployers", "explain", "--user", "alice@example.com", "--config", cfg)
	if !strings.Contains(out, "Workers Platform Admin yes") && !strings.Contains(out, "granted") {
		t.Errorf("explain does not show the role as held:\n%s", out)
	}
	out = must("user group idp-cf-deployers", "report", "access", "--config", cfg)
	if !strings.Contains(out, "alice@example.com") || !strings.Contains(out, "Workers Platform Admin") {
		t.Errorf("report access lacks alice's group access:\n%s", out)
	}
	out = must("add_group_member", "audit", "--config", cfg)
	if !strings.Contains(out, "create_group") {
		t.Errorf("audit lacks create_group:\n%s", out)
	}
	must("audit trail intact", "audit", "verify", "--config", cfg)
}

// TestValidateUserGroupsSharedNameThroughMain: validate refuses, in one
// sentence naming the file and key, two mappings of a user-groups account
// that would share one group.
func TestValidateUserGroupsSharedNameThroughMain(t *testing.T) {
	dir := t.TempDir()
	fake := cftest.New(t, cftest.Options{Accounts: []string{e2eAccount}, Token: e2eCFToken})
	cfg := writeE2EConfig(t, dir, fake, e2eOptions{editConfig: func(s string) string {
		return ugConfig(s) + "  - group: CF-Deployers\n    account: prod\n    roles: [DNS]\n"
	}})
	code, out, errOut := runMain("validate", "--config", cfg)
	if code != 1 || !strings.Contains(errOut, "config.yaml") || !strings.Contains(errOut, "mappings[2].group") ||
		!strings.Contains(errOut, `both map to user group "idp-CF-Deployers" on account "prod"`) {
		t.Fatalf("validate: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}

// TestUserGroupConflictInStatusThroughMain: a group of scimflare's name it
// did not create is never touched, and `status` says so after an apply, so
// an operator learns that its members (a leaver among them) are out of
// scimflare's reach.
func TestUserGroupConflictInStatusThroughMain(t *testing.T) {
	dir := t.TempDir()
	fake := cftest.New(t, cftest.Options{Accounts: []string{e2eAccount}, Token: e2eCFToken})
	fake.AddMember(e2eAccount, cftest.Member{Email: "zed@example.com"})
	foreign := fake.AddUserGroup(e2eAccount, cftest.UserGroup{Name: "idp-cf-deployers"}, "zed@example.com")
	cfg := writeE2EConfig(t, dir, fake, e2eOptions{editConfig: ugConfig})
	if code, out, errOut := runMain("apply", "--config", cfg); code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut := runMain("status", "--config", cfg)
	if code != 0 || !strings.Contains(out, "user group conflicts: 1") || !strings.Contains(out, `prod: user group "idp-cf-deployers" (id `+foreign.ID+")") {
		t.Errorf("status: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	if got := fake.UserGroupMembers(e2eAccount, foreign.ID); !slices.Equal(got, []string{"zed@example.com"}) {
		t.Errorf("the foreign group's members changed: %v", got)
	}
}
