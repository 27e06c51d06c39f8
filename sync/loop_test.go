package sync

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

func waitFor(t testing.TB, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("after %s: %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// TestRunLoop drives Run in real time: the start-up run, debounced
// targeted runs from Touch (user ids, a group named as an untyped member,
// the email of a deleted user), and the expiry timer of a 2-second ttl.
func TestRunLoop(t *testing.T) {
	e := newEnv(t, withRealTime())
	// Long enough that the touches below land in one window.
	e.r.Reload(parseConfig(t, strings.Replace(configYAML(""), "debounce: 50ms", "debounce: 300ms", 1)))
	ids := e.users(12, "user%02d@example.com")
	deployers := e.group("cf-deployers", ids...)

	ctx := e.runLoop(t)
	waitFor(t, 10*time.Second, "start-up run did not create the members", func() bool { return len(e.fake.Members(prodID)) == 12 })
	if err := e.r.Run(ctx); err == nil {
		t.Error("a second Run started")
	}
	waitFor(t, 5*time.Second, "status does not show the start-up run and the next one", func() bool {
		st := e.r.Status()
		return !st.NextRun.IsZero() && st.LastTrigger == ActorSchedule && st.LastOutcome == OutcomeSuccess
	})
	lists := e.fake.Calls(http.MethodGet, cftest.RouteMembers)

	e.deactivate(ids[1])
	e.r.Touch([]string{ids[1]}, nil, nil)
	if _, err := e.st.DeleteUser(ids[2]); err != nil {
		t.Fatal(err)
	}
	e.r.Touch(nil, nil, []string{"user02@example.com"})
	newcomer := e.user("new@example.com")
	if _, err := e.st.UpdateGroup(deployers, e.now(), 0, func(g store.GroupTx) error {
		_, err := g.AddMember(store.MemberRef{ID: newcomer})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	e.r.Touch([]string{deployers}, nil, nil) // an untyped member reference naming a group
	waitFor(t, 5*time.Second, "touched users not reconciled", func() bool {
		_, one := e.fake.Member(prodID, "user01@example.com")
		_, two := e.fake.Member(prodID, "user02@example.com")
		_, added := e.fake.Member(prodID, "new@example.com")
		return !one && !two && added
	})
	if n := e.fake.Calls(http.MethodGet, cftest.RouteMembers); n != lists {
		t.Errorf("debounced runs listed members %d times", n-lists)
	}
	waitFor(t, time.Second, "no debounced run recorded", func() bool {
		return metricValue(e.m.ReconcileRuns.WithLabelValues(ActorIdPPush, OutcomeSuccess)) >= 1
	})
	if n := metricValue(e.m.ReconcileRuns.WithLabelValues(ActorIdPPush, OutcomeSuccess)); n != 1 {
		t.Errorf("%v debounced runs for three touches within the debounce, want 1", n)
	}

	// A 2-second ttl: the role goes about 2 s after the join, by the
	// expiry timer, while the user stays in the group.
	joined := time.Now()
	oncall := e.group("cf-oncall", ids[0])
	e.r.Touch(nil, []string{oncall}, nil)
	waitFor(t, 5*time.Second, "on-call role not granted", func() bool {
		roles, _ := e.memberRoles(prodID, "user00@example.com")
		return slices.Equal(roles, []string{"Administrator", wpa})
	})
	waitFor(t, 6*time.Second, "on-call role not removed at expiry", func() bool {
		roles, _ := e.memberRoles(prodID, "user00@example.com")
		return slices.Equal(roles, []string{wpa})
	})
	took := time.Since(joined)
	if took < 2*time.Second || took > 4*time.Second {
		t.Errorf("ttl 2s ended after %s", took)
	}
	t.Logf("2s ttl removed %s after the join", took.Round(time.Millisecond))
	if in, _ := e.st.IsMember(oncall, ids[0]); !in {
		t.Error("user left the group")
	}
	// The change lands before the run records its outcome.
	waitFor(t, time.Second, "the removal was not an expiry run", func() bool {
		return metricValue(e.m.ReconcileRuns.WithLabelValues(ActorExpiry, OutcomeSuccess)) >= 1
	})
}

func TestReadyNeedsARecentSuccess(t *testing.T) {
	e := newEnv(t)
	if ok, reasons := e.r.Ready(); ok || !strings.Contains(strings.Join(reasons, ""), "no reconcile has succeeded yet") {
		t.Errorf("fresh: %v %v", ok, reasons)
	}
	e.mustApply(RunOptions{})
	e.clock.Advance(3 * time.Hour) // schedule @every 1h
	if ok, _ := e.r.Ready(); !ok {
		t.Error("unready within 3 intervals")
	}
	e.clock.Advance(time.Second)
	if ok, reasons := e.r.Ready(); ok || !strings.Contains(strings.Join(reasons, ""), "more than 3 schedule intervals (3h0m0s)") {
		t.Errorf("stale: %v %v", ok, reasons)
	}
}

func TestScheduleInterval(t *testing.T) {
	now := time.Date(2026, 1, 5, 9, 7, 0, 0, time.UTC)
	for spec, want := range map[string]time.Duration{
		"@every 5m":    5 * time.Minute,
		"0 * * * *":    time.Hour,
		"*/10 * * * *": 10 * time.Minute,
		"@daily":       24 * time.Hour,
	} {
		if got := scheduleInterval(spec, now); got != want {
			t.Errorf("%s: %s, want %s", spec, got, want)
		}
	}
}

func TestTouchCollectsAndExpandsScope(t *testing.T) {
	e := newEnv(t)
	a, b, c := e.user("a@example.com"), e.user("B@example.com"), e.user("c@example.com")
	twin := e.user("b-twin")
	if _, err := e.st.UpdateUser(twin, e.now(), 0, func(u *store.User) error { u.Email = "b@EXAMPLE.com"; return nil }); err != nil {
		t.Fatal(err)
	}
	inner := e.group("inner", c)
	outer := e.group("outer", a, inner)
	tc := newTouched()
	tc.add([]string{b}, []string{outer}, []string{"Gone@example.com"})
	var users, emails map[string]bool
	err := e.st.View(func(rd store.Reader) error {
		var err error
		users, emails, err = tc.scope(rd)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	wantUsers := map[string]bool{a: true, b: true, c: true, twin: true}
	wantEmails := map[string]bool{"a@example.com": true, "b@example.com": true, "c@example.com": true, "gone@example.com": true}
	if !mapsEqual(users, wantUsers) || !mapsEqual(emails, wantEmails) {
		t.Errorf("users %v emails %v", users, emails)
	}
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// While runs are starved or failing, SCIM keeps touching users; the
// pending set must not keep all of them. Past maxTouched it collapses into
// one full run, which the loop then makes.
func TestPendingTouchesAreBounded(t *testing.T) {
	e := newEnv(t, withRealTime())
	batch := func(from, n int) []string {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = fmt.Sprintf("user-%d", from+i)
		}
		return ids
	}
	// A failed targeted run hands its touches back each time, as the loop
	// does while Cloudflare refuses it.
	for i := 0; i < maxTouched; i += 1000 {
		e.r.Touch(batch(i, 1000), nil, []string{fmt.Sprintf("gone-%d@example.com", i)})
		e.r.requeue(e.r.takePending())
	}
	e.r.mu.Lock()
	all, size := e.r.pending.all, e.r.pending.size()
	e.r.mu.Unlock()
	if !all || size != 0 {
		t.Fatalf("after %d touched ids the pending set holds %d entries (collapsed %v), want it collapsed and empty", maxTouched+maxTouched/1000, size, all)
	}
	e.r.Touch(batch(maxTouched, 5000), []string{"g"}, nil)
	e.r.requeue(e.r.takePending())
	e.r.mu.Lock()
	all, size = e.r.pending.all, e.r.pending.size()
	e.r.mu.Unlock()
	if !all || size != 0 {
		t.Fatalf("touches after the collapse grew the set to %d (collapsed %v)", size, all)
	}

	// The loop answers the collapsed set with a full run: it lists Cloudflare.
	e.r.mu.Lock()
	e.r.holdUntil = time.Time{}
	e.r.mu.Unlock()
	lists := e.fake.Calls(http.MethodGet, cftest.RouteMembers)
	e.runLoop(t)
	// The start-up run takes the pending set itself; touch again past the
	// bound so a debounced run must handle it.
	waitFor(t, 10*time.Second, "the start-up run did not end", func() bool { return e.r.Status().LastTrigger == ActorSchedule })
	e.r.Touch(batch(0, maxTouched+1), nil, nil)
	waitFor(t, 10*time.Second, "the collapsed touches did not become a full run", func() bool {
		return e.r.Status().LastTrigger == ActorIdPPush && e.fake.Calls(http.MethodGet, cftest.RouteMembers) >= lists+2*2
	})
	if !e.r.debounceDue(time.Second).IsZero() {
		t.Error("touches still pending after the full run")
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

	e.runLoop(t)
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

// TestDebounceFollowsTheReconcilersClock: the loop has one clock. With
// sync.debounce at ten minutes, a touch runs once the reconciler's clock
// has moved ten minutes on, not ten minutes of wall time later.
func TestDebounceFollowsTheReconcilersClock(t *testing.T) {
	e := newEnv(t)
	e.r.Reload(parseConfig(t, strings.Replace(configYAML(""), "debounce: 50ms", "debounce: 10m", 1)))
	ids := e.users(2, "user%02d@example.com")
	e.group("cf-deployers", ids...)

	e.runLoop(t)
	waitFor(t, 10*time.Second, "start-up run did not create the members", func() bool { return len(e.fake.Members(prodID)) == 2 })

	e.deactivate(ids[1])
	e.r.Touch([]string{ids[1]}, nil, nil)
	if due := e.r.debounceDue(10 * time.Minute); !due.Equal(e.now().Add(10 * time.Minute)) {
		t.Fatalf("the touch is due at %s, want the reconciler's now + 10m (%s)", due, e.now().Add(10*time.Minute))
	}
	e.clock.Advance(10 * time.Minute)
	e.r.poke()
	waitFor(t, 5*time.Second, "the targeted run once the reconciler's clock passed the debounce", func() bool {
		_, ok := e.fake.Member(prodID, "user01@example.com")
		return !ok
	})
	// The change lands before the run records its outcome.
	waitFor(t, 5*time.Second, "the debounced run recorded", func() bool {
		return metricValue(e.m.ReconcileRuns.WithLabelValues(ActorIdPPush, OutcomeSuccess)) >= 1
	})
	if n := metricValue(e.m.ReconcileRuns.WithLabelValues(ActorIdPPush, OutcomeSuccess)); n != 1 {
		t.Errorf("%v debounced runs, want 1", n)
	}
}
