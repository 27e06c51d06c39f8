package sync

import (
	"net/http"
	"slices"
	"testing"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/sync/cloudflare"
	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
	"github.com/scimflare/scimflare/sync/identity"
)

const unnamedID = "0000000000000000000000000000beef"

// hasMemberID reports whether the fake holds a member with this id.
func hasMemberID(e *env, accountID, id string) bool {
	return slices.ContainsFunc(e.fake.Members(accountID), func(m cftest.Member) bool { return m.ID == id })
}

// A member Cloudflare lists without an email (a malformed listing: the
// member cache cannot hold it, and it used to abort every full run) does
// not keep a leaver's access: the full run goes on and removes the
// leaver. The unnamed member is left alone, even under unmanaged: remove:
// no identity matches it, and removing an unknown member could lock
// someone out.
func TestAMemberWithoutAnEmailDoesNotStopFullRuns(t *testing.T) {
	for _, unmanaged := range []string{"report", "remove"} {
		t.Run(unmanaged, func(t *testing.T) {
			e := newEnv(t, func(o *envOpts) { o.yaml = configYAML("  unmanaged: " + unmanaged + "\n") })
			ids := e.users(3, "user%02d@example.com")
			e.group("cf-deployers", ids...)
			e.mustApply(RunOptions{})
			e.fake.AddMember(prodID, cftest.Member{ID: unnamedID, Email: "", Roles: []string{e.roleID(prodID, "Billing")}})

			e.deactivate(ids[0])
			res := e.apply(RunOptions{})
			if res.Aborted != nil || len(res.Failed) > 0 {
				t.Fatalf("full run: aborted %v, failed %v", res.Aborted, res.Failed)
			}
			if _, ok := e.fake.Member(prodID, "user00@example.com"); ok {
				t.Fatal("the leaver kept access: the full run did not remove user00")
			}
			if !hasMemberID(e, prodID, unnamedID) {
				t.Fatal("the member without an email was removed")
			}
			// The next full run and a targeted one work from what this one
			// stored.
			e.deactivate(ids[1])
			if res := e.targeted([]string{ids[1]}, nil, nil); len(res.Applied) != 1 || res.Aborted != nil {
				t.Fatalf("targeted run: applied %s, aborted %v", kinds(res.Applied), res.Aborted)
			}
			if res := e.apply(RunOptions{}); res.Aborted != nil || len(res.Applied) != 0 {
				t.Fatalf("second full run: applied %s, aborted %v", kinds(res.Applied), res.Aborted)
			}
			if _, ok := e.fake.Member(prodID, "user02@example.com"); !ok || !hasMemberID(e, prodID, unnamedID) {
				t.Fatal("a member that should stay is gone")
			}
		})
	}
}

// A member scimflare created that Cloudflare lists without its email is
// still scimflare's (the ledger has its id): two full runs do not drop
// it as gone, and when its user leaves it is removed by its id.
func TestAnOwnedMemberListedWithoutItsEmailIsStillRemoved(t *testing.T) {
	e := newEnv(t)
	ids := e.users(2, "user%02d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	m, ok := e.fake.Member(prodID, "user00@example.com")
	if !ok {
		t.Fatal("user00 was not invited")
	}
	e.fake.RemoveMember(prodID, m.Email)
	m.Email = ""
	e.fake.AddMember(prodID, m)

	for i := range 2 {
		if res := e.apply(RunOptions{}); res.Aborted != nil || len(res.Applied) != 0 {
			t.Fatalf("full run %d with the email missing: applied %s, aborted %v", i, kinds(res.Applied), res.Aborted)
		}
	}
	if l, ok := e.ledgerOf("user00@example.com"); !ok || l.MemberID != m.ID || !l.MissingSince.IsZero() {
		t.Fatalf("the ledger forgot member %s or marked it missing: %+v, %v", m.ID, l, ok)
	}

	e.deactivate(ids[0])
	res := e.apply(RunOptions{})
	if res.Aborted != nil || len(res.Applied) != 1 || res.Applied[0].MemberID != m.ID {
		t.Fatalf("the leaver's full run: applied %+v, aborted %v", res.Applied, res.Aborted)
	}
	if hasMemberID(e, prodID, m.ID) {
		t.Fatal("the leaver kept access: member listed without an email was not removed")
	}
	if _, ok := e.fake.Member(prodID, "user01@example.com"); !ok {
		t.Fatal("user01 lost access")
	}
}

// An owned member whose update's answer was lost (the ledger holds an
// intent: no member id, the member cache keeps the member's id) and that
// Cloudflare then lists without its email is still scimflare's: the
// listing must not settle the intent as a member gone (one listing's word,
// ownership forgotten), or the member keeps its roles when its user leaves.
func TestAnUnnamedMemberWithAnUpdateIntentIsStillRemoved(t *testing.T) {
	e := intentEnv(t, -1)
	id := e.user(alice)
	e.group("cf-deployers", id)
	e.mustApply(RunOptions{})
	m, ok := e.fake.Member(prodID, alice)
	if !ok {
		t.Fatal("alice was not invited")
	}
	e.group("cf-oncall", id)
	e.fake.Inject(cftest.Fault{Method: http.MethodPut, Route: cftest.RouteMember, DropAfterApply: true})
	e.apply(RunOptions{})
	e.fake.ClearFaults()
	if l, _ := e.ledgerOf(alice); !isIntent(l) {
		t.Fatalf("the lost update left no intent: %+v", l)
	}
	m, _ = e.fake.Member(prodID, alice)
	e.fake.RemoveMember(prodID, alice)
	m.Email = ""
	e.fake.AddMember(prodID, m)

	if res := e.apply(RunOptions{}); res.Aborted != nil {
		t.Fatalf("full run with the email missing: aborted %v", res.Aborted)
	}
	if l, ok := e.ledgerOf(alice); !ok || l.MemberID != m.ID {
		t.Fatalf("the ledger forgot member %s: %+v, %v", m.ID, l, ok)
	}
	e.deactivate(id)
	if res := e.apply(RunOptions{}); res.Aborted != nil {
		t.Fatalf("the leaver's full run: aborted %v", res.Aborted)
	}
	if hasMemberID(e, prodID, m.ID) {
		t.Fatal("the leaver kept access: the unnamed member was not removed")
	}
}

// A listing that starts over (total_count changed under it) keeps only
// what the last pass listed: a member listed without an email in the pass
// given up, and gone by the one that completed, is not taken in.
func TestAListingStartedOverForgetsItsUnnamedMembers(t *testing.T) {
	var l listing
	l.start(2)
	l.page([]cloudflare.Member{{ID: unnamedID}, {ID: "b", Email: "bob@example.com"}})
	l.start(1)
	l.page([]cloudflare.Member{{ID: "b", Email: "bob@example.com"}})
	led := map[string]store.LedgerEntry{store.Fold(alice): {Email: alice, MemberID: unnamedID}}
	if left := l.adopt(led, nil); len(left) != 0 || l.actual.Has(identity.Key(alice)) {
		t.Fatalf("the pass given up left %v and alice taken in: %v", left, l.actual.Has(identity.Key(alice)))
	}
}
