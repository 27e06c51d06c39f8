package storetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
)

// RunBackend is the conformance suite for what store.Backend adds to
// Store and SyncState: audited token writes, the audit head, concurrent
// SCIM writers, Dump/Load (the copy between backends) and BackupFile. A
// backend must pass Run, RunSync and RunBackend. open must return a new,
// empty backend that is closed when t ends.
func RunBackend(t *testing.T, open func(t *testing.T) store.Backend) {
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(t *testing.T) store.Backend)
	}{
		{"Tokens", testTokens},
		{"TokenWritesAreAuditedAtomically", testTokensAudited},
		{"AuditHead", testAuditHead},
		{"ConcurrentCreatesOneNameOneWinner", testConcurrentCreates},
		{"ConcurrentMemberAddsAllLand", testConcurrentMemberAdds},
		{"ConcurrentUpdatesOfOneUserAllApply", testConcurrentUpdates},
		{"DeleteRacingAddLeavesNoDanglingEdge", testDeleteRacingAdd},
		{"CopyKeepsEverything", testCopy},
		{"CopyRefusesNonEmptyTarget", testCopyRefusesNonEmpty},
		{"LoadRefusesForgedAudit", testLoadForgedAudit},
		{"BackupFileIsABoltStateFile", testBackupFile},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open)
		})
	}
}

func testTokens(t *testing.T, open func(t *testing.T) store.Backend) {
	s := open(t)
	if ts, err := s.Tokens(); err != nil || len(ts) != 0 {
		t.Fatalf("Tokens on empty store = %v, %v", ts, err)
	}
	okta := store.Token{Name: "okta", Hash: []byte{1, 2, 3}, CreatedAt: at(0), ExpiresAt: at(60 * 24 * 90)}
	entra := store.Token{Name: "entra", Hash: []byte{4, 5}, CreatedAt: at(1)}
	noErr(t, "PutTokenAudited okta", s.PutTokenAudited(okta))
	noErr(t, "PutTokenAudited entra", s.PutTokenAudited(entra))
	wantErr(t, "PutTokenAudited dup", s.PutTokenAudited(store.Token{Name: "okta", Hash: []byte{9}}), store.ErrConflict)
	wantErr(t, "PutTokenAudited no name", s.PutTokenAudited(store.Token{Hash: []byte{9}}), store.ErrInvalid)

	ts, err := s.Tokens()
	noErr(t, "Tokens", err)
	if len(ts) != 2 {
		t.Fatalf("Tokens = %+v", ts)
	}
	for i, want := range []store.Token{entra, okta} { // ordered by name
		got := ts[i]
		if got.Name != want.Name || string(got.Hash) != string(want.Hash) || !got.CreatedAt.Equal(want.CreatedAt) ||
			!got.ExpiresAt.Equal(want.ExpiresAt) || got.ExpiresAt.IsZero() != want.ExpiresAt.IsZero() {
			t.Fatalf("token %d = %+v, want %+v", i, got, want)
		}
	}
	noErr(t, "DeleteTokenAudited", s.DeleteTokenAudited("okta"))
	wantErr(t, "DeleteTokenAudited twice", s.DeleteTokenAudited("okta"), store.ErrNotFound)
	ts, err = s.Tokens()
	noErr(t, "Tokens", err)
	if len(ts) != 1 || ts[0].Name != "entra" {
		t.Fatalf("Tokens after delete = %+v", ts)
	}
}

func testTokensAudited(t *testing.T, open func(t *testing.T) store.Backend) {
	s := open(t)
	rec := store.AuditRecord{Time: at(0), Actor: "token", Action: "token_create", Reason: "t1"}
	noErr(t, "PutTokenAudited", s.PutTokenAudited(store.Token{Name: "okta", Hash: []byte("h"), CreatedAt: at(0)}, rec))
	// A refused write leaves no audit record behind.
	wantErr(t, "duplicate token", s.PutTokenAudited(store.Token{Name: "okta", Hash: []byte("h"), CreatedAt: at(0)}, rec), store.ErrConflict)
	wantErr(t, "revoke unknown", s.DeleteTokenAudited("nope", store.AuditRecord{Time: at(1), Actor: "token", Action: "token_revoke"}), store.ErrNotFound)
	if got := auditOf(t, s, time.Time{}); len(got) != 1 {
		t.Fatalf("audit records = %d, want 1 (failed writes must not audit)", len(got))
	}
	// An invalid audit record stops the token write.
	wantErr(t, "revoke with an invalid record", s.DeleteTokenAudited("okta", store.AuditRecord{Time: at(1), Actor: "token"}), store.ErrInvalid)
	wantErr(t, "create with an invalid record", s.PutTokenAudited(store.Token{Name: "entra", Hash: []byte("h")}, store.AuditRecord{Actor: "token", Action: "x"}), store.ErrInvalid)
	ts, err := s.Tokens()
	noErr(t, "Tokens", err)
	if len(ts) != 1 || ts[0].Name != "okta" {
		t.Fatalf("after refused writes Tokens = %+v, want only okta", ts)
	}
	noErr(t, "DeleteTokenAudited", s.DeleteTokenAudited("okta", store.AuditRecord{Time: at(2), Actor: "token", Action: "token_revoke"}))
	if got := auditOf(t, s, time.Time{}); len(got) != 2 || got[1].Action != "token_revoke" {
		t.Fatalf("audit after revoke = %+v", got)
	}
	verifyIntact(t, s)
}

func testAuditHead(t *testing.T, open func(t *testing.T) store.Backend) {
	s := open(t)
	if seq, hash, err := s.AuditHead(); seq != 0 || hash != "" || err != nil {
		t.Fatalf("AuditHead of an empty trail = %d, %q, %v", seq, hash, err)
	}
	noErr(t, "AppendAudit", s.AppendAudit(rec(1, "a", ""), rec(2, "b", "")))
	noErr(t, "Commit", s.Commit(store.SyncCommit{Audit: []store.AuditRecord{rec(3, "c", "")}}))
	au := auditOf(t, s, time.Time{})
	seq, hash, err := s.AuditHead()
	noErr(t, "AuditHead", err)
	if last := au[len(au)-1]; seq != 3 || seq != last.Seq || hash != last.Hash {
		t.Fatalf("AuditHead = %d %q, want the last record's %d %q", seq, hash, last.Seq, last.Hash)
	}
}

// parallel runs n copies of fn at once and fails t with the first error.
func parallel(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			if err := fn(i); err != nil {
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Several replicas or SCIM workers create users at once: every distinct
// name lands once, and of writers racing for one name exactly one wins,
// the others get ErrConflict (never a storage error a client sees as 500).
func testConcurrentCreates(t *testing.T, open func(t *testing.T) store.Backend) {
	s := open(t)
	const writers = 8
	var mu sync.Mutex
	won := 0
	parallel(t, writers, func(i int) error {
		if _, err := s.CreateUser(at(0), store.User{UserName: fmt.Sprintf("user%d", i), Active: true}); err != nil {
			return fmt.Errorf("CreateUser user%d: %w", i, err)
		}
		_, err := s.CreateUser(at(0), store.User{UserName: fmt.Sprintf("SAME-%d", i%2)})
		switch {
		case err == nil:
			mu.Lock()
			won++
			mu.Unlock()
		case !errors.Is(err, store.ErrConflict):
			return fmt.Errorf("racing CreateUser: %v, want nil or ErrConflict", err)
		}
		return nil
	})
	if won != 2 {
		t.Fatalf("%d creates of 2 contested names succeeded, want exactly 2", won)
	}
	count(t, "CountUsers", s.CountUsers, writers+2)
}

// Adds to one group from many writers all land and the count agrees.
func testConcurrentMemberAdds(t *testing.T, open func(t *testing.T) store.Backend) {
	s := open(t)
	const writers, each = 6, 5
	ids := make([]string, writers*each)
	for i := range ids {
		ids[i] = createUser(t, s, at(0), store.User{UserName: fmt.Sprintf("u%d", i)}).ID
	}
	g := createGroup(t, s, at(0), "g")
	parallel(t, writers, func(w int) error {
		for i := range each {
			ref := store.MemberRef{ID: ids[w*each+i], Type: store.MemberUser}
			if _, err := s.UpdateGroup(g.ID, at(1), 0, func(tx store.GroupTx) error {
				_, err := tx.AddMember(ref)
				return err
			}); err != nil {
				return fmt.Errorf("AddMember: %w", err)
			}
		}
		return nil
	})
	countMembers(t, s, g.ID, writers*each)
	if got := memberIDs(t, s, g.ID); !slices.Equal(got, sortedIDs(ids...)) {
		t.Fatalf("members = %v, want %v", got, sortedIDs(ids...))
	}
	if gg := getGroup(t, s, g.ID); gg.Meta.Version != 1+writers*each {
		t.Fatalf("group version = %d after %d member adds, want %d: an add was lost or counted twice", gg.Meta.Version, writers*each, 1+writers*each)
	}
}

// Read-modify-write of one user from many writers: no update is lost
// (each appends to the Doc list), Version counts every one.
func testConcurrentUpdates(t *testing.T, open func(t *testing.T) store.Backend) {
	s := open(t)
	u := createUser(t, s, at(0), store.User{UserName: "u", Doc: []byte(`{"n":0}`)})
	const writers, each = 4, 5
	parallel(t, writers, func(int) error {
		for range each {
			if _, err := s.UpdateUser(u.ID, at(1), 0, func(u *store.User) error {
				var n int
				if _, err := fmt.Sscanf(string(u.Doc), `{"n":%d}`, &n); err != nil {
					return err
				}
				u.Doc = fmt.Appendf(nil, `{"n":%d}`, n+1)
				return nil
			}); err != nil {
				return fmt.Errorf("UpdateUser: %w", err)
			}
		}
		return nil
	})
	got := getUser(t, s, u.ID)
	if want := fmt.Sprintf(`{"n":%d}`, writers*each); string(got.Doc) != want || got.Meta.Version != 1+writers*each {
		t.Fatalf("after %d concurrent increments: doc %s version %d, want %s version %d", writers*each, got.Doc, got.Meta.Version, want, 1+writers*each)
	}
}

// A user deleted while another writer adds it to groups: whichever
// commits first, no edge may outlive the user (a dangling edge would be a
// member the reconciler cannot resolve, or a grant for a leaver).
func testDeleteRacingAdd(t *testing.T, open func(t *testing.T) store.Backend) {
	s := open(t)
	g1, g2 := createGroup(t, s, at(0), "g1"), createGroup(t, s, at(0), "g2")
	for round := range 15 {
		u := createUser(t, s, at(1), store.User{UserName: fmt.Sprintf("u%d", round)})
		parallel(t, 3, func(i int) error {
			switch i {
			case 0:
				_, err := s.DeleteUser(u.ID)
				return err
			default:
				g := []store.Group{g1, g2}[i-1]
				_, err := s.UpdateGroup(g.ID, at(2), 0, func(tx store.GroupTx) error {
					_, err := tx.AddMember(userRef(u))
					return err
				})
				if errors.Is(err, store.ErrMemberNotFound) {
					return nil // the delete came first
				}
				return err
			}
		})
		for _, g := range []store.Group{g1, g2} {
			if ok, err := s.IsMember(g.ID, u.ID); err != nil || ok {
				t.Fatalf("round %d: deleted user is still a member of %s (%v)", round, g.DisplayName, err)
			}
			countMembers(t, s, g.ID, 0)
		}
	}
}

// Populate fills s with a little of everything Copy must carry: users
// (active and not, with externalIds, emails and docs), groups with user
// and group members added at different times, tokens, ledger entries in
// two accounts, a member cache with its scan time, grants (one revoked),
// an audit trail of several transactions, and status entries.
func Populate(t *testing.T, s store.Backend) {
	t.Helper()
	var users []store.User
	for i := range 12 {
		u := createUser(t, s, at(i), store.User{
			UserName: fmt.Sprintf("User%d@Example.com", i), ExternalID: fmt.Sprintf("ext-%d", i%5),
			Email: fmt.Sprintf("user%d@example.com", i), Active: i%3 != 0,
			Doc: []byte(fmt.Sprintf(`{"name":{"givenName":"G%d"},"title":"t\u00e9"}`, i)),
		})
		users = append(users, u)
	}
	_, err := s.UpdateUser(users[1].ID, at(20), 0, func(u *store.User) error { u.Active = false; u.Email = "moved@example.com"; return nil })
	noErr(t, "UpdateUser", err)
	inner := createGroup(t, s, at(30), "Inner", userRef(users[0]), userRef(users[1]))
	outer := createGroup(t, s, at(31), "Outer", groupRef(inner), userRef(users[2]))
	_, err = s.UpdateGroup(outer.ID, at(40), 0, func(tx store.GroupTx) error {
		for _, u := range users[3:9] {
			if _, err := tx.AddMember(userRef(u)); err != nil {
				return err
			}
		}
		g := tx.Group()
		g.ExternalID, g.Doc = "outer-ext", []byte(`{"x":1}`)
		return tx.SetGroup(g)
	})
	noErr(t, "UpdateGroup", err)
	createGroup(t, s, at(41), "Empty")
	noErr(t, "PutTokenAudited", s.PutTokenAudited(store.Token{Name: "okta", Hash: []byte{1, 2, 3}, CreatedAt: at(1), ExpiresAt: at(1000)},
		store.AuditRecord{Time: at(1), Actor: "token", Action: "token_create", Reason: "okta"}))
	noErr(t, "PutTokenAudited", s.PutTokenAudited(store.Token{Name: "entra", Hash: []byte{4}, CreatedAt: at(2)}))
	noErr(t, "Commit", s.Commit(store.SyncCommit{
		PutLedger: []store.LedgerEntry{
			{AccountID: acct, Email: "User0@Example.com", MemberID: "m0", Created: true, Managed: []string{"role:a", "role:b"}, UpdatedAt: at(50)},
			{AccountID: acct2, Email: "user2@example.com", MemberID: "m2", Found: []string{"role:r"}, UpdatedAt: at(51), MissingSince: at(52)},
		},
		PutCache: []store.CachedMember{{AccountID: acct2, MemberID: "m9", Email: "x@example.com", Status: "pending", Keys: []string{"k"}}},
		Audit: []store.AuditRecord{
			{Time: at(50), Actor: "schedule", Action: "add_member", AccountID: acct, Email: "User0@Example.com", After: []string{"Admin"}, Privileged: true},
			{Time: at(50), Actor: "schedule", Action: "update_roles", AccountID: acct2, Email: "user2@example.com", Before: []string{"A"}, After: []string{"B"}, Reason: "mapping \"ops\" → B"},
		},
	}))
	noErr(t, "ReplaceMemberCache", s.ReplaceMemberCache(acct, []store.CachedMember{
		{MemberID: "m0", Email: "User0@Example.com", Status: "accepted", Keys: []string{"role:a"}},
		{MemberID: "m1", Email: "user1@example.com", Status: "accepted"},
	}, at(55)))
	g, err := s.PutGrant(store.Grant{Email: "user3@example.com", AccountID: acct, Role: "Admin", Start: at(60), End: at(120), Reason: "incident", Actor: "alice"},
		store.AuditRecord{Time: at(60), Actor: "grant", Action: "grant", AccountID: acct, Email: "user3@example.com"})
	noErr(t, "PutGrant", err)
	g.RevokedAt = at(70)
	_, err = s.PutGrant(g, store.AuditRecord{Time: at(70), Actor: "revoke", Action: "revoke", AccountID: acct, Email: "user3@example.com"})
	noErr(t, "PutGrant revoke", err)
	_, err = s.PutGrant(store.Grant{Email: "user4@example.com", AccountID: acct2, Mapping: "ops", Start: at(61), End: at(200)})
	noErr(t, "PutGrant", err)
	noErr(t, "PutStatus", s.PutStatus("last-run", []byte(`{"ok":true}`)))
	noErr(t, "PutStatus", s.PutStatus("empty", []byte{}))
	_, err = s.DeleteUser(users[11].ID)
	noErr(t, "DeleteUser", err)
}

// CheckSame fails t unless a and b hold the same state, record by record,
// and b's audit trail verifies and ends where a's does.
func CheckSame(t *testing.T, a, b store.Backend) {
	t.Helper()
	ctx := context.Background()
	sa, err := store.Summarize(ctx, a)
	noErr(t, "Summarize source", err)
	noErr(t, "Verify copy", store.Verify(ctx, sa, b))
	// Spot-check through the read API, not only the fingerprints.
	var ua []store.User
	noErr(t, "ListUsers", a.ListUsers("", func(u store.User) bool { ua = append(ua, u); return true }))
	for _, u := range ua {
		checkUser(t, getUser(t, b, u.ID), u)
		pa, err := a.GroupsOf(u.ID)
		noErr(t, "GroupsOf", err)
		pb, err := b.GroupsOf(u.ID)
		noErr(t, "GroupsOf", err)
		if len(pa) != len(pb) {
			t.Fatalf("user %s is in %d groups in the copy, %d in the source", u.UserName, len(pb), len(pa))
		}
		for i := range pa {
			if pa[i].ID != pb[i].ID || !pa[i].Since.Equal(pb[i].Since) {
				t.Fatalf("user %s membership %d: copy %+v, source %+v (Since must survive the copy)", u.UserName, i, pb[i], pa[i])
			}
		}
	}
}

func testCopy(t *testing.T, open func(t *testing.T) store.Backend) {
	src, dst := open(t), open(t)
	Populate(t, src)
	sum, err := store.Copy(context.Background(), src, dst)
	noErr(t, "Copy", err)
	if sum.Users != 11 || sum.Groups != 3 || sum.Members != 10 || sum.Tokens != 2 || sum.Audit != 5 || sum.Grants != 2 ||
		sum.Ledger != 2 || sum.Cached != 3 || sum.CacheScans != 1 || sum.Status != 2 {
		t.Fatalf("Copy summary = %s", sum)
	}
	CheckSame(t, src, dst)
	// Load keeps the ledger tally too: the guard's base in the copy is the
	// copied ledger's.
	checkTally(t, dst, "after Copy")
	if got, err := dst.AccountEmails(acct, nil); err != nil || got.ManagedGrants != 2 {
		t.Fatalf("the copy's AccountEmails(%s).ManagedGrants = %d, %v; want 2", acct, got.ManagedGrants, err)
	}
	// The copy is a working store: the chain goes on from the copied head,
	// names stay unique, counters are right.
	noErr(t, "AppendAudit on the copy", dst.AppendAudit(rec(300, "after-copy", "")))
	verifyIntact(t, dst)
	_, err = dst.CreateUser(at(300), store.User{UserName: "user0@example.com"})
	wantErr(t, "CreateUser of a copied name", err, store.ErrConflict)
	count(t, "CountUsers of the copy", dst.CountUsers, 11)
	inner, err := dst.GroupByDisplayName("inner")
	noErr(t, "GroupByDisplayName", err)
	countMembers(t, dst, inner.ID, 2)
}

func testCopyRefusesNonEmpty(t *testing.T, open func(t *testing.T) store.Backend) {
	src := open(t)
	Populate(t, src)
	for name, prep := range map[string]func(store.Backend){
		"a user":         func(s store.Backend) { createUser(t, s, at(0), store.User{UserName: "there"}) },
		"an audit trail": func(s store.Backend) { noErr(t, "AppendAudit", s.AppendAudit(rec(0, "x", ""))) },
		"a status entry": func(s store.Backend) { noErr(t, "PutStatus", s.PutStatus("k", []byte("v"))) },
	} {
		dst := open(t)
		prep(dst)
		before, err := store.Summarize(context.Background(), dst)
		noErr(t, "Summarize", err)
		_, err = store.Copy(context.Background(), src, dst)
		wantErr(t, "Copy into a target holding "+name, err, store.ErrNotEmpty)
		after, err := store.Summarize(context.Background(), dst)
		noErr(t, "Summarize", err)
		if after != before {
			t.Fatalf("refused Copy changed the target holding %s: %s, was %s", name, after, before)
		}
	}
}

func testLoadForgedAudit(t *testing.T, open func(t *testing.T) store.Backend) {
	src, dst := open(t), open(t)
	noErr(t, "AppendAudit", src.AppendAudit(rec(1, "a", ""), rec(2, "b", "")))
	err := dst.Load(func(put func(store.DumpItem) error) error {
		return src.Dump(func(it store.DumpItem) error {
			if it.Audit != nil && it.Audit.Seq == 2 {
				forged := *it.Audit
				forged.Action = "nothing-to-see"
				it.Audit = &forged
			}
			return put(it)
		})
	})
	wantErr(t, "Load of a forged record", err, store.ErrAuditBroken)
	if seq, _, err := dst.AuditHead(); seq != 0 || err != nil {
		t.Fatalf("refused Load left an audit head at %d (%v)", seq, err)
	}
	if au := auditOf(t, dst, time.Time{}); len(au) != 0 {
		t.Fatalf("refused Load left %d audit records", len(au))
	}
}

func testBackupFile(t *testing.T, open func(t *testing.T) store.Backend) {
	s := open(t)
	Populate(t, s)
	path := filepath.Join(t.TempDir(), "backup.db")
	n, err := s.BackupFile(path)
	noErr(t, "BackupFile", err)
	fi, err := os.Stat(path)
	noErr(t, "stat backup", err)
	if fi.Size() != n || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup is %d bytes mode %v, BackupFile said %d; want mode 0600", fi.Size(), fi.Mode().Perm(), n)
	}
	noErr(t, "CheckFile", store.CheckFile(path, 0))
	b, err := store.Open(path)
	noErr(t, "open backup", err)
	defer b.Close()
	CheckSame(t, s, b)
}
