// The ledger in bbolt: per account and email, what scimflare granted
// (Managed), what it found there (Found) and whether it created the member.

package store

import (
	"encoding/json"
	"fmt"
	"time"
)

// ledgerRecord's field names are spelled out, as in every record of the
// sync buckets: these are few and small, and readable with `bbolt get`.
type ledgerRecord struct {
	AccountID string    `json:"account"`
	Email     string    `json:"email"`
	MemberID  string    `json:"member,omitempty"`
	Created   bool      `json:"created,omitempty"`
	Managed   []string  `json:"managed,omitempty"`
	Found     []string  `json:"found,omitempty"`
	UpdatedAt time.Time `json:"updated"`
	// Missing is omitted when zero: records written before it existed
	// read back unchanged.
	MissingSince time.Time `json:"missing,omitzero"`
}

func (r readTx) ledger(accountID string) (map[string]LedgerEntry, error) {
	out := map[string]LedgerEntry{}
	err := r.scanAccount(bucketLedger, accountID, func(k string, v []byte) error {
		var rec ledgerRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("decode ledger entry %s: %w", k, err)
		}
		out[k] = LedgerEntry(rec)
		return nil
	})
	return out, err
}

// ledgerTally is a transaction's change to each account's count of
// managed keys, written once at its end (flushTally).
type ledgerTally map[string]int

// putLedger writes e and notes in tally what it changes in the account's
// managed keys (the entry it replaces counted out, e counted in).
func (w writeTx) putLedger(tally ledgerTally, e LedgerEntry) error {
	if err := checkAccountEmail("ledger entry", e.AccountID, e.Email); err != nil {
		return err
	}
	v, err := json.Marshal(ledgerRecord(e))
	if err != nil {
		return fmt.Errorf("encode ledger entry %s in account %s: %w", e.Email, e.AccountID, err)
	}
	k := accountKey(e.AccountID, e.Email)
	old, err := managedLen(w.bucket(bucketLedger).Get(k))
	if err != nil {
		return fmt.Errorf("ledger entry %s in account %s: %w", e.Email, e.AccountID, err)
	}
	tally[e.AccountID] += len(e.Managed) - old
	return w.put(bucketLedger, k, v)
}

// delLedger deletes the entry of email, counting its managed keys out.
func (w writeTx) delLedger(tally ledgerTally, accountID, email string) error {
	k := accountKey(accountID, email)
	old, err := managedLen(w.bucket(bucketLedger).Get(k))
	if err != nil {
		return fmt.Errorf("ledger entry %s in account %s: %w", email, accountID, err)
	}
	tally[accountID] -= old
	return w.del(bucketLedger, k)
}

// flushTally adds the transaction's changes to the stored counts; a count
// that reaches 0 is deleted, so an empty ledger leaves no tally behind.
func (w writeTx) flushTally(tally ledgerTally) error {
	b := w.bucket(bucketLedgerTally)
	for account, delta := range tally {
		if delta == 0 {
			continue
		}
		n := int64(decodeUint(b.Get([]byte(account)))) + int64(delta)
		if n < 0 {
			return fmt.Errorf("account %s: the ledger tally would go below zero (%d): %w", account, n, ErrInvalid)
		}
		var err error
		if n == 0 {
			err = w.del(bucketLedgerTally, []byte(account))
		} else {
			err = w.put(bucketLedgerTally, []byte(account), encodeUint(uint64(n)))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// managedGrants is the account's count of managed keys: the tally, or,
// in a version 1 file opened read-only (no tally), the ledger counted.
func (r readTx) managedGrants(accountID string) (int, error) {
	if b := r.bucket(bucketLedgerTally); b != nil {
		return int(decodeUint(b.Get([]byte(accountID)))), nil
	}
	n := 0
	err := countManaged(r.bucket(bucketLedger), pairPrefix(accountID), func(_ string, m int) { n += m })
	return n, err
}

// accountEmails implements AccountEmails on one read transaction.
func (r readTx) accountEmails(accountID string, emails []string) (AccountEmails, error) {
	out := AccountEmails{Ledger: map[string]LedgerEntry{}, Cached: map[string]CachedMember{}}
	if err := checkAccount(accountID); err != nil {
		return out, err
	}
	led, cache := r.bucket(bucketLedger), r.bucket(bucketMemberCache)
	for _, email := range emails {
		if email == "" {
			continue
		}
		folded := Fold(email)
		k := pairKey(accountID, folded)
		if v := led.Get(k); v != nil {
			var rec ledgerRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return out, fmt.Errorf("account %s: decode ledger entry %s: %w", accountID, folded, err)
			}
			out.Ledger[folded] = LedgerEntry(rec)
		}
		if v := cache.Get(k); v != nil {
			var rec cacheRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return out, fmt.Errorf("account %s: decode cached member %s: %w", accountID, folded, err)
			}
			out.Cached[folded] = CachedMember(rec)
		}
	}
	var err error
	if out.ManagedGrants, err = r.managedGrants(accountID); err != nil {
		return out, err
	}
	out.ScannedAt, err = r.memberCacheScannedAt(accountID)
	return out, err
}

// AccountEmails implements SyncState.
func (s *BoltStore) AccountEmails(accountID string, emails []string) (out AccountEmails, err error) {
	err = s.view(func(r readTx) error { out, err = r.accountEmails(accountID, emails); return err })
	return out, err
}

// Ledger implements SyncState.
func (s *BoltStore) Ledger(accountID string) (out map[string]LedgerEntry, err error) {
	err = s.view(func(r readTx) error { out, err = r.ledger(accountID); return err })
	return out, err
}
