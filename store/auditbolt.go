// The audit trail in bbolt: append-only records, each hashed over the one
// before it, and the verifier that walks the chain.

package store

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

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

func (e *auditBrokenError) Error() string { return e.msg }

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
