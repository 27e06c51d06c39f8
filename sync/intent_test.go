package sync

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

// Every outcome of a write against the ledger intent recorded before it.
// "lost" is Cloudflare applying the write and the connection closing
// before the answer (cftest DropAfterApply), with the client's retries off
// unless the case says so: the state it leaves (intent committed, write
// applied, no outcome commit) is the one a daemon killed between the write
// and its commit leaves.

const alice = "alice@example.com"

// intentEnv is a fault env whose client retries `retries` times (-1: never).
func intentEnv(t *testing.T, retries int) *env {
	t.Helper()
	e := newFaultEnv(t, faultEnvOpts{})
	cf, err := cloudflare.New(cloudflare.Config{BaseURL: e.fake.URL(), Token: "test-token", Clock: e.clock,
		HTTPClient: e.fake.HTTPClient(), MaxRetries: retries})
	if err != nil {
		t.Fatal(err)
	}
	e.cf = cf
	e.restart()
	return e
}

func (e *env) ledgerOf(email string) (store.LedgerEntry, bool) {
	e.t.Helper()
	led, err := e.st.Ledger(prodID)
	if err != nil {
		e.t.Fatal(err)
	}
	l, ok := led[store.Fold(email)]
	return l, ok
}

func (e *env) keys(names ...string) []string {
	var out []string
	for _, n := range names {
		out = append(out, mapping.RoleKey(e.roleID(prodID, n)))
	}
	slices.Sort(out)
	return out
}

// auditFor counts email's audit records of action.
func (e *env) auditFor(action, email string) []store.AuditRecord {
	var out []store.AuditRecord
	for _, r := range e.audit(action) {
		if strings.EqualFold(r.Email, email) {
			out = append(out, r)
		}
	}
	return out
}

func TestIntentEveryWriteOutcome(t *testing.T) {
	type story struct {
		name    string
		retries int
		// setup brings alice to the state before the write and returns her
		// user id; the write under test is the next run's only change.
		setup func(e *env) string
		fault cftest.Fault
		// after the faulty run
		failed     bool
		wantIntent bool              // the ledger entry is an unconfirmed intent
		wantFirst  store.LedgerEntry // Created, Managed, Found (role names) after the faulty run; MemberID checked by wantIntent
		action     string            // the audit action of the write
		// after the next (full) run
		settled  bool // the next run finds the write applied and records it
		rewrites bool // the next run writes to Cloudflare again
		want     store.LedgerEntry
		// roles alice keeps after leaving the IdP (nil: not a member)
		leftWith []string
	}
	inDeployers := func(e *env) string {
		id := e.user(alice)
		e.group("cf-deployers", id)
		return id
	}
	// managed: alice already holds Workers Platform Admin through
	// scimflare; the write adds Administrator.
	managed := func(e *env) string {
		id := inDeployers(e)
		e.mustApply(RunOptions{})
		e.group("cf-oncall", id)
		return id
	}
	// adopted: alice was invited by hand with DNS; the write adds WPA.
	adopted := func(e *env) string {
		e.fake.AddMember(prodID, cftest.Member{Email: alice, Roles: []string{e.roleID(prodID, "DNS")}})
		return inDeployers(e)
	}
	post := cftest.Fault{Method: http.MethodPost, Route: cftest.RouteMembers}
	put := cftest.Fault{Method: http.MethodPut, Route: cftest.RouteMember}
	with := func(f cftest.Fault, g cftest.Fault) cftest.Fault {
		g.Method, g.Route = f.Method, f.Route
		return g
	}
	lost := cftest.Fault{DropAfterApply: true, Times: -1}
	refused := cftest.Fault{Status: http.StatusBadRequest, Times: -1}
	created := func(roles ...string) store.LedgerEntry { return store.LedgerEntry{Created: true, Managed: roles} }

	stories := []story{
		{name: "create answered", retries: -1, setup: inDeployers,
			action: "add_member", wantFirst: created(wpa), want: created(wpa)},
		{name: "create lost", retries: -1, setup: inDeployers, fault: with(post, lost),
			failed: true, wantIntent: true, wantFirst: created(wpa), action: "add_member",
			settled: true, want: created(wpa)},
		{name: "create lost, retry answered already-a-member", retries: 2, setup: inDeployers,
			fault:  with(post, cftest.Fault{DropAfterApply: true}),
			failed: true, wantIntent: true, wantFirst: created(wpa), action: "add_member",
			settled: true, want: created(wpa)},
		{name: "create refused 4xx", retries: -1, setup: inDeployers, fault: with(post, refused),
			failed: true, action: "add_member", rewrites: true, want: created(wpa)},
		{name: "update answered", retries: -1, setup: managed,
			action: "update_roles", wantFirst: created("Administrator", wpa), want: created("Administrator", wpa)},
		{name: "update lost", retries: -1, setup: managed, fault: with(put, lost),
			failed: true, wantIntent: true, wantFirst: created("Administrator", wpa), action: "update_roles",
			settled: true, want: created("Administrator", wpa)},
		{name: "update refused 4xx", retries: -1, setup: managed, fault: with(put, refused),
			failed: true, wantFirst: created(wpa), action: "update_roles", rewrites: true, want: created("Administrator", wpa)},
		{name: "adopting update lost", retries: -1, setup: adopted, fault: with(put, lost),
			failed: true, wantIntent: true, wantFirst: store.LedgerEntry{Managed: []string{wpa}, Found: []string{"DNS"}},
			action: "update_roles", settled: true,
			want:     store.LedgerEntry{Managed: []string{wpa}, Found: []string{"DNS"}},
			leftWith: []string{"DNS"}},
	}
	for _, s := range stories {
		t.Run(s.name, func(t *testing.T) {
			e := intentEnv(t, s.retries)
			id := s.setup(e)
			e.fake.ResetCounters()
			if s.fault.Method != "" {
				e.fake.Inject(s.fault)
			}
			res := e.apply(RunOptions{})
			if got := len(res.Failed) > 0; got != s.failed {
				t.Fatalf("failed %+v, want failed=%v", res.Failed, s.failed)
			}
			e.fake.ClearFaults()
			l, ok := e.ledgerOf(alice)
			switch {
			case s.wantFirst.Managed == nil && ok:
				t.Errorf("a refused invitation left a ledger entry %+v", l)
			case s.wantFirst.Managed != nil && !ok:
				t.Errorf("no ledger entry after the write")
			case ok:
				if isIntent(l) != s.wantIntent {
					t.Errorf("ledger %+v: intent %v, want %v", l, isIntent(l), s.wantIntent)
				}
				checkEntry(t, e, l, s.wantFirst)
			}
			if n := len(e.auditFor(s.action, alice)); n != boolInt(!s.failed) {
				t.Errorf("%d %s audit records after the first run, want %d", n, s.action, boolInt(!s.failed))
			}

			e.fake.ResetCounters()
			res = e.mustApply(RunOptions{})
			if got := len(res.Settled) == 1; got != s.settled {
				t.Errorf("settled %s, want settled=%v", kinds(res.Settled), s.settled)
			}
			if s.settled && (res.Settled[0].Kind != "" && string(res.Settled[0].Kind) != s.action) {
				t.Errorf("settled %s, want %s", res.Settled[0].Kind, s.action)
			}
			if got := len(e.fake.Writes()) > 0; got != s.rewrites {
				t.Errorf("the next run wrote %+v, want writes=%v", e.fake.Writes(), s.rewrites)
			}
			l, _ = e.ledgerOf(alice)
			if isIntent(l) {
				t.Errorf("the next run left an unconfirmed entry %+v", l)
			}
			checkEntry(t, e, l, s.want)
			recs := e.auditFor(s.action, alice)
			if len(recs) != 1 {
				t.Fatalf("%d %s audit records in all, want exactly one: %+v", len(recs), s.action, recs)
			}
			if s.settled && (!strings.Contains(recs[0].Reason, "answer was lost") || !recs[0].Privileged || recs[0].Actor != ActorApply) {
				t.Errorf("audit of the lost answer %+v", recs[0])
			}
			if d := e.auditFor(ActionDrift, alice); len(d) != 0 {
				t.Errorf("scimflare's own role reported as drift: %+v", d)
			}
			assertNoDuplicateInvites(t, e)
			if res := e.mustApply(RunOptions{}); res.Changes.HasChanges() || len(res.Settled) > 0 {
				t.Errorf("a third run still changes %s / settles %s", kinds(res.Applied), kinds(res.Settled))
			}

			// Alice leaves the IdP: every role scimflare granted goes (forced:
			// two of two managed grants is past the removal guard).
			e.deactivate(id)
			e.mustApply(RunOptions{Force: true})
			roles, member := e.memberRoles(prodID, alice)
			if s.leftWith == nil && member {
				t.Errorf("alice left the IdP but keeps %v", roles)
			}
			if s.leftWith != nil && !slices.Equal(roles, s.leftWith) {
				t.Errorf("alice left the IdP with %v, want %v (what she held before scimflare)", roles, s.leftWith)
			}
		})
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// checkEntry compares Created, Managed and Found (want holds role names).
func checkEntry(t *testing.T, e *env, got, want store.LedgerEntry) {
	t.Helper()
	if got.Created != want.Created || !slices.Equal(got.Managed, e.keys(want.Managed...)) || !slices.Equal(got.Found, e.keys(want.Found...)) {
		t.Errorf("ledger %+v\nwant created=%v managed=%v found=%v", got, want.Created, want.Managed, want.Found)
	}
}

// A role that was found on the member is never claimed, even by an intent
// whose update was lost.
func TestIntentNeverClaimsAFoundRole(t *testing.T) {
	e := intentEnv(t, -1)
	// Alice holds WPA by hand; scimflare adopts her and adds Administrator.
	e.fake.AddMember(prodID, cftest.Member{Email: alice, Roles: []string{e.roleID(prodID, wpa)}})
	id := e.user(alice)
	e.group("cf-deployers", id)
	e.group("cf-oncall", id)
	e.fake.Inject(cftest.Fault{Method: http.MethodPut, Route: cftest.RouteMember, DropAfterApply: true})
	e.apply(RunOptions{})
	l, _ := e.ledgerOf(alice)
	if !isIntent(l) || !slices.Equal(l.Found, e.keys(wpa)) || !slices.Equal(l.Managed, e.keys("Administrator")) {
		t.Fatalf("intent %+v: want WPA found and only Administrator claimed", l)
	}
	e.mustApply(RunOptions{})
	e.deactivate(id)
	e.mustApply(RunOptions{})
	if roles, _ := e.memberRoles(prodID, alice); !slices.Equal(roles, []string{wpa}) {
		t.Errorf("after leaving alice holds %v, want only the hand-given %s", roles, wpa)
	}
}

// A targeted run meets the lost invitation as a duplicate: it refreshes
// the listing, settles the intent and invites nobody twice.
func TestIntentLostInviteSettledByTheNextTargetedRun(t *testing.T) {
	e := intentEnv(t, -1)
	e.mustApply(RunOptions{}) // fills the member cache
	id := e.user(alice)
	e.group("cf-deployers", id)
	e.fake.Inject(cftest.Fault{Method: http.MethodPost, Route: cftest.RouteMembers, DropAfterApply: true})
	if res := e.targeted([]string{id}, nil, nil); len(res.Failed) != 1 {
		t.Fatalf("failed %+v, want the lost invitation", res.Failed)
	}
	e.fake.ResetCounters()
	res := e.targeted([]string{id}, nil, nil)
	if len(res.Failed) > 0 || len(res.Settled) != 1 {
		t.Fatalf("failed %+v settled %s", res.Failed, kinds(res.Settled))
	}
	if w := e.fake.Writes(); len(w) != 1 || w[0].Status != http.StatusBadRequest {
		t.Errorf("writes %+v, want one invitation refused as a duplicate", w)
	}
	l, _ := e.ledgerOf(alice)
	if isIntent(l) || !l.Created || !slices.Equal(l.Managed, e.keys(wpa)) || l.Found != nil {
		t.Errorf("ledger %+v", l)
	}
	if n := len(e.auditFor("add_member", alice)); n != 1 {
		t.Errorf("%d add_member records, want 1", n)
	}
	assertNoDuplicateInvites(t, e)
	e.deactivate(id)
	e.targeted([]string{id}, nil, nil)
	if roles, ok := e.memberRoles(prodID, alice); ok {
		t.Errorf("alice left but keeps %v", roles)
	}
}

// An intent whose member never appeared is dropped without a record, and
// the invitation is made again only while it is still wanted.
func TestIntentOfAnInviteThatNeverLandedIsDropped(t *testing.T) {
	e := intentEnv(t, -1)
	id := e.user(alice)
	e.group("cf-deployers", id)
	e.fake.Inject(cftest.Fault{Method: http.MethodPost, Route: cftest.RouteMembers, DropAfterApply: true})
	e.apply(RunOptions{})
	// Someone withdraws the invitation by hand, and alice leaves.
	e.fake.RemoveMember(prodID, alice)
	e.deactivate(id)
	e.fake.ResetCounters()
	res := e.mustApply(RunOptions{})
	if len(res.Settled) != 0 || len(e.fake.Writes()) != 0 {
		t.Errorf("settled %s, wrote %+v", kinds(res.Settled), e.fake.Writes())
	}
	if l, ok := e.ledgerOf(alice); ok {
		t.Errorf("the intent of a member that does not exist stays: %+v", l)
	}
	if a := e.audit(ActionMemberGone); len(a) != 0 {
		t.Errorf("an invitation scimflare never confirmed was audited as gone: %+v", a)
	}
}

// Removals carry no intent. A removal whose answer was lost is recorded
// by the next full run as member_gone: one record for the one change.
func TestIntentRemovalOutcomes(t *testing.T) {
	for _, lost := range []bool{false, true} {
		name := map[bool]string{false: "delete answered", true: "delete lost"}[lost]
		t.Run(name, func(t *testing.T) {
			e := intentEnv(t, -1)
			id := e.user(alice)
			e.group("cf-deployers", id)
			e.mustApply(RunOptions{})
			e.deactivate(id)
			if lost {
				e.fake.Inject(cftest.Fault{Method: http.MethodDelete, Route: cftest.RouteMember, DropAfterApply: true})
			}
			res := e.apply(RunOptions{})
			if _, ok := e.fake.Member(prodID, alice); ok {
				t.Fatal("alice was not removed")
			}
			if got := len(res.Failed) == 1; got != lost {
				t.Fatalf("failed %+v", res.Failed)
			}
			e.mustApply(RunOptions{})
			removed, gone := len(e.auditFor("remove_member", alice)), len(e.auditFor(ActionMemberGone, alice))
			if removed+gone != 1 || (lost && gone != 1) {
				t.Errorf("remove_member %d, member_gone %d: want one record of the removal", removed, gone)
			}
			if l, ok := e.ledgerOf(alice); ok {
				t.Errorf("ledger still holds %+v", l)
			}
		})
	}
}

// A ledger that no longer matches Cloudflare is written even when
// Cloudflare needs no change.
func TestLedgerIsRecordedWithoutACloudflareChange(t *testing.T) {
	e := intentEnv(t, -1)
	id := e.user(alice)
	e.group("cf-deployers", id)
	oncall := e.group("cf-oncall", id)
	bob := e.user("bob@example.com")
	e.fake.AddMember(prodID, cftest.Member{Email: "bob@example.com", Roles: []string{e.roleID(prodID, wpa)}})
	e.mustApply(RunOptions{})
	if l, _ := e.ledgerOf(alice); !slices.Equal(l.Managed, e.keys("Administrator", wpa)) {
		t.Fatalf("ledger %+v", l)
	}
	// Administrator is taken from alice by hand, then she leaves cf-oncall:
	// Cloudflare already holds what is wanted. Bob, holding WPA by hand,
	// joins cf-deployers: nothing to add.
	m, _ := e.fake.Member(prodID, alice)
	if _, err := e.cf.UpdateMember(context.Background(), prodID, m.ID, []string{e.roleID(prodID, wpa)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.UpdateGroup(oncall, e.now(), 0, func(g store.GroupTx) error {
		_, err := g.RemoveMember(id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.UpdateGroup(groupID(t, e, "cf-deployers"), e.now(), 0, func(g store.GroupTx) error {
		_, err := g.AddMember(store.MemberRef{ID: bob, Type: store.MemberUser})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	e.fake.ResetCounters()
	if res := e.mustApply(RunOptions{}); res.Changes.HasChanges() {
		t.Fatalf("Cloudflare changes %s", kinds(res.Applied))
	}
	if w := e.fake.Writes(); len(w) != 0 {
		t.Fatalf("writes %+v", w)
	}
	if l, _ := e.ledgerOf(alice); !slices.Equal(l.Managed, e.keys(wpa)) || isIntent(l) {
		t.Errorf("alice's ledger %+v still claims a role she no longer holds", l)
	}
	// An adoption that grants nothing owns nothing: bob's hand-given role
	// stays unowned, so it is reported as drift once he leaves.
	if l, ok := e.ledgerOf("bob@example.com"); ok {
		t.Errorf("bob was adopted without a grant: %+v", l)
	}
}
