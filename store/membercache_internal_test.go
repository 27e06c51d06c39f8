package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// A member cache replaced in a transaction that wrote to the same account's
// cache before (commitGroup runs a change's Commit and a full run's
// ReplaceMemberCache in one transaction) keeps exactly the listing: members
// dropped one after the other are all deleted. The earlier write turned the
// leaf into a node, where a cursor's Next after Delete skips the key that
// moved into the deleted one's place; the conformance suite, one write per
// transaction, cannot tell a re-seek from Next.
func TestReplaceMemberCacheAfterAnEarlierWriteInTheTransaction(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	const acct = "acct"
	var all []CachedMember
	for i := range 10 {
		all = append(all, CachedMember{MemberID: fmt.Sprint("m", i), Email: fmt.Sprintf("u%d@example.com", i), Status: "accepted"})
	}
	if err := s.ReplaceMemberCache(acct, all, time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	kept := []CachedMember{all[0], all[5], all[9]}
	err = s.update(func(w writeTx) error {
		if err := w.commit(SyncCommit{PutCache: []CachedMember{{AccountID: acct, MemberID: "m0", Email: "u0@example.com", Status: "pending"}}}); err != nil {
			return err
		}
		return w.replaceMemberCache(acct, kept, time.Unix(2, 0))
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.CachedMembers(acct)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(kept) {
		t.Fatalf("the cache holds %d members, the listing %d: %v", len(got), len(kept), got)
	}
	for _, m := range kept {
		if g := got[Fold(m.Email)]; g.MemberID != m.MemberID || g.Status != m.Status {
			t.Fatalf("cached %s = %+v, want %+v", m.Email, g, m)
		}
	}
}
