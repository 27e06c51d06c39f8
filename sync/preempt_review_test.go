package sync

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

// slowEnv is an env whose Cloudflare client lists prod slowly (a big
// account: handMade members scimflare leaves alone), with three managed
// developers in place; it returns the developers' ids and how many list
// pages one full run requests.
func slowEnv(t *testing.T, handMade int) (*env, *slowListing, []string, int) {
	t.Helper()
	e := newEnv(t, withRealTime())
	slow := &slowListing{next: e.fake.HTTPClient().Transport}
	e.throughTransport(slow, cloudflare.Config{})
	e.handMade(handMade)
	ids := e.users(3, "dev%d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	if _, ok := e.fake.Member(prodID, "dev0@example.com"); !ok {
		t.Fatal("setup: dev0 is not a member")
	}
	return e, slow, ids, (handMade+3)/50 + 1
}

// firstDelete is how many list pages had been requested when the first
// DELETE went out.
func firstDelete(t *testing.T, slow *slowListing) int {
	t.Helper()
	slow.mu.Lock()
	defer slow.mu.Unlock()
	if len(slow.after) == 0 {
		t.Fatal("no DELETE seen")
	}
	return slow.after[0]
}

// A leaver touched just before the scheduled full run starts (inside the
// debounce, or held after a failed targeted run) is taken by that full run:
// nothing is pending, so nothing makes the run give way, and the removal
// waits for the whole listing — the case the preemption exists for, one
// debounce earlier.
func TestLeaverTouchedJustBeforeTheFullRunIsNotHeldBehindItsListing(t *testing.T) {
	e, slow, ids, pages := slowEnv(t, 40*50)
	e.deactivate(ids[0])
	e.r.Touch([]string{ids[0]}, nil, nil) // due a debounce (50ms) from now
	slow.delay.Store(int64(40 * time.Millisecond))
	e.runLoop(t) // its start-up scheduled full run takes the touch
	waitFor(t, 20*time.Second, "the leaver was not removed", func() bool {
		_, ok := e.fake.Member(prodID, "dev0@example.com")
		return !ok
	})
	if after := firstDelete(t, slow); after >= pages {
		t.Fatalf("the leaver's removal went after %d list pages: it waited for the full run's whole listing (%d pages)", after, pages)
	}
}

// A full run that took an "all" touch (TouchAll: another replica's
// notifications were lost, or more than maxTouched pending) gives way to a
// leaver's touch; the "all" it puts back must not swallow the leaver's
// touch into a full run that cannot give way, which makes the leaver wait
// for a whole listing after all and lists everything twice.
func TestLeaverIsNotHeldBehindAFullRunAfterAnAllTouchIsPutBack(t *testing.T) {
	e, slow, ids, pages := slowEnv(t, 40*50)
	e.r.TouchAll()
	slow.delay.Store(int64(40 * time.Millisecond))
	e.runLoop(t) // its start-up scheduled full run takes the "all" touch
	waitFor(t, 10*time.Second, "the scheduled full run did not start listing", func() bool { return slow.listed() >= 3 })
	e.deactivate(ids[0])
	e.r.Touch([]string{ids[0]}, nil, nil)
	waitFor(t, 20*time.Second, "the leaver was not removed", func() bool {
		_, ok := e.fake.Member(prodID, "dev0@example.com")
		return !ok
	})
	after := firstDelete(t, slow)
	waitFor(t, 20*time.Second, "the scheduled full run did not run again to its end", func() bool {
		return metricValue(e.m.ReconcileRuns.WithLabelValues(ActorSchedule, OutcomeSuccess)) >= 1
	})
	if after >= pages {
		t.Errorf("the leaver's removal went after %d list pages: a full run that cannot give way ran before it (one listing: %d pages)", after, pages)
	}
	// One partial listing (the run that gave way) and one whole one.
	if listed := slow.listed(); listed >= 2*pages {
		t.Errorf("%d list pages for one scheduled full run that gave way once, want fewer than %d: everything was listed twice", listed, 2*pages)
	}
}

// The preemption watch listens on the loop's wake-up channel while a full
// run reads. It must never swallow a wake-up the loop needs: once the
// run's reads end, the run can end and the loop wait on that channel with
// deadlines computed before a Touch; a wake-up the finished watch took
// leaves that Touch waiting for the next scheduled run.
func TestPreemptionWatchDoesNotSwallowTheLoopsWakeUp(t *testing.T) {
	e := newEnv(t, withRealTime())
	for i := range 20 {
		e.r.mu.Lock() // the watch's first look waits for this
		_, stop := e.r.yieldTo(context.Background(), time.Hour, time.Time{})
		e.r.poke() // a Touch as the run's reads end
		stop()
		e.r.mu.Unlock()
		// The watch ends now (it has nothing to wait for); the wake-up must
		// still be there for the loop.
		deadline := time.Now().Add(50 * time.Millisecond)
		for len(e.r.kick) == 1 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if len(e.r.kick) == 0 {
			t.Fatalf("attempt %d: the watch of a run whose reads had ended took the loop's wake-up", i+1)
		}
		<-e.r.kick
	}
}

// slowWrites delays every write, as a targeted run over many people does
// within the request budget.
type slowWrites struct {
	next  http.RoundTripper
	delay time.Duration
}

func (s *slowWrites) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet {
		time.Sleep(s.delay)
	}
	return s.next.RoundTrip(req)
}

// A full run that gave way starts again right after the urgent run it gave
// way to — not after every targeted run that falls due meanwhile. When SCIM
// changes come faster than targeted runs apply them (a reorg, an IdP's
// first push: each run takes longer than the debounce cap, so the next one
// is due when it ends), the owed full run otherwise waits for the stream
// to stop: maxPreemptions bounds nothing, and drift and whatever SCIM never
// said go unrepaired. (Before preemption, the schedule went first.)
func TestOwedFullRunGoesRightAfterTheUrgentRun(t *testing.T) {
	e := newEnv(t, withRealTime())
	slow := &slowListing{next: &slowWrites{next: e.fake.HTTPClient().Transport, delay: 200 * time.Millisecond}}
	e.throughTransport(slow, cloudflare.Config{})
	e.handMade(20 * 50)
	ids := e.users(500, "dev%03d@example.com")
	e.group("cf-deployers", ids...)
	e.deactivate(ids...)
	e.mustApply(RunOptions{})
	slow.delay.Store(int64(30 * time.Millisecond)) // ≈ 0.6 s a listing

	// A developer joins every 20ms: every targeted run invites (200ms
	// each, past the debounce cap of 6 × 50ms).
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, id := range ids {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if _, err := e.st.UpdateUser(id, e.now(), 0, func(u *store.User) error { u.Active = true; return nil }); err != nil {
				t.Error(err)
				return
			}
			e.r.Touch([]string{id}, nil, nil)
		}
	}()
	e.runLoop(t)
	// The first targeted run invites what joined before the full run gave
	// way (≈ 15 people, 3s); the full run must start again after it (and
	// here gives way again at once, the next touches being due).
	ok := false
	limit := time.Now().Add(15 * time.Second)
	for time.Now().Before(limit) {
		if metricValue(e.m.ReconcileRuns.WithLabelValues(ActorSchedule, OutcomePreempted))+
			metricValue(e.m.ReconcileRuns.WithLabelValues(ActorSchedule, OutcomeSuccess)) >= 2 {
			ok = true
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	<-done
	if !ok {
		t.Fatalf("the full run that gave way did not start again in 15s of steady SCIM changes: %v preempted, %v targeted runs went first",
			metricValue(e.m.ReconcileRuns.WithLabelValues(ActorSchedule, OutcomePreempted)),
			metricValue(e.m.ReconcileRuns.WithLabelValues(ActorIdPPush, OutcomeSuccess))+metricValue(e.m.ReconcileRuns.WithLabelValues(ActorIdPPush, OutcomeFailed)))
	}
}

// preemptAt ends a full run's reads the moment it requests a listing of
// one of staging's user groups' members: an expiry falls due then, and the
// request waits until the run's read context gives way.
type preemptAt struct {
	next http.RoundTripper
	r    func() *Reconciler
	arm  atomic.Bool
}

func (p *preemptAt) RoundTrip(req *http.Request) (*http.Response, error) {
	if p.arm.Load() && req.Method == http.MethodGet && strings.Contains(req.URL.Path, stagingID) &&
		strings.Contains(req.URL.Path, "user_groups/") && strings.HasSuffix(req.URL.Path, "/members") {
		p.arm.Store(false)
		if err := expireNowAndHold(req, p.r()); err != nil {
			return nil, err
		}
	}
	return p.next.RoundTrip(req)
}

// A full run that gave way recorded nothing of its reads, user groups'
// listings included: the copy of the owned groups that tells a member
// added by hand (drift, audited) stays what the last complete run left.
// Else the run after it compares its listing with the one that gave way,
// and a member someone put in an owned group by hand is never reported.
func TestPreemptedRunKeepsTheUserGroupsCopy(t *testing.T) {
	y := `
sync:
  schedule: "@every 1h"
  debounce: 50ms
  max_grant_duration: 24h
accounts:
  - {name: prod, id: ` + prodID + `, environment: production}
  - {name: staging, id: ` + stagingID + `, environment: staging}
mappings:
  - group: cf-deployers
    account: prod
    roles: [Workers Platform Admin]
  - group: cf-deployers
    account: staging
    roles: [Workers Platform Admin]
`
	e := newEnv(t, withYAML(y), withRealTime())
	e.cfg.Accounts[0].Model = mapping.ModelUserGroups
	e.cfg.Accounts[1].Model = mapping.ModelUserGroups
	hook := &preemptAt{next: e.fake.HTTPClient().Transport, r: func() *Reconciler { return e.r }}
	e.throughTransport(hook, cloudflare.Config{})
	ann := e.user("ann@example.com")
	e.group("cf-deployers", ann)
	e.mustApply(RunOptions{Actor: ActorSchedule})

	// Someone puts mallory in scimflare's group on prod by hand.
	e.fake.AddMember(prodID, cftest.Member{Email: "mallory@example.com"})
	g, ok := e.fake.UserGroup(prodID, "scimflare-cf-deployers")
	if !ok {
		t.Fatalf("setup: no owned group on prod: %+v", e.fake.UserGroups(prodID))
	}
	e.fake.SetUserGroupMembership(prodID, g.ID, "mallory@example.com", true)

	// A scheduled full run lists prod's groups, then gives way while it
	// lists staging's.
	hook.arm.Store(true)
	res, err := e.r.execute(context.Background(), runRequest{kind: fullRun, actor: ActorSchedule, preemptible: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Preempted {
		t.Fatalf("setup: the run did not give way: aborted %v", res.Aborted)
	}
	e.r.mu.Lock()
	e.r.nextExpiry = time.Time{}
	e.r.mu.Unlock()

	res = e.mustApply(RunOptions{Actor: ActorSchedule})
	if len(res.Changes.Drift) != 1 || res.Changes.Drift[0].Email != "mallory@example.com" {
		t.Errorf("drift = %+v, want mallory in prod's owned group", res.Changes.Drift)
	}
	if len(e.audit(ActionDrift)) != 1 {
		t.Errorf("mallory's hand-made membership was never audited as drift")
	}
	if got := e.access("mallory@example.com"); got != nil {
		t.Errorf("hand-added mallory still holds %v", got)
	}
}

// onPages acts on prod's member listing: at its first page it asks for a
// full run (TouchAll: notifications were missed), at its third an expiry
// falls due and the page waits until the run's reads give way.
type onPages struct {
	next  http.RoundTripper
	r     func() *Reconciler
	arm   atomic.Bool
	pages atomic.Int64 // prod list pages requested since armed
}

func (p *onPages) RoundTrip(req *http.Request) (*http.Response, error) {
	if p.arm.Load() && req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/accounts/"+prodID+"/members") {
		switch p.pages.Add(1) {
		case 1:
			p.r().TouchAll()
		case 3:
			if err := expireNowAndHold(req, p.r()); err != nil {
				return nil, err
			}
		}
		time.Sleep(40 * time.Millisecond)
	}
	return p.next.RoundTrip(req)
}

// A full run that gave way is owed, and covers everything: "all" touches
// that came meanwhile wait for it, not for a full run of their own that
// cannot give way — the owed one would list every account again right
// after it.
func TestOwedFullRunCoversAnAllTouch(t *testing.T) {
	e := newEnv(t, withRealTime())
	hook := &onPages{next: e.fake.HTTPClient().Transport, r: func() *Reconciler { return e.r }}
	e.throughTransport(hook, cloudflare.Config{})
	e.handMade(20 * 50)
	ids := e.users(2, "dev%d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})

	hook.arm.Store(true)
	e.runLoop(t)
	waitFor(t, 20*time.Second, "the scheduled full run did not run again to its end", func() bool {
		return metricValue(e.m.ReconcileRuns.WithLabelValues(ActorSchedule, OutcomeSuccess)) >= 1
	})
	time.Sleep(500 * time.Millisecond) // a full run the "all" touch would have after it
	if n := metricValue(e.m.ReconcileRuns.WithLabelValues(ActorSchedule, OutcomePreempted)); n != 1 {
		t.Fatalf("setup: the full run gave way %v times, want 1", n)
	}
	pages := int64(20*50+2)/50 + 1
	if listed := hook.pages.Load(); listed >= 3+2*pages {
		t.Errorf("prod was listed in %d pages: the run that gave way (3), then twice in full (%d each)", listed, pages)
	}
	if n := metricValue(e.m.ReconcileRuns.WithLabelValues(ActorIdPPush, OutcomeSuccess)); n != 0 {
		t.Errorf("%v full runs for the \"all\" touch besides the owed one", n)
	}
}

// A leaver who holds Super Administrator is removed by a targeted run that
// lists the account first (the cache may count a holder someone removed
// by hand). That listing is the leaver's removal, not a full run's read:
// it may use the budget's reserve, as the DELETE after it does, and must
// not wait for the window a full run's listings filled to the reserve.
func TestSuperAdminLeaversListingUsesTheReserve(t *testing.T) {
	e := newEnv(t, withYAML(`
sync:
  schedule: "@every 1h"
accounts:
  - {name: prod, id: `+prodID+`, environment: production, grant_shape: roles}
mappings:
  - group: cf-owners
    account: prod
    roles: [Super Administrator - All Privileges]
`))
	e.throughTransport(e.fake.HTTPClient().Transport, cloudflare.Config{Budget: 100})
	bob := e.fake.AddMember(prodID, cftest.Member{Email: "bob@example.com", Roles: []string{e.roleID(prodID, mapping.SuperAdministrator)}})
	alice := e.user("alice@example.com")
	e.group("cf-owners", alice)
	e.mustApply(RunOptions{Actor: ActorSchedule})
	e.fake.AcceptInvite(prodID, "alice@example.com")
	e.mustApply(RunOptions{Actor: ActorSchedule})
	if _, ok := e.fake.Member(prodID, "alice@example.com"); !ok {
		t.Fatal("setup: alice is not a member")
	}

	// A full run's listings (of other, big accounts) took the budget down
	// to its reserve (10 of 100).
	e.clock.Advance(10 * time.Minute)
	ctx := context.Background()
	for e.cf.BudgetLeft() > 10 {
		if _, err := e.cf.GetMember(ctx, prodID, bob.ID); err != nil {
			t.Fatal(err)
		}
	}
	e.deactivate(alice)
	before := e.clock.Now()
	res := e.targeted([]string{alice}, nil, nil)
	if res.Aborted != nil || len(res.Failed) > 0 {
		t.Fatalf("the leaver's run: aborted %v, failed %v", res.Aborted, res.Failed)
	}
	if _, ok := e.fake.Member(prodID, "alice@example.com"); ok {
		t.Fatal("alice, a Super Administrator who left, kept access")
	}
	if waited := e.clock.Now().Sub(before); waited != 0 {
		t.Fatalf("the leaver's removal waited %s for the budget with its reserve free: its listing was counted as a full run's", waited)
	}
}

// A full run started by a push that touched everything (an import past
// maxTouched, missed notifications) gives way to a leaver's touch like a
// scheduled one, and is owed the same way.
func TestFullRunOfAnAllTouchGivesWay(t *testing.T) {
	e, slow, ids, pages := slowEnv(t, 40*50)
	e.runLoop(t)
	waitFor(t, 20*time.Second, "the start-up run did not end", func() bool {
		return metricValue(e.m.ReconcileRuns.WithLabelValues(ActorSchedule, OutcomeSuccess)) >= 1
	})
	slow.delay.Store(int64(40 * time.Millisecond))
	e.r.TouchAll()
	waitFor(t, 10*time.Second, "the full run of the push did not start listing", func() bool { return slow.listed() >= 3 })
	e.deactivate(ids[0])
	e.r.Touch([]string{ids[0]}, nil, nil)
	waitFor(t, 20*time.Second, "the leaver was not removed", func() bool {
		_, ok := e.fake.Member(prodID, "dev0@example.com")
		return !ok
	})
	if after := firstDelete(t, slow); after >= pages {
		t.Fatalf("the leaver's removal went after %d list pages: it waited for the push's full run's whole listing (%d pages)", after, pages)
	}
	if n := metricValue(e.m.ReconcileRuns.WithLabelValues(ActorIdPPush, OutcomePreempted)); n != 1 {
		t.Errorf("%v full runs of the push gave way, want 1", n)
	}
	waitFor(t, 20*time.Second, "the owed full run did not run to its end", func() bool {
		return metricValue(e.m.ReconcileRuns.WithLabelValues(ActorSchedule, OutcomeSuccess)) >= 2
	})
}

// A reconciler that does not run (a follower, an offline command) reads
// the status record each time and decodes it once per version: a new
// record is seen at once.
func TestFollowerSeesEachNewStatusRecord(t *testing.T) {
	e := newEnv(t)
	ids := e.users(2, "dev%d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	first := e.r.Status().LastRun
	if first.IsZero() {
		t.Fatal("no last run after apply")
	}
	if again := e.r.Status().LastRun; !again.Equal(first) {
		t.Fatalf("status changed without a run: %s, then %s", first, again)
	}
	e.clock.Advance(time.Minute)
	e.mustApply(RunOptions{})
	if got := e.r.Status().LastRun; !got.Equal(first.Add(time.Minute)) {
		t.Fatalf("status after a second run shows last run %s, want %s", got, first.Add(time.Minute))
	}
	if ok, why := e.r.Ready(); !ok {
		t.Fatalf("not ready after two runs: %v", why)
	}
}

// expireNowAndHold makes an expiry due at once and holds req until the run
// that sent it gives way (its context ends) or 10 s pass.
func expireNowAndHold(req *http.Request, r *Reconciler) error {
	r.mu.Lock()
	r.nextExpiry = r.now().Add(-time.Second)
	r.mu.Unlock()
	r.poke()
	select {
	case <-req.Context().Done():
		return req.Context().Err()
	case <-time.After(10 * time.Second):
		return nil
	}
}
