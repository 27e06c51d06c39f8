package store

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// This file is the kit a second backend (store/postgres) builds on, so
// that it validates, encodes and hashes exactly as BoltStore does: the
// same input is accepted or refused with the same error, records read back
// identically, and the audit chain's hashes are byte for byte the ones
// BoltStore computes (a trail copied between backends still verifies).
// Nothing here touches storage.

// MaxIndexedLen bounds every indexed string (userName, displayName,
// externalId, email, token name, account id, status key).
const MaxIndexedLen = maxIndexedLen

// PrepareUser validates u as CreateUser and UpdateUser do and normalizes
// its Doc (compacted JSON object, or nil). ErrInvalid when u is refused.
func PrepareUser(u *User) error { return validateUser(u) }

// PrepareGroup is PrepareUser for groups.
func PrepareGroup(g *Group) error { return validateGroup(g) }

// SameUser reports whether b changes nothing of a that a write would store
// (the attributes UpdateUser compares before it bumps Version).
func SameUser(a, b User) bool { return sameUser(a, b) }

// NewID returns a new user or group id: 32 hex digits, the first 48 bits
// now in Unix milliseconds, the other 80 random. The backend must still
// check it names no user or group (a collision is 2^-80 per millisecond).
func NewID(now time.Time) string {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails (Go >= 1.24)
	return hex.EncodeToString(b[:])
}

// NewGrantID returns a new grant id, "g-" and 12 hex digits.
func NewGrantID() string { return newGrantID() }

// ValidID reports whether id can name a stored user or group at all.
func ValidID(id string) bool { return validID(id) }

// EncodeUser and the functions below are the record encodings BoltStore
// stores; a backend that stores the same bytes reads back the same values
// (time zones, nil and empty slices and all).
func EncodeUser(u User) ([]byte, error) { return encodeUser(u) }

// DecodeUser reverses EncodeUser.
func DecodeUser(v []byte) (User, error) { return decodeUser(v) }

// EncodeGroup is EncodeUser for groups.
func EncodeGroup(g Group) ([]byte, error) { return encodeGroup(g) }

// DecodeGroup reverses EncodeGroup.
func DecodeGroup(v []byte) (Group, error) { return decodeGroup(v) }

// PrepareToken validates t as PutToken does and returns the record to
// store (times in UTC).
func PrepareToken(t Token) ([]byte, error) {
	if t.Name == "" {
		return nil, fmt.Errorf("token name is required: %w", ErrInvalid)
	}
	if err := checkLen("token name", t.Name); err != nil {
		return nil, err
	}
	t.CreatedAt, t.ExpiresAt = t.CreatedAt.UTC(), t.ExpiresAt.UTC()
	v, err := encodeToken(t)
	if err != nil {
		return nil, fmt.Errorf("encode token %q: %w", t.Name, err)
	}
	return v, nil
}

// DecodeToken reverses PrepareToken.
func DecodeToken(v []byte) (Token, error) { return decodeToken(v) }

// CheckAccount validates an account id argument of SyncState.
func CheckAccount(accountID string) error { return checkAccount(accountID) }

// CheckAccountEmail validates the key of a ledger entry, cached member or
// grant; what names the kind of record in the error.
func CheckAccountEmail(what, accountID, email string) error {
	return checkAccountEmail(what, accountID, email)
}

// EncodeLedger validates e and returns its record.
func EncodeLedger(e LedgerEntry) ([]byte, error) {
	if err := checkAccountEmail("ledger entry", e.AccountID, e.Email); err != nil {
		return nil, err
	}
	v, err := json.Marshal(ledgerRecord(e))
	if err != nil {
		return nil, fmt.Errorf("encode ledger entry %s in account %s: %w", e.Email, e.AccountID, err)
	}
	return v, nil
}

// DecodeLedger reverses EncodeLedger.
func DecodeLedger(v []byte) (LedgerEntry, error) {
	var rec ledgerRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return LedgerEntry{}, fmt.Errorf("decode ledger entry: %w", err)
	}
	return LedgerEntry(rec), nil
}

// EncodeCached validates m and returns its record.
func EncodeCached(m CachedMember) ([]byte, error) {
	if err := checkAccountEmail("cached member", m.AccountID, m.Email); err != nil {
		return nil, err
	}
	return encodeCached(m)
}

// DecodeCached reverses EncodeCached.
func DecodeCached(v []byte) (CachedMember, error) {
	var rec cacheRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return CachedMember{}, fmt.Errorf("decode cached member: %w", err)
	}
	return CachedMember(rec), nil
}

// EncodeGrant validates g (its ID must be set) as PutGrant does and
// returns its record.
func EncodeGrant(g Grant) ([]byte, error) {
	if err := checkAccountEmail("grant", g.AccountID, g.Email); err != nil {
		return nil, err
	}
	if g.ID == "" {
		return nil, fmt.Errorf("grant for %s: id is required: %w", g.Email, ErrInvalid)
	}
	if err := checkLen("grant id", g.ID); err != nil {
		return nil, err
	}
	if g.End.IsZero() || g.End.Before(g.Start) {
		return nil, fmt.Errorf("grant %s ends at %s, before it starts at %s: %w", g.ID, g.End.Format(time.RFC3339), g.Start.Format(time.RFC3339), ErrInvalid)
	}
	v, err := json.Marshal(grantRecord(g))
	if err != nil {
		return nil, fmt.Errorf("encode grant %s: %w", g.ID, err)
	}
	return v, nil
}

// DecodeGrant reverses EncodeGrant.
func DecodeGrant(v []byte) (Grant, error) { return decodeGrant(v) }

// GrantEnded reports whether GCGrants(before) drops g.
func GrantEnded(g Grant, before time.Time) bool {
	return g.End.Before(before) || (!g.RevokedAt.IsZero() && g.RevokedAt.Before(before))
}

// CheckStatusKey validates a PutStatus key.
func CheckStatusKey(key string) error {
	if key == "" {
		return fmt.Errorf("status key is required: %w", ErrInvalid)
	}
	return checkLen("status key", key)
}

// FormatScanTime is how MemberCacheScannedAt times are stored.
func FormatScanTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// ParseScanTime reverses FormatScanTime.
func ParseScanTime(accountID, v string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("member cache scan time of account %s: %w", accountID, err)
	}
	return t, nil
}

// SealedAudit is one audit record ready to store: its Seq, its hash and
// the exact bytes a backend must keep (the hash covers them; VerifyAudit
// rejects any other byte).
type SealedAudit struct {
	Seq   uint64
	Hash  string
	Bytes []byte
}

// SealAudit validates recs and chains them after the head (seq, prevHash)
// exactly as BoltStore.AppendAudit does. The new head is the last result.
func SealAudit(seq uint64, prevHash string, recs []AuditRecord) ([]SealedAudit, error) {
	out := make([]SealedAudit, 0, len(recs))
	for _, a := range recs {
		if err := checkAuditRecord(a); err != nil {
			return nil, err
		}
		seq++
		r := auditRecord{
			Seq: seq, Time: a.Time.UTC().Format(time.RFC3339Nano), Actor: a.Actor, Action: a.Action,
			AccountID: a.AccountID, Email: a.Email, Before: nonNil(a.Before), After: nonNil(a.After),
			Reason: a.Reason, Privileged: a.Privileged, PrevHash: prevHash,
			V: AuditVersion, Sources: canonicalSources(a.Sources), WithheldBy: a.WithheldBy,
		}
		v, h, err := r.seal()
		if err != nil {
			return nil, err
		}
		out = append(out, SealedAudit{Seq: seq, Hash: h, Bytes: v})
		prevHash = h
	}
	return out, nil
}

// ResealAudit turns a record read from another store (Seq, PrevHash and
// Hash as stored there) back into the bytes that store kept, and fails
// with ErrAuditBroken if its hash does not match its content: copying an
// audit trail between backends keeps every hash and never launders a
// forged record.
func ResealAudit(a AuditRecord) (SealedAudit, error) {
	if err := checkAuditRecord(a); err != nil {
		return SealedAudit{}, err
	}
	r := auditRecord{
		Seq: a.Seq, Time: a.Time.UTC().Format(time.RFC3339Nano), Actor: a.Actor, Action: a.Action,
		AccountID: a.AccountID, Email: a.Email, Before: nonNil(a.Before), After: nonNil(a.After),
		Reason: a.Reason, Privileged: a.Privileged, PrevHash: a.PrevHash,
		Sources: canonicalSources(a.Sources), WithheldBy: a.WithheldBy,
	}
	if a.Version >= 2 {
		r.V = a.Version
	}
	v, h, err := r.seal()
	if err != nil {
		return SealedAudit{}, err
	}
	if h != a.Hash {
		return SealedAudit{}, auditBroken("audit record %d was altered: its hash does not match its content", a.Seq)
	}
	return SealedAudit{Seq: a.Seq, Hash: h, Bytes: v}, nil
}

func checkAuditRecord(a AuditRecord) error {
	if a.Action == "" {
		return fmt.Errorf("audit record for %s in account %s: action is required: %w", a.Email, a.AccountID, ErrInvalid)
	}
	if a.Time.IsZero() || a.Time.UTC().Year() > 9999 || a.Time.UTC().Year() < 0 {
		return fmt.Errorf("audit record %s for %s: time %s is out of range: %w", a.Action, a.Email, a.Time, ErrInvalid)
	}
	return nil
}

// seal fills in r.Hash and returns the stored bytes.
func (r *auditRecord) seal() ([]byte, string, error) {
	h, err := r.hash()
	if err != nil {
		return nil, "", fmt.Errorf("hash audit record %d: %w", r.Seq, err)
	}
	r.Hash = h
	v, err := json.Marshal(r)
	if err != nil {
		return nil, "", fmt.Errorf("encode audit record %d: %w", r.Seq, err)
	}
	return v, h, nil
}

// DecodeAudit reads a stored audit record.
func DecodeAudit(v []byte) (AuditRecord, error) {
	rec, err := decodeAudit(v)
	if err != nil {
		return AuditRecord{}, fmt.Errorf("decode audit record: %w", err)
	}
	return rec.public()
}

// AuditVerifier checks a stored trail record by record, in Seq order,
// with exactly BoltStore's judgements and messages.
type AuditVerifier struct {
	seq  uint64
	prev string
}

// Next checks the record stored under seq at with bytes v. On a broken
// record it returns that record's Seq and an error wrapping ErrAuditBroken.
func (av *AuditVerifier) Next(at uint64, v []byte) (uint64, error) {
	seq, prev := av.seq, av.prev
	if at != seq+1 {
		switch {
		case at == seq+2:
			return at, auditBroken("audit record %d follows record %d: record %d was removed", at, seq, seq+1)
		case at > seq+2:
			return at, auditBroken("audit record %d follows record %d: records %d to %d were removed", at, seq, seq+1, at-1)
		}
		return at, auditBroken("audit record %d is out of sequence after record %d", at, seq)
	}
	rec, err := decodeAudit(v)
	if err != nil {
		return at, auditBroken("audit record %d was altered: it no longer decodes (%v)", at, err)
	}
	h, err := rec.hash()
	if err != nil {
		return at, fmt.Errorf("hash audit record %d: %w", at, err)
	}
	if h != rec.Hash {
		return at, auditBroken("audit record %d was altered: its hash does not match its content", at)
	}
	// encoding/json forgives what a hash must not (letter case in
	// field names, escapes), so the stored bytes must also be exactly
	// the canonical encoding of what they decode to: then no byte can
	// change unnoticed.
	if canon, err := json.Marshal(rec); err != nil || string(canon) != string(v) {
		return at, auditBroken("audit record %d was altered: its stored form is not the one scimflare wrote", at)
	}
	if _, err := rec.public(); err != nil || rec.Seq != at {
		return at, auditBroken("audit record %d was altered: its content does not match its position", at)
	}
	if rec.PrevHash != prev {
		return at, auditBroken("audit record %d does not link to record %d: the chain is broken", at, seq)
	}
	av.seq, av.prev = at, rec.Hash
	return 0, nil
}

// Seq is the Seq of the last record Next accepted.
func (av *AuditVerifier) Seq() uint64 { return av.seq }

// End compares the records seen with the head the store keeps, which is
// how a record cut off the end (or appended by hand) is noticed.
func (av *AuditVerifier) End(headSeq uint64, headHash string) (uint64, error) {
	seq, prev := av.seq, av.prev
	switch {
	case headSeq > seq:
		return seq + 1, auditBroken("audit record %d was removed: the trail ends at %d but %d records were written", seq+1, seq, headSeq)
	case headSeq < seq:
		return headSeq + 1, auditBroken("audit record %d was not written by scimflare: only %d records were written", headSeq+1, headSeq)
	case headHash != prev:
		return seq, auditBroken("audit record %d was replaced: it is not the last record scimflare wrote", seq)
	}
	return 0, nil
}

// canonicalSources is sources as they are hashed: times in UTC (JSON keeps
// the zone, so equal moments must also be equal bytes), nil when empty.
func canonicalSources(src []AuditSource) []AuditSource {
	if len(src) == 0 {
		return nil
	}
	out := make([]AuditSource, len(src))
	for i, s := range src {
		out[i] = s
		if !s.Expires.IsZero() {
			out[i].Expires = s.Expires.UTC()
		}
	}
	return out
}
