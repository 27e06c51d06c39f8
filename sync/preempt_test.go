package sync

import (
	"fmt"
	"net/http"
	"strings"
	gosync "sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

// slowListing delays every page of a member listing, as a big account
// does against the real API (a page of 50 at a time, within the budget),
// and notes the order of list pages and removals.
type slowListing struct {
	next    http.RoundTripper
	delay   atomic.Int64 // nanoseconds per listed page; 0: none
	mu      gosync.Mutex
	pages   int         // list pages requested since the delay was set
	after   []int       // per DELETE: the list pages requested before it
	deletes []time.Time // when each DELETE left
}

func (s *slowListing) RoundTrip(req *http.Request) (*http.Response, error) {
	listing := req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/members")
	if d := s.delay.Load(); d > 0 {
		s.mu.Lock()
		if listing {
			s.pages++
		}
		if req.Method == http.MethodDelete {
			s.after = append(s.after, s.pages)
			s.deletes = append(s.deletes, time.Now())
		}
		s.mu.Unlock()
		if listing {
			time.Sleep(time.Duration(d))
		}
	}
	return s.next.RoundTrip(req)
}

func (s *slowListing) listed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pages
}

// throughTransport gives e a Cloudflare client whose requests go through
// rt (which ends in the fake), on a restarted reconciler; cfg may set
// more of the client (a budget).
func (e *env) throughTransport(rt http.RoundTripper, cfg cloudflare.Config) {
	e.t.Helper()
	cfg.BaseURL, cfg.Token, cfg.Clock, cfg.HTTPClient = e.fake.URL(), "test-token", e.clock, &http.Client{Transport: rt}
	cf, err := cloudflare.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.cf = cf
	e.restart()
}

// handMade adds n members to prod that scimflare leaves alone: n/50
// pages more in every listing.
func (e *env) handMade(n int) {
	for i := range n {
		e.fake.AddMember(prodID, cftest.Member{Email: fmt.Sprintf("hand%04d@example.com", i), Roles: []string{e.roleID(prodID, "Administrator")}})
	}
}

// A leaver deactivated while a scheduled full run lists a big account is
// removed by a targeted run at once, not after the whole listing and the
// full run's writes: the full run gives way before its first write and
// runs again after it.
func TestLeaverIsNotHeldBehindAFullRunsListing(t *testing.T) {
	e := newEnv(t, withRealTime())
	slow := &slowListing{next: e.fake.HTTPClient().Transport}
	e.throughTransport(slow, cloudflare.Config{})

	const handMade = 40 * 50 // 40 pages of members scimflare leaves alone
	e.handMade(handMade)
	ids := e.users(3, "dev%d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	if _, ok := e.fake.Member(prodID, "dev0@example.com"); !ok {
		t.Fatal("setup: dev0 is not a member")
	}

	pages := (handMade+3)/50 + 1
	slow.delay.Store(int64(40 * time.Millisecond)) // ≈ 1.6 s for the whole listing
	e.runLoop(t)                                   // its start-up run is a scheduled full run
	waitFor(t, 10*time.Second, "the scheduled full run did not start listing", func() bool { return slow.listed() >= 3 })
	e.deactivate(ids[0])
	e.r.Touch([]string{ids[0]}, nil, nil)
	waitFor(t, 10*time.Second, "the leaver was not removed", func() bool {
		_, ok := e.fake.Member(prodID, "dev0@example.com")
		return !ok
	})
	if after := firstDelete(t, slow); after >= pages {
		t.Fatalf("the leaver's removal went after %d list pages: it waited for the full run's whole listing (%d pages)", after, pages)
	}

	// The full run that gave way runs again, to its end.
	waitFor(t, 20*time.Second, "the scheduled full run did not run again to its end", func() bool {
		return metricValue(e.m.ReconcileRuns.WithLabelValues(ActorSchedule, OutcomeSuccess)) >= 1
	})
	if n := metricValue(e.m.ReconcileRuns.WithLabelValues(ActorSchedule, OutcomePreempted)); n != 1 {
		t.Errorf("%v preempted scheduled runs, want 1", n)
	}
	if n := metricValue(e.m.ReconcileRuns.WithLabelValues(ActorIdPPush, OutcomeSuccess)); n != 1 {
		t.Errorf("%v targeted runs, want 1", n)
	}
	if _, ok := e.fake.Member(prodID, "dev1@example.com"); !ok {
		t.Error("dev1 lost access")
	}
	if len(e.audit(ActionRunAborted)) != 0 {
		t.Error("a run that gave way was audited as aborted")
	}
}

// A steady stream of SCIM changes cannot keep drift from being repaired:
// a scheduled full run gives way at most maxPreemptions times in a row,
// then runs to its end with touches still arriving.
func TestFullRunGivesWayAtMostThreeTimes(t *testing.T) {
	e := newEnv(t, withRealTime())
	slow := &slowListing{next: e.fake.HTTPClient().Transport}
	e.throughTransport(slow, cloudflare.Config{})
	e.handMade(20 * 50)
	ids := e.users(2, "dev%d@example.com")
	e.group("cf-deployers", ids...)
	slow.delay.Store(int64(30 * time.Millisecond)) // ≈ 0.6 s a listing

	stop := make(chan struct{})
	var touching gosync.WaitGroup
	touching.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
				e.r.Touch([]string{ids[1]}, nil, nil)
			}
		}
	})
	defer touching.Wait()
	defer close(stop)
	e.runLoop(t)
	waitFor(t, 30*time.Second, "no scheduled full run ran to its end under steady touches", func() bool {
		return metricValue(e.m.ReconcileRuns.WithLabelValues(ActorSchedule, OutcomeSuccess)) >= 1
	})
	if n := metricValue(e.m.ReconcileRuns.WithLabelValues(ActorSchedule, OutcomePreempted)); n != maxPreemptions {
		t.Errorf("the full run gave way %v times, want %d", n, maxPreemptions)
	}
	if _, ok := e.fake.Member(prodID, "dev0@example.com"); !ok {
		t.Error("the full run that ran to its end did not invite dev0")
	}
}
