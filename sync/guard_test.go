package sync

import (
	"strings"
	"testing"
	"time"
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
