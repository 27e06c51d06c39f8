package main

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestE2ELifecycle follows one user through nested groups, removal from a
// group and group deletion, as Okta and Entra push them.
func TestE2ELifecycle(t *testing.T) {
	e := startE2E(t, e2eOptions{})
	erin := e.createUser("erin@example.com")
	frank := e.createUser("frank@example.com")
	deployers := e.createGroup("cf-deployers")
	team := e.createGroup("team-platform") // unmapped, nested inside cf-deployers
	e.addMembers(team, erin, frank)
	e.addMembers(deployers, team)
	role := e.roleID("Workers Platform Admin")
	e.waitFor(5*time.Second, "erin and frank granted through the nested group", func() bool {
		a, okA := e.member("erin@example.com")
		b, okB := e.member("frank@example.com")
		return okA && okB && slices.Equal(a.Roles, []string{role}) && slices.Equal(b.Roles, []string{role})
	})

	// Okta removes one member: remove members[value eq "…"].
	code, body := e.scim("PATCH", "/Groups/"+team, map[string]any{
		"schemas":    []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"},
		"Operations": []any{map[string]any{"op": "remove", "path": `members[value eq "` + erin + `"]`}},
	})
	if code != http.StatusNoContent {
		t.Fatalf("remove member: %d %v", code, body)
	}
	e.waitFor(5*time.Second, "erin removed after leaving the nested group", func() bool { _, ok := e.member("erin@example.com"); return !ok })
	if _, ok := e.member("frank@example.com"); !ok {
		t.Fatal("frank must keep access")
	}

	// Deleting the mapped group takes access from everyone it granted.
	if code, _ := e.scim("DELETE", "/Groups/"+deployers, nil); code != http.StatusNoContent {
		t.Fatalf("delete group: %d", code)
	}
	e.waitFor(5*time.Second, "frank removed after the mapped group was deleted", func() bool { _, ok := e.member("frank@example.com"); return !ok })
	if got := len(e.fake.Members(e2eAccount)); got != 0 {
		t.Errorf("%d members left, want 0", got)
	}
}

// TestE2ETemporaryGrantAndRevoke grants a role outside the IdP with the CLI
// and takes it back.
func TestE2ETemporaryGrantAndRevoke(t *testing.T) {
	e := startE2E(t, e2eOptions{})
	e.createUser("gina@example.com")
	code, out, errOut := e.cli("grant", "--user", "gina@example.com", "--account", "prod", "--role", "Administrator", "--for", "1h", "--reason", "INC-42 database failover")
	if code != 0 {
		t.Fatalf("grant: %d %s %s", code, out, errOut)
	}
	m, ok := e.member("gina@example.com")
	if !ok || !slices.Contains(m.Roles, e.roleID("Administrator")) {
		t.Fatalf("grant must apply at once: %+v %v", m, ok)
	}
	id := ""
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "g-") {
			id = strings.TrimSuffix(f, ")")
		}
	}
	if id == "" {
		t.Fatalf("grant output names no grant id: %q", out)
	}
	if code, out, errOut := e.cli("status"); code != 0 || !strings.Contains(out, "gina@example.com") {
		t.Errorf("status must list the pending expiry: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := e.cli("grant", "--user", "gina@example.com", "--account", "prod", "--role", "Administrator", "--for", "48h", "--reason", "too long"); code != 1 || !strings.Contains(errOut, "max_grant_duration") {
		t.Errorf("a grant over sync.max_grant_duration must fail with one sentence: %d %s %s", code, out, errOut)
	}
	if code, out, errOut := e.cli("revoke", "--grant", id); code != 0 {
		t.Fatalf("revoke: %d %s %s", code, out, errOut)
	}
	if _, ok := e.member("gina@example.com"); ok {
		t.Error("revoke must remove the access at once")
	}
}
