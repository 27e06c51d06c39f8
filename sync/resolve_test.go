package sync

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/plan"
)

// The name catalogs a full run reads serve the cheaper runs after it. These
// tests pin when they are read again, and what happens when Cloudflare
// changed them under the cache.

// join adds users to a group.
func (e *env) join(groupID string, userIDs ...string) {
	e.t.Helper()
	if _, err := e.st.UpdateGroup(groupID, e.now(), 0, func(g store.GroupTx) error {
		for _, id := range userIDs {
			if _, err := g.AddMember(store.MemberRef{ID: id, Type: store.MemberUser}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
}

// wantCalls checks the fake's counters since the last reset.
func (e *env) wantCalls(what string, want calls) {
	e.t.Helper()
	if got := e.calls(); got != want {
		e.t.Errorf("%s: %s; want %s", what, got, want)
	}
	e.fake.ResetCounters()
}

func (e *env) mustTargeted(userIDs ...string) *Result {
	e.t.Helper()
	res := e.targeted(userIDs, nil, nil)
	if res.Aborted != nil {
		e.t.Fatalf("targeted run aborted: %v", res.Aborted)
	}
	for _, f := range res.Failed {
		e.t.Errorf("change failed: %s %s: %v", f.Change.Kind, f.Change.Email, f.Err)
	}
	return res
}

func TestGrantRevokeAndExpiryCostOneWriteEach(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ids := e.users(3, "user%d@example.com")
	e.group("cf-deployers", ids...)
	e.group("cf-oncall", ids[2]) // ttl 2s
	e.mustApply(RunOptions{})
	e.fake.ResetCounters()

	g, res, err := e.r.Grant(context.Background(), GrantRequest{
		Email: "user0@example.com", Account: "prod", Role: "DNS", For: time.Hour, Reason: "incident 7", Actor: "ops@example.com",
	})
	if err != nil || res.Aborted != nil || len(res.Applied) != 1 {
		t.Fatalf("grant: %v, %+v", err, res)
	}
	e.wantCalls("grant", calls{gets: 1, puts: 1, total: 2})

	res, err = e.r.Revoke(context.Background(), g.ID, "ops@example.com")
	if err != nil || res.Aborted != nil || len(res.Applied) != 1 {
		t.Fatalf("revoke: %v, %+v", err, res)
	}
	e.wantCalls("revoke", calls{gets: 1, puts: 1, total: 2})

	e.clock.Advance(3 * time.Second)
	if res := e.expiry(); res.Aborted != nil || kinds(res.Applied) != "expire_grant user2@example.com" {
		t.Fatalf("expiry run: aborted %v, applied %s", res.Aborted, kinds(res.Applied))
	}
	e.wantCalls("expiry", calls{gets: 1, puts: 1, total: 2})
	if roles, _ := e.memberRoles(prodID, "user2@example.com"); !slices.Equal(roles, []string{wpa}) {
		t.Errorf("user2 after the expiry: %v", roles)
	}
}

func TestFirstTargetedRunAfterStartResolvesNamesOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ids := e.users(3, "user%d@example.com")
	g := e.group("cf-deployers", ids[0])
	e.mustApply(RunOptions{})
	e.restart() // the member cache survives; the name catalogs are in memory only
	e.fake.ResetCounters()

	e.join(g, ids[1])
	e.mustTargeted(ids[1])
	e.wantCalls("first targeted run after a restart", calls{names: nameCalls, posts: 1, total: nameCalls + 1})
	e.join(g, ids[2])
	e.mustTargeted(ids[2])
	e.wantCalls("second targeted run", calls{posts: 1, total: 1})
}

func TestReloadResolvesNamesAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ids := e.users(2, "user%d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	e.fake.ResetCounters()

	e.r.Reload(parseConfig(t, strings.Replace(configYAML(""), "roles: [Workers Platform Admin]", "roles: [Workers Platform Admin, DNS]", 1)))
	e.mustTargeted(ids[0])
	e.wantCalls("targeted run after a reload", calls{names: nameCalls, gets: 1, puts: 1, total: nameCalls + 2})
	e.mustTargeted(ids[1])
	e.wantCalls("the next one", calls{gets: 1, puts: 1, total: 2})
	for _, email := range []string{"user0@example.com", "user1@example.com"} {
		if roles, _ := e.memberRoles(prodID, email); !slices.Equal(roles, []string{"DNS", wpa}) {
			t.Errorf("%s after the reload: %v", email, roles)
		}
	}
}

func TestCachedNamesAreReadAgainAfterTwoScheduleIntervals(t *testing.T) {
	t.Parallel()
	e := newEnv(t) // sync.schedule: @every 1h
	ids := e.users(3, "user%d@example.com")
	g := e.group("cf-deployers")
	e.mustApply(RunOptions{})
	e.fake.ResetCounters()

	e.clock.Advance(2 * time.Hour)
	e.join(g, ids[0])
	e.mustTargeted(ids[0])
	e.wantCalls("two intervals after the full run", calls{posts: 1, total: 1})

	e.clock.Advance(time.Second)
	e.join(g, ids[1])
	e.mustTargeted(ids[1])
	e.wantCalls("past two intervals", calls{names: nameCalls, posts: 1, total: nameCalls + 1})

	e.join(g, ids[2])
	e.mustTargeted(ids[2])
	e.wantCalls("right after the refresh", calls{posts: 1, total: 1})
}

// Cloudflare replaced the role under the same name (as it did with
// "Workers Admin"): the cached id is refused, the names are read once, the
// members are planned again and the writes land with the new id.
func TestStaleCachedRoleIsReadAgainAndTheWriteRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ids := e.users(5, "user%d@example.com")
	g := e.group("cf-deployers", ids[3])
	e.mustApply(RunOptions{})
	old := e.roleID(prodID, wpa)
	replaced := e.fake.ReplaceRole(prodID, wpa)
	e.fake.ResetCounters()

	e.join(g, ids[0], ids[1])
	res := e.mustTargeted(ids[0], ids[1])
	if kinds(res.Applied) != "add_member user0@example.com, add_member user1@example.com" {
		t.Errorf("applied %s", kinds(res.Applied))
	}
	w := e.fake.Writes()
	if len(w) == 0 || w[0].Status != http.StatusBadRequest || !strings.Contains(w[0].Body, old) {
		t.Fatalf("the first write was not the refused one with the cached id: %+v", w)
	}
	// One refused invitation, one read of the names, two invitations.
	e.wantCalls("targeted run with a stale cached role", calls{names: nameCalls, posts: 3, total: nameCalls + 3})
	for _, email := range []string{"user0@example.com", "user1@example.com"} {
		if m, ok := e.fake.Member(prodID, email); !ok || !slices.Equal(m.Roles, []string{replaced}) {
			t.Errorf("%s: %+v", email, m)
		}
	}
	if a := e.audit(string(plan.AddMember)); len(a) != 3 || !slices.Equal(a[2].After, []string{wpa}) {
		t.Errorf("add_member audit: %+v", a)
	}

	e.join(g, ids[2])
	e.mustTargeted(ids[2])
	e.wantCalls("the next targeted run", calls{posts: 1, total: 1})
}

// Cloudflare deleted the role: the names are read once, no longer resolve,
// and the run stops there, before the removal it had planned.
func TestDeletedCachedRoleStopsTheRunBeforeRemovals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ids := e.users(5, "user%d@example.com")
	g := e.group("cf-deployers", ids[1:]...)
	e.mustApply(RunOptions{})
	e.fake.RemoveRole(prodID, wpa)
	e.fake.ResetCounters()

	e.join(g, ids[0])    // planned first: user0 sorts before user4
	e.deactivate(ids[4]) // a leaver
	res := e.targeted([]string{ids[0], ids[4]}, nil, nil)
	if res.Aborted != nil || len(res.Applied) != 0 || len(res.Failed) != 2 {
		t.Fatalf("aborted %v, applied %s, %d failed", res.Aborted, kinds(res.Applied), len(res.Failed))
	}
	for _, f := range res.Failed {
		if msg := f.Err.Error(); !strings.Contains(msg, `"`+wpa+`"`) || !strings.Contains(msg, "no further change") {
			t.Errorf("%s %s failed with %q: it does not name the role and the stop", f.Change.Kind, f.Change.Email, msg)
		}
	}
	if len(e.writes(http.MethodDelete)) != 0 {
		t.Error("the removal planned with stale names was applied")
	}
	if _, ok := e.fake.Member(prodID, "user4@example.com"); !ok {
		t.Error("user4 was removed")
	}
	e.wantCalls("targeted run with a deleted cached role", calls{names: nameCalls, posts: 1, total: nameCalls + 1})
	if got := metricValue(e.m.ReconcileRuns.WithLabelValues(ActorIdPPush, OutcomeFailed)); got != 1 {
		t.Errorf("reconcile_runs{idp-push,failed} = %v", got)
	}

	// The next run reads the names first and aborts before any write.
	res = e.apply(RunOptions{})
	if res.Aborted == nil || !strings.Contains(res.Aborted.Error(), wpa) || len(e.fake.Writes()) != 0 {
		t.Errorf("full run: aborted %v, writes %+v", res.Aborted, e.fake.Writes())
	}
}

// A role newer than the cache: `grant` finds it in Cloudflare, and the run
// that applies the grant reads the names instead of calling it unknown.
func TestRoleNewerThanTheCacheIsFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.users(1, "user%d@example.com")
	e.mustApply(RunOptions{})
	id := e.fake.AddRole(prodID, "Cache Purge")
	e.fake.ResetCounters()

	_, res, err := e.r.Grant(context.Background(), GrantRequest{
		Email: "user0@example.com", Account: "prod", Role: "Cache Purge", For: time.Hour, Reason: "purge", Actor: "ops@example.com",
	})
	if err != nil || res.Aborted != nil || len(res.Applied) != 1 {
		t.Fatalf("grant: %v, %+v", err, res)
	}
	// One role lookup by grant, the names by the run, one invitation.
	e.wantCalls("grant of a role newer than the cache", calls{names: 1 + nameCalls, posts: 1, total: 2 + nameCalls})
	if m, _ := e.fake.Member(prodID, "user0@example.com"); !slices.Equal(m.Roles, []string{id}) {
		t.Errorf("user0: %+v", m)
	}
}

// Desired is what `report access` reads: it must cost no name lookup while
// the cache serves, and say what explain says should be held.
func TestDesiredReusesCachedNamesAndAgreesWithExplain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ids := e.users(2, "user%d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	e.fake.ResetCounters()

	ctx := context.Background()
	d, names, err := e.r.Desired(ctx, e.now())
	if err != nil {
		t.Fatal(err)
	}
	e.wantCalls("desired state after a full run", calls{})
	x, err := e.r.Explain(ctx, "user0@example.com", ExplainOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.fake.ResetCounters()
	for _, a := range x.Accounts {
		var should []string
		for _, r := range a.Roles {
			if r.Should {
				should = append(should, r.Role)
			}
		}
		got := mapping.KeyNames(keysOfDesired(memberOf(d.Accounts[a.ID], "user0@example.com")), names)
		if !slices.Equal(got, should) {
			t.Errorf("account %s: desired %v, explain says should %v", a.Name, got, should)
		}
	}
	if got := mapping.KeyNames(keysOfDesired(memberOf(d.Accounts[prodID], "user1@example.com")), names); !slices.Equal(got, []string{wpa}) {
		t.Errorf("user1 desired on prod: %v, want [%s]", got, wpa)
	}

	e.restart()
	if _, _, err := e.r.Desired(ctx, e.now()); err != nil {
		t.Fatal(err)
	}
	e.wantCalls("desired state after a restart", calls{names: nameCalls, total: nameCalls})
}
