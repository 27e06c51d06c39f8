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

func (w writeTx) putLedger(e LedgerEntry) error {
	if err := checkAccountEmail("ledger entry", e.AccountID, e.Email); err != nil {
		return err
	}
	v, err := json.Marshal(ledgerRecord(e))
	if err != nil {
		return fmt.Errorf("encode ledger entry %s in account %s: %w", e.Email, e.AccountID, err)
	}
	return w.put(bucketLedger, accountKey(e.AccountID, e.Email), v)
}

// Ledger implements SyncState.
func (s *BoltStore) Ledger(accountID string) (out map[string]LedgerEntry, err error) {
	err = s.view(func(r readTx) error { out, err = r.ledger(accountID); return err })
	return out, err
}
