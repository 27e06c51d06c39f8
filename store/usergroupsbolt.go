// Owned user groups in bbolt: one record per account and mapping key.

package store

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
)

// bucketUserGroups is created on open (not one of syncBuckets, so that a
// read-only open of a file written before it still works: the missing
// bucket reads as no owned group).
var bucketUserGroups = []byte("sync/userGroups") // lp(accountId)+key -> ownedGroupRecord (JSON)

func initUserGroupSchema(tx *bolt.Tx) error {
	_, err := tx.CreateBucketIfNotExists(bucketUserGroups)
	return err
}

// OwnedUserGroups implements UserGroupState.
func (s *BoltStore) OwnedUserGroups(accountID string) (out []OwnedUserGroup, err error) {
	if err := checkAccount(accountID); err != nil {
		return nil, err
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketUserGroups)
		if b == nil {
			return nil
		}
		prefix := pairPrefix(accountID)
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			g, err := DecodeOwnedUserGroup(v)
			if err != nil {
				return err
			}
			out = append(out, g)
		}
		return nil
	})
	return out, err
}

// PutOwnedUserGroup implements UserGroupState.
func (s *BoltStore) PutOwnedUserGroup(g OwnedUserGroup, audit ...AuditRecord) error {
	if err := CheckOwnedUserGroup(g); err != nil {
		return err
	}
	v, err := EncodeOwnedUserGroup(g)
	if err != nil {
		return err
	}
	return s.update(func(w writeTx) error {
		if err := initUserGroupSchema(w.tx); err != nil {
			return err
		}
		if err := w.put(bucketUserGroups, pairKey(g.AccountID, g.Key), v); err != nil {
			return err
		}
		return w.appendAudit(audit)
	})
}

// DeleteOwnedUserGroup implements UserGroupState.
func (s *BoltStore) DeleteOwnedUserGroup(accountID, key string, audit ...AuditRecord) error {
	if err := checkAccount(accountID); err != nil {
		return err
	}
	return s.update(func(w writeTx) error {
		if err := initUserGroupSchema(w.tx); err != nil {
			return err
		}
		if err := w.del(bucketUserGroups, pairKey(accountID, key)); err != nil {
			return err
		}
		return w.appendAudit(audit)
	})
}
