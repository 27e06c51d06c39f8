package store

import (
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func benchAudit(i int) AuditRecord {
	return AuditRecord{Time: benchNow.Add(time.Duration(i) * time.Second), Actor: "idp-push", Action: "update_roles",
		AccountID: "acc", Email: fmt.Sprintf("user%d@example.com", i%1000), Before: []string{"Read"},
		After: []string{"Read", "Administrator"}, Reason: "group ops maps to Administrator", Privileged: true}
}

// BenchmarkSyncCommit is what the reconciler writes per applied change:
// one ledger entry, one cached member, one audit record, one fsync.
func BenchmarkSyncCommit(b *testing.B) {
	syncCommits(b, openBench(b))
}

// syncCommits times what the reconciler writes per applied change.
func syncCommits(b *testing.B, s *BoltStore) {
	i := 0
	for b.Loop() {
		email := fmt.Sprintf("user%d@example.com", i%1000)
		err := s.Commit(SyncCommit{
			PutLedger: []LedgerEntry{{AccountID: "acc", Email: email, MemberID: "m", Managed: []string{"role:admin"}, UpdatedAt: benchNow}},
			PutCache:  []CachedMember{{AccountID: "acc", MemberID: "m", Email: email, Status: "accepted", Keys: []string{"role:admin"}}},
			Audit:     []AuditRecord{benchAudit(i)},
		})
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkAppendAudit(b *testing.B) {
	s := openBench(b)
	i := 0
	for b.Loop() {
		if err := s.AppendAudit(benchAudit(i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkVerifyAudit reports the cost of checking a 100k-record trail.
func BenchmarkVerifyAudit(b *testing.B) {
	s := openBench(b)
	const n = 100000
	for start := 0; start < n; start += 10000 {
		recs := make([]AuditRecord, 10000)
		for i := range recs {
			recs[i] = benchAudit(start + i)
		}
		if err := s.db.Update(func(tx *bolt.Tx) error { return newWriteTx(tx).appendAudit(recs) }); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if seq, err := s.VerifyAudit(); seq != 0 || err != nil {
			b.Fatal(seq, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/record")
}

// BenchmarkReplaceMemberCache: the full listing of a 10k-member account
// with one member changed, as the scheduled run stores it.
func BenchmarkReplaceMemberCache(b *testing.B) {
	s := openBench(b)
	members := make([]CachedMember, 10000)
	for i := range members {
		members[i] = CachedMember{MemberID: fmt.Sprintf("m%d", i), Email: fmt.Sprintf("user%d@example.com", i), Status: "accepted", Keys: []string{"role:read"}}
	}
	if err := s.ReplaceMemberCache("acc", members, benchNow); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		members[i%len(members)].Status = fmt.Sprintf("s%d", i)
		if err := s.ReplaceMemberCache("acc", members, benchNow); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkAccountEmails100k is a targeted run's read of one account: one
// email's ledger entry and cached member, and the managed-grant count, in
// an account of 100k members — against Ledger plus CachedMembers, which
// it replaced.
func BenchmarkAccountEmails100k(b *testing.B) {
	s := openBench(b)
	const n = 100_000
	led := make([]LedgerEntry, n)
	cache := make([]CachedMember, n)
	for i := range n {
		email := fmt.Sprintf("user%d@example.com", i)
		led[i] = LedgerEntry{AccountID: "acc", Email: email, MemberID: fmt.Sprint(i), Managed: []string{"role:admin"}, UpdatedAt: benchNow}
		cache[i] = CachedMember{MemberID: fmt.Sprint(i), Email: email, Status: "accepted", Keys: []string{"role:admin"}}
	}
	if err := s.Commit(SyncCommit{PutLedger: led}); err != nil {
		b.Fatal(err)
	}
	if err := s.ReplaceMemberCache("acc", cache, benchNow); err != nil {
		b.Fatal(err)
	}
	b.Run("AccountEmails", func(b *testing.B) {
		i := 0
		for b.Loop() {
			got, err := s.AccountEmails("acc", []string{fmt.Sprintf("user%d@example.com", (i*7919)%n)})
			if err != nil || len(got.Ledger) != 1 || len(got.Cached) != 1 || got.ManagedGrants != n {
				b.Fatalf("%+v %v", got, err)
			}
			i++
		}
	})
	b.Run("LedgerAndCachedMembers", func(b *testing.B) {
		for b.Loop() {
			l, err := s.Ledger("acc")
			if err != nil || len(l) != n {
				b.Fatal(err)
			}
			c, err := s.CachedMembers("acc")
			if err != nil || len(c) != n {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReplaceMemberCacheFirst100k is the first listing of a 100k-member
// account: every member new to an empty cache.
func BenchmarkReplaceMemberCacheFirst100k(b *testing.B) {
	members := make([]CachedMember, 100_000)
	for i := range members {
		members[i] = CachedMember{MemberID: fmt.Sprintf("m%d", i), Email: fmt.Sprintf("user%d@example.com", i), Status: "accepted", Keys: []string{"role:read"}}
	}
	for b.Loop() {
		b.StopTimer()
		s := openBench(b)
		b.StartTimer()
		if err := s.ReplaceMemberCache("acc", members, benchNow); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReplaceMemberCacheSteady100k is a scheduled run recording the
// listing of a 100k-member account that has not changed since the last
// one: nothing is written, but the whole listing is compared with the
// cache.
func BenchmarkReplaceMemberCacheSteady100k(b *testing.B) {
	const n = 100_000
	s := openBench(b)
	members := make([]CachedMember, n)
	for i := range members {
		members[i] = CachedMember{MemberID: fmt.Sprintf("%032x", i), Email: fmt.Sprintf("user%d@example.com", i), Status: "accepted", Keys: []string{"policy:0123456789abcdef0123456789abcdef"}}
	}
	if err := s.ReplaceMemberCache("acc", members, benchNow); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := s.ReplaceMemberCache("acc", members, benchNow); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSyncCommitManyFreePages is BenchmarkSyncCommit on a file with
// many free pages, as a state kept through many full runs has (a full
// run's long read lets the pages every write frees pile up): 40,000 here,
// about what 200k users' worth of churn leaves.
func BenchmarkSyncCommitManyFreePages(b *testing.B) {
	s := openBench(b)
	scratch := []byte("bench/scratch")
	value := make([]byte, 3000) // about one page per key
	for chunk := range 8 {
		err := s.db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists(scratch)
			if err != nil {
				return err
			}
			for i := range 5000 {
				if err := bk.Put(fmt.Appendf(nil, "k%02d-%05d", chunk, i), value); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(scratch) }); err != nil {
		b.Fatal(err)
	}
	syncCommits(b, s)
	b.ReportMetric(float64(s.db.Stats().FreePageN), "free-pages")
}
