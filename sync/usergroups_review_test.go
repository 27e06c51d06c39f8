package sync

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"testing"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
	"github.com/scimflare/scimflare/sync/plan"
)

// TestUserGroupsGuardCountsAPolicyDropPerMember: dropping a role from a
// mapping held as a group of 30 takes it from 30 people at once. In
// member_policies mode that is 30 removals and trips max_removals 25; one
// group PUT must not slip past the guard because it is one write.
func TestUserGroupsGuardCountsAPolicyDropPerMember(t *testing.T) {
	t.Parallel()
	e := newUGEnv(t, "  guards: {max_removals: 25, max_removal_percent: 100}\n")
	ids := e.users(30, "user%02d@example.com")
	deployers := e.group("cf-deployers", ids...)
	if res := e.mustApply(RunOptions{Actor: ActorSchedule}); len(res.Failed) > 0 {
		t.Fatalf("first run failed: %v", res.Failed[0].Err)
	}
	// In the same run a joiner arrives: while the group still holds the
	// role the mapping dropped, joining it would give her that role.
	joiner := e.user("joiner@example.com")
	if _, err := e.st.UpdateGroup(deployers, e.now(), 0, func(g store.GroupTx) error {
		_, err := g.AddMember(store.MemberRef{ID: joiner})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	e.cfg.Mappings[0].Roles = []string{"Workers Platform (Read-only)"}
	e.r.Reload(e.cfg)
	e.fake.ResetCounters()
	res := e.mustApply(RunOptions{Actor: ActorSchedule})
	if got := e.access("joiner@example.com"); len(got) != 0 {
		t.Fatalf("a joiner holds %v while the group's policy drop waits for the guard; the mapping grants her Workers Platform (Read-only) only", got)
	}
	if len(res.Changes.Tripped) != 1 || !slices.ContainsFunc(res.Changes.Withheld, func(w plan.Withheld) bool {
		return w.Change.Kind == plan.SetGroupPolicies && w.By == plan.WithheldByGuard
	}) {
		t.Fatalf("a policy drop reaching 30 members over max_removals 25: tripped %v, withheld %+v, applied %s",
			res.Changes.Tripped, res.Changes.Withheld, kinds(res.Applied))
	}
	// What the mapping adds is granted now (as per member); the role it
	// drops waits for the guard.
	if got := e.access("user07@example.com"); !slices.Equal(got, []string{"Workers Platform (Read-only)", "Workers Platform Admin"}) {
		t.Fatalf("the guard tripped: a member holds %v, want the added role granted and the dropped one kept", got)
	}
	res = e.mustApply(RunOptions{Actor: ActorApplyForce, Force: true})
	for _, email := range []string{"user07@example.com", "joiner@example.com"} {
		if got := e.access(email); !slices.Equal(got, []string{"Workers Platform (Read-only)"}) {
			t.Fatalf("after apply --force %s holds %v (applied %s)", email, got, kinds(res.Applied))
		}
	}
}

// TestUserGroupsJoinerNeverGetsAPolicyWithheldFromTheGroup: the owners
// mapping stops granting Super Administrator while root is the last one to
// hold it, so the group's policy change is withheld and the group keeps
// it. A joiner of that group in the same run must not join it then: she
// would hold Super Administrator, which no mapping grants her.
func TestUserGroupsJoinerNeverGetsAPolicyWithheldFromTheGroup(t *testing.T) {
	t.Parallel()
	e := newUGEnv(t, "")
	e.cfg.Mappings = append(e.cfg.Mappings, mapping.Mapping{Group: "cf-owners", Account: "prod", Roles: []string{mapping.SuperAdministrator}})
	e.fake.AddMember(prodID, cftest.Member{Email: "root@example.com"})
	owners := e.group("cf-owners", e.user("root@example.com"))
	e.mustApply(RunOptions{Actor: ActorSchedule})
	if got := e.access("root@example.com"); !slices.Equal(got, []string{mapping.SuperAdministrator}) {
		t.Fatalf("root holds %v", got)
	}
	e.fake.AddMember(prodID, cftest.Member{Email: "eve@example.com"})
	eve := e.user("eve@example.com")
	if _, err := e.st.UpdateGroup(owners, e.now(), 0, func(g store.GroupTx) error {
		_, err := g.AddMember(store.MemberRef{ID: eve})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	e.cfg.Mappings[len(e.cfg.Mappings)-1].Roles = []string{"Administrator"}
	e.r.Reload(e.cfg)
	res := e.mustApply(RunOptions{Actor: ActorSchedule})
	if !slices.ContainsFunc(res.Changes.Withheld, func(w plan.Withheld) bool {
		return w.Change.Kind == plan.SetGroupPolicies && w.By == plan.WithheldByLastSuperAdmin
	}) {
		t.Fatalf("the owners group's policy change was not withheld for the last Super Administrator: %+v", res.Changes.Withheld)
	}
	if got := e.access("eve@example.com"); slices.Contains(got, mapping.SuperAdministrator) {
		t.Fatalf("joiner eve holds %v: she joined a group still holding the Super Administrator its mapping no longer grants (applied %s)", got, kinds(res.Applied))
	}
	if got := e.access("root@example.com"); !slices.Contains(got, mapping.SuperAdministrator) {
		t.Fatalf("the last Super Administrator lost it: %v", got)
	}
}

// TestSwitchToUserGroupsNeverDipsAccess: an account moves from
// member_policies to user_groups. What each member held as its own policy
// now comes through the group; at no write of the switch may a member
// lack what its mapping grants (on-call locked out between two calls).
func TestSwitchToUserGroupsNeverDipsAccess(t *testing.T) {
	t.Parallel()
	for _, shape := range []string{mapping.GrantShapePolicies, mapping.GrantShapeRoles} {
		t.Run("from "+shape, func(t *testing.T) {
			t.Parallel()
			testSwitchToUserGroups(t, shape)
		})
	}
}

func testSwitchToUserGroups(t *testing.T, shape string) {
	var mu gosync.Mutex
	var watch bool
	var dips []string
	var fake *cftest.Server
	e := &env{t: t, path: filepath.Join(t.TempDir(), "state.db")}
	e.clock = cftest.NewClock(cftest.Epoch)
	e.now = e.clock.Now
	fake = cftest.New(t, cftest.Options{Clock: e.clock, Accounts: []string{prodID}, Token: "test-token", AfterWrite: func(w cftest.Write) {
		mu.Lock()
		defer mu.Unlock()
		if !watch {
			return
		}
		all := fake.EffectiveAccessAll(prodID)
		for _, email := range []string{"ann@example.com", "bob@example.com"} {
			if !slices.ContainsFunc(all[email], func(a cftest.Access) bool { return a.PermissionGroup == "Workers Platform Admin" }) {
				dips = append(dips, fmt.Sprintf("after %s %s: %s lacks Workers Platform Admin", w.Method, w.Route, email))
			}
		}
	}})
	e.fake = fake
	cf, err := cloudflare.New(cloudflare.Config{BaseURL: fake.URL(), Token: "test-token", Clock: e.clock, HTTPClient: fake.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	e.cf, e.cfg, e.m = cf, parseConfig(t, ugYAML("")), testMetrics()
	e.cfg.Accounts[0].GrantShape = shape
	e.open()
	e.fake.AddMember(prodID, cftest.Member{Email: "bob@example.com"}) // invited by hand: adopted
	e.group("cf-deployers", e.user("ann@example.com"), e.user("bob@example.com"))
	e.mustApply(RunOptions{Actor: ActorSchedule})
	for _, email := range []string{"ann@example.com", "bob@example.com"} {
		if m, _ := e.fake.Member(prodID, email); len(m.Policies)+len(m.Roles) != 1 {
			t.Fatalf("member_policies: %s = %+v, want its own grant", email, m)
		}
	}

	mu.Lock()
	watch = true
	mu.Unlock()
	e.cfg.Accounts[0].Model, e.cfg.Accounts[0].GrantShape = mapping.ModelUserGroups, ""
	e.r.Reload(e.cfg)
	var applied []plan.Change
	for range 3 { // the switch may take more than one run, never a dip
		applied = append(applied, e.mustApply(RunOptions{Actor: ActorSchedule}).Applied...)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dips) > 0 {
		t.Fatalf("access dipped during the switch to user groups:\n%s\n(applied %s)", strings.Join(dips, "\n"), kinds(applied))
	}
	for _, email := range []string{"ann@example.com", "bob@example.com"} {
		if m, _ := e.fake.Member(prodID, email); len(m.Policies)+len(m.Roles) != 0 {
			t.Errorf("after the switch %s still holds its own %+v, want access through the group only", email, m)
		}
		if got := e.access(email); !slices.Equal(got, []string{"Workers Platform Admin"}) {
			t.Errorf("after the switch %s holds %v", email, got)
		}
	}
}

// TestUserGroupsMappingKeyChangeNeverDipsAccess: the operator points a
// mapping at the same IdP group by group_external_id instead of group (or
// follows an IdP rename). The mapping's key, and so its group, changes:
// the old owned group is emptied and a new one filled. Nobody the mapping
// still grants may lack its access at any write of that run.
func TestUserGroupsMappingKeyChangeNeverDipsAccess(t *testing.T) {
	t.Parallel()
	var mu gosync.Mutex
	var watch bool
	var dips []string
	var fake *cftest.Server
	e := &env{t: t, path: filepath.Join(t.TempDir(), "state.db")}
	e.clock = cftest.NewClock(cftest.Epoch)
	e.now = e.clock.Now
	fake = cftest.New(t, cftest.Options{Clock: e.clock, Accounts: []string{prodID}, Token: "test-token", AfterWrite: func(w cftest.Write) {
		mu.Lock()
		defer mu.Unlock()
		if !watch {
			return
		}
		all := fake.EffectiveAccessAll(prodID)
		for _, email := range []string{"ann@example.com", "bob@example.com"} {
			if !slices.ContainsFunc(all[email], func(a cftest.Access) bool { return a.PermissionGroup == "Workers Platform Admin" }) {
				dips = append(dips, fmt.Sprintf("after %s %s: %s lacks Workers Platform Admin", w.Method, w.Route, email))
			}
		}
	}})
	e.fake = fake
	cf, err := cloudflare.New(cloudflare.Config{BaseURL: fake.URL(), Token: "test-token", Clock: e.clock, HTTPClient: fake.HTTPClient()})
	if err != nil {
		t.Fatal(err)
	}
	e.cf, e.cfg, e.m = cf, parseConfig(t, ugYAML("")), testMetrics()
	e.cfg.Accounts[0].Model = mapping.ModelUserGroups
	e.open()
	refs := []store.MemberRef{{ID: e.user("ann@example.com")}, {ID: e.user("bob@example.com")}}
	if _, err := e.st.CreateGroup(e.now(), store.Group{DisplayName: "cf-deployers", ExternalID: "okta-00g1"}, refs); err != nil {
		t.Fatal(err)
	}
	e.mustApply(RunOptions{Actor: ActorSchedule})
	if got := e.access("ann@example.com"); !slices.Equal(got, []string{"Workers Platform Admin"}) {
		t.Fatalf("ann holds %v", got)
	}

	mu.Lock()
	watch = true
	mu.Unlock()
	e.cfg.Mappings[0].Group, e.cfg.Mappings[0].GroupExternalID = "", "okta-00g1"
	e.r.Reload(e.cfg)
	var applied []plan.Change
	for range 2 {
		applied = append(applied, e.mustApply(RunOptions{Actor: ActorSchedule}).Applied...)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dips) > 0 {
		t.Fatalf("access dipped when the mapping's key changed:\n%s\n(applied %s)", strings.Join(dips, "\n"), kinds(applied))
	}
	if _, members := e.ugGroup("scimflare-okta-00g1"); len(members) != 2 {
		t.Fatalf("the mapping's new group has %v", members)
	}
	if _, members := e.ugGroup("scimflare-cf-deployers"); len(members) != 0 {
		t.Fatalf("the old group still has %v: its mapping is gone", members)
	}
}

// TestUserGroupsGuardHoldsInvitedLeavers: the IdP deactivates 30 people
// at once (a glitch, a bad sync). scimflare invited them for their group,
// so each leaver is one member DELETE holding nothing of its own, which
// also ends its group access. That is 30 people losing access: over
// max_removals 25 the guard must hold every one of them back.
func TestUserGroupsGuardHoldsInvitedLeavers(t *testing.T) {
	t.Parallel()
	e := newUGEnv(t, "  guards: {max_removals: 25, max_removal_percent: 100}\n")
	ids := e.users(30, "user%02d@example.com")
	e.group("cf-deployers", ids...)
	if res := e.mustApply(RunOptions{Actor: ActorSchedule}); len(res.Failed) > 0 {
		t.Fatalf("first run failed: %v", res.Failed[0].Err)
	}
	for i := range 30 {
		e.fake.AcceptInvite(prodID, fmt.Sprintf("user%02d@example.com", i))
	}
	e.deactivate(ids...)
	e.fake.ResetCounters()
	res := e.mustApply(RunOptions{Actor: ActorSchedule})
	c := e.ugCalls()
	if len(res.Changes.Tripped) != 1 || c.memberDeletes != 0 || c.memberRemoves != 0 {
		t.Fatalf("30 leavers over max_removals 25: tripped %v, %d member DELETEs and %d group-member DELETEs (applied %s)",
			res.Changes.Tripped, c.memberDeletes, c.memberRemoves, kinds(res.Applied))
	}
	if got := e.access("user07@example.com"); !slices.Equal(got, []string{"Workers Platform Admin"}) {
		t.Fatalf("the guard tripped but a leaver's access went: %v", got)
	}
	e.mustApply(RunOptions{Actor: ActorApplyForce, Force: true})
	if got := e.access("user07@example.com"); got != nil {
		t.Fatalf("after apply --force a leaver holds %v", got)
	}
}

// TestUserGroupsWindowCountsInvitedLeavers: leavers scimflare invited for
// their group leave by one member DELETE each, which ends their group
// access. The rolling window (max_removals_per_window) must count them,
// or a mass removal trickled in small runs walks past it.
func TestUserGroupsWindowCountsInvitedLeavers(t *testing.T) {
	t.Parallel()
	e := newUGEnv(t, "  guards: {max_removals: 25, max_removal_percent: 100, max_removals_per_window: 5}\n")
	ids := e.users(9, "user%d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{Actor: ActorSchedule})
	e.deactivate(ids[0:3]...)
	if res := e.mustApply(RunOptions{Actor: ActorSchedule}); len(res.Changes.Tripped) != 0 {
		t.Fatalf("3 removals tripped the guard: %+v", res.Changes.Withheld)
	}
	e.deactivate(ids[3:6]...)
	res := e.mustApply(RunOptions{Actor: ActorSchedule})
	if len(res.Changes.Tripped) != 1 {
		t.Fatalf("6 leavers within the window over max_removals_per_window 5 did not trip the guard (applied %s)", kinds(res.Applied))
	}
	if got := e.access("user4@example.com"); got == nil {
		t.Fatal("the window tripped but user4's access went")
	}
}

// TestUserGroupsHandAddedMemberIsDriftAfterAPlan: someone adds mallory to
// an owned group by hand, and an operator runs `scimflare plan` (which
// lists the groups, changes nothing) before the next full run. That run
// must still report the hand-added member as drift in the audit trail:
// a plan in between must not make the group's listing look like
// scimflare's own.
func TestUserGroupsHandAddedMemberIsDriftAfterAPlan(t *testing.T) {
	t.Parallel()
	e := newUGEnv(t, "")
	e.group("cf-deployers", e.user("ann@example.com"))
	e.mustApply(RunOptions{Actor: ActorSchedule})
	e.fake.AddMember(prodID, cftest.Member{Email: "mallory@example.com"})
	g, _ := e.ugGroup("scimflare-cf-deployers")
	e.fake.SetUserGroupMembership(prodID, g.ID, "mallory@example.com", true)
	if _, err := e.r.Plan(context.Background()); err != nil {
		t.Fatal(err)
	}
	res := e.mustApply(RunOptions{Actor: ActorSchedule})
	if len(res.Changes.Drift) != 1 || res.Changes.Drift[0].Email != "mallory@example.com" || len(e.audit(ActionDrift)) != 1 {
		t.Fatalf("drift = %+v, audit %+v: the hand-added member was not reported", res.Changes.Drift, e.audit(ActionDrift))
	}
	if got := e.access("mallory@example.com"); got != nil {
		t.Fatalf("hand-added mallory still holds %v", got)
	}
}

// TestSwitchToUserGroupsIsNoRemovalForTheGuard: 30 members move to
// user groups. Taking away each member's own copy of a policy its group
// now gives it takes nobody's access away: the guard (max_removals 25)
// must not trip on it, and so must not latch and hold back real leavers
// afterwards.
func TestSwitchToUserGroupsIsNoRemovalForTheGuard(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withYAML(ugYAML("")))
	ids := e.users(30, "user%02d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{Actor: ActorSchedule})
	e.cfg.Accounts[0].Model = mapping.ModelUserGroups
	e.r.Reload(e.cfg)
	for i := range 3 {
		if res := e.mustApply(RunOptions{Actor: ActorSchedule}); len(res.Changes.Tripped) != 0 {
			t.Fatalf("run %d of the switch tripped the guard: %s", i+1, res.Changes.Withheld[0].Why)
		}
	}
	for _, email := range []string{"user00@example.com", "user29@example.com"} {
		if m, _ := e.fake.Member(prodID, email); len(m.Policies) != 0 {
			t.Errorf("after the switch %s still holds its own %+v", email, m.Policies)
		}
		if got := e.access(email); !slices.Equal(got, []string{"Workers Platform Admin"}) {
			t.Errorf("after the switch %s holds %v", email, got)
		}
	}
}

// TestLeavingUserGroupsIsNoRemovalForTheGuard: 30 members of an account
// going back to member_policies are granted their policies as their own,
// then leave the groups. Nobody loses access: the guard (max_removals 25)
// must not trip, latch, and hold back real leavers afterwards.
func TestLeavingUserGroupsIsNoRemovalForTheGuard(t *testing.T) {
	t.Parallel()
	e := newUGEnv(t, "")
	ids := e.users(30, "user%02d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{Actor: ActorSchedule})
	e.cfg = parseConfig(t, ugYAML(""))
	e.r.Reload(e.cfg)
	for i := range 3 {
		if res := e.mustApply(RunOptions{Actor: ActorSchedule}); len(res.Changes.Tripped) != 0 {
			t.Fatalf("run %d of leaving user groups tripped the guard: %s", i+1, res.Changes.Withheld[0].Why)
		}
	}
	if _, members := e.ugGroup("scimflare-cf-deployers"); len(members) != 0 {
		t.Fatalf("the group still has %d members", len(members))
	}
	if got := e.access("user07@example.com"); !slices.Equal(got, []string{"Workers Platform Admin"}) {
		t.Fatalf("after leaving user groups a member holds %v", got)
	}
}
