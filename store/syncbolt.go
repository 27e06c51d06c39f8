package store

import (
	"bytes"
	"cmp"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

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

// Records. Field names are spelled out: these are few and small, and the
// audit trail in particular should be readable with `bbolt get`.
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

type cacheRecord struct {
	AccountID string   `json:"account"`
	MemberID  string   `json:"member,omitempty"`
	Email     string   `json:"email"`
	Status    string   `json:"status,omitempty"`
	Keys      []string `json:"keys,omitempty"`
}

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

// auditRecord is both the stored form and, with Hash empty, the canonical
// encoding that is hashed: encoding/json writes struct fields in
// declaration order, escapes strings one way, and every field is always
// present (no omitempty, slices never null), so the bytes are a function
// of the field values alone.
type auditRecord struct {
	Seq        uint64   `json:"seq"`
	Time       string   `json:"time"` // RFC3339Nano, UTC
	Actor      string   `json:"actor"`
	Action     string   `json:"action"`
	AccountID  string   `json:"account"`
	Email      string   `json:"email"`
	Before     []string `json:"before"`
	After      []string `json:"after"`
	Reason     string   `json:"reason"`
	Privileged bool     `json:"privileged"`
	// Version 2 fields: omitted when empty, so a version 1 record's
	// canonical bytes (and hash) are what they always were.
	V          int           `json:"v,omitempty"`
	Sources    []AuditSource `json:"sources,omitempty"`
	WithheldBy string        `json:"withheld_by,omitempty"`
	PrevHash   string        `json:"prev"`
	Hash       string        `json:"hash,omitempty"`
}

// auditHashDomain separates these hashes from any other sha256 of JSON,
// and one record format from the next: a record cannot be passed off as
// another version's.
func auditHashDomain(v int) string {
	if v >= 2 {
		return fmt.Sprintf("scimflare audit v%d\n", v)
	}
	return "scimflare audit v1\n"
}

func (r auditRecord) hash() (string, error) {
	r.Hash = ""
	b, err := json.Marshal(r)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte(auditHashDomain(r.V)))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (r auditRecord) public() (AuditRecord, error) {
	t, err := time.Parse(time.RFC3339Nano, r.Time)
	if err != nil {
		return AuditRecord{}, fmt.Errorf("audit record %d: time: %w", r.Seq, err)
	}
	return AuditRecord{
		Seq: r.Seq, Time: t, Actor: r.Actor, Action: r.Action, AccountID: r.AccountID, Email: r.Email,
		Before: r.Before, After: r.After, Reason: r.Reason, Privileged: r.Privileged,
		Sources: r.Sources, WithheldBy: r.WithheldBy, Version: max(r.V, 1),
		PrevHash: r.PrevHash, Hash: r.Hash,
	}, nil
}

func decodeAudit(v []byte) (auditRecord, error) {
	var r auditRecord
	err := json.Unmarshal(v, &r)
	return r, err
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

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

func encodeCached(m CachedMember) ([]byte, error) {
	v, err := json.Marshal(cacheRecord(m))
	if err != nil {
		return nil, fmt.Errorf("encode cached member %s in account %s: %w", m.Email, m.AccountID, err)
	}
	return v, nil
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
	for k, v := range fresh {
		if err := w.put(bucketMemberCache, []byte(k), v); err != nil {
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

// appendAudit chains recs onto the head kept in sync/meta. The head also
// lets VerifyAudit notice records cut off the end of the trail.
func (w writeTx) appendAudit(recs []AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	meta := w.bucket(bucketSyncMeta)
	sealed, err := SealAudit(decodeUint(meta.Get(keyAuditSeq)), string(meta.Get(keyAuditHash)), recs)
	if err != nil {
		return err
	}
	for _, a := range sealed {
		if err := w.put(bucketAudit, seqKey(a.Seq), a.Bytes); err != nil {
			return err
		}
	}
	last := sealed[len(sealed)-1]
	if err := w.put(bucketSyncMeta, keyAuditSeq, encodeUint(last.Seq)); err != nil {
		return err
	}
	return w.put(bucketSyncMeta, keyAuditHash, []byte(last.Hash))
}

func (r readTx) audit(since time.Time, fn func(AuditRecord) bool) error {
	c := r.bucket(bucketAudit).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		rec, err := decodeAudit(v)
		if err != nil {
			return fmt.Errorf("decode audit record %d: %w", decodeUint(k), err)
		}
		pub, err := rec.public()
		if err != nil {
			return err
		}
		if pub.Time.Before(since) {
			continue
		}
		if !fn(pub) {
			return nil
		}
	}
	return nil
}

type auditBrokenError struct{ msg string }

func (e *auditBrokenError) Error() string        { return e.msg }
func (e *auditBrokenError) Is(target error) bool { return target == ErrAuditBroken }

func auditBroken(format string, args ...any) error {
	return &auditBrokenError{msg: fmt.Sprintf(format, args...)}
}

// verifyAudit walks the whole trail once. A record is judged on its own
// (decodes, hashes to its stored hash, carries its key's Seq) before its
// link to the previous one, so a flipped byte is reported as an alteration
// of that record, and a removed record as a gap at the one after it.
func (r readTx) verifyAudit() (uint64, error) {
	var av AuditVerifier
	c := r.bucket(bucketAudit).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 8 {
			return av.Seq() + 1, auditBroken("audit record after %d has a malformed key %x", av.Seq(), k)
		}
		if bad, err := av.Next(binary.BigEndian.Uint64(k), v); err != nil {
			return bad, err
		}
	}
	meta := r.bucket(bucketSyncMeta)
	return av.End(decodeUint(meta.Get(keyAuditSeq)), string(meta.Get(keyAuditHash)))
}

// BoltStore methods: one transaction each.

// Ledger implements SyncState.
func (s *BoltStore) Ledger(accountID string) (out map[string]LedgerEntry, err error) {
	err = s.view(func(r readTx) error { out, err = r.ledger(accountID); return err })
	return out, err
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

// Commit implements SyncState.
func (s *BoltStore) Commit(c SyncCommit) error {
	return s.update(func(w writeTx) error { return w.commit(c) })
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

// AppendAudit implements SyncState.
func (s *BoltStore) AppendAudit(recs ...AuditRecord) error {
	return s.update(func(w writeTx) error { return w.appendAudit(recs) })
}

// Audit implements SyncState.
func (s *BoltStore) Audit(since time.Time, fn func(AuditRecord) bool) error {
	return s.view(func(r readTx) error { return r.audit(since, fn) })
}

// VerifyAudit implements SyncState.
func (s *BoltStore) VerifyAudit() (seq uint64, err error) {
	verr := s.view(func(r readTx) error { seq, err = r.verifyAudit(); return nil })
	if verr != nil {
		return 0, verr
	}
	return seq, err
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
