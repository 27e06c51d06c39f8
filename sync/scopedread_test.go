package sync

import (
	gosync "sync"
	"testing"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/store"
)

// countingState is the real bbolt store, counting the reads of a whole
// account that a targeted run must not make.
type countingState struct {
	*store.BoltStore
	mu           gosync.Mutex
	whole        int // Ledger and CachedMembers calls
	scopedEmails [][]string
}

func (c *countingState) Ledger(accountID string) (map[string]store.LedgerEntry, error) {
	c.mu.Lock()
	c.whole++
	c.mu.Unlock()
	return c.BoltStore.Ledger(accountID)
}

func (c *countingState) CachedMembers(accountID string) (map[string]store.CachedMember, error) {
	c.mu.Lock()
	c.whole++
	c.mu.Unlock()
	return c.BoltStore.CachedMembers(accountID)
}

func (c *countingState) AccountEmails(accountID string, emails []string) (store.AccountEmails, error) {
	c.mu.Lock()
	c.scopedEmails = append(c.scopedEmails, emails)
	c.mu.Unlock()
	return c.BoltStore.AccountEmails(accountID, emails)
}

// A SCIM change that touches one user reads that user's ledger entry and
// cached member, not every account's whole ledger and member cache: its
// cost is the change, not the directory (issue 12 point 3).
func TestTargetedRunReadsOnlyTheEmailsInScope(t *testing.T) {
	e := newEnv(t)
	ids := e.users(30, "user%02d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	cs := &countingState{BoltStore: e.st}
	r, err := New(Options{Settings: e.cfg, State: cs, Metrics: e.m, Now: e.now, Cloudflare: e.cf})
	if err != nil {
		t.Fatal(err)
	}
	e.r = r

	e.deactivate(ids[7])
	res := e.targeted(ids[7:8], nil, nil)
	if got := kinds(res.Applied); got != "remove_member user07@example.com" {
		t.Fatalf("applied %q, withheld %+v, aborted %v", got, res.Changes.Withheld, res.Aborted)
	}
	if _, ok := e.fake.Member(prodID, "user07@example.com"); ok {
		t.Fatal("the deactivated user kept access")
	}
	if cs.whole != 0 {
		t.Errorf("the targeted run read a whole ledger or member cache %d times", cs.whole)
	}
	if len(cs.scopedEmails) != len(e.cfg.Accounts) {
		t.Fatalf("AccountEmails called %d times, want once per account (%d)", len(cs.scopedEmails), len(e.cfg.Accounts))
	}
	for _, emails := range cs.scopedEmails {
		if len(emails) != 1 || emails[0] != "user07@example.com" {
			t.Errorf("AccountEmails asked for %q, want only the touched user's email", emails)
		}
	}
}

// The removal guard's percent base is the whole account's managed grants,
// also in a targeted run that read only the emails in scope: one leaver of
// ten is 10% and goes; three more in one run are 33% and are withheld.
func TestTargetedRunGuardBaseIsTheWholeAccount(t *testing.T) {
	e := newEnv(t, withYAML(configYAML("  guards: {max_removals: 100, max_removal_percent: 20, min_removals: 0}")))
	ids := e.users(10, "user%02d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})

	e.deactivate(ids[0])
	res := e.targeted(ids[:1], nil, nil)
	if got := kinds(res.Applied); got != "remove_member user00@example.com" || len(res.Changes.Tripped) != 0 {
		t.Fatalf("one leaver of ten: applied %q, tripped %v, withheld %+v", got, res.Changes.Tripped, res.Changes.Withheld)
	}
	e.deactivate(ids[1:4]...)
	res = e.targeted(ids[1:4], nil, nil)
	if len(res.Applied) != 0 || len(res.Changes.Tripped) != 1 || len(res.Changes.Withheld) != 3 {
		t.Fatalf("three leavers of nine: applied %q, tripped %v, %d withheld", kinds(res.Applied), res.Changes.Tripped, len(res.Changes.Withheld))
	}
}

// One of two Super Administrators leaves: the other, outside the run's
// scope, still holds the role, so the leaver's removal goes through. A
// targeted run that counted only the members it read would withhold it as
// "the last Super Administrator" and leave the leaver with full access.
func TestTargetedRunRemovesOneOfTwoSuperAdmins(t *testing.T) {
	yaml := configYAML("") + `  - group: cf-admins
    account: prod
    roles: [` + mapping.SuperAdministrator + `]
`
	e := newEnv(t, withYAML(yaml))
	alice, bob := e.user("alice@example.com"), e.user("bob@example.com")
	e.group("cf-admins", alice, bob)
	e.mustApply(RunOptions{})
	e.fake.SetMemberStatus(prodID, "alice@example.com", "accepted")
	e.fake.SetMemberStatus(prodID, "bob@example.com", "accepted")
	e.mustApply(RunOptions{}) // the cache holds two accepted holders

	e.deactivate(alice)
	res := e.targeted([]string{alice}, nil, nil)
	if got := kinds(res.Applied); got != "remove_member alice@example.com" {
		t.Fatalf("applied %q, withheld %+v", got, res.Changes.Withheld)
	}
	if _, ok := e.fake.Member(prodID, "alice@example.com"); ok {
		t.Fatal("the leaving Super Administrator kept access")
	}
	if _, ok := e.fake.Member(prodID, "bob@example.com"); !ok {
		t.Fatal("the remaining Super Administrator was removed")
	}
}

// A leaver whose role someone swapped by hand since the last listing for
// Super Administrator, with sync.unmanaged: remove: the read before the
// DELETE shows the role, the change is planned again (one removal, as
// judged) — and the other Super Administrator, outside the run's scope,
// must still count, or the removal is withheld as "the last Super
// Administrator".
func TestTargetedRunCountsOtherSuperAdminsAfterAHandGrant(t *testing.T) {
	yaml := configYAML("  unmanaged: remove") + `  - group: cf-admins
    account: prod
    roles: [` + mapping.SuperAdministrator + `]
`
	e := newEnv(t, withYAML(yaml))
	alice, bob := e.user("alice@example.com"), e.user("bob@example.com")
	e.group("cf-deployers", alice)
	e.group("cf-admins", bob)
	e.mustApply(RunOptions{})
	e.fake.SetMemberStatus(prodID, "alice@example.com", "accepted")
	e.fake.SetMemberStatus(prodID, "bob@example.com", "accepted")
	e.mustApply(RunOptions{}) // the cache: alice a deployer, bob a Super Administrator
	e.fake.RevokeRole(prodID, "alice@example.com", "Workers Platform Admin")
	e.fake.GrantRole(prodID, "alice@example.com", mapping.SuperAdministrator)

	e.deactivate(alice)
	res := e.targeted([]string{alice}, nil, nil)
	if _, ok := e.fake.Member(prodID, "alice@example.com"); ok {
		t.Fatalf("the leaver kept access: applied %q, withheld %+v", kinds(res.Applied), res.Changes.Withheld)
	}
	if _, ok := e.fake.Member(prodID, "bob@example.com"); !ok {
		t.Fatal("the remaining Super Administrator was removed")
	}
}
