package store

import (
	"encoding/json"
	"fmt"
	"time"
)

// OwnedUserGroup records a Cloudflare user group scimflare created for one
// mapping of a user-groups account (accounts[].model: user_groups). It is
// the ownership ledger of groups: scimflare changes a group only when a
// record names its id. A record without GroupID is an intent, written
// before the create call: should the answer be lost, the next run finds
// the group by Name and knows it as its own.
type OwnedUserGroup struct {
	AccountID string
	// Key is the mapping's key within the account (its IdP group); one
	// record per key.
	Key       string
	GroupID   string
	Name      string
	UpdatedAt time.Time
}

// UserGroupState is the part of the state that records owned user groups.
// Both backends implement it; store/storetest.RunUserGroups is its
// conformance suite.
type UserGroupState interface {
	// OwnedUserGroups lists the account's records, ordered by Key.
	OwnedUserGroups(accountID string) ([]OwnedUserGroup, error)
	// PutOwnedUserGroup stores g (replacing the record of its key) with the
	// audit records, in one transaction.
	PutOwnedUserGroup(g OwnedUserGroup, audit ...AuditRecord) error
	// DeleteOwnedUserGroup drops the record of key, with the audit records,
	// in one transaction; no record is no error.
	DeleteOwnedUserGroup(accountID, key string, audit ...AuditRecord) error
}

var _ UserGroupState = (*BoltStore)(nil)

// ownedGroupRecord is the stored form, in both backends.
type ownedGroupRecord struct {
	AccountID string    `json:"account"`
	Key       string    `json:"key"`
	GroupID   string    `json:"group,omitempty"`
	Name      string    `json:"name"`
	UpdatedAt time.Time `json:"updated"`
}

// CheckOwnedUserGroup refuses a record that cannot be stored (ErrInvalid).
func CheckOwnedUserGroup(g OwnedUserGroup) error {
	if err := checkAccount(g.AccountID); err != nil {
		return err
	}
	if g.Key == "" {
		return fmt.Errorf("owned user group in account %s: key is required: %w", g.AccountID, ErrInvalid)
	}
	if g.Name == "" {
		return fmt.Errorf("owned user group %q in account %s: name is required: %w", g.Key, g.AccountID, ErrInvalid)
	}
	for _, v := range []string{g.Key, g.GroupID, g.Name} {
		if err := checkLen("owned user group", v); err != nil {
			return err
		}
	}
	return nil
}

// EncodeOwnedUserGroup is the stored bytes of g.
func EncodeOwnedUserGroup(g OwnedUserGroup) ([]byte, error) {
	g.UpdatedAt = g.UpdatedAt.UTC()
	return json.Marshal(ownedGroupRecord(g))
}

// DecodeOwnedUserGroup reads what EncodeOwnedUserGroup wrote.
func DecodeOwnedUserGroup(v []byte) (OwnedUserGroup, error) {
	var rec ownedGroupRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return OwnedUserGroup{}, fmt.Errorf("decode owned user group: %w", err)
	}
	return OwnedUserGroup(rec), nil
}
