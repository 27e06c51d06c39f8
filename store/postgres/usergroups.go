package postgres

import (
	"github.com/scimflare/scimflare/store"
)

var _ store.UserGroupState = (*Store)(nil)

// OwnedUserGroups implements store.UserGroupState.
func (s *Store) OwnedUserGroups(accountID string) ([]store.OwnedUserGroup, error) {
	if err := store.CheckAccount(accountID); err != nil {
		return nil, err
	}
	var out []store.OwnedUserGroup
	err := s.read(func(r reader) error {
		out = nil
		return r.each(func(_, v []byte) (bool, error) {
			g, err := store.DecodeOwnedUserGroup(v)
			out = append(out, g)
			return err == nil, err
		}, "SELECT key, rec FROM sync_user_groups WHERE account = $1 ORDER BY key", b(accountID))
	})
	return out, err
}

// PutOwnedUserGroup implements store.UserGroupState.
func (s *Store) PutOwnedUserGroup(g store.OwnedUserGroup, audit ...store.AuditRecord) error {
	if err := store.CheckOwnedUserGroup(g); err != nil {
		return err
	}
	v, err := store.EncodeOwnedUserGroup(g)
	if err != nil {
		return err
	}
	return s.write(len(audit) > 0, func(w *wtx) error {
		if _, err := w.exec(`INSERT INTO sync_user_groups (account, key, rec) VALUES ($1, $2, $3)
			ON CONFLICT (account, key) DO UPDATE SET rec = EXCLUDED.rec`, b(g.AccountID), b(g.Key), v); err != nil {
			return err
		}
		return w.appendAudit(audit)
	})
}

// DeleteOwnedUserGroup implements store.UserGroupState.
func (s *Store) DeleteOwnedUserGroup(accountID, key string, audit ...store.AuditRecord) error {
	if err := store.CheckAccount(accountID); err != nil {
		return err
	}
	return s.write(len(audit) > 0, func(w *wtx) error {
		if _, err := w.exec("DELETE FROM sync_user_groups WHERE account = $1 AND key = $2", b(accountID), b(key)); err != nil {
			return err
		}
		return w.appendAudit(audit)
	})
}
