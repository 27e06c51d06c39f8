package store_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/store/storetest"
)

func TestSyncConformance(t *testing.T) {
	storetest.RunSync(t, func(t *testing.T) store.SyncState { return openBolt(t) })
}

func TestSyncConformanceBatched(t *testing.T) {
	storetest.RunSync(t, func(t *testing.T) store.SyncState { return openBolt(t, store.WithBatch(time.Millisecond)) })
}

var auditBucket = []byte("sync/audit")

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// appendFive writes records 1..5; record 3 has a reason long enough to
// give every kind of byte (field names, strings, list, bool, hashes) a
// position.
func appendFive(t *testing.T, s *store.BoltStore) {
	t.Helper()
	for i := range 5 {
		r := store.AuditRecord{Time: now.Add(time.Duration(i) * time.Minute), Actor: "schedule", Action: "update_roles",
			AccountID: "acc", Email: "alice@example.com", Before: []string{"Read"}, After: []string{"Read", "Admin"},
			Reason: "mapping ops -> Admin", Privileged: i%2 == 0}
		if err := s.AppendAudit(r); err != nil {
			t.Fatal(err)
		}
	}
	if seq, err := s.VerifyAudit(); seq != 0 || err != nil {
		t.Fatalf("fresh trail: VerifyAudit = %d, %v", seq, err)
	}
}

func rawAudit(t *testing.T, s *store.BoltStore, seq uint64) []byte {
	t.Helper()
	var v []byte
	if err := s.DB().View(func(tx *bolt.Tx) error {
		v = append([]byte(nil), tx.Bucket(auditBucket).Get(seqKey(seq))...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if v == nil {
		t.Fatalf("no stored audit record %d", seq)
	}
	return v
}

func putRaw(t *testing.T, s *store.BoltStore, seq uint64, v []byte) {
	t.Helper()
	err := s.DB().Update(func(tx *bolt.Tx) error {
		if v == nil {
			return tx.Bucket(auditBucket).Delete(seqKey(seq))
		}
		return tx.Bucket(auditBucket).Put(seqKey(seq), v)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func wantBroken(t *testing.T, s *store.BoltStore, wantSeq uint64, wantMsg string) {
	t.Helper()
	seq, err := s.VerifyAudit()
	if seq != wantSeq || !errors.Is(err, store.ErrAuditBroken) || err == nil || !strings.Contains(err.Error(), wantMsg) {
		t.Fatalf("VerifyAudit = %d, %v; want %d and an error containing %q", seq, err, wantSeq, wantMsg)
	}
}

func TestVerifyAuditNamesAlteredRecord(t *testing.T) {
	s := openBolt(t)
	appendFive(t, s)
	orig := rawAudit(t, s, 3)
	i := strings.Index(string(orig), "ops")
	flipped := append([]byte(nil), orig...)
	flipped[i] ^= 0x01 // "ops" -> "nps"
	putRaw(t, s, 3, flipped)
	seq, err := s.VerifyAudit()
	if want := "audit record 3 was altered: its hash does not match its content"; seq != 3 || err == nil || err.Error() != want {
		t.Fatalf("VerifyAudit = %d, %v; want 3, %q", seq, err, want)
	}
	putRaw(t, s, 3, orig)
	if seq, err := s.VerifyAudit(); seq != 0 || err != nil {
		t.Fatalf("restored trail: VerifyAudit = %d, %v", seq, err)
	}
}

// TestVerifyAuditCatchesEveryByte flips each byte of a stored record in
// turn (one bit, and the ASCII letter case, which encoding/json would
// forgive in field names): none may go unnoticed.
func TestVerifyAuditCatchesEveryByte(t *testing.T) {
	s := openBolt(t)
	appendFive(t, s)
	s.DB().NoSync = true // hundreds of tamperings; durability is not under test
	orig := rawAudit(t, s, 3)
	for i := range orig {
		for _, mask := range []byte{0x01, 0x20, 0x80} {
			v := append([]byte(nil), orig...)
			v[i] ^= mask
			putRaw(t, s, 3, v)
			if seq, err := s.VerifyAudit(); seq != 3 || !errors.Is(err, store.ErrAuditBroken) || !strings.Contains(err.Error(), "audit record 3 was altered") {
				t.Fatalf("byte %d (%q) ^ %#x: VerifyAudit = %d, %v; want record 3 reported altered", i, orig[i], mask, seq, err)
			}
		}
	}
	putRaw(t, s, 3, orig)
	if seq, err := s.VerifyAudit(); seq != 0 || err != nil {
		t.Fatalf("restored trail: VerifyAudit = %d, %v", seq, err)
	}
}

func TestVerifyAuditDetectsRemovalAndForgery(t *testing.T) {
	t.Run("middle record removed", func(t *testing.T) {
		s := openBolt(t)
		appendFive(t, s)
		putRaw(t, s, 3, nil)
		wantBroken(t, s, 4, "audit record 4 follows record 2: record 3 was removed")
	})
	t.Run("first record removed", func(t *testing.T) {
		s := openBolt(t)
		appendFive(t, s)
		putRaw(t, s, 1, nil)
		wantBroken(t, s, 2, "record 1 was removed")
	})
	t.Run("last record removed", func(t *testing.T) {
		s := openBolt(t)
		appendFive(t, s)
		putRaw(t, s, 5, nil)
		wantBroken(t, s, 5, "audit record 5 was removed")
	})
	t.Run("record appended behind the store's back", func(t *testing.T) {
		s := openBolt(t)
		appendFive(t, s)
		putRaw(t, s, 6, rawAudit(t, s, 5))
		wantBroken(t, s, 6, "audit record 6")
	})
	// Someone who knows the scheme rewrites record 3 and its hash: record
	// 4 no longer links to it.
	t.Run("record rewritten with a valid hash", func(t *testing.T) {
		s := openBolt(t)
		appendFive(t, s)
		forged := forge(t, s, 3, func(r *store.AuditRecord) { r.Reason = "nothing to see" })
		putRaw(t, s, 3, forged)
		wantBroken(t, s, 4, "audit record 4 does not link to record 3")
	})
	t.Run("last record rewritten with a valid hash", func(t *testing.T) {
		s := openBolt(t)
		appendFive(t, s)
		putRaw(t, s, 5, forge(t, s, 5, func(r *store.AuditRecord) { r.Privileged = false }))
		wantBroken(t, s, 5, "audit record 5 was replaced")
	})
	t.Run("appending after tampering keeps the damage visible", func(t *testing.T) {
		s := openBolt(t)
		appendFive(t, s)
		putRaw(t, s, 3, nil)
		if err := s.AppendAudit(store.AuditRecord{Time: now, Action: "later"}); err != nil {
			t.Fatal(err)
		}
		wantBroken(t, s, 4, "record 3 was removed")
	})
}

// forge builds the bytes the store itself would write for record seq with
// edit applied, valid hash included: it re-appends the records before it
// and the edited one to a scratch store, the reference encoder.
func forge(t *testing.T, s *store.BoltStore, seq uint64, edit func(*store.AuditRecord)) []byte {
	t.Helper()
	var recs []store.AuditRecord
	if err := s.Audit(time.Time{}, func(r store.AuditRecord) bool { recs = append(recs, r); return true }); err != nil {
		t.Fatal(err)
	}
	scratch := openBolt(t)
	edit(&recs[seq-1])
	if err := scratch.AppendAudit(recs[:seq]...); err != nil {
		t.Fatal(err)
	}
	if got, err := scratch.VerifyAudit(); got != 0 || err != nil {
		t.Fatalf("scratch trail: %d, %v", got, err)
	}
	return rawAudit(t, scratch, seq)
}

func TestSyncStateSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(store.SyncCommit{
		PutLedger: []store.LedgerEntry{{AccountID: "acc", Email: "a@example.com", MemberID: "m1", Managed: []string{"k"}, UpdatedAt: now}},
		Audit:     []store.AuditRecord{{Time: now, Action: "add_member"}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceMemberCache("acc", []store.CachedMember{{MemberID: "m1", Email: "a@example.com"}}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutGrant(store.Grant{ID: "g-1", Email: "a@example.com", AccountID: "acc", Start: now, End: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutStatus("k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openPath(t, path)
	if err := s.AppendAudit(store.AuditRecord{Time: now, Action: "after_reopen"}); err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	_ = s.Audit(time.Time{}, func(r store.AuditRecord) bool { seqs = append(seqs, r.Seq); return true })
	if len(seqs) != 2 || seqs[1] != 2 {
		t.Fatalf("after reopen the trail is %v, want [1 2]", seqs)
	}
	if seq, err := s.VerifyAudit(); seq != 0 || err != nil {
		t.Fatalf("VerifyAudit after reopen = %d, %v", seq, err)
	}
	l, _ := s.Ledger("acc")
	c, _ := s.CachedMembers("acc")
	at, _ := s.MemberCacheScannedAt("acc")
	g, _ := s.GetGrant("g-1")
	v, _ := s.Status("k")
	if len(l) != 1 || len(c) != 1 || !at.Equal(now) || g.ID != "g-1" || string(v) != "v" {
		t.Fatalf("after reopen: ledger %v cache %v scanned %v grant %+v status %q", l, c, at, g, v)
	}
}

func openPath(t *testing.T, path string) *store.BoltStore {
	t.Helper()
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestSyncSchemaVersionMismatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DB().Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("sync/meta")).Put([]byte("schemaVersion"), binary.BigEndian.AppendUint64(nil, 99))
	}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	if _, err := store.Open(path); !errors.Is(err, store.ErrSchemaVersion) {
		t.Fatalf("Open of a file with sync schema 99: %v, want ErrSchemaVersion", err)
	}
}

// TestSyncSchema1FileGetsItsLedgerTally: a state file written before the
// ledger tally existed (sync schema 1) is read as it is by OpenReadOnly,
// which counts the ledger, and brought to schema 2 by Open, which counts
// it once; both give the guard the same base as the ledger itself.
func TestSyncSchema1FileGetsItsLedgerTally(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var led []store.LedgerEntry
	for i := range 50 {
		led = append(led, store.LedgerEntry{AccountID: []string{"acc1", "acc12"}[i%2], Email: fmt.Sprintf("u%d@example.com", i),
			MemberID: fmt.Sprint(i), Managed: make([]string, i%4), UpdatedAt: time.Unix(1, 0)})
	}
	if err := s.Commit(store.SyncCommit{PutLedger: led}); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, e := range led {
		want[e.AccountID] += len(e.Managed)
	}
	// What the release before wrote: no tally, sync schema 1.
	if err := s.DB().Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte("sync/ledgerTally")); err != nil {
			return err
		}
		return tx.Bucket([]byte("sync/meta")).Put([]byte("schemaVersion"), binary.BigEndian.AppendUint64(nil, 1))
	}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	check := func(s *store.BoltStore, how string) {
		t.Helper()
		for account, n := range want {
			got, err := s.AccountEmails(account, []string{"u0@example.com", "u1@example.com"})
			if err != nil || got.ManagedGrants != n || len(got.Ledger) != 1 {
				t.Fatalf("%s: AccountEmails(%s) = %+v, %v; want %d managed keys and one entry", how, account, got, err, n)
			}
		}
	}
	version := func(s *store.BoltStore) (v uint64) {
		_ = s.DB().View(func(tx *bolt.Tx) error {
			v = binary.BigEndian.Uint64(tx.Bucket([]byte("sync/meta")).Get([]byte("schemaVersion")))
			return nil
		})
		return v
	}
	ro, err := store.OpenReadOnly(path)
	if err != nil {
		t.Fatalf("OpenReadOnly of a sync schema 1 file: %v", err)
	}
	check(ro, "read-only, schema 1")
	if v := version(ro); v != 1 {
		t.Fatalf("read-only open changed the version to %d", v)
	}
	_ = ro.Close()
	s, err = store.Open(path)
	if err != nil {
		t.Fatalf("Open of a sync schema 1 file: %v", err)
	}
	defer s.Close()
	if v := version(s); v != 2 {
		t.Fatalf("Open left sync schema version %d, want 2", v)
	}
	check(s, "after the migration")
	// And the tally keeps up from there.
	if err := s.Commit(store.SyncCommit{DeleteLedger: led[:2]}); err != nil {
		t.Fatal(err)
	}
	want["acc1"] -= len(led[0].Managed)
	want["acc12"] -= len(led[1].Managed)
	for account, n := range want {
		if got, err := s.AccountEmails(account, nil); err != nil || got.ManagedGrants != n {
			t.Fatalf("after deletes: AccountEmails(%s).ManagedGrants = %d, %v; want %d", account, got.ManagedGrants, err, n)
		}
	}
}

// TestReplaceMemberCacheWritesOnlyChanges: the scheduled full listing of a
// big account must not rewrite the whole cache when one member changed.
func TestReplaceMemberCacheWritesOnlyChanges(t *testing.T) {
	s := openBolt(t)
	s.DB().NoSync = true
	members := make([]store.CachedMember, 3000)
	for i := range members {
		members[i] = store.CachedMember{MemberID: "m" + strconv.Itoa(i),
			Email: "user" + strconv.Itoa(i) + "@example.com", Status: "accepted", Keys: []string{"role:read"}}
	}
	if err := s.ReplaceMemberCache("acc", members, now); err != nil {
		t.Fatal(err)
	}
	pages := func(ms []store.CachedMember) int64 {
		st := s.DB().Stats()
		before := st.TxStats.GetWrite()
		if err := s.ReplaceMemberCache("acc", ms, now); err != nil {
			t.Fatal(err)
		}
		st = s.DB().Stats()
		return st.TxStats.GetWrite() - before
	}
	same := pages(members)
	members[1500].Status = "pending"
	one := pages(members)
	t.Logf("pages written: unchanged listing %d, one member changed %d", same, one)
	if one > 12 {
		t.Fatalf("changing one member of 3000 wrote %d pages", one)
	}
	c, _ := s.CachedMembers("acc")
	if len(c) != 3000 || c[store.Fold("user1500@example.com")].Status != "pending" {
		t.Fatalf("cache after the change: %d members, user1500 %+v", len(c), c[store.Fold("user1500@example.com")])
	}
}
