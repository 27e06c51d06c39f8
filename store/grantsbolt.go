// Temporary grants in bbolt (`grant --for`): id, email, account, what, and
// the window they hold for.

package store

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

type grantRecord struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	AccountID string    `json:"account"`
	Role      string    `json:"role,omitempty"`
	Mapping   string    `json:"mapping,omitempty"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Reason    string    `json:"reason,omitempty"`
	Actor     string    `json:"actor,omitempty"`
	RevokedAt time.Time `json:"revoked"`
}

func newGrantID() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go >= 1.24)
	return "g-" + hex.EncodeToString(b[:])
}

func (w writeTx) putGrant(g Grant, audit []AuditRecord) (Grant, error) {
	if g.ID == "" {
		for g.ID = newGrantID(); w.bucket(bucketGrants).Get([]byte(g.ID)) != nil; g.ID = newGrantID() {
		}
	}
	if err := checkAccountEmail("grant", g.AccountID, g.Email); err != nil {
		return Grant{}, err
	}
	if err := checkLen("grant id", g.ID); err != nil {
		return Grant{}, err
	}
	if g.End.IsZero() || g.End.Before(g.Start) {
		return Grant{}, fmt.Errorf("grant %s ends at %s, before it starts at %s: %w", g.ID, g.End.Format(time.RFC3339), g.Start.Format(time.RFC3339), ErrInvalid)
	}
	v, err := json.Marshal(grantRecord(g))
	if err != nil {
		return Grant{}, fmt.Errorf("encode grant %s: %w", g.ID, err)
	}
	if err := w.put(bucketGrants, []byte(g.ID), v); err != nil {
		return Grant{}, err
	}
	if err := w.appendAudit(audit); err != nil {
		return Grant{}, err
	}
	// Read back what was stored, so the caller sees times as stored.
	return decodeGrant(v)
}

func decodeGrant(v []byte) (Grant, error) {
	var r grantRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return Grant{}, fmt.Errorf("decode grant: %w", err)
	}
	return Grant(r), nil
}

func (r readTx) grants() ([]Grant, error) {
	var out []Grant
	err := r.bucket(bucketGrants).ForEach(func(k, v []byte) error {
		g, err := decodeGrant(v)
		if err != nil {
			return fmt.Errorf("grant %s: %w", k, err)
		}
		out = append(out, g)
		return nil
	})
	slices.SortFunc(out, func(a, b Grant) int {
		if c := a.End.Compare(b.End); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, err
}

func (r readTx) getGrant(id string) (Grant, error) {
	var v []byte
	if id != "" {
		v = r.bucket(bucketGrants).Get([]byte(id))
	}
	if v == nil {
		return Grant{}, fmt.Errorf("grant %q: %w", id, ErrNotFound)
	}
	return decodeGrant(v)
}

func (w writeTx) gcGrants(before time.Time) (int, error) {
	n := 0
	c := w.bucket(bucketGrants).Cursor()
	for k, v := c.First(); k != nil; {
		g, err := decodeGrant(v)
		if err != nil {
			return 0, fmt.Errorf("grant %s: %w", k, err)
		}
		if g.End.Before(before) || (!g.RevokedAt.IsZero() && g.RevokedAt.Before(before)) {
			at := bytes.Clone(k)
			if err := c.Delete(); err != nil {
				return 0, fmt.Errorf("delete grant %s: %w", at, err)
			}
			n++
			k, v = c.Seek(at)
			continue
		}
		k, v = c.Next()
	}
	return n, nil
}

// PutGrant implements SyncState.
func (s *BoltStore) PutGrant(g Grant, audit ...AuditRecord) (Grant, error) {
	var out Grant
	err := s.update(func(w writeTx) (err error) {
		out, err = w.putGrant(g, audit)
		return err
	})
	return out, err
}

// Grants implements SyncState.
func (s *BoltStore) Grants() (gs []Grant, err error) {
	err = s.view(func(r readTx) error { gs, err = r.grants(); return err })
	return gs, err
}

// GetGrant implements SyncState.
func (s *BoltStore) GetGrant(id string) (g Grant, err error) {
	err = s.view(func(r readTx) error { g, err = r.getGrant(id); return err })
	return g, err
}

// GCGrants implements SyncState.
func (s *BoltStore) GCGrants(before time.Time) (int, error) {
	var n int
	err := s.update(func(w writeTx) (err error) {
		n, err = w.gcGrants(before)
		return err
	})
	return n, err
}
