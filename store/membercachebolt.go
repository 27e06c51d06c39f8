// The member cache in bbolt: each account's member list from the last full
// scan, which targeted runs use instead of listing.

package store

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

type cacheRecord struct {
	AccountID string   `json:"account"`
	MemberID  string   `json:"member,omitempty"`
	Email     string   `json:"email"`
	Status    string   `json:"status,omitempty"`
	Keys      []string `json:"keys,omitempty"`
}

func (r readTx) cachedMembers(accountID string) (map[string]CachedMember, error) {
	out := map[string]CachedMember{}
	err := r.scanAccount(bucketMemberCache, accountID, func(k string, v []byte) error {
		var rec cacheRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("decode cached member %s: %w", k, err)
		}
		out[k] = CachedMember(rec)
		return nil
	})
	return out, err
}

func encodeCached(m CachedMember) ([]byte, error) {
	v, err := json.Marshal(cacheRecord(m))
	if err != nil {
		return nil, fmt.Errorf("encode cached member %s in account %s: %w", m.Email, m.AccountID, err)
	}
	return v, nil
}

// replaceMemberCache rewrites only what changed: a listing of 100k members
// that differs in one member dirties the pages of that member, not the
// whole bucket. The listing is walked in key order beside the stored
// cache, so that only the members to write are encoded twice and none is
// held encoded: a map of every member's record cost a million-member
// full run over 200 MB at the moment it recorded its reads.
func (w writeTx) replaceMemberCache(accountID string, members []CachedMember, scannedAt time.Time) error {
	if err := checkAccount(accountID); err != nil {
		return err
	}
	folded := make([]string, len(members))
	for i := range members {
		m := &members[i]
		if m.AccountID != "" && m.AccountID != accountID {
			return fmt.Errorf("member %s of account %s is listed under account %s: %w", m.Email, m.AccountID, accountID, ErrInvalid)
		}
		if err := checkAccountEmail("cached member", accountID, m.Email); err != nil {
			return err
		}
		folded[i] = Fold(m.Email)
	}
	order := listingOrder(folded)
	encode := func(i int) ([]byte, error) {
		m := members[i]
		m.AccountID = accountID
		return encodeCached(m)
	}
	prefix := pairPrefix(accountID)
	c := w.bucket(bucketMemberCache).Cursor()
	var puts []int // members to write, in key order
	next := 0
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); {
		stored := k[len(prefix):] // compared as a string without a copy
		for next < len(order) && folded[order[next]] < string(stored) {
			puts = append(puts, order[next])
			next++
		}
		if next < len(order) && folded[order[next]] == string(stored) {
			nv, err := encode(order[next])
			if err != nil {
				return err
			}
			if !bytes.Equal(nv, v) {
				puts = append(puts, order[next])
			}
			next++
			k, v = c.Next()
			continue
		}
		// No longer listed. k points into the page being changed: keep a
		// copy to re-seek from, since Next after Delete can skip a key.
		at := bytes.Clone(k)
		if err := c.Delete(); err != nil {
			return fmt.Errorf("delete from %s: %w", bucketMemberCache, err)
		}
		k, v = c.Seek(at)
	}
	puts = append(puts, order[next:]...)
	// In key order: bbolt splits nodes only at commit, so keys put in
	// random order into one node shift it on every put — the first
	// listing of a 1M-member account (an empty cache) would take hours.
	for _, i := range puts {
		v, err := encode(i)
		if err != nil {
			return err
		}
		if err := w.put(bucketMemberCache, accountKey(accountID, members[i].Email), v); err != nil {
			return err
		}
	}
	return w.put(bucketCacheScans, []byte(accountID), []byte(scannedAt.UTC().Format(time.RFC3339Nano)))
}

// listingOrder is the indexes of folded in key order, one per key: of
// members listed under one key, the last listed, as putting them one
// after the other would keep.
func listingOrder(folded []string) []int {
	order := make([]int, len(folded))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := strings.Compare(folded[a], folded[b]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	kept := order[:0]
	for j, i := range order {
		if j+1 < len(order) && folded[order[j+1]] == folded[i] {
			continue
		}
		kept = append(kept, i)
	}
	return kept
}

func (r readTx) memberCacheScannedAt(accountID string) (time.Time, error) {
	if err := checkAccount(accountID); err != nil {
		return time.Time{}, err
	}
	v := r.bucket(bucketCacheScans).Get([]byte(accountID))
	if v == nil {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, string(v))
	if err != nil {
		return time.Time{}, fmt.Errorf("member cache scan time of account %s: %w", accountID, err)
	}
	return t, nil
}

// CachedMembers implements SyncState.
func (s *BoltStore) CachedMembers(accountID string) (out map[string]CachedMember, err error) {
	err = s.view(func(r readTx) error { out, err = r.cachedMembers(accountID); return err })
	return out, err
}

// ReplaceMemberCache implements SyncState.
func (s *BoltStore) ReplaceMemberCache(accountID string, members []CachedMember, scannedAt time.Time) error {
	return s.update(func(w writeTx) error { return w.replaceMemberCache(accountID, members, scannedAt) })
}

// MemberCacheScannedAt implements SyncState.
func (s *BoltStore) MemberCacheScannedAt(accountID string) (t time.Time, err error) {
	err = s.view(func(r readTx) error { t, err = r.memberCacheScannedAt(accountID); return err })
	return t, err
}
