package sync

// Cloudflare faults at the reconciler level: the real client over HTTP to
// the fake, with the fake's faults, rate limiter and clock. Already covered
// elsewhere: a failure on page 3 of a listing with creates pending
// (TestFailedListingPageAbortsWithZeroWrites), and a 404 / 409 answered to a
// targeted run working from the member cache
// (TestStaleCacheIsRefreshedOnceAndRetried). The full-run variants of those
// are here.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

type faultEnvOpts struct {
	fake   cftest.Options
	client cloudflare.Config // Timeout, MaxRetries, MaxRetryAfter, Budget
	// before runs on each request on its way to the fake: what someone
	// does in the dashboard while the run is in flight.
	before func(*http.Request)
}

// hookTransport runs a test's hand-made change before a request reaches
// the fake.
type hookTransport struct {
	next   http.RoundTripper
	before func(*http.Request)
}

func (h hookTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	h.before(r)
	return h.next.RoundTrip(r)
}

func newFaultEnv(t *testing.T, o faultEnvOpts) *env {
	t.Helper()
	e := &env{t: t, path: filepath.Join(t.TempDir(), "state.db")}
	e.clock = cftest.NewClock(cftest.Epoch)
	e.now = e.clock.Now
	o.fake.Clock, o.fake.Accounts, o.fake.Token = e.clock, []string{prodID, stagingID}, "test-token"
	e.fake = cftest.New(t, o.fake)
	hc := e.fake.HTTPClient()
	if o.before != nil {
		hc = &http.Client{Transport: hookTransport{next: hc.Transport, before: o.before}}
	}
	cc := o.client
	cc.BaseURL, cc.Token, cc.Clock, cc.HTTPClient = e.fake.URL(), "test-token", e.clock, hc
	cf, err := cloudflare.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	e.cf = cf
	e.cfg = parseConfig(t, configYAML(""))
	e.m = testMetrics()
	e.open()
	return e
}

// invites counts the invitations Cloudflare accepted, per lower-cased email.
func invites(t *testing.T, e *env) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, w := range e.fake.Writes() {
		if w.Method != http.MethodPost || w.Status != http.StatusOK {
			continue
		}
		var b struct{ Email string }
		if err := json.Unmarshal([]byte(w.Body), &b); err != nil {
			t.Fatalf("invite body %q: %v", w.Body, err)
		}
		out[strings.ToLower(b.Email)]++
	}
	return out
}

func assertNoDuplicateInvites(t *testing.T, e *env) {
	t.Helper()
	for email, n := range invites(t, e) {
		if n > 1 {
			t.Errorf("%s was invited %d times", email, n)
		}
	}
}

// assertConverged runs until nothing is left to do (at most twice) and
// checks prod holds exactly want, each with exactly roles.
func assertConverged(t *testing.T, e *env, want []string, roles ...string) {
	t.Helper()
	e.clock.Advance(6 * time.Minute) // past any block
	e.mustApply(RunOptions{})
	if res := e.mustApply(RunOptions{}); res.Changes.HasChanges() {
		t.Errorf("a second run after recovery still changes %s", kinds(res.Applied))
	}
	var got []string
	for _, m := range e.fake.Members(prodID) {
		got = append(got, strings.ToLower(m.Email))
		if r, _ := e.memberRoles(prodID, m.Email); !slices.Equal(r, roles) {
			t.Errorf("%s holds %v, want %v", m.Email, r, roles)
		}
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("prod members %v\nwant %v", got, want)
	}
	if ok, why := e.r.Ready(); !ok {
		t.Errorf("not ready after convergence: %v", why)
	}
	assertNoDuplicateInvites(t, e)
}

func emails(format string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf(format, i))
	}
	return out
}

func TestFault429StormIncludingTheFiveMinuteBlockIsWaitedOut(t *testing.T) {
	// The client paces itself by the Ratelimit header, so only another
	// user of the same token can push Cloudflare into its 5-minute block
	// behind the client's back: here, one that spends the whole allowance
	// before every tenth invitation.
	var e *env
	var posts atomic.Int64
	e = newFaultEnv(t, faultEnvOpts{fake: cftest.Options{RateLimit: 40}, before: func(r *http.Request) {
		if r.Method != http.MethodPost || posts.Add(1)%10 != 0 {
			return
		}
		for range 100 {
			req, _ := http.NewRequest(http.MethodGet, e.fake.URL()+"/user/tokens/verify", nil)
			req.Header.Set("Authorization", "Bearer test-token")
			resp, err := e.fake.HTTPClient().Do(req)
			if err != nil {
				t.Errorf("the other token user: %v", err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests {
				return
			}
		}
	}})
	ids := e.users(60, "user%02d@example.com")
	e.group("cf-deployers", ids...)

	res := e.mustApply(RunOptions{})
	if len(res.Applied) != 60 {
		t.Errorf("applied %d changes, want 60", len(res.Applied))
	}
	refused := e.fake.Calls(http.MethodPost, cftest.RouteMembers) - len(e.writes(http.MethodPost))
	if refused < 3 {
		t.Fatalf("%d invitations answered 429: the storm did not happen", refused)
	}
	slept, _ := e.clock.Slept()
	if slept < 3*5*time.Minute {
		t.Errorf("the client waited %s in all, want every 5-minute block honoured", slept)
	}
	t.Logf("%d invitations refused with 429 and retried; %s waited on the fake clock", refused, slept)
	if n := len(e.writes(http.MethodDelete)); n != 0 {
		t.Errorf("%d removals during a 429 storm", n)
	}
	assertConverged(t, e, emails("user%02d@example.com", 0, 60), wpa)
}

// faultCase is one way Cloudflare fails; every case runs the same story.
type faultCase struct {
	name string
	f    cftest.Fault // Method, Route, Page and Times are set by the story
	// retried: a short burst of it is absorbed by the client's retries.
	retried bool
	// says is a word the abort reason must contain.
	says   string
	client cloudflare.Config
}

func TestFaultsNeverRemoveOnAPartialReadAndTheNextRunConverges(t *testing.T) {
	cases := []faultCase{
		{name: "5xx burst", f: cftest.Fault{Status: http.StatusServiceUnavailable}, retried: true, says: "503"},
		{name: "slow past the client timeout", f: cftest.Fault{Delay: 2 * time.Second}, retried: true, says: "deadline",
			client: cloudflare.Config{Timeout: 500 * time.Millisecond, MaxRetries: 2}},
		{name: "connection reset", f: cftest.Fault{Drop: true}, retried: true, says: "EOF"},
		{name: "429 block longer than the client waits", f: cftest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "300"}, says: "429",
			client: cloudflare.Config{MaxRetryAfter: time.Minute}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			faultStory(t, tc)
		})
	}
}

func faultStory(t *testing.T, tc faultCase) {
	e := newFaultEnv(t, faultEnvOpts{})
	// 20 managed members and 35 made by hand: two pages of 50.
	for i := range 35 {
		e.fake.AddMember(prodID, cftest.Member{Email: fmt.Sprintf("hand%02d@example.com", i), Roles: []string{e.roleID(prodID, wpa)}})
	}
	ids := e.users(20, "user%02d@example.com")
	g := e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	ledgerBefore, _ := e.st.Ledger(prodID)
	// The faults meet a client with the case's timeout and retries (set
	// after the setup, so a loaded machine cannot fail the setup).
	cc := tc.client
	cc.BaseURL, cc.Token, cc.Clock, cc.HTTPClient = e.fake.URL(), "test-token", e.clock, e.fake.HTTPClient()
	cf, err := cloudflare.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	e.cf = cf
	e.restart()

	// Three users leave (under the guard's 20% of 20), five join.
	e.deactivate(ids[:3]...)
	newIDs := e.users(5, "new%02d@example.com")
	if _, err := e.st.UpdateGroup(g, e.now(), 0, func(gt store.GroupTx) error {
		for _, id := range newIDs {
			if _, err := gt.AddMember(store.MemberRef{ID: id, Type: store.MemberUser}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.fake.ResetCounters()

	// 1. The second page of the listing fails every time: abort, nothing
	// written, nothing forgotten.
	f := tc.f
	f.Method, f.Route, f.Page, f.Times = http.MethodGet, cftest.RouteMembers, 2, -1
	e.fake.Inject(f)
	res := e.apply(RunOptions{})
	if res.Aborted == nil {
		t.Fatalf("a listing whose page 2 fails was not aborted; applied %s", kinds(res.Applied))
	}
	if !strings.Contains(res.Aborted.Error(), tc.says) || !strings.Contains(res.Aborted.Error(), "page 2") {
		t.Errorf("abort reason %q does not say %q on page 2", res.Aborted, tc.says)
	}
	if w := e.fake.Writes(); len(w) != 0 {
		t.Fatalf("an aborted run wrote %+v", w)
	}
	if led, _ := e.st.Ledger(prodID); len(led) != len(ledgerBefore) {
		t.Errorf("ledger went from %d to %d entries on a partial read", len(ledgerBefore), len(led))
	}
	if g := e.audit(ActionMemberGone); len(g) != 0 {
		t.Errorf("members on the unread page were taken as gone: %+v", g)
	}
	if a := e.audit(ActionRunAborted); len(a) != 1 || !strings.Contains(a[0].Reason, tc.says) {
		t.Errorf("run_aborted audit %+v", a)
	}
	if got := metricValue(e.m.ReconcileRuns.WithLabelValues(ActorApply, OutcomeAborted)); got != 1 {
		t.Errorf("reconcile_runs{apply,aborted} = %v, want 1", got)
	}
	if _, why := e.r.Ready(); !strings.Contains(strings.Join(why, "; "), "aborted") {
		t.Errorf("readiness does not say the last run aborted: %v", why)
	}
	e.fake.ClearFaults()

	// 2. A burst shorter than the client's retries is absorbed; else the
	// run aborts again, still writing nothing.
	f.Page, f.Times = 0, 2
	e.fake.Inject(f)
	e.clock.Advance(6 * time.Minute)
	res = e.apply(RunOptions{})
	switch {
	case tc.retried && res.Aborted != nil:
		t.Errorf("a burst of 2 failures was not retried: %v", res.Aborted)
	case !tc.retried && res.Aborted == nil:
		t.Errorf("a 429 asking for more than the client's cap was waited out")
	case !tc.retried && len(e.fake.Writes()) != 0:
		t.Errorf("an aborted run wrote %+v", e.fake.Writes())
	}
	e.fake.ClearFaults()

	// 3. Writes fail mid-run: some changes fail, none is duplicated.
	e.deactivate(ids[3])
	lateIDs := e.users(4, "late%02d@example.com")
	if _, err := e.st.UpdateGroup(g, e.now(), 0, func(gt store.GroupTx) error {
		for _, id := range lateIDs {
			if _, err := gt.AddMember(store.MemberRef{ID: id, Type: store.MemberUser}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	w := tc.f
	w.Method, w.Nth, w.Times = "", 0, 2
	if tc.f.Status == http.StatusTooManyRequests {
		w.Times = -1 // a block: every write refused until the clock moves
	}
	e.fake.Inject(faultOnWrites(w, http.MethodPost))
	e.fake.Inject(faultOnWrites(w, http.MethodDelete))
	res = e.apply(RunOptions{})
	if res.Aborted != nil {
		t.Fatalf("faults on writes aborted the run: %v", res.Aborted)
	}
	t.Logf("with faults on writes: %d applied, %d failed", len(res.Applied), len(res.Failed))
	if len(res.Applied)+len(res.Failed) == 0 {
		t.Fatal("no write was attempted: the story lost its changes")
	}
	if len(res.Failed) > 0 {
		if got := metricValue(e.m.ReconcileRuns.WithLabelValues(ActorApply, OutcomeFailed)); got != 1 {
			t.Errorf("reconcile_runs{apply,failed} = %v, want 1", got)
		}
		if _, why := e.r.Ready(); !strings.Contains(strings.Join(why, "; "), "failed") {
			t.Errorf("readiness does not say changes failed: %v", why)
		}
	}
	e.fake.ClearFaults()

	// 4. Once Cloudflare answers again, the next run converges.
	want := append(emails("hand%02d@example.com", 0, 35), emails("user%02d@example.com", 4, 20)...)
	want = append(want, emails("new%02d@example.com", 0, 5)...)
	want = append(want, emails("late%02d@example.com", 0, 4)...)
	assertConverged(t, e, want, wpa)
	if a := e.audit(ActionMemberGone); len(a) != 0 {
		t.Errorf("member_gone recorded for members that never left: %+v", a)
	}
}

func faultOnWrites(f cftest.Fault, method string) cftest.Fault {
	f.Method = method
	switch method {
	case http.MethodPost:
		f.Route = cftest.RouteMembers
	default:
		f.Route = cftest.RouteMember
	}
	return f
}

// A full run trusts the listing it just made: an answer contradicting it
// fails that one change (reported), and the next run, listing again,
// repairs it. Targeted runs refresh and retry at once (reconcile_test.go).
func wantOneFailedChange(t *testing.T, e *env, res *Result, email string, sentinel error) {
	t.Helper()
	if res.Aborted != nil {
		t.Fatalf("aborted: %v", res.Aborted)
	}
	if len(res.Failed) != 1 || !strings.EqualFold(res.Failed[0].Change.Email, email) || !errors.Is(res.Failed[0].Err, sentinel) {
		t.Fatalf("failed changes %+v, want only %s with %v", res.Failed, email, sentinel)
	}
	if len(res.Applied) != 9 {
		t.Errorf("applied %s, want the other 9", kinds(res.Applied))
	}
	if got := metricValue(e.m.ReconcileRuns.WithLabelValues(ActorApply, OutcomeFailed)); got != 1 {
		t.Errorf("reconcile_runs{apply,failed} = %v, want 1", got)
	}
	if _, why := e.r.Ready(); !strings.Contains(strings.Join(why, "; "), "failed") {
		t.Errorf("readiness does not say a change failed: %v", why)
	}
	if st := e.r.Status(); st.LastOutcome != OutcomeFailed || !strings.Contains(st.LastError, email) && !strings.Contains(st.LastError, "member") {
		t.Errorf("status %q %q", st.LastOutcome, st.LastError)
	}
	if n := len(e.writes(http.MethodDelete)); n != 0 {
		t.Errorf("%d removals", n)
	}
	assertNoDuplicateInvites(t, e)
}

func TestFaultMemberDeletedByHandMidFullRunIsRecreatedOnce(t *testing.T) {
	var e *env
	var victim atomic.Value // email of the member deleted by hand
	var armed, fired atomic.Bool
	e = newFaultEnv(t, faultEnvOpts{before: func(r *http.Request) {
		if r.Method != http.MethodPut || !armed.Load() || !fired.CompareAndSwap(false, true) {
			return
		}
		// Someone deletes the member in the dashboard after the run
		// listed it and before its update arrives.
		id := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		for _, m := range e.fake.Members(prodID) {
			if m.ID == id {
				e.fake.RemoveMember(prodID, m.Email)
				victim.Store(m.Email)
			}
		}
	}})
	ids := e.users(10, "user%d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	e.group("cf-oncall", ids...) // ten updates in the next run
	armed.Store(true)
	e.fake.ResetCounters()

	res := e.apply(RunOptions{})
	email, _ := victim.Load().(string)
	if email == "" {
		t.Fatal("no member was deleted mid-run")
	}
	wantOneFailedChange(t, e, res, email, cloudflare.ErrNotFound)

	res = e.mustApply(RunOptions{})
	if got := kinds(res.Applied); got != "add_member "+email {
		t.Errorf("the next run applied %s, want %s invited again", got, email)
	}
	if roles, ok := e.memberRoles(prodID, email); !ok || !slices.Equal(roles, []string{"Administrator", wpa}) {
		t.Errorf("%s after the repair: member %v roles %v", email, ok, roles)
	}
	if n := invites(t, e)[email]; n != 1 {
		t.Errorf("%s invited %d times after the 404, want once", email, n)
	}
	if g := e.audit(ActionMemberGone); len(g) != 1 || !strings.EqualFold(g[0].Email, email) {
		t.Errorf("member_gone audit %+v", g)
	}
	led, _ := e.st.Ledger(prodID)
	if l := led[store.Fold(email)]; !l.Created || l.MemberID == "" {
		t.Errorf("the re-created member is not recorded as scimflare's: %+v", l)
	}
	assertConvergedRoles(t, e, 10, "Administrator", wpa)
}

func TestFaultEmailInvitedByHandMidFullRunIsAdoptedNotDuplicated(t *testing.T) {
	var e *env
	var fired atomic.Bool
	var handEmail atomic.Value
	e = newFaultEnv(t, faultEnvOpts{before: func(r *http.Request) {
		if r.Method != http.MethodPost || !fired.CompareAndSwap(false, true) {
			return
		}
		// Someone invites the same email by hand, with another role,
		// after the run listed the account and before its invite arrives.
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var b struct{ Email string }
		_ = json.Unmarshal(body, &b)
		e.fake.AddMember(prodID, cftest.Member{Email: b.Email, Status: "pending", Roles: []string{e.roleID(prodID, "DNS")}})
		handEmail.Store(b.Email)
	}})
	ids := e.users(10, "user%d@example.com")
	e.group("cf-deployers", ids...)

	res := e.apply(RunOptions{})
	email, _ := handEmail.Load().(string)
	if email == "" {
		t.Fatal("no invitation was made by hand")
	}
	wantOneFailedChange(t, e, res, email, cloudflare.ErrAlreadyMember)
	if n := len(e.fake.Members(prodID)); n != 10 {
		t.Errorf("prod has %d members, want 10 (one per email)", n)
	}

	e.mustApply(RunOptions{})
	if roles, _ := e.memberRoles(prodID, email); !slices.Equal(roles, []string{"DNS", wpa}) {
		t.Errorf("adopted %s holds %v, want the hand-given DNS kept and %s added", email, roles, wpa)
	}
	led, _ := e.st.Ledger(prodID)
	l := led[store.Fold(email)]
	if l.Created || !slices.Equal(l.Found, []string{mapping.RoleKey(e.roleID(prodID, "DNS"))}) || !slices.Equal(l.Managed, []string{mapping.RoleKey(e.roleID(prodID, wpa))}) {
		t.Errorf("ledger of the adopted member %+v", l)
	}
	if n := len(e.fake.Members(prodID)); n != 10 {
		t.Errorf("prod has %d members, want 10", n)
	}
	assertNoDuplicateInvites(t, e)

	// The adopted member leaves the IdP: scimflare takes back only its role.
	for i, id := range ids {
		if strings.EqualFold(fmt.Sprintf("user%d@example.com", i), email) {
			e.deactivate(id)
		}
	}
	e.mustApply(RunOptions{})
	if roles, ok := e.memberRoles(prodID, email); !ok || !slices.Equal(roles, []string{"DNS"}) {
		t.Errorf("after leaving, adopted %s: member %v roles %v, want only the hand-given DNS", email, ok, roles)
	}
}

// assertConvergedRoles checks a further run changes nothing and prod holds
// n members, each with roles.
func assertConvergedRoles(t *testing.T, e *env, n int, roles ...string) {
	t.Helper()
	if res := e.mustApply(RunOptions{}); res.Changes.HasChanges() {
		t.Errorf("the next run still changes %s", kinds(res.Applied))
	}
	ms := e.fake.Members(prodID)
	if len(ms) != n {
		t.Errorf("prod has %d members, want %d", len(ms), n)
	}
	for _, m := range ms {
		if r, _ := e.memberRoles(prodID, m.Email); !slices.Equal(r, roles) {
			t.Errorf("%s holds %v, want %v", m.Email, r, roles)
		}
	}
}

// lostAnswerTransport delivers a request to the fake and then loses the
// answer, as a connection reset after Cloudflare acted would.
type lostAnswerTransport struct {
	next http.RoundTripper
	lose func(*http.Request) bool
}

func (l lostAnswerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(r)
	if err != nil || !l.lose(r) {
		return resp, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return nil, io.ErrUnexpectedEOF
}

// An invitation Cloudflare applied but whose answer never arrived (a reset
// after the write, a timeout, or a daemon killed between the write and its
// commit) must still be scimflare's: otherwise the next run adopts the
// member with scimflare's own role as "found", and when the user leaves
// the IdP that role stays.
func TestFaultInviteAppliedButAnswerLostStaysScimflares(t *testing.T) {
	e := newFaultEnv(t, faultEnvOpts{})
	var lost atomic.Bool
	hc := &http.Client{Transport: lostAnswerTransport{next: e.fake.HTTPClient().Transport, lose: func(r *http.Request) bool {
		return r.Method == http.MethodPost && lost.CompareAndSwap(false, true)
	}}}
	cf, err := cloudflare.New(cloudflare.Config{BaseURL: e.fake.URL(), Token: "test-token", Clock: e.clock, HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	e.cf = cf
	e.restart()
	alice := e.user("alice@example.com")
	e.group("cf-deployers", alice)

	e.apply(RunOptions{})
	e.mustApply(RunOptions{})
	if n := len(e.fake.Members(prodID)); n != 1 {
		t.Fatalf("prod has %d members, want alice once", n)
	}
	assertNoDuplicateInvites(t, e)
	// Alice leaves: the role scimflare gave her must go, whatever happened
	// to the answer of the invitation.
	e.deactivate(alice)
	e.mustApply(RunOptions{})
	if roles, ok := e.memberRoles(prodID, "alice@example.com"); ok {
		led, _ := e.st.Ledger(prodID)
		t.Errorf("alice left the IdP but keeps %v: the invitation whose answer was lost is not recorded as scimflare's (ledger %+v)", roles, led[store.Fold("alice@example.com")])
	}
}
