package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

// TestReportAccessFollowsARenamedUserGroup: the operator changes the
// account's user_group_prefix (the owned group is renamed by one PUT),
// then the mapping's role. report access, the access review, must show
// alice holding the new role through the group's new name, and no
// longer the old role: an access review that lost or misnamed what 500
// people hold is how a leaver's access goes unnoticed.
func TestReportAccessFollowsARenamedUserGroup(t *testing.T) {
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
	run := func(args ...string) string {
		t.Helper()
		code, out, errOut := runMain(args...)
		if code != 0 {
			t.Fatalf("scimflare %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errOut)
		}
		return out
	}
	edit := func(old, new string) {
		t.Helper()
		b, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), old) {
			t.Fatalf("config lacks %q", old)
		}
		if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run("apply", "--config", cfg)
	edit("user_group_prefix: idp-", "user_group_prefix: ops-")
	run("apply", "--config", cfg)
	if _, ok := fake.UserGroup(e2eAccount, "ops-cf-deployers"); !ok {
		t.Fatalf("the owned group was not renamed: %+v", fake.UserGroups(e2eAccount))
	}
	edit("roles: [Workers Platform Admin]", "roles: [Workers Platform (Read-only)]")
	run("apply", "--config", cfg)

	out := run("report", "access", "--config", cfg)
	var alice []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "alice@example.com") {
			alice = append(alice, line)
		}
	}
	if len(alice) != 1 || !strings.Contains(alice[0], "Workers Platform (Read-only)") || !strings.Contains(alice[0], "user group ops-cf-deployers") {
		t.Fatalf("report access shows alice as\n%s\nwant one row: Workers Platform (Read-only) through user group ops-cf-deployers (full report:\n%s)", strings.Join(alice, "\n"), out)
	}
}

// TestReportAccessShowsGroupsOfAnAccountThatLeftUserGroups: the account
// goes back to member_policies in the config. Until a run empties the
// groups scimflare made (in plan-only mode, or while a guard withholds
// those removals), their members still hold access through them: report
// access must keep showing it.
func TestReportAccessShowsGroupsOfAnAccountThatLeftUserGroups(t *testing.T) {
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
	if code, out, errOut := runMain("apply", "--config", cfg); code != 0 {
		t.Fatalf("apply: exit %d\n%s\n%s", code, out, errOut)
	}
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	left := strings.Replace(string(b), "    model: user_groups\n    user_group_prefix: idp-\n", "", 1)
	if left == string(b) {
		t.Fatal("config has no model line to drop")
	}
	if err := os.WriteFile(cfg, []byte(left), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runMain("report", "access", "--config", cfg)
	if code != 0 || !strings.Contains(out, "alice@example.com") || !strings.Contains(out, "user group idp-cf-deployers") {
		t.Fatalf("report access (exit %d) does not show alice's access through the group she is still in:\n%s\n%s", code, out, errOut)
	}
}
