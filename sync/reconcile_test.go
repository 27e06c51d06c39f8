package sync

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
	"github.com/scimflare/scimflare/sync/plan"
)

const wpa = "Workers Platform Admin"

func TestFullApplyCreatesExactlyTheMappedMembers(t *testing.T) {
	e := newEnv(t)
	alice := e.user("Alice@example.com")
	bob := e.user("bob@example.com")
	carol := e.user("carol@example.com")
	e.user("dave@example.com") // in no group
	erin := e.user("erin@example.com")
	e.deactivate(erin)
	platform := e.group("platform", carol) // nested below cf-deployers
	e.group("cf-deployers", alice, bob, platform, erin)
	e.group("cf-log-readers", bob)

	res := e.mustApply(RunOptions{Actor: ActorApply})

	if got := kinds(res.Applied); got != "add_member alice@example.com, add_member bob@example.com, add_member bob@example.com, add_member carol@example.com" {
		t.Errorf("applied: %s", got)
	}
	if n := len(e.fake.Members(prodID)); n != 3 {
		t.Errorf("prod has %d members, want 3", n)
	}
	for _, email := range []string{"alice@example.com", "bob@example.com", "carol@example.com"} {
		roles, ok := e.memberRoles(prodID, email)
		if !ok || !slices.Equal(roles, []string{wpa}) {
			t.Errorf("prod %s: roles %v (member %v), want [%s]", email, roles, ok, wpa)
		}
		if m, _ := e.fake.Member(prodID, email); m.Status != "pending" {
			t.Errorf("prod %s: status %q, want pending (an invitation)", email, m.Status)
		}
	}
	staging := e.fake.Members(stagingID)
	if len(staging) != 1 || staging[0].Email != "bob@example.com" || len(staging[0].Roles) != 0 || len(staging[0].Policies) != 1 {
		t.Fatalf("staging members: %+v", staging)
	}
	pol := staging[0].Policies[0]
	if !slices.Equal(pol.PermissionGroups, []string{e.fake.PermissionGroupID(stagingID, "Workers Platform (Read-only)")}) ||
		!slices.Equal(pol.ResourceGroups, []string{e.fake.ResourceGroupID(stagingID, "staging-workers")}) || pol.Access != "allow" {
		t.Errorf("staging policy: %+v", pol)
	}

	led, err := e.st.Ledger(prodID)
	if err != nil {
		t.Fatal(err)
	}
	if len(led) != 3 {
		t.Errorf("ledger has %d prod entries, want 3", len(led))
	}
	for _, l := range led {
		if !l.Created || !slices.Equal(l.Managed, []string{mapping.RoleKey(e.roleID(prodID, wpa))}) || l.MemberID == "" {
			t.Errorf("ledger entry %+v", l)
		}
	}
	adds := e.audit(string(plan.AddMember))
	if len(adds) != 4 {
		t.Fatalf("%d add_member audit records, want 4", len(adds))
	}
	for _, a := range adds {
		if a.Actor != ActorApply || !a.Privileged || len(a.After) != 1 || len(a.Before) != 0 || a.Reason == "" {
			t.Errorf("audit record %+v", a)
		}
	}
	if adds[0].After[0] != wpa {
		t.Errorf("audit names %v, want role names", adds[0].After)
	}
	if got := metricValue(e.m.ChangesApplied.WithLabelValues("add_member")); got != 4 {
		t.Errorf("changes_applied{add_member} = %v", got)
	}
	if got := metricValue(e.m.ReconcileRuns.WithLabelValues(ActorApply, OutcomeSuccess)); got != 1 {
		t.Errorf("reconcile_runs{apply,success} = %v", got)
	}

	// A second run has nothing to do.
	before := len(e.fake.Writes())
	res = e.mustApply(RunOptions{Actor: ActorApply})
	if res.Changes.HasChanges() || len(e.fake.Writes()) != before {
		t.Errorf("second apply changed something: %s", kinds(res.Applied))
	}
	if ok, reasons := e.r.Ready(); !ok {
		t.Errorf("not ready after a successful run: %v", reasons)
	}
}

func TestTargetedRunAfterDeactivationListsNothingAndWritesOnce(t *testing.T) {
	e := newEnv(t)
	ids := e.users(10, "user%d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	gone, _ := e.fake.Member(prodID, "user3@example.com")
	e.fake.ResetCounters()

	e.deactivate(ids[3])
	res := e.targeted([]string{ids[3]}, nil, nil)

	if res.Aborted != nil || len(res.Failed) > 0 {
		t.Fatalf("aborted %v, failed %v", res.Aborted, res.Failed)
	}
	if n := e.fake.Calls(http.MethodGet, cftest.RouteMembers); n != 0 {
		t.Errorf("targeted run listed members %d times, want 0", n)
	}
	w := e.fake.Writes()
	if len(w) != 1 || w[0].Method != http.MethodDelete || w[0].MemberID != gone.ID {
		t.Fatalf("writes %+v, want one DELETE of %s", w, gone.ID)
	}
	if _, ok := e.fake.Member(prodID, "user3@example.com"); ok {
		t.Error("user3 is still a member")
	}
	if got := kinds(res.Applied); got != "remove_member user3@example.com" {
		t.Errorf("applied %s", got)
	}
	led, _ := e.st.Ledger(prodID)
	cache, _ := e.st.CachedMembers(prodID)
	if _, ok := led[store.Fold("user3@example.com")]; ok || len(led) != 9 {
		t.Errorf("ledger keeps the removed member: %d entries", len(led))
	}
	if _, ok := cache[store.Fold("user3@example.com")]; ok || len(cache) != 9 {
		t.Errorf("cache keeps the removed member: %d entries", len(cache))
	}
	rm := e.audit(string(plan.RemoveMember))
	if len(rm) != 1 || rm[0].Actor != ActorIdPPush || !slices.Equal(rm[0].Before, []string{wpa}) || len(rm[0].After) != 0 || rm[0].Privileged {
		t.Errorf("audit %+v", rm)
	}
}

func TestTTLExpiryRemovesTheRoleWhileTheUserStaysInTheGroup(t *testing.T) {
	e := newEnv(t)
	ids := e.users(10, "user%d@example.com")
	e.group("cf-deployers", ids...)
	joined := e.now()
	oncall := e.group("cf-oncall", ids[0])
	e.mustApply(RunOptions{})
	if roles, _ := e.memberRoles(prodID, "user0@example.com"); !slices.Equal(roles, []string{"Administrator", wpa}) {
		t.Fatalf("user0 roles %v", roles)
	}
	st := e.r.Status()
	if len(st.PendingExpiries) != 1 {
		t.Fatalf("pending expiries %+v", st.PendingExpiries)
	}
	x := st.PendingExpiries[0]
	if x.Email != "user0@example.com" || x.Account != "prod" || x.Role != "Administrator" || !x.At.Equal(joined.Add(2*time.Second)) || !strings.Contains(x.Source, "cf-oncall") {
		t.Errorf("expiry %+v", x)
	}
	if got := e.r.nextExpiry; !got.Equal(joined.Add(2 * time.Second)) {
		t.Errorf("expiry timer set for %v, want %v", got, joined.Add(2*time.Second))
	}

	// Before the end nothing happens.
	e.clock.Advance(time.Second)
	if res := e.expiry(); res.Changes.HasChanges() {
		t.Fatalf("expiry run a second early changed %s", kinds(res.Applied))
	}
	e.fake.ResetCounters()
	e.clock.Advance(time.Second)
	res := e.expiry()
	if got := kinds(res.Applied); got != "expire_grant user0@example.com" {
		t.Fatalf("applied %s", got)
	}
	if roles, _ := e.memberRoles(prodID, "user0@example.com"); !slices.Equal(roles, []string{wpa}) {
		t.Errorf("user0 roles after expiry %v", roles)
	}
	if n := e.fake.Calls(http.MethodGet, cftest.RouteMembers); n != 0 {
		t.Errorf("expiry run listed members %d times", n)
	}
	if in, _ := e.st.IsMember(oncall, ids[0]); !in {
		t.Error("the user left the group; the test must show expiry while they stay")
	}
	if res.Applied[0].Reason == "" || !strings.Contains(res.Applied[0].Reason, "ended") {
		t.Errorf("reason %q", res.Applied[0].Reason)
	}
	if got := e.r.Status().PendingExpiries; len(got) != 0 {
		t.Errorf("pending after expiry: %+v", got)
	}
	// It does not come back on the next full run.
	if res := e.mustApply(RunOptions{}); res.Changes.HasChanges() {
		t.Errorf("full run after expiry: %s", kinds(res.Applied))
	}
}

func TestHandAddedRoleIsDriftAndRemovedOnlyWhenUnmanagedRemove(t *testing.T) {
	e := newEnv(t)
	ids := e.users(10, "user%d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	m, _ := e.fake.Member(prodID, "user0@example.com")
	if _, err := e.cf.UpdateMember(context.Background(), prodID, m.ID, []string{e.roleID(prodID, wpa), e.roleID(prodID, "DNS")}, nil); err != nil {
		t.Fatal(err)
	}

	res, err := e.r.Plan(context.Background())
	if err != nil || res.Aborted != nil {
		t.Fatal(err, res.Aborted)
	}
	if res.Changes.HasChanges() {
		t.Errorf("report mode plans changes: %v", res.Changes.Accounts)
	}
	var out bytes.Buffer
	if err := plan.RenderJSON(&out, res.Changes, res.Names, res.AccountNames); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `"email": "user0@example.com",
      "account": "prod",
      "role": "DNS"`) {
		t.Errorf("plan --json does not report the drift by name:\n%s", out.String())
	}

	e.fake.ResetCounters()
	e.mustApply(RunOptions{})
	e.mustApply(RunOptions{})
	if w := e.fake.Writes(); len(w) != 0 {
		t.Errorf("report mode wrote %+v", w)
	}
	d := e.audit(ActionDrift)
	if len(d) != 1 || d[0].Email != "user0@example.com" || !slices.Equal(d[0].Before, []string{"DNS"}) {
		t.Errorf("drift audit (once, not once per run): %+v", d)
	}
	if got := metricValue(e.m.DriftFound); got != 1 {
		t.Errorf("drift_found = %v", got)
	}

	e.r.Reload(parseConfig(t, configYAML("  unmanaged: remove\n")))
	res = e.mustApply(RunOptions{})
	if got := kinds(res.Applied); got != "update_roles user0@example.com" {
		t.Fatalf("applied %s", got)
	}
	if roles, _ := e.memberRoles(prodID, "user0@example.com"); !slices.Equal(roles, []string{wpa}) {
		t.Errorf("roles after unmanaged: remove: %v", roles)
	}
}

func TestHundredDeactivationsTripTheGuardUntilForce(t *testing.T) {
	e := newEnv(t)
	ids := e.users(100, "user%03d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	if n := len(e.fake.Members(prodID)); n != 100 {
		t.Fatalf("%d members", n)
	}
	e.fake.ResetCounters()

	e.deactivate(ids...)
	res := e.targeted(ids, nil, nil)
	if len(e.writes("")) != 0 {
		t.Fatalf("a tripped guard let %d writes through", len(e.writes("")))
	}
	if !slices.Equal(res.Changes.Tripped, []string{prodID}) || len(res.Changes.Withheld) != 100 {
		t.Errorf("tripped %v, withheld %d", res.Changes.Tripped, len(res.Changes.Withheld))
	}
	ok, reasons := e.r.Ready()
	if ok || !strings.Contains(strings.Join(reasons, "\n"), "guard tripped in prod") {
		t.Errorf("ready %v %v", ok, reasons)
	}
	if metricValue(e.m.GuardTripped) != 1 || metricValue(e.m.GuardTrips) != 1 {
		t.Errorf("guard metrics %v %v", metricValue(e.m.GuardTripped), metricValue(e.m.GuardTrips))
	}

	// The schedule does not get past it either, and does not re-audit it.
	e.mustApply(RunOptions{Actor: ActorSchedule})
	if len(e.writes("")) != 0 {
		t.Fatal("a scheduled run removed members past the guard")
	}
	if got := e.r.Status().Tripped; !slices.Equal(got, []string{"prod"}) {
		t.Errorf("status tripped %v", got)
	}
	if n := len(e.audit(ActionGuardTripped)); n != 1 {
		t.Errorf("%d guard_tripped records, want 1", n)
	}

	res = e.mustApply(RunOptions{Actor: ActorApplyForce, Force: true})
	if len(res.Applied) != 100 || !slices.Equal(res.Changes.Tripped, []string{prodID}) {
		t.Errorf("force: %d applied, tripped %v (the override must still show)", len(res.Applied), res.Changes.Tripped)
	}
	if n := len(e.writes(http.MethodDelete)); n != 100 {
		t.Errorf("apply --force deleted %d, want 100", n)
	}
	if n := len(e.fake.Members(prodID)); n != 0 {
		t.Errorf("%d members left", n)
	}
	if ok, reasons := e.r.Ready(); !ok {
		t.Errorf("still unready after apply --force: %v", reasons)
	}
	if o := e.audit(ActionGuardOverride); len(o) != 1 || o[0].Actor != ActorApplyForce {
		t.Errorf("override audit %+v", o)
	}
	if rm := e.audit(string(plan.RemoveMember)); len(rm) != 100 || rm[0].Actor != ActorApplyForce {
		t.Errorf("%d remove_member records", len(rm))
	}
	if metricValue(e.m.GuardTripped) != 0 {
		t.Error("guard_tripped gauge still set")
	}
}

func TestProtectedEmailIsNeverTouched(t *testing.T) {
	e := newEnv(t)
	bg := e.fake.AddMember(prodID, cftest.Member{Email: "breakglass@example.com", Roles: []string{e.roleID(prodID, mapping.SuperAdministrator)}})
	other := e.fake.AddMember(prodID, cftest.Member{Email: "admin@example.com", Roles: []string{e.roleID(prodID, mapping.SuperAdministrator)}})
	ids := e.users(5, "user%d@example.com")
	e.group("cf-deployers", append(ids, e.user("BreakGlass@example.com"))...)
	e.mustApply(RunOptions{})

	// Now remove everything scimflare did not grant: the protected member
	// stays as it is, the other unmanaged Super Administrator goes (the
	// protected one still holds the role).
	e.r.Reload(parseConfig(t, configYAML("  unmanaged: remove\n  guards: {max_removals: 100, max_removal_percent: 100}\n")))
	res := e.mustApply(RunOptions{})
	for _, w := range e.fake.Writes() {
		if w.MemberID == bg.ID || strings.Contains(strings.ToLower(w.Body), "breakglass") {
			t.Errorf("write touched the protected member: %+v", w)
		}
	}
	if m, _ := e.fake.Member(prodID, "breakglass@example.com"); !slices.Equal(m.Roles, bg.Roles) {
		t.Errorf("protected roles changed: %v", m.Roles)
	}
	var why []string
	for _, w := range res.Changes.Withheld {
		why = append(why, strings.ToLower(w.Change.Email)+": "+w.Why)
	}
	if !slices.Equal(why, []string{"breakglass@example.com: protected"}) {
		t.Errorf("withheld %v", why)
	}
	if _, ok := e.fake.Member(prodID, other.Email); ok {
		t.Error("unmanaged member kept under unmanaged: remove")
	}
}

func TestFailedListingPageAbortsWithZeroWrites(t *testing.T) {
	e := newEnv(t)
	for i := range 120 {
		e.fake.AddMember(prodID, cftest.Member{Email: "hand" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + "@example.com", Roles: []string{e.roleID(prodID, "DNS")}})
	}
	ids := e.users(3, "user%d@example.com")
	e.group("cf-deployers", ids...)
	e.fake.Inject(cftest.Fault{Method: http.MethodGet, Route: cftest.RouteMembers, Page: 3, Status: http.StatusInternalServerError, Times: -1})

	res := e.apply(RunOptions{})
	if res.Aborted == nil || !strings.Contains(res.Aborted.Error(), "list members of account prod") {
		t.Fatalf("aborted = %v", res.Aborted)
	}
	if w := e.fake.Writes(); len(w) != 0 {
		t.Fatalf("an aborted run wrote %+v", w)
	}
	if len(res.Applied) != 0 {
		t.Errorf("applied %s", kinds(res.Applied))
	}
	if a := e.audit(ActionRunAborted); len(a) != 1 || !strings.Contains(a[0].Reason, "page 3") {
		t.Errorf("run_aborted audit %+v", a)
	}
	if got := metricValue(e.m.ReconcileRuns.WithLabelValues(ActorApply, OutcomeAborted)); got != 1 {
		t.Errorf("reconcile_runs{apply,aborted} = %v", got)
	}
	if st := e.r.Status(); st.LastOutcome != OutcomeAborted || st.LastError == "" || !st.LastSuccess.IsZero() {
		t.Errorf("status %+v", st)
	}
	if at, _ := e.st.MemberCacheScannedAt(prodID); !at.IsZero() {
		t.Error("a failed listing replaced the member cache")
	}

	e.fake.ClearFaults()
	res = e.mustApply(RunOptions{})
	if len(res.Applied) != 3 {
		t.Errorf("after the fault cleared: %s", kinds(res.Applied))
	}
}

func TestUnknownRoleNameAbortsBeforeAnyWrite(t *testing.T) {
	e := newEnv(t)
	ids := e.users(3, "user%d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	e.fake.ResetCounters()
	bad := strings.Replace(configYAML(""), "roles: [Workers Platform Admin]", "roles: [Workers Platform Admn]", 1)
	e.r.Reload(parseConfig(t, bad))
	res := e.apply(RunOptions{})
	if res.Aborted == nil || !strings.Contains(res.Aborted.Error(), `did you mean "Workers Platform Admin"`) {
		t.Fatalf("aborted = %v", res.Aborted)
	}
	if w := e.fake.Writes(); len(w) != 0 {
		t.Errorf("wrote %+v: a renamed role looked like a removed mapping", w)
	}
}

func TestStaleCacheIsRefreshedOnceAndRetried(t *testing.T) {
	e := newEnv(t)
	ids := e.users(10, "user%d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})

	t.Run("member deleted by hand: 404 then create", func(t *testing.T) {
		old, _ := e.fake.Member(prodID, "user0@example.com")
		e.fake.RemoveMember(prodID, "user0@example.com")
		e.group("cf-oncall", ids[0])
		e.fake.ResetCounters()
		res := e.targeted([]string{ids[0]}, nil, nil)
		if res.Aborted != nil || len(res.Failed) > 0 {
			t.Fatalf("aborted %v failed %v", res.Aborted, res.Failed)
		}
		if n := e.fake.Calls(http.MethodGet, cftest.RouteMembers); n != 1 {
			t.Errorf("%d member listings, want one refresh", n)
		}
		// The member is read before its update: the 404 comes from the
		// read, and no PUT is attempted.
		if n := e.fake.Calls(http.MethodGet, cftest.RouteMember); n != 1 {
			t.Errorf("%d member reads, want the one before the update", n)
		}
		w := e.fake.Writes()
		if len(w) != 1 || w[0].Method != http.MethodPost || w[0].Status != http.StatusOK {
			t.Fatalf("writes %+v", w)
		}
		if roles, _ := e.memberRoles(prodID, "user0@example.com"); !slices.Equal(roles, []string{"Administrator", wpa}) {
			t.Errorf("roles %v", roles)
		}
		led, _ := e.st.Ledger(prodID)
		if l := led[store.Fold("user0@example.com")]; l.MemberID == old.ID || l.MemberID == "" || !l.Created {
			t.Errorf("ledger %+v", l)
		}
		if g := e.audit(ActionMemberGone); len(g) != 1 {
			t.Errorf("member_gone audit %+v", g)
		}
	})

	t.Run("member invited by hand: 409 then adopt", func(t *testing.T) {
		bob := e.user("bob@example.com")
		e.fake.AddMember(prodID, cftest.Member{Email: "bob@example.com", Roles: []string{e.roleID(prodID, "DNS")}})
		if _, err := e.st.UpdateGroup(groupID(t, e, "cf-deployers"), e.now(), 0, func(g store.GroupTx) error {
			_, err := g.AddMember(store.MemberRef{ID: bob, Type: store.MemberUser})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		e.fake.ResetCounters()
		res := e.targeted([]string{bob}, nil, nil)
		if res.Aborted != nil || len(res.Failed) > 0 {
			t.Fatalf("aborted %v failed %v", res.Aborted, res.Failed)
		}
		if n := e.fake.Calls(http.MethodGet, cftest.RouteMembers); n != 1 {
			t.Errorf("%d member listings, want one refresh", n)
		}
		w := e.fake.Writes()
		if len(w) != 2 || w[0].Method != http.MethodPost || w[0].Status != http.StatusBadRequest || w[1].Method != http.MethodPut || w[1].Status != http.StatusOK {
			t.Fatalf("writes %+v", w)
		}
		if roles, _ := e.memberRoles(prodID, "bob@example.com"); !slices.Equal(roles, []string{"DNS", wpa}) {
			t.Errorf("adopted member roles %v", roles)
		}
		led, _ := e.st.Ledger(prodID)
		l := led[store.Fold("bob@example.com")]
		if l.Created || !slices.Equal(l.Found, []string{mapping.RoleKey(e.roleID(prodID, "DNS"))}) || !slices.Equal(l.Managed, []string{mapping.RoleKey(e.roleID(prodID, wpa))}) {
			t.Errorf("ledger %+v", l)
		}
	})
}

func groupID(t testing.TB, e *env, name string) string {
	t.Helper()
	g, err := e.st.GroupByDisplayName(name)
	if err != nil {
		t.Fatal(err)
	}
	return g.ID
}

func TestRestartKeepsPendingExpiries(t *testing.T) {
	e := newEnv(t)
	ids := e.users(10, "user%d@example.com")
	e.group("cf-deployers", ids...)
	e.group("cf-oncall", ids[0])
	e.mustApply(RunOptions{})
	before := e.r.Status()
	if len(before.PendingExpiries) != 1 {
		t.Fatalf("pending %+v", before.PendingExpiries)
	}

	e.restart()
	after := e.r.Status()
	if !slices.Equal(after.PendingExpiries, before.PendingExpiries) {
		t.Errorf("after restart %+v, before %+v", after.PendingExpiries, before.PendingExpiries)
	}
	if !after.LastSuccess.Equal(before.LastSuccess) || after.LastTrigger != ActorApply || after.LastOutcome != OutcomeSuccess {
		t.Errorf("status not kept: %+v", after)
	}
	e.clock.Advance(3 * time.Second)
	if got := kinds(e.expiry().Applied); got != "expire_grant user0@example.com" {
		t.Errorf("expiry after restart applied %s", got)
	}
}

func TestGrantAndRevoke(t *testing.T) {
	e := newEnv(t)
	ids := e.users(10, "user%d@example.com")
	e.group("cf-deployers", ids...)
	// Enough managed grants in staging that one expiry stays under the
	// 20% removal guard.
	e.group("cf-log-readers", ids[:5]...)
	e.mustApply(RunOptions{})
	e.user("zed@example.com")
	inactive := e.user("gone@example.com")
	e.deactivate(inactive)
	ctx := context.Background()

	for _, bad := range []GrantRequest{
		{Email: "zed@example.com", Account: "prod", Role: "DNS", For: 48 * time.Hour, Reason: "x"},
		{Email: "zed@example.com", Account: "nope", Role: "DNS", For: time.Hour, Reason: "x"},
		{Email: "zed@example.com", Account: "prod", Role: "DNS", For: time.Hour, Reason: " "},
		{Email: "zed@example.com", Account: "prod", Role: "DNSS", For: time.Hour, Reason: "x"},
		{Email: "zed@example.com", Account: "prod", Mapping: "no-such-group", For: time.Hour, Reason: "x"},
		// staging is granted policies: a role is its permission group
		// there, and one with none is refused like an unknown role.
		{Email: "zed@example.com", Account: "staging", Role: "DNSS", For: time.Hour, Reason: "x"},
		{Email: "gone@example.com", Account: "prod", Role: "DNS", For: time.Hour, Reason: "x"},
		{Email: "zed@example.com", Account: "prod", Role: "DNS", Mapping: "cf-deployers", For: time.Hour, Reason: "x"},
	} {
		if _, _, err := e.r.Grant(ctx, bad); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("Grant(%+v) = %v, want ErrInvalidGrant", bad, err)
		}
	}
	if n := len(e.fake.Writes()); n != 15 {
		t.Fatalf("rejected grants wrote to Cloudflare (%d writes)", n)
	}

	e.fake.ResetCounters()
	g, res, err := e.r.Grant(ctx, GrantRequest{Email: "zed@example.com", Account: "prod", Role: "DNS", For: time.Hour, Reason: "incident 42", Actor: ActorGrant})
	if err != nil || res.Aborted != nil {
		t.Fatal(err, res.Aborted)
	}
	if !strings.HasPrefix(g.ID, "g-") || !g.End.Equal(e.now().Add(time.Hour)) || g.AccountID != prodID {
		t.Errorf("grant %+v", g)
	}
	if roles, _ := e.memberRoles(prodID, "zed@example.com"); !slices.Equal(roles, []string{"DNS"}) {
		t.Errorf("zed roles %v", roles)
	}
	if n := e.fake.Calls(http.MethodGet, cftest.RouteMembers); n != 0 {
		t.Errorf("grant listed members %d times", n)
	}
	if w := e.fake.Writes(); len(w) != 1 {
		t.Errorf("grant made %d writes, want 1", len(w))
	}
	if a := e.audit(ActionGrant); len(a) != 1 || !a[0].Privileged || !strings.Contains(a[0].Reason, "incident 42") || !slices.Equal(a[0].After, []string{"DNS"}) {
		t.Errorf("grant audit %+v", a)
	}
	if add := e.audit(string(plan.AddMember)); add[len(add)-1].Actor != ActorGrant {
		t.Errorf("add_member actor %q", add[len(add)-1].Actor)
	}
	pend := e.r.Status().PendingExpiries
	if len(pend) != 1 || pend[0].Email != "zed@example.com" || pend[0].Role != "DNS" || !pend[0].At.Equal(g.End) || !strings.Contains(pend[0].Source, g.ID) {
		t.Errorf("pending %+v", pend)
	}

	e.clock.Advance(time.Minute)
	res, err = e.r.Revoke(ctx, g.ID, ActorRevoke)
	if err != nil || res.Aborted != nil {
		t.Fatal(err, res.Aborted)
	}
	if got := kinds(res.Applied); got != "expire_grant zed@example.com" {
		t.Errorf("revoke applied %s", got)
	}
	if _, ok := e.fake.Member(prodID, "zed@example.com"); ok {
		t.Error("zed still a member after revoke")
	}
	if a := e.audit(ActionRevoke); len(a) != 1 {
		t.Errorf("revoke audit %+v", a)
	}
	if _, err := e.r.Revoke(ctx, g.ID, ActorRevoke); !errors.Is(err, ErrInvalidGrant) {
		t.Errorf("second revoke: %v", err)
	}
	if _, err := e.r.Revoke(ctx, "g-000000000000", ActorRevoke); !errors.Is(err, ErrInvalidGrant) {
		t.Errorf("revoke of unknown grant: %v", err)
	}

	// A mapping grant on the policy account ends on its own.
	g, _, err = e.r.Grant(ctx, GrantRequest{Email: "zed@example.com", Account: "staging", Mapping: "cf-log-readers", For: time.Hour, Reason: "review"})
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := e.fake.Member(stagingID, "zed@example.com"); !ok || len(m.Policies) != 1 {
		t.Fatalf("staging member %+v %v", m, ok)
	}
	e.clock.Advance(time.Hour)
	if got := kinds(e.expiry().Applied); got != "expire_grant zed@example.com" {
		t.Errorf("expiry applied %s", got)
	}
	// Ended grants are kept a day, then dropped.
	if _, err := e.st.GetGrant(g.ID); err != nil {
		t.Errorf("ended grant dropped at once: %v", err)
	}
	e.clock.Advance(25 * time.Hour)
	e.mustApply(RunOptions{})
	if _, err := e.st.GetGrant(g.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("ended grant kept after a day: %v", err)
	}
}

func TestPlanOnlyWithoutToken(t *testing.T) {
	e := newEnv(t, withoutToken())
	ids := e.users(3, "user%d@example.com")
	e.group("cf-deployers", ids...)

	res, err := e.r.Plan(context.Background())
	if err != nil || res.Aborted != nil {
		t.Fatal(err, res.Aborted)
	}
	if !res.PlanOnly || len(res.Changes.Accounts) != 2 || len(res.Changes.Accounts[0].Changes) != 3 {
		t.Fatalf("plan %+v", res.Changes.Accounts)
	}
	var out bytes.Buffer
	if err := plan.RenderText(&out, res.Changes, res.Names); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "after:  "+wpa) {
		t.Errorf("names do not resolve to themselves:\n%s", out.String())
	}
	if raw, _ := e.st.Status(statusKey); raw != nil {
		t.Error("Plan recorded a run")
	}

	res = e.apply(RunOptions{})
	if res.Aborted != nil || len(res.Applied) != 0 || !res.Changes.HasChanges() {
		t.Errorf("plan-only apply: aborted %v applied %d", res.Aborted, len(res.Applied))
	}
	if n := e.fake.TotalCalls(); n != 0 {
		t.Errorf("no token, yet %d Cloudflare calls", n)
	}
	ok, reasons := e.r.Ready()
	if !ok || !strings.Contains(strings.Join(reasons, " "), "plan-only") {
		t.Errorf("ready %v %v", ok, reasons)
	}
	if metricValue(e.m.PlanOnly) != 1 {
		t.Error("plan_only gauge not set")
	}
}

func TestPlanOnlyModeReadsButNeverWrites(t *testing.T) {
	e := newEnv(t, withPlanOnly())
	ids := e.users(30, "user%d@example.com")
	e.group("cf-deployers", ids...)
	e.fake.AddMember(prodID, cftest.Member{Email: "hand@example.com", Roles: []string{e.roleID(prodID, "DNS")}})
	res := e.apply(RunOptions{})
	if res.Aborted != nil || !res.PlanOnly || len(res.Changes.Accounts[0].Changes) != 30 {
		t.Fatalf("aborted %v, plan %+v", res.Aborted, res.Changes.Accounts)
	}
	if w := e.fake.Writes(); len(w) != 0 {
		t.Errorf("plan-only wrote %+v", w)
	}
	if n := e.fake.Calls(http.MethodGet, cftest.RouteMembers); n != 2 {
		t.Errorf("plan-only with a token listed %d times, want once per account", n)
	}
}

func TestPlanChangesNothing(t *testing.T) {
	e := newEnv(t)
	ids := e.users(3, "user%d@example.com")
	e.group("cf-deployers", ids...)
	res, err := e.r.Plan(context.Background())
	if err != nil || res.Aborted != nil {
		t.Fatal(err, res.Aborted)
	}
	if !res.Changes.HasChanges() || len(res.Applied) != 0 || len(e.fake.Writes()) != 0 {
		t.Errorf("plan applied: %d applied, %d writes", len(res.Applied), len(e.fake.Writes()))
	}
	if at, _ := e.st.MemberCacheScannedAt(prodID); !at.IsZero() {
		t.Error("plan wrote the member cache")
	}
	if a := e.audit(""); len(a) != 0 {
		t.Errorf("plan wrote audit records %+v", a)
	}
}
