// The member cache in bbolt: each account's member list from the last full
// scan, which targeted runs use instead of listing.

package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
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
// whole bucket.
func (w writeTx) replaceMemberCache(accountID string, members []CachedMember, scannedAt time.Time) error {
	if err := checkAccount(accountID); err != nil {
		return err
	}
	fresh := make(map[string][]byte, len(members))
	for _, m := range members {
		if m.AccountID == "" {
			m.AccountID = accountID
		}
		if m.AccountID != accountID {
			return fmt.Errorf("member %s of account %s is listed under account %s: %w", m.Email, m.AccountID, accountID, ErrInvalid)
		}
		if err := checkAccountEmail("cached member", m.AccountID, m.Email); err != nil {
			return err
		}
		v, err := encodeCached(m)
		if err != nil {
			return err
		}
		fresh[string(accountKey(accountID, m.Email))] = v
	}
	prefix := pairPrefix(accountID)
	b := w.bucket(bucketMemberCache)
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); {
		nv, keep := fresh[string(k)]
		switch {
		case !keep:
			// k points into the page being changed: keep a copy to
			// re-seek from, since Next after Delete can skip a key.
			at := bytes.Clone(k)
			if err := c.Delete(); err != nil {
				return fmt.Errorf("delete from %s: %w", bucketMemberCache, err)
			}
			k, v = c.Seek(at)
			continue
		case bytes.Equal(nv, v):
			delete(fresh, string(k))
		}
		k, v = c.Next()
	}
	// In key order: bbolt splits nodes only at commit, so keys put in
	// random order into one node shift it on every put — the first
	// listing of a 1M-member account (an empty cache) would take hours.
	for _, k := range slices.Sorted(maps.Keys(fresh)) {
		if err := w.put(bucketMemberCache, []byte(k), fresh[k]); err != nil {
			return err
		}
	}
	return w.put(bucketCacheScans, []byte(accountID), []byte(scannedAt.UTC().Format(time.RFC3339Nano)))
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
