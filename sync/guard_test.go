package sync

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
	"github.com/scimflare/scimflare/sync/plan"
)

func withGuards(lines string) envOption {
	return func(o *envOpts) { o.yaml = configYAML("  guards:\n" + lines) }
}

// A mass removal trickled in one leaver per run never trips the per-run
// limits; the rolling window catches it, withholds the rest visibly (who,
// since when) and lets them through on apply --force, which resets the
// count.
func TestTrickledRemovalsTripTheWindowGuard(t *testing.T) {
	e := newEnv(t, withGuards("    max_removals: 25\n    max_removal_percent: 20\n    min_removals: 3\n    window: 1h\n    max_removals_per_window: 5\n"))
	ids := e.users(20, "user%02d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})

	for i := range 5 {
		e.deactivate(ids[i])
		e.clock.Advance(time.Minute)
		if res := e.targeted([]string{ids[i]}, nil, nil); len(res.Applied) != 1 || len(res.Changes.Withheld) != 0 {
			t.Fatalf("leaver %d: applied %s, withheld %d; the first five fit the window", i, kinds(res.Applied), len(res.Changes.Withheld))
		}
	}
	e.deactivate(ids[5])
	e.clock.Advance(time.Minute)
	res := e.targeted([]string{ids[5]}, nil, nil)
	if len(res.Applied) != 0 || len(res.Changes.Withheld) != 1 || !strings.Contains(res.Changes.Withheld[0].Why, "max_removals_per_window 5") {
		t.Fatalf("the sixth removal in the hour: applied %s, withheld %+v", kinds(res.Applied), res.Changes.Withheld)
	}
	if _, ok := e.fake.Member(prodID, "user05@example.com"); !ok {
		t.Fatal("the withheld removal happened")
	}
	st := e.r.Status()
	if len(st.Withheld) != 1 || st.Withheld[0].Email != "user05@example.com" || st.Withheld[0].Account != "prod" || st.Withheld[0].Since.IsZero() {
		t.Fatalf("status withheld = %+v", st.Withheld)
	}
	since := st.Withheld[0].Since
	if ok, why := e.r.Ready(); ok || !strings.Contains(strings.Join(why, "; "), "1 removal(s) withheld") {
		t.Errorf("ready = %v %q, want not ready naming the withheld removal", ok, why)
	}
	if n := metricValue(e.m.RemovalsWithheld); n != 1 {
		t.Errorf("scimflare_removals_withheld = %v", n)
	}
	// Still withheld later, since the same moment.
	e.clock.Advance(time.Minute)
	e.mustApply(RunOptions{})
	if st := e.r.Status(); len(st.Withheld) != 1 || !st.Withheld[0].Since.Equal(since) {
		t.Fatalf("later: withheld %+v, want the same since %s", st.Withheld, since)
	}

	e.mustApply(RunOptions{Force: true})
	if _, ok := e.fake.Member(prodID, "user05@example.com"); ok {
		t.Fatal("apply --force did not remove the withheld leaver")
	}
	if st := e.r.Status(); len(st.Withheld) != 0 || len(st.Tripped) != 0 {
		t.Fatalf("after force: withheld %+v tripped %v", st.Withheld, st.Tripped)
	}
	// The count started again at the force: five more fit.
	for i := 6; i < 11; i++ {
		e.deactivate(ids[i])
		e.clock.Advance(time.Minute)
		if res := e.targeted([]string{ids[i]}, nil, nil); len(res.Applied) != 1 {
			t.Fatalf("after force, leaver %d: applied %s withheld %+v", i, kinds(res.Applied), res.Changes.Withheld)
		}
	}
}

// The window rolls: removals older than the window no longer count.
func TestWindowGuardForgetsOldRemovals(t *testing.T) {
	e := newEnv(t, withGuards("    window: 1h\n    max_removals_per_window: 2\n"))
	ids := e.users(5, "user%02d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	for i := range 2 {
		e.deactivate(ids[i])
		e.targeted([]string{ids[i]}, nil, nil)
	}
	e.clock.Advance(61 * time.Minute)
	e.deactivate(ids[2])
	if res := e.targeted([]string{ids[2]}, nil, nil); len(res.Applied) != 1 {
		t.Fatalf("a removal after the window: applied %s withheld %+v", kinds(res.Applied), res.Changes.Withheld)
	}
}

// In a small account, two leavers in one run are over 20% of the managed
// grants; below min_removals the percent rule does not apply and both lose
// their access at once.
func TestTwoLeaversInASmallAccountAreRemoved(t *testing.T) {
	e := newEnv(t) // SPEC defaults: max_removal_percent 20, min_removals 3
	ids := e.users(3, "user%02d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	e.deactivate(ids[0], ids[1])
	res := e.mustApply(RunOptions{})
	if len(res.Changes.Withheld) != 0 || len(res.Applied) != 2 {
		t.Fatalf("applied %s withheld %+v", kinds(res.Applied), res.Changes.Withheld)
	}
	for _, email := range []string{"user00@example.com", "user01@example.com"} {
		if _, ok := e.fake.Member(prodID, email); ok {
			t.Errorf("%s kept access", email)
		}
	}
}

// More than min_removals and more than the percent: still tripped.
func TestPercentGuardAboveMinRemovals(t *testing.T) {
	e := newEnv(t)
	ids := e.users(10, "user%02d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	e.deactivate(ids[:4]...)
	res := e.apply(RunOptions{})
	if len(res.Applied) != 0 || len(res.Changes.Withheld) != 4 || len(res.Changes.Tripped) != 1 {
		t.Fatalf("4 of 10 removed in one run: applied %s withheld %d tripped %v", kinds(res.Applied), len(res.Changes.Withheld), res.Changes.Tripped)
	}
}

// A latched guard holds back every removal in its account, in targeted
// runs too, until apply --force.
func TestLatchedGuardWithholdsLaterRemovalsUntilForce(t *testing.T) {
	e := newEnv(t)
	ids := e.users(100, "user%03d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	e.deactivate(ids[:50]...)
	res := e.targeted(ids[:50], nil, nil)
	if !slices.Equal(res.Changes.Tripped, []string{prodID}) {
		t.Fatalf("guard did not trip: %v", res.Changes.Tripped)
	}
	e.fake.ResetCounters()

	// One small removal: alone it is under every limit.
	e.deactivate(ids[99])
	res = e.targeted(ids[99:], nil, nil)
	if w := e.writes(""); len(w) != 0 {
		t.Fatalf("a latched account let %d writes through", len(w))
	}
	if len(res.Changes.Withheld) != 1 || res.Changes.Withheld[0].Why != plan.WhyLatched {
		t.Errorf("withheld %+v", res.Changes.Withheld)
	}
	if n := len(e.audit(ActionGuardTripped)); n != 1 {
		t.Errorf("%d guard_tripped records, want 1 (the latch is not a new trip)", n)
	}
	if w := e.audit(ActionRemovalWithheld); len(w) != 1 || w[0].Email != "user099@example.com" {
		t.Errorf("removal_withheld audit %+v", w)
	}
	if got := e.r.Status().Tripped; !slices.Equal(got, []string{"prod"}) {
		t.Errorf("status tripped %v", got)
	}

	e.mustApply(RunOptions{Force: true})
	if n := len(e.writes(http.MethodDelete)); n != 51 {
		t.Errorf("apply --force deleted %d, want 51", n)
	}
	// Cleared: a later small removal goes through.
	e.fake.ResetCounters()
	e.deactivate(ids[98])
	res = e.targeted(ids[98:99], nil, nil)
	if got := kinds(res.Applied); got != "remove_member user098@example.com" {
		t.Errorf("after the force: applied %q, withheld %+v", got, res.Changes.Withheld)
	}
}

// The member cache still counts a second Super Administrator someone
// removed by hand: a targeted run must not remove the real last one.
func TestTargetedRunNeverRemovesTheRealLastSuperAdmin(t *testing.T) {
	yaml := configYAML("") + `  - group: cf-admins
    account: prod
    roles: [` + mapping.SuperAdministrator + `]
`
	e := newEnv(t, withYAML(yaml))
	ids := e.users(10, "user%d@example.com")
	e.group("cf-deployers", ids...)
	admin := e.user("admin@example.com")
	e.group("cf-admins", admin)
	e.fake.AddMember(prodID, cftest.Member{Email: "hand@example.com", Status: "accepted", Roles: []string{e.roleID(prodID, mapping.SuperAdministrator)}})
	e.mustApply(RunOptions{})
	e.fake.SetMemberStatus(prodID, "admin@example.com", "accepted")
	e.mustApply(RunOptions{}) // the cache now holds two accepted holders
	e.fake.RemoveMember(prodID, "hand@example.com")
	e.fake.ResetCounters()

	e.deactivate(admin)
	res := e.targeted([]string{admin}, nil, nil)
	if _, ok := e.fake.Member(prodID, "admin@example.com"); !ok {
		t.Fatalf("the last Super Administrator was removed: applied %s", kinds(res.Applied))
	}
	found := false
	for _, w := range res.Changes.Withheld {
		found = found || (w.Change.Email == "admin@example.com" && w.Why == plan.WhyLastSuperAdmin)
	}
	if !found {
		t.Errorf("removal not withheld as the last Super Administrator: %+v", res.Changes.Withheld)
	}
	if n := e.fake.Calls(http.MethodGet, cftest.RouteMembers); n != 1 {
		t.Errorf("listed members %d times, want 1 (one refresh)", n)
	}
}
