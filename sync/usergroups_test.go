package sync

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"testing"
	"time"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
	"github.com/scimflare/scimflare/sync/plan"
)

// ugYAML has one account, prod, in user-groups mode (set by newUGEnv): a
// standing mapping held as a group, a second one, and a ttl mapping that
// stays per member.
func ugYAML(syncExtra string) string {
	return `
sync:
  schedule: "@every 1h"
  debounce: 50ms
  max_grant_duration: 24h
  protected: [breakglass@example.com]
` + syncExtra + `
accounts:
  - {name: prod, id: ` + prodID + `, environment: production}
mappings:
  - group: cf-deployers
    account: prod
    roles: [Workers Platform Admin]
  - group: cf-readers
    account: prod
    roles: [Administrator Read Only]
  - group: cf-oncall
    account: prod
    roles: [Administrator]
    ttl: 2h
`
}

// newUGEnv is newEnv with prod in user-groups mode.
func newUGEnv(t testing.TB, syncExtra string, opts ...envOption) *env {
	t.Helper()
	e := newEnv(t, append([]envOption{withYAML(ugYAML(syncExtra))}, opts...)...)
	e.cfg.Accounts[0].Model = mapping.ModelUserGroups
	return e
}

// access is what email effectively holds on prod (any path), as names.
func (e *env) access(email string) []string {
	var out []string
	for _, a := range e.fake.EffectiveAccess(prodID, email) {
		out = append(out, a.PermissionGroup)
	}
	return out
}

func (e *env) ugGroup(name string) (cftest.UserGroup, []string) {
	e.t.Helper()
	g, ok := e.fake.UserGroup(prodID, name)
	if !ok {
		e.t.Fatalf("user group %s does not exist; groups: %+v", name, e.fake.UserGroups(prodID))
	}
	return g, e.fake.UserGroupMembers(prodID, g.ID)
}

type ugCalls struct{ groupLists, memberLists, groupWrites, memberAdds, memberRemoves, invites, memberPuts, memberDeletes int }

func (e *env) ugCalls() ugCalls {
	f := e.fake
	return ugCalls{
		groupLists:    f.Calls(http.MethodGet, cftest.RouteUserGroups),
		memberLists:   f.Calls(http.MethodGet, cftest.RouteUserGroupMembers),
		groupWrites:   f.Calls(http.MethodPost, cftest.RouteUserGroups) + f.Calls(http.MethodPut, cftest.RouteUserGroup),
		memberAdds:    f.Calls(http.MethodPost, cftest.RouteUserGroupMembers),
		memberRemoves: f.Calls(http.MethodDelete, cftest.RouteUserGroupMember),
		invites:       f.Calls(http.MethodPost, cftest.RouteMembers),
		memberPuts:    f.Calls(http.MethodPut, cftest.RouteMember),
		memberDeletes: f.Calls(http.MethodDelete, cftest.RouteMember),
	}
}

// TestUserGroupsLifecycle: a full run creates one owned group per standing
// mapping with the mapping's policies and puts the mapped people in it,
// invited first with nothing of their own; a ttl mapping stays a
// per-member policy; a leaver scimflare invited is removed from the
// account (one DELETE), which ends every group path too.
func TestUserGroupsLifecycle(t *testing.T) {
	t.Parallel()
	e := newUGEnv(t, "")
	ann, bob := e.user("ann@example.com"), e.user("bob@example.com")
	e.group("cf-deployers", ann, bob)
	e.group("cf-oncall", ann)
	e.fake.AddMember(prodID, cftest.Member{Email: "cat@example.com"}) // invited by hand, accepted
	cat := e.user("cat@example.com")
	e.group("cf-readers", cat)

	res := e.mustApply(RunOptions{Actor: ActorSchedule})
	t.Logf("first run: %s", kinds(res.Applied))
	g, members := e.ugGroup("scimflare-cf-deployers")
	if len(g.Policies) != 1 || len(members) != 2 {
		t.Fatalf("deployers group = %+v with %v", g, members)
	}
	if _, ok := e.fake.UserGroup(prodID, "scimflare-cf-oncall"); ok {
		t.Fatal("a ttl mapping got a user group: its expiry would revoke standing access")
	}
	if got := e.access("bob@example.com"); !slices.Equal(got, []string{"Workers Platform Admin"}) {
		t.Fatalf("bob holds %v, want the mapping's Workers Platform Admin only", got)
	}
	if got := e.access("ann@example.com"); !slices.Equal(got, []string{"Administrator", "Workers Platform Admin"}) {
		t.Fatalf("ann holds %v", got)
	}
	if m, _ := e.fake.Member(prodID, "bob@example.com"); len(m.Policies) != 0 || len(m.Roles) != 0 {
		t.Fatalf("bob holds grants of his own: %+v", m)
	}
	if m, _ := e.fake.Member(prodID, "ann@example.com"); len(m.Policies) != 1 {
		t.Fatalf("ann's ttl grant is not her own policy: %+v", m)
	}
	if got := e.access("cat@example.com"); !slices.Equal(got, []string{"Administrator Read Only"}) {
		t.Fatalf("cat (adopted) holds %v", got)
	}
	owned, err := e.st.OwnedUserGroups(prodID)
	if err != nil || len(owned) != 2 || owned[0].Key != "cf-deployers" || owned[0].GroupID != g.ID {
		t.Fatalf("ownership recorded = %+v, %v", owned, err)
	}
	if again := e.mustApply(RunOptions{Actor: ActorSchedule}); len(again.Applied) != 0 {
		t.Fatalf("second full run applied %s", kinds(again.Applied))
	}
	// explain: the group's role is held, wanted, granted, through the group.
	x, err := e.r.Explain(context.Background(), "bob@example.com", ExplainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rs := x.Accounts[0].Roles; len(rs) != 1 || rs[0].Role != "Workers Platform Admin" || !rs[0].Has || !rs[0].Should ||
		rs[0].State != StateGranted || !slices.Equal(rs[0].Via, []string{"scimflare-cf-deployers"}) {
		t.Fatalf("explain bob = %+v", rs)
	}

	// bob leaves: scimflare invited him and he holds nothing else, so one
	// member DELETE ends his access through every group.
	e.deactivate(bob)
	e.fake.ResetCounters()
	res = e.targeted([]string{bob}, nil, nil)
	c := e.ugCalls()
	if c.memberDeletes != 1 || c.memberRemoves != 0 || c.groupLists != 0 || c.memberLists != 0 {
		t.Fatalf("deactivation cost %+v, want one member DELETE and nothing else (applied %s)", c, kinds(res.Applied))
	}
	if got := e.access("bob@example.com"); got != nil {
		t.Fatalf("leaver bob still holds %v", got)
	}

	// cat, adopted (invited by hand), leaves her group: one group-member
	// DELETE; the member stays, scimflare did not invite it.
	e.deactivate(cat)
	e.fake.ResetCounters()
	e.targeted([]string{cat}, nil, nil)
	if c := e.ugCalls(); c.memberRemoves != 1 || c.memberDeletes != 0 {
		t.Fatalf("adopted leaver cost %+v, want one group-member DELETE", c)
	}
	if got := e.access("cat@example.com"); got != nil {
		t.Fatalf("leaver cat still holds %v", got)
	}
	if _, ok := e.fake.Member(prodID, "cat@example.com"); !ok {
		t.Fatal("cat was removed from the account though scimflare did not invite her")
	}
	if len(e.audit(string(plan.RemoveGroupMember))) != 1 || len(e.audit(string(plan.CreateGroup))) != 2 {
		t.Fatalf("audit lacks the group records: %+v", e.audit(""))
	}
}

// TestUserGroupsCallEconomy counts issue 14's figures on the fake: a role
// change in a mapping of 500 members is one group PUT; a new user joining
// a mapped group is one member add plus the invitation; a full scan of a
// group is ceil(members/50) listings.
func TestUserGroupsCallEconomy(t *testing.T) {
	t.Parallel()
	// The guard counts the role change as 500 removals (one per member
	// the group's dropped policy reaches), as it does per member in
	// TestMemberPoliciesRoleChangeCostsOneWriteEach: both allow it.
	e := newUGEnv(t, "  guards: {max_removals: 1000, max_removal_percent: 100, max_removals_per_window: 1000}\n")
	ids := e.users(500, "user%03d@example.com")
	deployers := e.group("cf-deployers", ids...)
	first := e.mustApply(RunOptions{Actor: ActorSchedule})
	if len(first.Failed) > 0 {
		t.Fatalf("first run failed: %v", first.Failed[0].Err)
	}
	// The first run: 500 invitations, one create per standing mapping,
	// and the adds of a group in requests of 50.
	if c := e.ugCalls(); c.invites != 500 || c.groupWrites != 2 || c.memberAdds != 10 {
		t.Fatalf("first run cost %+v, want 500 invitations, 2 group creates and 10 member add requests of 50", c)
	}
	if _, members := e.ugGroup("scimflare-cf-deployers"); len(members) != 500 {
		t.Fatalf("group has %d members", len(members))
	}

	// A full scan: one listing of groups, ceil(500/50) = 10 member pages
	// for cf-deployers and one for the empty cf-readers group.
	e.fake.ResetCounters()
	e.mustApply(RunOptions{Actor: ActorSchedule})
	if c := e.ugCalls(); c.groupLists != 1 || c.memberLists != 10+1 {
		t.Fatalf("full scan of a 500-member group cost %+v, want 1 group list and 10+1 member pages", c)
	}

	// The mapping's role changes: one PUT on the group, no member write.
	e.cfg.Mappings[0].Roles = []string{"Workers Platform (Read-only)"}
	e.r.Reload(e.cfg)
	e.fake.ResetCounters()
	res := e.mustApply(RunOptions{Actor: ActorSchedule})
	c := e.ugCalls()
	if c.groupWrites != 1 || c.memberPuts != 0 || c.invites != 0 || c.memberAdds != 0 || c.memberRemoves != 0 {
		t.Fatalf("a role change in a 500-member mapping cost %+v (applied %s, withheld %+v), want exactly 1 group write", c, kinds(res.Applied), res.Changes.Withheld)
	}
	if got := e.access("user123@example.com"); !slices.Equal(got, []string{"Workers Platform (Read-only)"}) {
		t.Fatalf("after the change a member holds %v", got)
	}

	// A new user joins: invitation + one member add, nothing listed.
	newbie := e.user("newbie@example.com")
	if _, err := e.st.UpdateGroup(deployers, e.now(), 0, func(g store.GroupTx) error {
		_, err := g.AddMember(store.MemberRef{ID: newbie})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	e.fake.ResetCounters()
	e.targeted([]string{newbie}, []string{deployers}, nil)
	c = e.ugCalls()
	if c.invites != 1 || c.memberAdds != 1 || c.groupLists != 0 || c.memberLists != 0 || c.groupWrites != 0 || e.fake.TotalCalls() != 2 {
		t.Fatalf("a joiner cost %+v (%d calls), want 1 invitation and 1 member add", c, e.fake.TotalCalls())
	}
	if got := e.access("newbie@example.com"); !slices.Equal(got, []string{"Workers Platform (Read-only)"}) {
		t.Fatalf("the joiner holds %v", got)
	}
}

// TestUserGroupsPendingRefused: where Cloudflare refuses pending members in
// groups, the invitee holds nothing until it accepts, and joins at the
// next full run after it did; never more than the mapping.
func TestUserGroupsPendingRefused(t *testing.T) {
	t.Parallel()
	e := newUGEnv(t, "")
	e.fake.SetRefusePendingGroupMembers(true)
	ann := e.user("ann@example.com")
	e.group("cf-deployers", ann)
	res := e.mustApply(RunOptions{Actor: ActorSchedule})
	if len(res.Failed) != 0 {
		t.Fatalf("a refused pending member is no failure: %v", res.Failed[0].Err)
	}
	if got := e.access("ann@example.com"); got != nil {
		t.Fatalf("pending ann holds %v before accepting", got)
	}
	if m, ok := e.fake.Member(prodID, "ann@example.com"); !ok || m.Status != "pending" {
		t.Fatalf("ann was not invited: %+v", m)
	}
	e.fake.ResetCounters()
	e.mustApply(RunOptions{Actor: ActorSchedule})
	if c := e.ugCalls(); c.memberAdds != 0 {
		t.Fatalf("still pending, ann was tried again: %+v", c)
	}
	x, err := e.r.Explain(context.Background(), "ann@example.com", ExplainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rs := x.Accounts[0].Roles; len(rs) != 1 || rs[0].Has || !rs[0].Should ||
		!slices.ContainsFunc(rs[0].Reasons, func(r ExplainedReason) bool {
			return r.Kind == ReasonWaiting && strings.Contains(r.Text, "accepts its invitation")
		}) {
		t.Fatalf("explain of pending ann = %+v", rs)
	}
	e.fake.AcceptInvite(prodID, "ann@example.com")
	e.mustApply(RunOptions{Actor: ActorSchedule})
	if got := e.access("ann@example.com"); !slices.Equal(got, []string{"Workers Platform Admin"}) {
		t.Fatalf("accepted ann holds %v", got)
	}
}

// TestUserGroupsNeverTouchForeignGroups: a group of the prefix's name that
// scimflare did not create (by hand or by Cloudflare's SCIM) is never
// written; the plan says why in one sentence.
func TestUserGroupsNeverTouchForeignGroups(t *testing.T) {
	t.Parallel()
	e := newUGEnv(t, "")
	e.fake.AddMember(prodID, cftest.Member{Email: "zed@example.com"})
	scim := e.fake.AddSCIMGroup(prodID, "scimflare-cf-deployers", "zed@example.com")
	ann := e.user("ann@example.com")
	e.group("cf-deployers", ann)
	e.fake.ResetCounters()
	res := e.mustApply(RunOptions{Actor: ActorSchedule})
	if n := e.fake.Calls(http.MethodPut, cftest.RouteUserGroup) + e.fake.Calls(http.MethodPost, cftest.RouteUserGroupMembers) +
		e.fake.Calls(http.MethodDelete, cftest.RouteUserGroupMember); n != 0 {
		t.Fatalf("%d writes to a group scimflare does not own", n)
	}
	if len(res.Changes.GroupConflicts) != 1 || !strings.Contains(res.Changes.GroupConflicts[0].String(), "does not own") {
		t.Fatalf("conflicts = %+v", res.Changes.GroupConflicts)
	}
	if _, members := e.ugGroup(scim.Name); !slices.Equal(members, []string{"zed@example.com"}) {
		t.Fatalf("foreign group's members changed: %v", members)
	}
	// A daemon says so where operators look, not only in a plan: its
	// members (a leaver among them) are out of scimflare's reach.
	if st := e.r.Status(); len(st.GroupConflicts) != 1 || !strings.HasPrefix(st.GroupConflicts[0], "prod: ") ||
		!strings.Contains(st.GroupConflicts[0], "scimflare-cf-deployers") {
		t.Errorf("status group conflicts = %q", st.GroupConflicts)
	}
	if n := metricValue(e.m.UserGroupConflicts); n != 1 {
		t.Errorf("scimflare_user_group_conflicts = %v, want 1", n)
	}
}

// TestUserGroupsTemporaryGrantsStayPerMember: a ttl mapping and `grant
// --for` are the member's own policies, so their expiry takes away only
// what they gave: standing access through the group stays, and the group
// never keeps an expired grant alive.
func TestUserGroupsTemporaryGrantsStayPerMember(t *testing.T) {
	t.Parallel()
	e := newUGEnv(t, "")
	ann, bob := e.user("ann@example.com"), e.user("bob@example.com")
	e.group("cf-deployers", ann, bob)
	e.group("cf-oncall", ann) // Administrator for 2h, per member
	e.mustApply(RunOptions{Actor: ActorSchedule})
	// bob gets Workers Platform Admin (which his group grants too) and
	// Billing for an hour.
	for _, role := range []string{"Workers Platform Admin", "Billing"} {
		if _, _, err := e.r.Grant(context.Background(), GrantRequest{Email: "bob@example.com", Account: "prod", Role: role,
			For: time.Hour, Reason: "incident 42", Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.access("bob@example.com"); !slices.Equal(got, []string{"Billing", "Workers Platform Admin"}) {
		t.Fatalf("bob during his grant holds %v", got)
	}
	if m, _ := e.fake.Member(prodID, "bob@example.com"); len(m.Policies) != 2 {
		t.Fatalf("bob's temporary grants are not his own policies: %+v", m.Policies)
	}
	e.clock.Advance(time.Hour + time.Second)
	e.expiry()
	if got := e.access("bob@example.com"); !slices.Equal(got, []string{"Workers Platform Admin"}) {
		t.Fatalf("after his grant ended bob holds %v, want his group's access only", got)
	}
	e.clock.Advance(time.Hour)
	e.expiry()
	if got := e.access("ann@example.com"); !slices.Equal(got, []string{"Workers Platform Admin"}) {
		t.Fatalf("after her ttl ended ann holds %v, want her group's access only", got)
	}
	for _, email := range []string{"ann@example.com", "bob@example.com"} {
		if m, _ := e.fake.Member(prodID, email); len(m.Policies) != 0 || len(m.Roles) != 0 {
			t.Fatalf("%s keeps grants of its own after they ended: %+v", email, m)
		}
	}
}

// TestUserGroupsGuardCountsGroupRemovals: leavers' group-member removals
// are removals the guard counts and withholds, like member removals.
func TestUserGroupsGuardCountsGroupRemovals(t *testing.T) {
	t.Parallel()
	e := newUGEnv(t, "  guards: {max_removals: 2, min_removals: 100}\n")
	var ids []string
	for i := range 3 {
		email := fmt.Sprintf("u%d@example.com", i)
		e.fake.AddMember(prodID, cftest.Member{Email: email}) // invited by hand: leavers leave groups only
		ids = append(ids, e.user(email))
	}
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{Actor: ActorSchedule})
	e.deactivate(ids...)
	e.fake.ResetCounters()
	res := e.mustApply(RunOptions{Actor: ActorSchedule})
	if n := e.ugCalls().memberRemoves; n != 0 || len(res.Changes.Tripped) != 1 || len(res.Changes.Withheld) != 3 {
		t.Fatalf("3 group removals over max_removals 2: %d removed, tripped %v, withheld %d", n, res.Changes.Tripped, len(res.Changes.Withheld))
	}
	res = e.mustApply(RunOptions{Actor: ActorApplyForce, Force: true})
	if n := e.ugCalls().memberRemoves; n != 3 {
		t.Fatalf("apply --force removed %d group members, want 3 (applied %s)", n, kinds(res.Applied))
	}
}

// TestUserGroupsLastSuperAdministrator: the last Super Administrator is
// counted through a user group: leaving that group is withheld while
// nobody else holds it.
func TestUserGroupsLastSuperAdministrator(t *testing.T) {
	t.Parallel()
	e := newUGEnv(t, "")
	e.cfg.Mappings = append(e.cfg.Mappings, mapping.Mapping{Group: "cf-owners", Account: "prod", Roles: []string{mapping.SuperAdministrator}})
	e.fake.AddMember(prodID, cftest.Member{Email: "root@example.com"})
	root := e.user("root@example.com")
	owners := e.group("cf-owners", root)
	e.mustApply(RunOptions{Actor: ActorSchedule})
	if got := e.access("root@example.com"); !slices.Equal(got, []string{mapping.SuperAdministrator}) {
		t.Fatalf("root holds %v", got)
	}
	if _, err := e.st.UpdateGroup(owners, e.now(), 0, func(g store.GroupTx) error {
		_, err := g.RemoveMember(root)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	res := e.mustApply(RunOptions{Actor: ActorSchedule})
	if len(res.Changes.Withheld) != 1 || res.Changes.Withheld[0].By != plan.WithheldByLastSuperAdmin {
		t.Fatalf("withheld = %+v, want the last Super Administrator's group removal", res.Changes.Withheld)
	}
	if got := e.access("root@example.com"); !slices.Equal(got, []string{mapping.SuperAdministrator}) {
		t.Fatalf("the last Super Administrator lost access: %v", got)
	}
}

// TestMemberPoliciesRoleChangeCostsOneWriteEach is the per-member figure
// beside TestUserGroupsCallEconomy's: the same 500-member mapping on a
// member_policies account costs one PUT per member when its role changes.
func TestMemberPoliciesRoleChangeCostsOneWriteEach(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withYAML(ugYAML("  guards: {max_removals: 1000, max_removal_percent: 100}\n")))
	ids := e.users(500, "user%03d@example.com")
	e.group("cf-deployers", ids...)
	if res := e.mustApply(RunOptions{Actor: ActorSchedule}); len(res.Applied) != 500 {
		t.Fatalf("first run applied %d changes", len(res.Applied))
	}
	e.cfg.Mappings[0].Roles = []string{"Workers Platform (Read-only)"}
	e.r.Reload(e.cfg)
	e.fake.ResetCounters()
	e.mustApply(RunOptions{Actor: ActorSchedule})
	if c := e.ugCalls(); c.memberPuts != 500 {
		t.Fatalf("a role change in a 500-member mapping cost %d member PUTs per member, want 500", c.memberPuts)
	}
}

// TestUserGroupsHandAddedMemberIsDrift: someone adds a person to an owned
// group by hand; the next full run reports it as drift (plan, audit) and
// takes the person out: the group is scimflare's.
func TestUserGroupsHandAddedMemberIsDrift(t *testing.T) {
	t.Parallel()
	e := newUGEnv(t, "")
	ann := e.user("ann@example.com")
	e.group("cf-deployers", ann)
	e.mustApply(RunOptions{Actor: ActorSchedule})
	e.fake.AddMember(prodID, cftest.Member{Email: "mallory@example.com"})
	g, _ := e.ugGroup("scimflare-cf-deployers")
	e.fake.SetUserGroupMembership(prodID, g.ID, "mallory@example.com", true)
	res := e.mustApply(RunOptions{Actor: ActorSchedule})
	if len(res.Changes.Drift) != 1 || res.Changes.Drift[0].Email != "mallory@example.com" {
		t.Fatalf("drift = %+v, want mallory in the owned group", res.Changes.Drift)
	}
	if got := e.access("mallory@example.com"); got != nil {
		t.Fatalf("hand-added mallory still holds %v", got)
	}
	if len(e.audit(ActionDrift)) != 1 {
		t.Fatalf("no drift audit record: %+v", e.audit(""))
	}
}

// TestUserGroupsSCIMManagedGroupSaysSoInOneSentence: when a group scimflare
// recorded as its own turns out to be managed by Cloudflare's SCIM, the
// refused write fails with one sentence naming the group and why.
func TestUserGroupsSCIMManagedGroupSaysSoInOneSentence(t *testing.T) {
	t.Parallel()
	e := newUGEnv(t, "")
	scim := e.fake.AddSCIMGroup(prodID, "scimflare-cf-deployers")
	// A create whose answer was lost left an intent; the group of its name
	// is Cloudflare's SCIM group.
	if err := e.st.PutOwnedUserGroup(store.OwnedUserGroup{AccountID: prodID, Key: "cf-deployers", Name: "scimflare-cf-deployers", UpdatedAt: e.now()}); err != nil {
		t.Fatal(err)
	}
	e.user("ann@example.com")
	e.group("cf-deployers", e.user("bob@example.com"))
	res := e.apply(RunOptions{Actor: ActorSchedule})
	var msg string
	for _, f := range res.Failed {
		if f.Change.Kind == plan.AddGroupMember {
			msg = f.Err.Error()
		}
	}
	if !strings.Contains(msg, `user group scimflare-cf-deployers is managed by Cloudflare's own SCIM provisioning, which the API does not let scimflare change`) {
		t.Fatalf("failure = %q (failed %d)", msg, len(res.Failed))
	}
	if members := e.fake.UserGroupMembers(prodID, scim.ID); len(members) != 0 {
		t.Fatalf("the SCIM group's members changed: %v", members)
	}
}

// TestLeavingUserGroupsModeEmptiesOwnedGroups: an account switched back to
// member_policies grants per member, then empties the groups scimflare
// made, so nobody keeps access through them and nobody's access dips.
func TestLeavingUserGroupsModeEmptiesOwnedGroups(t *testing.T) {
	t.Parallel()
	e := newUGEnv(t, "")
	ann, bob := e.user("ann@example.com"), e.user("bob@example.com")
	e.group("cf-deployers", ann, bob)
	e.mustApply(RunOptions{Actor: ActorSchedule})
	cfg := parseConfig(t, ugYAML(""))
	e.cfg = cfg
	e.r.Reload(cfg)
	e.deactivate(bob)
	res := e.mustApply(RunOptions{Actor: ActorSchedule})
	g, members := e.ugGroup("scimflare-cf-deployers")
	if len(members) != 0 {
		t.Fatalf("group %s still has %v after the account left user-groups mode (applied %s)", g.Name, members, kinds(res.Applied))
	}
	if got := e.access("ann@example.com"); !slices.Equal(got, []string{"Workers Platform Admin"}) {
		t.Fatalf("ann holds %v, want her mapping's access, now on the member", got)
	}
	if got := e.access("bob@example.com"); got != nil {
		t.Fatalf("leaver bob holds %v", got)
	}
}

// TestUserGroupsNeverMoreThanTheMapping checks at every write of a run
// (the fake's AfterWrite) what everyone effectively holds: in one full run
// the mapping's role changes, three people leave and two join; at no
// point does anyone hold access outside what the mapping granted them
// before or grants them after, and a leaver never gains anything.
func TestUserGroupsNeverMoreThanTheMapping(t *testing.T) {
	t.Parallel()
	var mu gosync.Mutex
	var allowed map[string]map[string]bool // email -> permission groups allowed now
	var bad []string
	var fake *cftest.Server
	e := &env{t: t, path: filepath.Join(t.TempDir(), "state.db")}
	e.clock = cftest.NewClock(cftest.Epoch)
	e.now = e.clock.Now
	fake = cftest.New(t, cftest.Options{Clock: e.clock, Accounts: []string{prodID}, Token: "test-token", AfterWrite: func(w cftest.Write) {
		mu.Lock()
		defer mu.Unlock()
		if allowed == nil {
			return
		}
		for email, access := range fake.EffectiveAccessAll(prodID) {
			for _, a := range access {
				if !allowed[email][a.PermissionGroup] {
					bad = append(bad, fmt.Sprintf("after %s %s: %s holds %s", w.Method, w.Route, email, a.PermissionGroup))
				}
			}
		}
	}})
	e.fake = fake
	cf, err := cloudflare.New(cloudflare.Config{BaseURL: fake.URL(), Token: "test-token", Clock: e.clock, HTTPClient: fake.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	e.cf, e.cfg, e.m = cf, parseConfig(t, ugYAML("  guards: {max_removals: 100, max_removal_percent: 100, min_removals: 100}\n")), testMetrics()
	e.cfg.Accounts[0].Model = mapping.ModelUserGroups
	e.open()

	ids := e.users(10, "u%d@example.com")
	deployers := e.group("cf-deployers", ids[:8]...)
	e.mustApply(RunOptions{Actor: ActorSchedule})

	// Before: u0..u7 hold Workers Platform Admin. After: u0..u4 and u8, u9
	// hold Workers Platform (Read-only); u5..u7 leave.
	const wpa, ro = "Workers Platform Admin", "Workers Platform (Read-only)"
	mu.Lock()
	allowed = map[string]map[string]bool{}
	for i := range 10 {
		a := map[string]bool{}
		if i < 8 {
			a[wpa] = true
		}
		if i < 5 || i >= 8 {
			a[ro] = true
		}
		allowed[fmt.Sprintf("u%d@example.com", i)] = a
	}
	mu.Unlock()
	e.deactivate(ids[5:8]...)
	if _, err := e.st.UpdateGroup(deployers, e.now(), 0, func(g store.GroupTx) error {
		for _, id := range ids[8:] {
			if _, err := g.AddMember(store.MemberRef{ID: id}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.cfg.Mappings[0].Roles = []string{ro}
	e.r.Reload(e.cfg)
	res := e.mustApply(RunOptions{Actor: ActorSchedule})
	mu.Lock()
	defer mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("access outside the mapping during the run:\n%s\n(applied %s)", strings.Join(bad, "\n"), kinds(res.Applied))
	}
	for i := range 10 {
		email := fmt.Sprintf("u%d@example.com", i)
		want := []string{ro}
		if i >= 5 && i < 8 {
			want = nil
		}
		if got := e.access(email); !slices.Equal(got, want) {
			t.Errorf("%s ends with %v, want %v", email, got, want)
		}
	}
}

// TestUserGroupsPrefixChangeRenames: a new user_group_prefix renames each
// owned group with one PUT; nothing is created again, nobody re-added.
func TestUserGroupsPrefixChangeRenames(t *testing.T) {
	t.Parallel()
	e := newUGEnv(t, "")
	e.group("cf-deployers", e.user("ann@example.com"))
	e.mustApply(RunOptions{Actor: ActorSchedule})
	before, _ := e.ugGroup("scimflare-cf-deployers")
	e.cfg.Accounts[0].UserGroupPrefix = "idp-"
	e.r.Reload(e.cfg)
	e.fake.ResetCounters()
	e.mustApply(RunOptions{Actor: ActorSchedule})
	after, members := e.ugGroup("idp-cf-deployers")
	c := e.ugCalls()
	if after.ID != before.ID || c.groupWrites != 2 || e.fake.Calls(http.MethodPost, cftest.RouteUserGroups) != 0 || c.memberAdds != 0 ||
		!slices.Equal(members, []string{"ann@example.com"}) {
		t.Fatalf("prefix change: group %+v (was %s), members %v, calls %+v; want the two owned groups renamed by one PUT each", after, before.ID, members, c)
	}
}
