// The reconciler's buckets in bbolt: their layout and schema version, the
// key helpers they share, and the commit that writes ledger, member cache
// and audit in one transaction. Each record kind has its own file.

package store

import (
	"bytes"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Buckets of the reconciler's state. They are versioned separately from
// the "scim/" buckets (syncSchemaVersion in sync/meta).
var (
	bucketSyncMeta    = []byte("sync/meta")        // schemaVersion, audit head (seq, hash)
	bucketLedger      = []byte("sync/ledger")      // lp(accountId)+Fold(email) -> ledgerRecord (JSON)
	bucketMemberCache = []byte("sync/memberCache") // lp(accountId)+Fold(email) -> cacheRecord (JSON)
	bucketCacheScans  = []byte("sync/memberScans") // accountId -> RFC3339Nano scannedAt
	bucketLedgerTally = []byte("sync/ledgerTally") // accountId -> big-endian uint64 managed keys in its ledger (absent: 0); since schema 2
	bucketGrants      = []byte("sync/grants")      // grant id -> grantRecord (JSON)
	bucketAudit       = []byte("sync/audit")       // big-endian uint64 seq -> auditRecord (JSON, hashed)
	bucketStatus      = []byte("sync/status")      // key -> opaque value
	keyAuditSeq       = []byte("auditSeq")
	keyAuditHash      = []byte("auditHash")
	syncBuckets       = [][]byte{bucketSyncMeta, bucketLedger, bucketMemberCache, bucketCacheScans, bucketGrants, bucketAudit, bucketStatus, bucketLedgerTally}
)

// syncSchemaVersion is the layout version of the "sync/" buckets. Version
// 2 added the ledger tally (sync/ledgerTally), which every ledger write
// keeps: a release that does not know it would leave it wrong, so a file
// this release served is refused by the one before (which expects 1).
// Open brings a version 1 file up to date; OpenReadOnly reads one as it
// is (it never writes), counting the ledger where the tally is missing.
const syncSchemaVersion = 2

func initSyncSchema(tx *bolt.Tx, path string) error {
	migrate := false
	if meta := tx.Bucket(bucketSyncMeta); meta != nil {
		v := meta.Get(keySchemaVersion)
		got := decodeUint(v)
		switch {
		case v != nil && got == syncSchemaVersion:
		case v != nil && got == 1:
			migrate = true
		default:
			return fmt.Errorf("state file %s has sync schema version %d, this scimflare expects %d: %w", path, got, syncSchemaVersion, ErrSchemaVersion)
		}
	}
	for _, name := range syncBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("state file %s: create bucket %s: %w", path, name, err)
		}
	}
	meta := tx.Bucket(bucketSyncMeta)
	if migrate {
		if err := rebuildLedgerTally(tx); err != nil {
			return fmt.Errorf("state file %s: count the ledger's managed keys (sync schema 1 to 2): %w", path, err)
		}
		return meta.Put(keySchemaVersion, encodeUint(syncSchemaVersion))
	}
	if meta.Get(keySchemaVersion) == nil {
		return meta.Put(keySchemaVersion, encodeUint(syncSchemaVersion))
	}
	return nil
}

// rebuildLedgerTally counts every account's managed keys anew: the
// migration from sync schema 1, in Open's transaction.
func rebuildLedgerTally(tx *bolt.Tx) error {
	tally := map[string]uint64{}
	if err := countManaged(tx.Bucket(bucketLedger), nil, func(account string, n int) { tally[account] += uint64(n) }); err != nil {
		return err
	}
	b := tx.Bucket(bucketLedgerTally)
	for account, n := range tally {
		if n == 0 {
			continue
		}
		if err := b.Put([]byte(account), encodeUint(n)); err != nil {
			return err
		}
	}
	return nil
}

// countManaged calls fn with the account and len(Managed) of every ledger
// entry under prefix (nil: the whole ledger).
func countManaged(ledger *bolt.Bucket, prefix []byte, fn func(account string, n int)) error {
	c := ledger.Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		account, _, ok := splitPair(k)
		if !ok {
			return fmt.Errorf("ledger key %q is not account+email", k)
		}
		n, err := managedLen(v)
		if err != nil {
			return fmt.Errorf("ledger entry %q: %w", k, err)
		}
		fn(account, n)
	}
	return nil
}

// managedLen is len(Managed) of a stored ledger record (0 for none).
func managedLen(v []byte) (int, error) {
	if v == nil {
		return 0, nil
	}
	var rec struct {
		Managed []string `json:"managed"`
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return 0, fmt.Errorf("decode ledger entry: %w", err)
	}
	return len(rec.Managed), nil
}

func accountKey(accountID, email string) []byte { return pairKey(accountID, Fold(email)) }

func checkAccountEmail(what, accountID, email string) error {
	if accountID == "" {
		return fmt.Errorf("%s for %q: account id is required: %w", what, email, ErrInvalid)
	}
	if email == "" {
		return fmt.Errorf("%s in account %s: email is required: %w", what, accountID, ErrInvalid)
	}
	// The names are joined only for an error: this runs for every member
	// of a listing.
	if len(accountID) > maxIndexedLen {
		return checkLen(what+" account id", accountID)
	}
	if len(email) > maxIndexedLen {
		return checkLen(what+" email", email)
	}
	return nil
}

func checkAccount(accountID string) error {
	if accountID == "" {
		return fmt.Errorf("account id is required: %w", ErrInvalid)
	}
	return checkLen("account id", accountID)
}

// Transaction-level operations. Each validates before it writes, but
// atomicity does not depend on that: an error aborts the transaction.

// scanAccount calls fn with Fold(email) and the value of every key of the
// account in an lp(accountId)+Fold(email) bucket.
func (r readTx) scanAccount(bucket []byte, accountID string, fn func(string, []byte) error) error {
	if err := checkAccount(accountID); err != nil {
		return err
	}
	prefix := pairPrefix(accountID)
	c := r.bucket(bucket).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if err := fn(string(k[len(prefix):]), v); err != nil {
			return fmt.Errorf("account %s: %w", accountID, err)
		}
	}
	return nil
}

func (w writeTx) commit(c SyncCommit) error {
	tally := ledgerTally{}
	for _, e := range c.DeleteLedger {
		if err := checkAccountEmail("ledger entry", e.AccountID, e.Email); err != nil {
			return err
		}
		if err := w.delLedger(tally, e.AccountID, e.Email); err != nil {
			return err
		}
	}
	for _, m := range c.DeleteCache {
		if err := checkAccountEmail("cached member", m.AccountID, m.Email); err != nil {
			return err
		}
		if err := w.del(bucketMemberCache, accountKey(m.AccountID, m.Email)); err != nil {
			return err
		}
	}
	for _, e := range c.PutLedger {
		if err := w.putLedger(tally, e); err != nil {
			return err
		}
	}
	if err := w.flushTally(tally); err != nil {
		return err
	}
	for _, m := range c.PutCache {
		if err := checkAccountEmail("cached member", m.AccountID, m.Email); err != nil {
			return err
		}
		v, err := encodeCached(m)
		if err != nil {
			return err
		}
		if err := w.put(bucketMemberCache, accountKey(m.AccountID, m.Email), v); err != nil {
			return err
		}
	}
	return w.appendAudit(c.Audit)
}

// Commit implements SyncState.
func (s *BoltStore) Commit(c SyncCommit) error {
	return s.update(func(w writeTx) error { return w.commit(c) })
}

// PutStatus implements SyncState.
func (s *BoltStore) PutStatus(key string, value []byte) error {
	if key == "" {
		return fmt.Errorf("status key is required: %w", ErrInvalid)
	}
	if err := checkLen("status key", key); err != nil {
		return err
	}
	return s.update(func(w writeTx) error { return w.put(bucketStatus, []byte(key), value) })
}

// Status implements SyncState.
func (s *BoltStore) Status(key string) (v []byte, err error) {
	if key == "" {
		return nil, nil
	}
	err = s.view(func(r readTx) error {
		v = bytes.Clone(r.bucket(bucketStatus).Get([]byte(key)))
		return nil
	})
	return v, err
}
