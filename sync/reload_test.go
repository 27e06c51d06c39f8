package sync

import (
	"testing"
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
