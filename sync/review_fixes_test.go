package sync

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
	"github.com/scimflare/scimflare/sync/plan"
)

// The operator reloads to plan-only and the daemon applies at once: the
// leaver must not be removed, and a reload back to enforce writes again.
func TestReloadToPlanOnlyStopsWrites(t *testing.T) {
	e := newEnv(t)
	ids := e.users(10, "user%d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	e.fake.ResetCounters()

	e.r.Reload(parseConfig(t, configYAML("  mode: plan-only")))
	e.deactivate(ids[0])
	res := e.mustApply(RunOptions{})
	if w := e.fake.Writes(); len(w) != 0 {
		t.Fatalf("plan-only after a reload wrote %+v", w)
	}
	if !res.PlanOnly || !e.r.Status().PlanOnly || metricValue(e.m.PlanOnly) != 1 {
		t.Errorf("plan-only not shown: result %v status %v metric %v", res.PlanOnly, e.r.Status().PlanOnly, metricValue(e.m.PlanOnly))
	}
	if e.targeted(ids[:1], nil, nil); len(e.fake.Writes()) != 0 {
		t.Fatalf("a targeted plan-only run wrote %+v", e.fake.Writes())
	}

	e.r.Reload(parseConfig(t, configYAML("")))
	if metricValue(e.m.PlanOnly) != 0 {
		t.Error("plan_only gauge still set after a reload to enforce")
	}
	res = e.mustApply(RunOptions{})
	if got := kinds(res.Applied); got != "remove_member user0@example.com" {
		t.Errorf("back in enforce: applied %q", got)
	}
}

// Without a token a reload to enforce cannot make the reconciler write.
func TestReloadToEnforceWithoutTokenStaysPlanOnly(t *testing.T) {
	e := newEnv(t, withoutToken())
	e.r.Reload(parseConfig(t, configYAML("  mode: enforce")))
	if !e.r.Status().PlanOnly || metricValue(e.m.PlanOnly) != 1 {
		t.Error("a reconciler without a token left plan-only")
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

// A scheduled full run that aborts keeps the touches it took: the leaver
// is retried by a targeted run.
func TestAbortedScheduledRunRequeuesTouches(t *testing.T) {
	e := newEnv(t, withRealTime())
	ids := e.users(3, "user%d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	e.deactivate(ids[0])
	e.r.Touch(ids[:1], nil, nil)
	e.fake.Inject(cftest.Fault{Method: http.MethodGet, Route: cftest.RouteMembers, Status: http.StatusForbidden})

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, 10*time.Second, "the start-up run did not abort", func() bool {
		return metricValue(e.m.ReconcileRuns.WithLabelValues(ActorSchedule, OutcomeAborted)) == 1
	})
	// The run records its outcome after the requeue.
	waitFor(t, time.Second, "the aborted run dropped the pending touches", func() bool {
		return !e.r.debounceDue(time.Millisecond).IsZero()
	})
	if _, ok := e.fake.Member(prodID, "user0@example.com"); !ok {
		t.Fatal("an aborted run removed the member")
	}
}

// A revoke whose run aborts leaves the email pending for a retry.
func TestAbortedRevokeIsRetried(t *testing.T) {
	e := newEnv(t)
	ids := e.users(10, "user%d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	e.user("zed@example.com")
	g, _, err := e.r.Grant(context.Background(), GrantRequest{Email: "zed@example.com", Account: "prod", Role: "DNS", For: 20 * time.Hour, Reason: "incident"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := e.fake.Member(prodID, "zed@example.com"); !ok {
		t.Fatal("grant not applied")
	}
	// Cached names expire: the revoke's run reads them, and that fails.
	e.clock.Advance(3 * time.Hour)
	e.fake.Inject(cftest.Fault{Method: http.MethodGet, Route: cftest.RouteRoles, Status: http.StatusForbidden, Times: -1})
	res, err := e.r.Revoke(context.Background(), g.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if res.Aborted == nil {
		t.Fatalf("the revoke's run did not abort: applied %s", kinds(res.Applied))
	}
	if e.r.debounceDue(time.Millisecond).IsZero() {
		t.Fatal("an aborted revoke left nothing to retry")
	}
	e.fake.ClearFaults()
	t2 := e.r.takePending()
	res, err = e.r.execute(context.Background(), runRequest{kind: targetedRun, actor: ActorIdPPush, touched: t2})
	if err != nil || res.Aborted != nil {
		t.Fatalf("retry: %v %v", err, res.Aborted)
	}
	if _, ok := e.fake.Member(prodID, "zed@example.com"); ok || !strings.Contains(kinds(res.Applied), "zed@example.com") {
		t.Errorf("the retry did not remove the revoked access: %s", kinds(res.Applied))
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

func withYAML(y string) envOption { return func(o *envOpts) { o.yaml = y } }
