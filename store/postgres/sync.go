package postgres

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/scimflare/scimflare/store"
)

// keyed is one (account, Fold(email)) -> rec row to upsert.
type keyed struct {
	account, email string
	rec            []byte
}

// upsert writes rows into an (account, email, rec) table in one
// statement. Of rows sharing a key the later wins, as in BoltStore (one
// statement may not touch a row twice).
func (w *wtx) upsert(table string, rows []keyed) error {
	if len(rows) == 0 {
		return nil
	}
	idx := map[[2]string]int{}
	var accounts, emails, recs [][]byte
	for _, r := range rows {
		k := [2]string{r.account, r.email}
		if i, ok := idx[k]; ok {
			recs[i] = r.rec
			continue
		}
		idx[k] = len(recs)
		accounts, emails, recs = append(accounts, b(r.account)), append(emails, b(r.email)), append(recs, r.rec)
	}
	_, err := w.exec(`INSERT INTO `+table+` (account, email, rec)
		SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::bytea[])
		ON CONFLICT (account, email) DO UPDATE SET rec = EXCLUDED.rec
		WHERE `+table+`.rec IS DISTINCT FROM EXCLUDED.rec`, accounts, emails, recs)
	return err
}

func (w *wtx) deleteKeyed(table string, rows []keyed) error {
	if len(rows) == 0 {
		return nil
	}
	var accounts, emails [][]byte
	for _, r := range rows {
		accounts, emails = append(accounts, b(r.account)), append(emails, b(r.email))
	}
	_, err := w.exec(`DELETE FROM `+table+` t USING unnest($1::bytea[], $2::bytea[]) AS d(account, email)
		WHERE t.account = d.account AND t.email = d.email`, accounts, emails)
	return err
}

func (w *wtx) commit(c store.SyncCommit) error {
	var delLedger, delCache, putLedger, putCache []keyed
	for _, e := range c.DeleteLedger {
		if err := store.CheckAccountEmail("ledger entry", e.AccountID, e.Email); err != nil {
			return err
		}
		delLedger = append(delLedger, keyed{account: e.AccountID, email: store.Fold(e.Email)})
	}
	for _, m := range c.DeleteCache {
		if err := store.CheckAccountEmail("cached member", m.AccountID, m.Email); err != nil {
			return err
		}
		delCache = append(delCache, keyed{account: m.AccountID, email: store.Fold(m.Email)})
	}
	for _, e := range c.PutLedger {
		v, err := store.EncodeLedger(e)
		if err != nil {
			return err
		}
		putLedger = append(putLedger, keyed{e.AccountID, store.Fold(e.Email), v})
	}
	for _, m := range c.PutCache {
		v, err := store.EncodeCached(m)
		if err != nil {
			return err
		}
		putCache = append(putCache, keyed{m.AccountID, store.Fold(m.Email), v})
	}
	// Validate the audit records before writing anything either.
	if _, err := store.SealAudit(0, "", c.Audit); err != nil {
		return err
	}
	for _, step := range []func() error{
		func() error { return w.deleteKeyed("sync_ledger", delLedger) },
		func() error { return w.deleteKeyed("sync_member_cache", delCache) },
		func() error { return w.upsert("sync_ledger", putLedger) },
		func() error { return w.upsert("sync_member_cache", putCache) },
		func() error { return w.appendAudit(c.Audit) },
	} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

func (w *wtx) replaceMemberCache(accountID string, members []store.CachedMember, scannedAt time.Time) error {
	if err := store.CheckAccount(accountID); err != nil {
		return err
	}
	rows := make([]keyed, 0, len(members))
	for _, m := range members {
		if m.AccountID == "" {
			m.AccountID = accountID
		}
		if m.AccountID != accountID {
			return fmt.Errorf("member %s of account %s is listed under account %s: %w", m.Email, m.AccountID, accountID, store.ErrInvalid)
		}
		v, err := store.EncodeCached(m)
		if err != nil {
			return err
		}
		rows = append(rows, keyed{accountID, store.Fold(m.Email), v})
	}
	// The scan row first: it serializes replacements of one account.
	if _, err := w.exec(`INSERT INTO sync_member_scans (account, scanned_at) VALUES ($1, $2)
		ON CONFLICT (account) DO UPDATE SET scanned_at = EXCLUDED.scanned_at`, b(accountID), store.FormatScanTime(scannedAt)); err != nil {
		return err
	}
	keep := make([][]byte, 0, len(rows))
	for _, r := range rows {
		keep = append(keep, b(r.email))
	}
	// EXCEPT (hashed or sorted), not NOT (email = ANY(…)), which compares
	// every row with the whole list: 100k members would be 10^10 steps.
	if _, err := w.exec(`DELETE FROM sync_member_cache c
		USING (SELECT email FROM sync_member_cache WHERE account = $1 EXCEPT SELECT unnest($2::bytea[])) gone
		WHERE c.account = $1 AND c.email = gone.email`, b(accountID), keep); err != nil {
		return err
	}
	// Only rows that changed are written (upsert's WHERE).
	return w.upsert("sync_member_cache", rows)
}

func (r reader) keyedMap(table, accountID string, decode func(k string, v []byte) error) error {
	if err := store.CheckAccount(accountID); err != nil {
		return err
	}
	return r.each(func(k, v []byte) (bool, error) {
		if err := decode(string(k), v); err != nil {
			return false, fmt.Errorf("account %s: %w", accountID, err)
		}
		return true, nil
	}, "SELECT email, rec FROM "+table+" WHERE account = $1", b(accountID))
}

func (w *wtx) putGrant(g store.Grant, audit []store.AuditRecord) (store.Grant, error) {
	if g.ID == "" {
		for {
			g.ID = store.NewGrantID()
			v, err := w.one("SELECT rec FROM sync_grants WHERE id = $1", b(g.ID))
			if err != nil {
				return store.Grant{}, err
			}
			if v == nil {
				break
			}
		}
	}
	v, err := store.EncodeGrant(g)
	if err != nil {
		return store.Grant{}, err
	}
	if _, err := store.SealAudit(0, "", audit); err != nil {
		return store.Grant{}, err
	}
	if _, err := w.exec("INSERT INTO sync_grants (id, rec) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET rec = EXCLUDED.rec", b(g.ID), v); err != nil {
		return store.Grant{}, err
	}
	if err := w.appendAudit(audit); err != nil {
		return store.Grant{}, err
	}
	return store.DecodeGrant(v)
}

func (r reader) grants() ([]store.Grant, error) {
	var out []store.Grant
	err := r.each(func(k, v []byte) (bool, error) {
		g, err := store.DecodeGrant(v)
		if err != nil {
			return false, fmt.Errorf("grant %s: %w", k, err)
		}
		out = append(out, g)
		return true, nil
	}, "SELECT id, rec FROM sync_grants ORDER BY id")
	slices.SortStableFunc(out, func(a, b store.Grant) int {
		if c := a.End.Compare(b.End); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, err
}

// appendAudit chains recs onto the head. The caller's transaction locked
// sync_audit_head first (write(true, …)), so no other append runs
// meanwhile and the head read here is the latest.
func (w *wtx) appendAudit(recs []store.AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	seq, hash, err := w.auditHead()
	if err != nil {
		return err
	}
	sealed, err := store.SealAudit(seq, hash, recs)
	if err != nil {
		return err
	}
	seqs := make([]int64, len(sealed))
	vals := make([][]byte, len(sealed))
	for i, a := range sealed {
		seqs[i], vals[i] = int64(a.Seq), a.Bytes
	}
	if _, err := w.exec("INSERT INTO sync_audit (seq, rec) SELECT * FROM unnest($1::bigint[], $2::bytea[])", seqs, vals); err != nil {
		return err
	}
	last := sealed[len(sealed)-1]
	_, err = w.exec("UPDATE sync_audit_head SET seq = $1, hash = $2", int64(last.Seq), last.Hash)
	return err
}

func (r reader) auditHead() (uint64, string, error) {
	var seq int64
	var hash string
	err := r.q.QueryRow(r.ctx, "SELECT seq, hash FROM sync_audit_head").Scan(&seq, &hash)
	return uint64(seq), hash, err
}

func (r reader) audit(since time.Time, fn func(store.AuditRecord) bool) error {
	rows, err := r.q.Query(r.ctx, "SELECT seq, rec FROM sync_audit ORDER BY seq")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var v []byte
		if err := rows.Scan(&seq, &v); err != nil {
			return err
		}
		a, err := store.DecodeAudit(v)
		if err != nil {
			return fmt.Errorf("audit record %d: %w", seq, err)
		}
		if a.Time.Before(since) {
			continue
		}
		if !fn(a) {
			return nil
		}
	}
	return rows.Err()
}

func (r reader) verifyAudit() (uint64, error) {
	var av store.AuditVerifier
	rows, err := r.q.Query(r.ctx, "SELECT seq, rec FROM sync_audit ORDER BY seq")
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var v []byte
		if err := rows.Scan(&seq, &v); err != nil {
			return 0, err
		}
		if bad, err := av.Next(uint64(seq), v); err != nil {
			return bad, err
		}
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	rows.Close()
	seq, hash, err := r.auditHead()
	if err != nil {
		return 0, err
	}
	return av.End(seq, hash)
}

// The store.SyncState methods.

// Ledger implements store.SyncState.
func (s *Store) Ledger(accountID string) (map[string]store.LedgerEntry, error) {
	out := map[string]store.LedgerEntry{}
	err := s.read(func(r reader) error {
		return r.keyedMap("sync_ledger", accountID, func(k string, v []byte) error {
			e, err := store.DecodeLedger(v)
			out[k] = e
			return err
		})
	})
	return out, err
}

// CachedMembers implements store.SyncState.
func (s *Store) CachedMembers(accountID string) (map[string]store.CachedMember, error) {
	out := map[string]store.CachedMember{}
	err := s.read(func(r reader) error {
		return r.keyedMap("sync_member_cache", accountID, func(k string, v []byte) error {
			m, err := store.DecodeCached(v)
			out[k] = m
			return err
		})
	})
	return out, err
}

// AccountEmails implements store.SyncState: the emails' rows by primary
// key and the account's ledger tally (kept by triggers, see migration
// 0004), in one snapshot.
func (s *Store) AccountEmails(accountID string, emails []string) (store.AccountEmails, error) {
	out := store.AccountEmails{Ledger: map[string]store.LedgerEntry{}, Cached: map[string]store.CachedMember{}}
	if err := store.CheckAccount(accountID); err != nil {
		return out, err
	}
	folded := make([][]byte, 0, len(emails))
	for _, e := range emails {
		if e != "" {
			folded = append(folded, b(store.Fold(e)))
		}
	}
	ctx, cancel := s.ctx()
	defer cancel()
	err := s.snapshot(ctx, func(r reader) error {
		out = store.AccountEmails{Ledger: map[string]store.LedgerEntry{}, Cached: map[string]store.CachedMember{}}
		if len(folded) > 0 {
			err := r.each(func(k, v []byte) (bool, error) {
				e, err := store.DecodeLedger(v)
				out.Ledger[string(k)] = e
				return err == nil, err
			}, "SELECT email, rec FROM sync_ledger WHERE account = $1 AND email = ANY($2::bytea[])", b(accountID), folded)
			if err != nil {
				return fmt.Errorf("account %s: %w", accountID, err)
			}
			err = r.each(func(k, v []byte) (bool, error) {
				m, err := store.DecodeCached(v)
				out.Cached[string(k)] = m
				return err == nil, err
			}, "SELECT email, rec FROM sync_member_cache WHERE account = $1 AND email = ANY($2::bytea[])", b(accountID), folded)
			if err != nil {
				return fmt.Errorf("account %s: %w", accountID, err)
			}
		}
		var n int64
		if err := r.q.QueryRow(r.ctx, "SELECT coalesce((SELECT managed FROM sync_ledger_tally WHERE account = $1), 0)", b(accountID)).Scan(&n); err != nil {
			return err
		}
		out.ManagedGrants = int(n)
		v, err := r.one("SELECT convert_to(scanned_at, 'UTF8') FROM sync_member_scans WHERE account = $1", b(accountID))
		if err != nil || v == nil {
			return err
		}
		out.ScannedAt, err = store.ParseScanTime(accountID, string(v))
		return err
	})
	return out, err
}

// ReplaceMemberCache implements store.SyncState.
func (s *Store) ReplaceMemberCache(accountID string, members []store.CachedMember, scannedAt time.Time) error {
	return s.write(false, func(w *wtx) error { return w.replaceMemberCache(accountID, members, scannedAt) })
}

// MemberCacheScannedAt implements store.SyncState.
func (s *Store) MemberCacheScannedAt(accountID string) (time.Time, error) {
	if err := store.CheckAccount(accountID); err != nil {
		return time.Time{}, err
	}
	var v []byte
	err := s.read(func(r reader) (err error) {
		v, err = r.one("SELECT convert_to(scanned_at, 'UTF8') FROM sync_member_scans WHERE account = $1", b(accountID))
		return err
	})
	if err != nil || v == nil {
		return time.Time{}, err
	}
	return store.ParseScanTime(accountID, string(v))
}

// Commit implements store.SyncState.
func (s *Store) Commit(c store.SyncCommit) error {
	return s.write(len(c.Audit) > 0, func(w *wtx) error { return w.commit(c) })
}

// PutGrant implements store.SyncState.
func (s *Store) PutGrant(g store.Grant, audit ...store.AuditRecord) (store.Grant, error) {
	var out store.Grant
	err := s.write(len(audit) > 0, func(w *wtx) (err error) {
		out, err = w.putGrant(g, audit)
		return err
	})
	return out, err
}

// Grants implements store.SyncState.
func (s *Store) Grants() (gs []store.Grant, err error) {
	err = s.read(func(r reader) error { gs, err = r.grants(); return err })
	return gs, err
}

// GetGrant implements store.SyncState.
func (s *Store) GetGrant(id string) (store.Grant, error) {
	var v []byte
	if id != "" {
		if err := s.read(func(r reader) (err error) {
			v, err = r.one("SELECT rec FROM sync_grants WHERE id = $1", b(id))
			return err
		}); err != nil {
			return store.Grant{}, err
		}
	}
	if v == nil {
		return store.Grant{}, fmt.Errorf("grant %q: %w", id, store.ErrNotFound)
	}
	return store.DecodeGrant(v)
}

// GCGrants implements store.SyncState.
func (s *Store) GCGrants(before time.Time) (int, error) {
	var n int
	err := s.write(false, func(w *wtx) error {
		// Lock them all (grants are few): a revocation in flight waits.
		if _, err := w.exec("SELECT 1 FROM sync_grants FOR UPDATE"); err != nil {
			return err
		}
		gs, err := w.grants()
		if err != nil {
			return err
		}
		var drop [][]byte
		for _, g := range gs {
			if store.GrantEnded(g, before) {
				drop = append(drop, b(g.ID))
			}
		}
		n = len(drop)
		if n == 0 {
			return nil
		}
		_, err = w.exec("DELETE FROM sync_grants WHERE id = ANY($1::bytea[])", drop)
		return err
	})
	return n, err
}

// AppendAudit implements store.SyncState.
func (s *Store) AppendAudit(recs ...store.AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	return s.write(true, func(w *wtx) error { return w.appendAudit(recs) })
}

// Audit implements store.SyncState.
func (s *Store) Audit(since time.Time, fn func(store.AuditRecord) bool) error {
	return s.read(func(r reader) error { return r.audit(since, fn) })
}

// VerifyAudit implements store.SyncState, on one snapshot.
func (s *Store) VerifyAudit() (seq uint64, err error) {
	verr := s.view(func(r reader) error { seq, err = r.verifyAudit(); return nil })
	if verr != nil {
		return 0, verr
	}
	return seq, err
}

// AuditHead implements store.Backend.
func (s *Store) AuditHead() (seq uint64, hash string, err error) {
	err = s.read(func(r reader) error { seq, hash, err = r.auditHead(); return err })
	return seq, hash, err
}

// PutStatus implements store.SyncState.
func (s *Store) PutStatus(key string, value []byte) error {
	if err := store.CheckStatusKey(key); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	return s.write(false, func(w *wtx) error {
		_, err := w.exec("INSERT INTO sync_status (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value", b(key), value)
		return err
	})
}

// Status implements store.SyncState.
func (s *Store) Status(key string) (v []byte, err error) {
	if key == "" {
		return nil, nil
	}
	err = s.read(func(r reader) (err error) {
		v, err = r.one("SELECT value FROM sync_status WHERE key = $1", b(key))
		return err
	})
	return v, err
}
