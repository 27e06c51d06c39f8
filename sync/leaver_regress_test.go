package sync

// The shortest forms of what TestLeaverNeverKeepsAccess found in the
// current code (its seeds 22 and 39, shrunk): a targeted run plans against
// the member cache of the last listing and PUTs the whole role list it
// computed from it. Whatever someone changed by hand since that listing is
// undone: a role removed by hand is granted again, a role added by hand is
// taken away. SPEC: roles added by hand are drift, removed only with
// unmanaged: remove; scimflare changes only what it granted.

import (
	"context"
	"slices"
	"testing"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

func (e *env) leave(group, userID string) {
	e.t.Helper()
	if _, err := e.st.UpdateGroup(groupID(e.t, e, group), e.now(), 0, func(g store.GroupTx) error {
		_, err := g.RemoveMember(userID)
		return err
	}); err != nil {
		e.t.Fatal(err)
	}
}

// handSetRoles is someone in the dashboard setting a member's roles.
func (e *env) handSetRoles(email string, roles ...string) {
	e.t.Helper()
	m, ok := e.fake.Member(prodID, email)
	if !ok {
		e.t.Fatalf("%s is not a member", email)
	}
	ids := make([]string, len(roles))
	for i, r := range roles {
		ids[i] = e.roleID(prodID, r)
	}
	if _, err := e.cf.UpdateMember(context.Background(), prodID, m.ID, ids, nil); err != nil {
		e.t.Fatal(err)
	}
}

func TestLeaverIsNotGivenBackARoleRemovedByHand(t *testing.T) {
	e := newEnv(t)
	bob := e.user("bob@example.com")
	e.group("cf-deployers", bob)
	// bob was an Administrator by hand before scimflare; it adopts him.
	e.fake.AddMember(prodID, cftest.Member{Email: "bob@example.com", Roles: []string{e.roleID(prodID, "Administrator")}})
	e.mustApply(RunOptions{})
	if roles, _ := e.memberRoles(prodID, "bob@example.com"); !slices.Equal(roles, []string{"Administrator", wpa}) {
		t.Fatalf("after adoption bob holds %v", roles)
	}
	// Someone takes Administrator away in the dashboard; then bob leaves.
	e.handSetRoles("bob@example.com", wpa)
	e.leave("cf-deployers", bob)

	res := e.targeted([]string{bob}, nil, nil)

	if res.Aborted != nil || len(res.Failed) > 0 {
		t.Fatalf("aborted %v, failed %v", res.Aborted, res.Failed)
	}
	if roles, member := e.memberRoles(prodID, "bob@example.com"); member && len(roles) > 0 {
		t.Errorf("bob left every mapped group and holds %v: scimflare wrote back a role removed by hand (%s)", roles, kinds(res.Applied))
	}
}

func TestTargetedRunKeepsARoleAddedByHand(t *testing.T) {
	e := newEnv(t)
	alice := e.user("alice@example.com")
	e.group("cf-deployers", alice)
	e.group("cf-oncall", alice)
	e.mustApply(RunOptions{})
	// DNS is added by hand: drift, to be reported, not removed (unmanaged: report).
	e.handSetRoles("alice@example.com", wpa, "Administrator", "DNS")
	e.leave("cf-oncall", alice)

	res := e.targeted([]string{alice}, nil, nil)

	if res.Aborted != nil || len(res.Failed) > 0 {
		t.Fatalf("aborted %v, failed %v", res.Aborted, res.Failed)
	}
	if roles, _ := e.memberRoles(prodID, "alice@example.com"); !slices.Equal(roles, []string{"DNS", wpa}) {
		t.Errorf("alice holds %v after leaving cf-oncall, want [DNS %s]: the hand-added DNS must stay (%s)", roles, wpa, kinds(res.Applied))
	}
}
