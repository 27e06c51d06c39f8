package storetest

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
)

// RunSync is the conformance suite for store.SyncState, the reconciler's
// state. open must return an empty state that is closed when t ends.
func RunSync(t *testing.T, open func(t *testing.T) store.SyncState) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.SyncState)
	}{
		{"LedgerRoundTrip", testLedgerRoundTrip},
		{"LedgerEmailAnyCase", testLedgerEmailAnyCase},
		{"AccountsAreSeparate", testAccountsAreSeparate},
		{"CommitDeletesBeforePuts", testCommitDeletesBeforePuts},
		{"CommitInvalidPartWritesNothing", testCommitAtomic},
		{"ReplaceMemberCache", testReplaceMemberCache},
		{"ReplaceMemberCacheInvalidWritesNothing", testReplaceMemberCacheInvalid},
		{"ReplaceMemberCacheKeepsTheListing", testReplaceMemberCacheKeepsTheListing},
		{"Grants", testGrants},
		{"GrantsOrderedByEndThenID", testGrantsOrder},
		{"GrantInvalidWritesNoAudit", testGrantInvalid},
		{"GCGrants", testGCGrants},
		{"AuditChain", testAuditChain},
		{"AuditSince", testAuditSince},
		{"AuditInvalidAppendsNothing", testAuditInvalid},
		{"AuditConcurrentAppends", testAuditConcurrent},
		{"Status", testStatus},
		{"AccountEmailsReadsOnlyTheAskedEmails", testAccountEmails},
		{"AccountEmailsManagedGrantsFollowsEveryLedgerWrite", testManagedGrantsTally},
		{"AccountEmailsManagedGrantsUnderConcurrentCommits", testManagedGrantsConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

const (
	acct  = "acc1"
	acct2 = "acc12" // acct is a prefix of it: keys must not leak between them
)

func ledgerOf(t *testing.T, s store.SyncState, accountID string) map[string]store.LedgerEntry {
	t.Helper()
	l, err := s.Ledger(accountID)
	noErr(t, "Ledger", err)
	return l
}

func cacheOf(t *testing.T, s store.SyncState, accountID string) map[string]store.CachedMember {
	t.Helper()
	c, err := s.CachedMembers(accountID)
	noErr(t, "CachedMembers", err)
	return c
}

func auditOf(t *testing.T, s store.SyncState, since time.Time) []store.AuditRecord {
	t.Helper()
	var out []store.AuditRecord
	noErr(t, "Audit", s.Audit(since, func(r store.AuditRecord) bool { out = append(out, r); return true }))
	return out
}

func verifyIntact(t *testing.T, s store.SyncState) {
	t.Helper()
	if seq, err := s.VerifyAudit(); seq != 0 || err != nil {
		t.Fatalf("VerifyAudit = %d, %v; want an intact trail", seq, err)
	}
}

func sameLedger(a, b store.LedgerEntry) bool {
	return a.AccountID == b.AccountID && a.Email == b.Email && a.MemberID == b.MemberID && a.Created == b.Created &&
		slices.Equal(a.Managed, b.Managed) && slices.Equal(a.Found, b.Found) && a.UpdatedAt.Equal(b.UpdatedAt) &&
		a.MissingSince.Equal(b.MissingSince)
}

func sameCached(a, b store.CachedMember) bool {
	return a.AccountID == b.AccountID && a.MemberID == b.MemberID && a.Email == b.Email && a.Status == b.Status &&
		slices.Equal(a.Keys, b.Keys)
}

func rec(minutes int, action, email string) store.AuditRecord {
	return store.AuditRecord{Time: at(minutes), Actor: "schedule", Action: action, AccountID: acct, Email: email}
}

func testLedgerRoundTrip(t *testing.T, s store.SyncState) {
	if l := ledgerOf(t, s, acct); len(l) != 0 {
		t.Fatalf("empty store has ledger %v", l)
	}
	alice := store.LedgerEntry{AccountID: acct, Email: "Alice@Example.com", MemberID: "m1", Created: true,
		Managed: []string{"role:admin", "role:billing"}, Found: []string{"role:read"}, UpdatedAt: at(1)}
	// bob was missing from one complete listing: ownership is kept, and
	// the mark must survive for the next listing to judge.
	bob := store.LedgerEntry{AccountID: acct, Email: "bob@example.com", MemberID: "m2", UpdatedAt: at(2), MissingSince: at(2)}
	noErr(t, "Commit", s.Commit(store.SyncCommit{PutLedger: []store.LedgerEntry{alice, bob}}))
	l := ledgerOf(t, s, acct)
	if len(l) != 2 || !sameLedger(l[store.Fold(alice.Email)], alice) || !sameLedger(l[store.Fold(bob.Email)], bob) {
		t.Fatalf("Ledger = %+v, want alice and bob as written, keyed by Fold(email)", l)
	}
	// Callers may change what they got without changing the store.
	l[store.Fold(alice.Email)].Managed[0] = "changed"
	if got := ledgerOf(t, s, acct)[store.Fold(alice.Email)]; !sameLedger(got, alice) {
		t.Fatalf("after editing a returned entry the store has %+v", got)
	}
	noErr(t, "Commit", s.Commit(store.SyncCommit{DeleteLedger: []store.LedgerEntry{{AccountID: acct, Email: bob.Email}}}))
	if l := ledgerOf(t, s, acct); len(l) != 1 || !sameLedger(l[store.Fold(alice.Email)], alice) {
		t.Fatalf("after deleting bob, Ledger = %+v", l)
	}
	// Deleting what is not there is not an error: the reconciler forgets
	// members idempotently.
	noErr(t, "Commit", s.Commit(store.SyncCommit{DeleteLedger: []store.LedgerEntry{{AccountID: acct, Email: "nobody@example.com"}}}))
}

func testLedgerEmailAnyCase(t *testing.T, s store.SyncState) {
	e := store.LedgerEntry{AccountID: acct, Email: "Alice@Example.com", MemberID: "m1", Managed: []string{"a"}, UpdatedAt: at(1)}
	noErr(t, "Commit", s.Commit(store.SyncCommit{PutLedger: []store.LedgerEntry{e}}))
	// The IdP changed the letter case: same member, email as last seen.
	e2 := e
	e2.Email, e2.Managed, e2.UpdatedAt = "ALICE@example.COM", []string{"a", "b"}, at(2)
	noErr(t, "Commit", s.Commit(store.SyncCommit{PutLedger: []store.LedgerEntry{e2}}))
	l := ledgerOf(t, s, acct)
	if len(l) != 1 || !sameLedger(l[store.Fold("alice@example.com")], e2) {
		t.Fatalf("Ledger = %+v, want one entry for alice as last written", l)
	}
	m := store.CachedMember{AccountID: acct, MemberID: "m1", Email: "alice@EXAMPLE.com", Status: "accepted"}
	noErr(t, "Commit", s.Commit(store.SyncCommit{PutCache: []store.CachedMember{m}}))
	noErr(t, "Commit", s.Commit(store.SyncCommit{
		DeleteLedger: []store.LedgerEntry{{AccountID: acct, Email: "alice@example.com"}},
		DeleteCache:  []store.CachedMember{{AccountID: acct, Email: "Alice@Example.Com"}},
	}))
	if l, c := ledgerOf(t, s, acct), cacheOf(t, s, acct); len(l) != 0 || len(c) != 0 {
		t.Fatalf("delete in another letter case left ledger %v, cache %v", l, c)
	}
}

func testAccountsAreSeparate(t *testing.T, s store.SyncState) {
	a := store.LedgerEntry{AccountID: acct, Email: "x@example.com", MemberID: "m1", UpdatedAt: at(1)}
	b := store.LedgerEntry{AccountID: acct2, Email: "x@example.com", MemberID: "m2", UpdatedAt: at(1)}
	noErr(t, "Commit", s.Commit(store.SyncCommit{
		PutLedger: []store.LedgerEntry{a, b},
		PutCache:  []store.CachedMember{{AccountID: acct2, MemberID: "m2", Email: "x@example.com"}},
	}))
	if l := ledgerOf(t, s, acct); len(l) != 1 || l[store.Fold(a.Email)].MemberID != "m1" {
		t.Fatalf("Ledger(%s) = %+v", acct, l)
	}
	if l := ledgerOf(t, s, acct2); len(l) != 1 || l[store.Fold(b.Email)].MemberID != "m2" {
		t.Fatalf("Ledger(%s) = %+v", acct2, l)
	}
	if c := cacheOf(t, s, acct); len(c) != 0 {
		t.Fatalf("CachedMembers(%s) = %+v, want none (only %s has one)", acct, c, acct2)
	}
	noErr(t, "ReplaceMemberCache", s.ReplaceMemberCache(acct, nil, at(2)))
	if c := cacheOf(t, s, acct2); len(c) != 1 {
		t.Fatalf("emptying %s's cache changed %s's: %+v", acct, acct2, c)
	}
	if ts, err := s.MemberCacheScannedAt(acct2); err != nil || !ts.IsZero() {
		t.Fatalf("MemberCacheScannedAt(%s) = %v, %v; want zero (never listed)", acct2, ts, err)
	}
}

func testCommitDeletesBeforePuts(t *testing.T, s store.SyncState) {
	old := store.LedgerEntry{AccountID: acct, Email: "a@example.com", MemberID: "old", UpdatedAt: at(1)}
	noErr(t, "Commit", s.Commit(store.SyncCommit{PutLedger: []store.LedgerEntry{old}}))
	nw := old
	nw.MemberID, nw.UpdatedAt = "new", at(2)
	noErr(t, "Commit", s.Commit(store.SyncCommit{
		DeleteLedger: []store.LedgerEntry{old},
		PutLedger:    []store.LedgerEntry{nw},
		PutCache:     []store.CachedMember{{AccountID: acct, MemberID: "new", Email: "A@example.com"}},
		DeleteCache:  []store.CachedMember{{AccountID: acct, Email: "a@example.com"}},
	}))
	if got := ledgerOf(t, s, acct)[store.Fold(old.Email)]; !sameLedger(got, nw) {
		t.Fatalf("ledger entry = %+v, want the put (%+v)", got, nw)
	}
	if c := cacheOf(t, s, acct); len(c) != 1 {
		t.Fatalf("cache = %+v, want the put member", c)
	}
}

func testCommitAtomic(t *testing.T, s store.SyncState) {
	keep := store.LedgerEntry{AccountID: acct, Email: "keep@example.com", MemberID: "m0", UpdatedAt: at(0)}
	noErr(t, "Commit", s.Commit(store.SyncCommit{PutLedger: []store.LedgerEntry{keep}, Audit: []store.AuditRecord{rec(0, "add_member", keep.Email)}}))
	good := store.SyncCommit{
		PutLedger:    []store.LedgerEntry{{AccountID: acct, Email: "a@example.com", MemberID: "m1", UpdatedAt: at(1)}},
		DeleteLedger: []store.LedgerEntry{keep},
		PutCache:     []store.CachedMember{{AccountID: acct, MemberID: "m1", Email: "a@example.com"}},
		Audit:        []store.AuditRecord{rec(1, "add_member", "a@example.com"), rec(1, "remove_member", keep.Email)},
	}
	for name, spoil := range map[string]func(c *store.SyncCommit){
		"ledger put without email": func(c *store.SyncCommit) { c.PutLedger = append(c.PutLedger, store.LedgerEntry{AccountID: acct}) },
		"ledger delete without account": func(c *store.SyncCommit) {
			c.DeleteLedger = append(c.DeleteLedger, store.LedgerEntry{Email: "b@example.com"})
		},
		"cache put without account":   func(c *store.SyncCommit) { c.PutCache = append(c.PutCache, store.CachedMember{Email: "b@example.com"}) },
		"cache delete without email":  func(c *store.SyncCommit) { c.DeleteCache = append(c.DeleteCache, store.CachedMember{AccountID: acct}) },
		"audit record without action": func(c *store.SyncCommit) { c.Audit = append(c.Audit, store.AuditRecord{Time: at(1)}) },
		"audit record without time":   func(c *store.SyncCommit) { c.Audit = append(c.Audit, store.AuditRecord{Action: "x"}) },
		"oversized email":             func(c *store.SyncCommit) { c.PutLedger[0].Email = strings.Repeat("x", 40000) },
	} {
		c := good
		c.PutLedger = slices.Clone(good.PutLedger)
		c.DeleteLedger = slices.Clone(good.DeleteLedger)
		c.PutCache = slices.Clone(good.PutCache)
		c.Audit = slices.Clone(good.Audit)
		spoil(&c)
		wantErr(t, "Commit with "+name, s.Commit(c), store.ErrInvalid)
		l, ca, au := ledgerOf(t, s, acct), cacheOf(t, s, acct), auditOf(t, s, time.Time{})
		if len(l) != 1 || !sameLedger(l[store.Fold(keep.Email)], keep) || len(ca) != 0 || len(au) != 1 {
			t.Fatalf("Commit with %s wrote something: ledger %+v, cache %+v, %d audit records", name, l, ca, len(au))
		}
	}
	verifyIntact(t, s)
	noErr(t, "Commit", s.Commit(good))
	if l, au := ledgerOf(t, s, acct), auditOf(t, s, time.Time{}); len(l) != 1 || l[store.Fold("a@example.com")].MemberID != "m1" || len(au) != 3 {
		t.Fatalf("after the good commit: ledger %+v, %d audit records", l, len(au))
	}
	verifyIntact(t, s)
}

func testReplaceMemberCache(t *testing.T, s store.SyncState) {
	if ts, err := s.MemberCacheScannedAt(acct); err != nil || !ts.IsZero() {
		t.Fatalf("MemberCacheScannedAt before any listing = %v, %v; want zero", ts, err)
	}
	first := []store.CachedMember{
		{AccountID: acct, MemberID: "m1", Email: "a@example.com", Status: "accepted", Keys: []string{"r1"}},
		{AccountID: acct, MemberID: "m2", Email: "b@example.com", Status: "pending", Keys: []string{"r1", "r2"}},
		{AccountID: acct, MemberID: "m3", Email: "c@example.com", Status: "accepted"},
	}
	noErr(t, "ReplaceMemberCache", s.ReplaceMemberCache(acct, first, at(5)))
	c := cacheOf(t, s, acct)
	if len(c) != 3 {
		t.Fatalf("cache has %d members, want 3", len(c))
	}
	for _, m := range first {
		if !sameCached(c[store.Fold(m.Email)], m) {
			t.Fatalf("cached %s = %+v, want %+v", m.Email, c[store.Fold(m.Email)], m)
		}
	}
	if ts, err := s.MemberCacheScannedAt(acct); err != nil || !ts.Equal(at(5)) {
		t.Fatalf("MemberCacheScannedAt = %v, %v; want %v", ts, err, at(5))
	}
	// b changed, c left, d arrived (AccountID omitted: it is the account's).
	second := []store.CachedMember{
		first[0],
		{AccountID: acct, MemberID: "m2", Email: "B@example.com", Status: "accepted", Keys: []string{"r3"}},
		{MemberID: "m4", Email: "d@example.com", Status: "pending"},
	}
	noErr(t, "ReplaceMemberCache", s.ReplaceMemberCache(acct, second, at(9)))
	c = cacheOf(t, s, acct)
	want := slices.Clone(second)
	want[2].AccountID = acct
	if len(c) != 3 {
		t.Fatalf("cache after the second listing = %+v, want exactly a, b, d", c)
	}
	for _, m := range want {
		if !sameCached(c[store.Fold(m.Email)], m) {
			t.Fatalf("cached %s = %+v, want %+v", m.Email, c[store.Fold(m.Email)], m)
		}
	}
	if ts, _ := s.MemberCacheScannedAt(acct); !ts.Equal(at(9)) {
		t.Fatalf("MemberCacheScannedAt = %v, want %v", ts, at(9))
	}
	noErr(t, "ReplaceMemberCache", s.ReplaceMemberCache(acct, nil, at(10)))
	if c := cacheOf(t, s, acct); len(c) != 0 {
		t.Fatalf("an empty listing left %+v", c)
	}
}

func testReplaceMemberCacheInvalid(t *testing.T, s store.SyncState) {
	m := store.CachedMember{AccountID: acct, MemberID: "m1", Email: "a@example.com"}
	noErr(t, "ReplaceMemberCache", s.ReplaceMemberCache(acct, []store.CachedMember{m}, at(1)))
	for name, members := range map[string][]store.CachedMember{
		"member of another account": {{AccountID: acct2, MemberID: "m2", Email: "b@example.com"}},
		"member without email":      {{MemberID: "m2"}},
	} {
		wantErr(t, "ReplaceMemberCache with "+name, s.ReplaceMemberCache(acct, members, at(2)), store.ErrInvalid)
		if c := cacheOf(t, s, acct); len(c) != 1 || !sameCached(c[store.Fold(m.Email)], m) {
			t.Fatalf("rejected listing (%s) changed the cache: %+v", name, c)
		}
		if ts, _ := s.MemberCacheScannedAt(acct); !ts.Equal(at(1)) {
			t.Fatalf("rejected listing (%s) moved the scan time to %v", name, ts)
		}
	}
	wantErr(t, "ReplaceMemberCache without account", s.ReplaceMemberCache("", nil, at(2)), store.ErrInvalid)
}

var grantIDPattern = regexp.MustCompile(`^g-[0-9a-f]{12}$`)

func sameGrant(a, b store.Grant) bool {
	return a.ID == b.ID && a.Email == b.Email && a.AccountID == b.AccountID && a.Role == b.Role && a.Mapping == b.Mapping &&
		a.Start.Equal(b.Start) && a.End.Equal(b.End) && a.Reason == b.Reason && a.Actor == b.Actor && a.RevokedAt.Equal(b.RevokedAt)
}

func testGrants(t *testing.T, s store.SyncState) {
	g := store.Grant{Email: "a@example.com", AccountID: acct, Role: "Administrator", Start: at(0), End: at(60),
		Reason: "incident 42", Actor: "grant"}
	audit := store.AuditRecord{Time: at(0), Actor: "grant", Action: "grant", AccountID: acct, Email: g.Email,
		After: []string{"Administrator"}, Privileged: true}
	got, err := s.PutGrant(g, audit)
	noErr(t, "PutGrant", err)
	if !grantIDPattern.MatchString(got.ID) {
		t.Fatalf("assigned grant id %q, want g- and 12 hex digits", got.ID)
	}
	g.ID = got.ID
	if !sameGrant(got, g) {
		t.Fatalf("PutGrant returned %+v, want %+v", got, g)
	}
	other, err := s.PutGrant(store.Grant{Email: "b@example.com", AccountID: acct, Mapping: "ops", Start: at(0), End: at(60)})
	noErr(t, "PutGrant", err)
	if other.ID == g.ID {
		t.Fatalf("two grants got the same id %q", g.ID)
	}
	read, err := s.GetGrant(g.ID)
	noErr(t, "GetGrant", err)
	if !sameGrant(read, g) {
		t.Fatalf("GetGrant = %+v, want %+v", read, g)
	}
	if au := auditOf(t, s, time.Time{}); len(au) != 1 || au[0].Action != "grant" || !au[0].Privileged {
		t.Fatalf("audit after PutGrant = %+v, want the grant record", au)
	}
	_, err = s.GetGrant("g-000000000000")
	wantErr(t, "GetGrant of an unknown id", err, store.ErrNotFound)
	_, err = s.GetGrant("")
	wantErr(t, "GetGrant of the empty id", err, store.ErrNotFound)

	// Revocation rewrites the same grant.
	g.RevokedAt = at(30)
	_, err = s.PutGrant(g, store.AuditRecord{Time: at(30), Action: "revoke", Email: g.Email, AccountID: acct})
	noErr(t, "PutGrant (revoke)", err)
	gs, err := s.Grants()
	noErr(t, "Grants", err)
	if len(gs) != 2 {
		t.Fatalf("Grants after a revocation = %+v, want the same two grants", gs)
	}
	if read, _ := s.GetGrant(g.ID); !read.RevokedAt.Equal(at(30)) {
		t.Fatalf("revoked grant reads back RevokedAt %v", read.RevokedAt)
	}
	if au := auditOf(t, s, time.Time{}); len(au) != 2 || au[1].Action != "revoke" {
		t.Fatalf("audit after revocation = %+v", au)
	}
}

func testGrantsOrder(t *testing.T, s store.SyncState) {
	put := func(id string, end int) {
		t.Helper()
		_, err := s.PutGrant(store.Grant{ID: id, Email: id + "@example.com", AccountID: acct, Role: "r", Start: at(0), End: at(end)})
		noErr(t, "PutGrant "+id, err)
	}
	put("g-c", 30)
	put("g-a", 90)
	put("g-b", 30)
	put("g-d", 10)
	gs, err := s.Grants()
	noErr(t, "Grants", err)
	var ids []string
	for _, g := range gs {
		ids = append(ids, g.ID)
	}
	if want := []string{"g-d", "g-b", "g-c", "g-a"}; !slices.Equal(ids, want) {
		t.Fatalf("Grants order = %v, want %v (by End, then ID)", ids, want)
	}
}

func testGrantInvalid(t *testing.T, s store.SyncState) {
	audit := store.AuditRecord{Time: at(0), Action: "grant", AccountID: acct, Email: "a@example.com"}
	for name, g := range map[string]store.Grant{
		"no email":            {AccountID: acct, Role: "r", Start: at(0), End: at(1)},
		"no account":          {Email: "a@example.com", Role: "r", Start: at(0), End: at(1)},
		"no end":              {Email: "a@example.com", AccountID: acct, Role: "r", Start: at(0)},
		"end before start":    {Email: "a@example.com", AccountID: acct, Role: "r", Start: at(5), End: at(1)},
		"oversized caller id": {ID: strings.Repeat("g", 40000), Email: "a@example.com", AccountID: acct, Start: at(0), End: at(1)},
	} {
		_, err := s.PutGrant(g, audit)
		wantErr(t, "PutGrant with "+name, err, store.ErrInvalid)
	}
	_, err := s.PutGrant(store.Grant{Email: "a@example.com", AccountID: acct, Role: "r", Start: at(0), End: at(1)}, store.AuditRecord{Time: at(0)})
	wantErr(t, "PutGrant with an invalid audit record", err, store.ErrInvalid)
	if gs, err := s.Grants(); err != nil || len(gs) != 0 {
		t.Fatalf("rejected grants left %+v, %v", gs, err)
	}
	if au := auditOf(t, s, time.Time{}); len(au) != 0 {
		t.Fatalf("rejected grants left audit records %+v", au)
	}
}

func testGCGrants(t *testing.T, s store.SyncState) {
	put := func(id string, end int, revoked int) {
		t.Helper()
		g := store.Grant{ID: id, Email: "a@example.com", AccountID: acct, Role: "r", Start: at(0), End: at(end)}
		if revoked >= 0 {
			g.RevokedAt = at(revoked)
		}
		_, err := s.PutGrant(g)
		noErr(t, "PutGrant "+id, err)
	}
	put("g-ended", 50, -1)
	put("g-ends-at-cutoff", 100, -1)
	put("g-active", 500, -1)
	put("g-revoked-early", 500, 20)
	put("g-revoked-late", 500, 150)
	n, err := s.GCGrants(at(100))
	noErr(t, "GCGrants", err)
	gs, _ := s.Grants()
	var ids []string
	for _, g := range gs {
		ids = append(ids, g.ID)
	}
	slices.Sort(ids)
	if want := []string{"g-active", "g-ends-at-cutoff", "g-revoked-late"}; n != 2 || !slices.Equal(ids, want) {
		t.Fatalf("GCGrants(cutoff) = %d leaving %v; want 2 leaving %v", n, ids, want)
	}
	if n, err := s.GCGrants(at(100)); n != 0 || err != nil {
		t.Fatalf("second GCGrants = %d, %v; want 0", n, err)
	}
}

func testAuditChain(t *testing.T, s store.SyncState) {
	verifyIntact(t, s) // an empty trail is intact
	when := time.Date(2026, 3, 1, 10, 0, 0, 987654321, time.FixedZone("CET", 3600))
	first := store.AuditRecord{Time: when, Actor: "idp-push", Action: "update_roles", AccountID: acct, Email: "a@example.com",
		Before: []string{"Read"}, After: []string{"Read", "Admin <all>"}, Reason: "group \"ops\" → mapping", Privileged: true,
		Sources: []store.AuditSource{
			{Role: "Admin <all>", Kind: "mapping", Group: "ops", Path: []string{"ops", "oncall"}, MappingIndex: 1, Expires: when.Add(time.Hour)},
			{Role: "Read", Kind: "grant", GrantID: "g-1", MappingIndex: -1},
		},
		WithheldBy: "guard", Version: 1,
		Seq: 99, PrevHash: "caller values", Hash: "are ignored"}
	noErr(t, "AppendAudit", s.AppendAudit(first, rec(1, "remove_member", "b@example.com")))
	noErr(t, "Commit", s.Commit(store.SyncCommit{Audit: []store.AuditRecord{rec(2, "add_member", "c@example.com")}}))
	_, err := s.PutGrant(store.Grant{Email: "d@example.com", AccountID: acct, Role: "r", Start: at(3), End: at(4)}, rec(3, "grant", "d@example.com"))
	noErr(t, "PutGrant", err)
	noErr(t, "AppendAudit", s.AppendAudit()) // nothing to append is fine

	au := auditOf(t, s, time.Time{})
	if len(au) != 4 {
		t.Fatalf("%d audit records, want 4", len(au))
	}
	hex64 := regexp.MustCompile(`^[0-9a-f]{64}$`)
	prev := ""
	for i, r := range au {
		if r.Seq != uint64(i+1) || r.PrevHash != prev || !hex64.MatchString(r.Hash) {
			t.Fatalf("record %d: Seq %d PrevHash %q Hash %q; want Seq %d linked to %q", i, r.Seq, r.PrevHash, r.Hash, i+1, prev)
		}
		prev = r.Hash
	}
	got := au[0]
	if !got.Time.Equal(when) || got.Time.Location() != time.UTC || got.Actor != first.Actor || got.Action != first.Action ||
		got.AccountID != acct || got.Email != first.Email || !slices.Equal(got.Before, first.Before) ||
		!slices.Equal(got.After, first.After) || got.Reason != first.Reason || !got.Privileged ||
		got.WithheldBy != "guard" || got.Version != store.AuditVersion || len(got.Sources) != 2 ||
		got.Sources[0].Role != "Admin <all>" || !slices.Equal(got.Sources[0].Path, []string{"ops", "oncall"}) ||
		!got.Sources[0].Expires.Equal(when.Add(time.Hour)) || got.Sources[1].GrantID != "g-1" {
		t.Fatalf("first record reads back as %+v, want %+v in UTC, written as version %d with its sources", got, first, store.AuditVersion)
	}
	if want := []string{"remove_member", "add_member", "grant"}; au[1].Action != want[0] || au[2].Action != want[1] || au[3].Action != want[2] {
		t.Fatalf("records out of order: %+v", au)
	}
	verifyIntact(t, s)
	n := 0
	noErr(t, "Audit", s.Audit(time.Time{}, func(store.AuditRecord) bool { n++; return n < 2 }))
	if n != 2 {
		t.Fatalf("Audit went on after fn returned false: %d calls", n)
	}
}

func testAuditSince(t *testing.T, s store.SyncState) {
	// Times need not grow with Seq (the clock is the caller's); since
	// filters on Time, order stays Seq.
	noErr(t, "AppendAudit", s.AppendAudit(rec(10, "a", ""), rec(5, "b", ""), rec(20, "c", ""), rec(15, "d", "")))
	var actions []string
	for _, r := range auditOf(t, s, at(15)) {
		actions = append(actions, r.Action)
	}
	if want := []string{"c", "d"}; !slices.Equal(actions, want) {
		t.Fatalf("Audit(since t+15m) = %v, want %v", actions, want)
	}
	if au := auditOf(t, s, at(21)); len(au) != 0 {
		t.Fatalf("Audit after the last record = %+v", au)
	}
}

func testAuditInvalid(t *testing.T, s store.SyncState) {
	noErr(t, "AppendAudit", s.AppendAudit(rec(0, "first", "")))
	for name, r := range map[string]store.AuditRecord{
		"no action":      {Time: at(1)},
		"no time":        {Action: "x"},
		"year past 9999": {Action: "x", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	} {
		wantErr(t, "AppendAudit with "+name, s.AppendAudit(rec(1, "ok", ""), r), store.ErrInvalid)
	}
	if au := auditOf(t, s, time.Time{}); len(au) != 1 {
		t.Fatalf("rejected appends left %d records, want 1", len(au))
	}
	noErr(t, "AppendAudit", s.AppendAudit(rec(2, "second", "")))
	if au := auditOf(t, s, time.Time{}); len(au) != 2 || au[1].Seq != 2 {
		t.Fatalf("after rejected appends the next record is %+v, want Seq 2", au)
	}
	verifyIntact(t, s)
}

func testAuditConcurrent(t *testing.T, s store.SyncState) {
	const writers, each = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if err := s.AppendAudit(rec(i, fmt.Sprintf("w%d-%d", w, i), "")); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent AppendAudit: %v", err)
	}
	au := auditOf(t, s, time.Time{})
	seen := map[string]bool{}
	for i, r := range au {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has Seq %d: concurrent appends must not leave gaps or repeats", i, r.Seq)
		}
		seen[r.Action] = true
	}
	if len(au) != writers*each || len(seen) != writers*each {
		t.Fatalf("%d records (%d distinct), want %d", len(au), len(seen), writers*each)
	}
	verifyIntact(t, s)
}

func testStatus(t *testing.T, s store.SyncState) {
	if v, err := s.Status("last-run"); v != nil || err != nil {
		t.Fatalf("Status of an absent key = %q, %v; want nil, nil", v, err)
	}
	val := []byte(`{"ok":true}`)
	noErr(t, "PutStatus", s.PutStatus("last-run", val))
	val[0] = 'X' // the store keeps its own copy
	v, err := s.Status("last-run")
	noErr(t, "Status", err)
	if string(v) != `{"ok":true}` {
		t.Fatalf("Status = %q", v)
	}
	v[0] = 'Y' // and hands out copies
	noErr(t, "PutStatus", s.PutStatus("other", []byte("2")))
	noErr(t, "PutStatus", s.PutStatus("last-run", []byte("v2")))
	if v, _ := s.Status("last-run"); string(v) != "v2" {
		t.Fatalf("Status after overwrite = %q", v)
	}
	if v, _ := s.Status("other"); string(v) != "2" {
		t.Fatalf("Status(other) = %q", v)
	}
	wantErr(t, "PutStatus with an empty key", s.PutStatus("", []byte("x")), store.ErrInvalid)
}

// managedSum is the guard's percent base as a full read computes it.
func managedSum(t *testing.T, s store.SyncState, accountID string) int {
	t.Helper()
	n := 0
	for _, e := range ledgerOf(t, s, accountID) {
		n += len(e.Managed)
	}
	return n
}

// checkTally asserts that AccountEmails' ManagedGrants is what counting
// the whole ledger gives, for both accounts.
func checkTally(t *testing.T, s store.SyncState, when string) {
	t.Helper()
	for _, a := range []string{acct, acct2} {
		got, err := s.AccountEmails(a, nil)
		noErr(t, "AccountEmails", err)
		if want := managedSum(t, s, a); got.ManagedGrants != want {
			t.Fatalf("%s: AccountEmails(%s).ManagedGrants = %d, the ledger holds %d managed keys", when, a, got.ManagedGrants, want)
		}
	}
}

func testAccountEmails(t *testing.T, s store.SyncState) {
	led := func(account, email, member string, managed ...string) store.LedgerEntry {
		return store.LedgerEntry{AccountID: account, Email: email, MemberID: member, Managed: managed, UpdatedAt: at(1)}
	}
	alice := led(acct, "Alice@Example.com", "m1", "role:a", "role:b")
	bob := led(acct, "bob@example.com", "", "role:a") // an intent: no member id yet
	carol := led(acct, "carol@example.com", "m3")
	other := led(acct2, "alice@example.com", "m9", "role:z")
	noErr(t, "Commit", s.Commit(store.SyncCommit{PutLedger: []store.LedgerEntry{alice, bob, carol, other}}))
	noErr(t, "ReplaceMemberCache", s.ReplaceMemberCache(acct, []store.CachedMember{
		{MemberID: "m1", Email: "alice@example.com", Status: "accepted", Keys: []string{"role:a", "role:b"}},
		{MemberID: "m4", Email: "dave@example.com", Status: "pending"},
		{MemberID: "m3", Email: "carol@example.com", Status: "accepted", Keys: []string{"role:x"}},
	}, at(5)))
	noErr(t, "Commit", s.Commit(store.SyncCommit{PutCache: []store.CachedMember{{AccountID: acct2, MemberID: "m9", Email: "dave@example.com"}}}))

	// Any letter case; an email with neither; one only in the cache; one
	// asked twice; an empty one.
	got, err := s.AccountEmails(acct, []string{"ALICE@example.com", "nobody@example.com", "Dave@Example.com", "bob@example.com", "bob@example.com", ""})
	noErr(t, "AccountEmails", err)
	fullL, fullC := ledgerOf(t, s, acct), cacheOf(t, s, acct)
	wantL := map[string]bool{store.Fold(alice.Email): true, store.Fold(bob.Email): true}
	wantC := map[string]bool{store.Fold("alice@example.com"): true, store.Fold("dave@example.com"): true}
	if len(got.Ledger) != len(wantL) || len(got.Cached) != len(wantC) {
		t.Fatalf("AccountEmails ledger %+v, cache %+v; want the entries of %v and %v only", got.Ledger, got.Cached, wantL, wantC)
	}
	for k := range wantL {
		if e, ok := got.Ledger[k]; !ok || !sameLedger(e, fullL[k]) {
			t.Errorf("AccountEmails ledger[%s] = %+v, Ledger has %+v", k, e, fullL[k])
		}
	}
	for k := range wantC {
		if m, ok := got.Cached[k]; !ok || !sameCached(m, fullC[k]) {
			t.Errorf("AccountEmails cache[%s] = %+v, CachedMembers has %+v", k, m, fullC[k])
		}
	}
	if got.ManagedGrants != 3 {
		t.Errorf("ManagedGrants = %d, want 3 (alice's 2, bob's intent 1, carol 0; not %s's)", got.ManagedGrants, acct2)
	}
	if want, _ := s.MemberCacheScannedAt(acct); !got.ScannedAt.Equal(want) || want.IsZero() {
		t.Errorf("ScannedAt = %v, MemberCacheScannedAt = %v", got.ScannedAt, want)
	}
	// acct is a prefix of acct2: nothing of one shows in the other.
	got2, err := s.AccountEmails(acct2, []string{"alice@example.com", "carol@example.com", "dave@example.com"})
	noErr(t, "AccountEmails", err)
	if len(got2.Ledger) != 1 || got2.Ledger[store.Fold("alice@example.com")].MemberID != "m9" || len(got2.Cached) != 1 ||
		got2.ManagedGrants != 1 || !got2.ScannedAt.IsZero() {
		t.Fatalf("AccountEmails(%s) = %+v", acct2, got2)
	}
	// Callers may change what they got without changing the store.
	got.Ledger[store.Fold(alice.Email)].Managed[0] = "changed"
	got.Cached[store.Fold(alice.Email)].Keys[0] = "changed"
	if l, c := ledgerOf(t, s, acct)[store.Fold(alice.Email)], cacheOf(t, s, acct)[store.Fold(alice.Email)]; l.Managed[0] != "role:a" || c.Keys[0] != "role:a" {
		t.Fatalf("editing what AccountEmails returned changed the store: %+v %+v", l, c)
	}
	wantErr(t, "AccountEmails without account", func() error { _, err := s.AccountEmails("", []string{"a@example.com"}); return err }(), store.ErrInvalid)
}

func testManagedGrantsTally(t *testing.T, s store.SyncState) {
	checkTally(t, s, "empty")
	e := func(account, email string, managed ...string) store.LedgerEntry {
		return store.LedgerEntry{AccountID: account, Email: email, MemberID: "m-" + email, Managed: managed, UpdatedAt: at(1)}
	}
	steps := []struct {
		name string
		c    store.SyncCommit
	}{
		{"puts", store.SyncCommit{PutLedger: []store.LedgerEntry{
			e(acct, "a@example.com", "k1", "k2"), e(acct, "b@example.com", "k1"), e(acct2, "a@example.com", "k1", "k2", "k3"), e(acct, "c@example.com"),
		}}},
		{"an entry replaced by one with more keys, in another letter case", store.SyncCommit{PutLedger: []store.LedgerEntry{e(acct, "A@Example.com", "k1", "k2", "k3", "k4")}}},
		{"an entry replaced by one with fewer", store.SyncCommit{PutLedger: []store.LedgerEntry{e(acct2, "a@example.com")}}},
		{"one email put twice in one commit", store.SyncCommit{PutLedger: []store.LedgerEntry{e(acct, "d@example.com", "k1"), e(acct, "D@example.com", "k1", "k2")}}},
		{"a delete", store.SyncCommit{DeleteLedger: []store.LedgerEntry{{AccountID: acct, Email: "b@example.com"}}}},
		{"a delete of what is not there", store.SyncCommit{DeleteLedger: []store.LedgerEntry{{AccountID: acct, Email: "zz@example.com"}}}},
		{"delete and put of one email", store.SyncCommit{
			DeleteLedger: []store.LedgerEntry{{AccountID: acct, Email: "c@example.com"}},
			PutLedger:    []store.LedgerEntry{e(acct, "C@example.com", "k9")},
		}},
		{"cache writes only", store.SyncCommit{PutCache: []store.CachedMember{{AccountID: acct, MemberID: "m", Email: "a@example.com", Keys: []string{"k1"}}}}},
	}
	for _, st := range steps {
		noErr(t, "Commit "+st.name, s.Commit(st.c))
		checkTally(t, s, "after "+st.name)
	}
	before, err := s.AccountEmails(acct, nil)
	noErr(t, "AccountEmails", err)
	// A commit refused as a whole counts nothing either.
	wantErr(t, "Commit with an invalid part", s.Commit(store.SyncCommit{PutLedger: []store.LedgerEntry{
		e(acct, "new@example.com", "k1", "k2"), {AccountID: acct},
	}}), store.ErrInvalid)
	checkTally(t, s, "after a refused commit")
	if after, _ := s.AccountEmails(acct, nil); after.ManagedGrants != before.ManagedGrants {
		t.Fatalf("a refused commit moved ManagedGrants from %d to %d", before.ManagedGrants, after.ManagedGrants)
	}
	// Emptying the ledger brings the count to zero.
	var all []store.LedgerEntry
	for _, a := range []string{acct, acct2} {
		for _, l := range ledgerOf(t, s, a) {
			all = append(all, store.LedgerEntry{AccountID: a, Email: l.Email})
		}
	}
	noErr(t, "Commit", s.Commit(store.SyncCommit{DeleteLedger: all}))
	checkTally(t, s, "after deleting every entry")
	if got, _ := s.AccountEmails(acct, nil); got.ManagedGrants != 0 {
		t.Fatalf("empty ledger: ManagedGrants = %d", got.ManagedGrants)
	}
}

// testManagedGrantsConcurrent: writers racing on the same and on
// different emails of one account leave the count equal to the ledger's.
func testManagedGrantsConcurrent(t *testing.T, s store.SyncState) {
	const writers, rounds = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Go(func() {
			for r := range rounds {
				keys := make([]string, (w+r)%4)
				for i := range keys {
					keys[i] = fmt.Sprintf("k%d", i)
				}
				c := store.SyncCommit{PutLedger: []store.LedgerEntry{
					{AccountID: acct, Email: fmt.Sprintf("shared%d@example.com", r%3), MemberID: "m", Managed: keys, UpdatedAt: at(r)},
					{AccountID: acct, Email: fmt.Sprintf("w%d-%d@example.com", w, r), MemberID: "m", Managed: keys, UpdatedAt: at(r)},
				}}
				if r%3 == 2 {
					c.DeleteLedger = []store.LedgerEntry{{AccountID: acct, Email: fmt.Sprintf("w%d-%d@example.com", w, r-1)}}
				}
				if err := s.Commit(c); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Commit: %v", err)
	}
	checkTally(t, s, "after concurrent commits")
}

// testReplaceMemberCacheKeepsTheListing: after each of many listings (new,
// changed, dropped and listed-again members, one member listed twice in
// any spelling of its email, an empty listing), the cache holds exactly
// the listing — of members listed under one folded email, the last
// listed — and another account's cache is untouched.
func testReplaceMemberCacheKeepsTheListing(t *testing.T, s store.SyncState) {
	const other = acct + "-other"
	mine := []store.CachedMember{{AccountID: other, MemberID: "o1", Email: "user1@example.com", Status: "accepted"}, {AccountID: other, MemberID: "o2", Email: "zed@example.com"}}
	noErr(t, "ReplaceMemberCache", s.ReplaceMemberCache(other, mine, at(1)))
	rng := rand.New(rand.NewPCG(7, 12))
	spell := []func(string) string{strings.ToLower, strings.ToUpper, func(e string) string { return strings.ToUpper(e[:1]) + e[1:] }}
	for round := range 120 {
		var listing []store.CachedMember
		if round%25 != 24 {
			for range rng.IntN(60) {
				listing = append(listing, store.CachedMember{
					MemberID: "m" + strconv.Itoa(rng.IntN(1000)),
					Email:    spell[rng.IntN(len(spell))]("user" + strconv.Itoa(rng.IntN(40)) + "@example.com"),
					Status:   []string{"accepted", "pending"}[rng.IntN(2)],
					Keys:     []string{"role:" + strconv.Itoa(rng.IntN(3))},
				})
			}
		}
		want := map[string]store.CachedMember{}
		for _, m := range listing {
			m.AccountID = acct
			want[store.Fold(m.Email)] = m
		}
		noErr(t, "ReplaceMemberCache", s.ReplaceMemberCache(acct, listing, at(2)))
		got := cacheOf(t, s, acct)
		if len(got) != len(want) {
			t.Fatalf("round %d: the cache holds %d members, the listing %d", round, len(got), len(want))
		}
		for k, m := range want {
			if !sameCached(got[k], m) {
				t.Fatalf("round %d: cached %s = %+v, want the last listed %+v", round, k, got[k], m)
			}
		}
	}
	got := cacheOf(t, s, other)
	if len(got) != 2 || !sameCached(got[store.Fold("zed@example.com")], mine[1]) || !sameCached(got[store.Fold("user1@example.com")], mine[0]) {
		t.Fatalf("the other account's cache: %+v", got)
	}
}
