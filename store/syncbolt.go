// The reconciler's buckets in bbolt: their layout and schema version, the
// key helpers they share, and the commit that writes ledger, member cache
// and audit in one transaction. Each record kind has its own file.

package store

import (
	"bytes"
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
	bucketGrants      = []byte("sync/grants")      // grant id -> grantRecord (JSON)
	bucketAudit       = []byte("sync/audit")       // big-endian uint64 seq -> auditRecord (JSON, hashed)
	bucketStatus      = []byte("sync/status")      // key -> opaque value
	keyAuditSeq       = []byte("auditSeq")
	keyAuditHash      = []byte("auditHash")
	syncBuckets       = [][]byte{bucketSyncMeta, bucketLedger, bucketMemberCache, bucketCacheScans, bucketGrants, bucketAudit, bucketStatus}
)

// syncSchemaVersion is the layout version of the "sync/" buckets.
const syncSchemaVersion = 1

func initSyncSchema(tx *bolt.Tx, path string) error {
	if meta := tx.Bucket(bucketSyncMeta); meta != nil {
		v := meta.Get(keySchemaVersion)
		if got := decodeUint(v); v == nil || got != syncSchemaVersion {
			return fmt.Errorf("state file %s has sync schema version %d, this scimflare expects %d: %w", path, got, syncSchemaVersion, ErrSchemaVersion)
		}
	}
	for _, name := range syncBuckets {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("state file %s: create bucket %s: %w", path, name, err)
		}
	}
	meta := tx.Bucket(bucketSyncMeta)
	if meta.Get(keySchemaVersion) == nil {
		return meta.Put(keySchemaVersion, encodeUint(syncSchemaVersion))
	}
	return nil
}

func accountKey(accountID, email string) []byte { return pairKey(accountID, Fold(email)) }

func checkAccountEmail(what, accountID, email string) error {
	if accountID == "" {
		return fmt.Errorf("%s for %q: account id is required: %w", what, email, ErrInvalid)
	}
	if email == "" {
		return fmt.Errorf("%s in account %s: email is required: %w", what, accountID, ErrInvalid)
	}
	if err := checkLen(what+" account id", accountID); err != nil {
		return err
	}
	return checkLen(what+" email", email)
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
	for _, e := range c.DeleteLedger {
		if err := checkAccountEmail("ledger entry", e.AccountID, e.Email); err != nil {
			return err
		}
		if err := w.del(bucketLedger, accountKey(e.AccountID, e.Email)); err != nil {
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
		if err := w.putLedger(e); err != nil {
			return err
		}
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
