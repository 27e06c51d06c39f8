package store

import (
	"errors"
	"time"
)

// ErrAuditBroken: VerifyAudit found a record that was altered, removed or
// inserted outside the store. The error naming the record wraps it.
var ErrAuditBroken = errors.New("audit trail broken")

// LedgerEntry records what scimflare owns on one Cloudflare member.
type LedgerEntry struct {
	AccountID string
	Email     string // as last seen; the key is Fold(Email)
	MemberID  string
	Created   bool     // scimflare invited this member
	Managed   []string // grant keys scimflare granted (see mapping.RoleKey/PolicyKey; opaque strings here)
	Found     []string // keys present when the member was adopted; never touched
	UpdatedAt time.Time
	// MissingSince is when a complete listing of the account first lacked
	// the member; zero while it is listed. Ownership is dropped only when
	// a second consecutive listing lacks it too, or Cloudflare answers 404
	// for it: one listing's word is not enough to forget a grant.
	MissingSince time.Time
}

// CachedMember is one member from the last full listing of an account
// (targeted runs use it instead of listing).
type CachedMember struct {
	AccountID, MemberID, Email, Status string
	Keys                               []string
}

// AccountEmails is what AccountEmails read about some emails of one
// account.
type AccountEmails struct {
	// Ledger and Cached hold the asked emails that have an entry, keyed
	// by Fold(email), as Ledger and CachedMembers would.
	Ledger map[string]LedgerEntry
	Cached map[string]CachedMember
	// ManagedGrants is the number of managed keys in the account's whole
	// ledger (the sum of len(Managed) over every entry): the removal
	// guard's percent base. It is kept by every ledger write, in the same
	// transaction, so reading it costs no scan.
	ManagedGrants int
	// ScannedAt is MemberCacheScannedAt.
	ScannedAt time.Time
}

// Grant is a temporary grant made with `scimflare grant`. Whether it is in
// force is computed from Start, End and RevokedAt against now, never stored.
type Grant struct {
	ID         string // assigned by PutGrant when empty: "g-" + 12 hex digits
	Email      string
	AccountID  string
	Role       string // role name, or ""
	Mapping    string // mapping group name, or ""
	Start, End time.Time
	Reason     string
	Actor      string
	RevokedAt  time.Time // zero unless revoked
}

// AuditRecord is one entry of the append-only, hash-chained audit trail.
//
// Strings are stored as JSON: invalid UTF-8 reads back with U+FFFD in its
// place, and the hash covers what reads back. Time is kept in UTC to the
// nanosecond.
type AuditRecord struct {
	Seq        uint64 // assigned on append: 1, 2, 3 …
	Time       time.Time
	Actor      string // "idp-push", "schedule", "expiry", "grant", "revoke", "apply", "apply --force", "token", "reload", …
	Action     string // e.g. "add_member", "update_roles", "remove_member", "expire_grant", "grant", "revoke", "guard_tripped", …
	AccountID  string
	Email      string
	Before     []string // role names
	After      []string
	Reason     string
	Privileged bool // the change raised privilege (a role added)
	// Sources says, as data, why the member holds each key after the
	// change (version 2 records; a reader of an older record falls back to
	// the Reason prose).
	Sources []AuditSource
	// WithheldBy names the policy that held a change back
	// (removal_withheld records): "guard", "protected", ….
	WithheldBy string
	// Version is the record format and hash domain: 0 or 1 for records
	// written before sources were data, 2 since. Set on append; kept as
	// stored by Audit, Dump and Load.
	Version  int
	PrevHash string // hex sha256 of the previous record ("" for the first)
	Hash     string // hex sha256 over a canonical encoding of every field above incl. PrevHash
}

// AuditSource is one reason a member holds a key, as an audit record keeps
// it: Role names the key; Kind is "mapping" (Group, Path from the mapped
// group down, MappingIndex) or "grant" (GrantID); Expires is when that
// source ends (zero: never).
type AuditSource struct {
	Role         string    `json:"role"`
	Kind         string    `json:"kind"`
	Group        string    `json:"group,omitempty"`
	Path         []string  `json:"path,omitempty"`
	MappingIndex int       `json:"mapping"`
	GrantID      string    `json:"grant,omitempty"`
	Expires      time.Time `json:"expires,omitzero"`
}

// AuditVersion is the format and hash domain new audit records get.
const AuditVersion = 2

// SyncCommit is everything one applied change writes, in ONE transaction.
// Deletes are applied before puts, so a key in both ends up put.
type SyncCommit struct {
	PutLedger    []LedgerEntry
	DeleteLedger []LedgerEntry // by AccountID + Fold(Email)
	PutCache     []CachedMember
	DeleteCache  []CachedMember // by AccountID + Fold(Email)
	Audit        []AuditRecord  // appended in order; Seq/PrevHash/Hash filled in by the store
}

// SyncState is the reconciler's own state, kept next to the SCIM state in
// the same file: what scimflare owns on each Cloudflare member (the
// ledger), the last member listing of each account, temporary grants, the
// audit trail and small status blobs.
//
// Every write is one transaction, durable when the method returns nil; an
// invalid part (ErrInvalid: empty AccountID, Email, Action or Time, an
// oversized key) fails the whole write with nothing written. Callbacks run
// inside a read transaction and must not call the store's write methods.
type SyncState interface {
	// Ledger returns the account's entries keyed by Fold(email).
	Ledger(accountID string) (map[string]LedgerEntry, error)
	// CachedMembers returns the account's cached listing keyed by Fold(email).
	CachedMembers(accountID string) (map[string]CachedMember, error)
	// ReplaceMemberCache makes members the account's whole cache, in one
	// transaction, and records scannedAt. A member with an empty AccountID
	// belongs to accountID; another AccountID is ErrInvalid. When two
	// members share an email under Fold, the later one wins.
	ReplaceMemberCache(accountID string, members []CachedMember, scannedAt time.Time) error
	// MemberCacheScannedAt is zero if the account was never listed.
	MemberCacheScannedAt(accountID string) (time.Time, error)
	// AccountEmails reads, in one snapshot, the ledger entries and cached
	// members of some emails of one account (any case: Fold decides) and
	// the account-wide figures a targeted run needs, without reading the
	// rest of the account: its cost follows len(emails), not the
	// account's size.
	AccountEmails(accountID string, emails []string) (AccountEmails, error)
	Commit(c SyncCommit) error

	// PutGrant stores g (replacing a grant with the same ID, which is how a
	// revocation is recorded) in one transaction with the audit records,
	// and returns it with its ID.
	PutGrant(g Grant, audit ...AuditRecord) (Grant, error)
	// Grants returns every grant ordered by End, then ID.
	Grants() ([]Grant, error)
	// GetGrant fails with ErrNotFound for an unknown id.
	GetGrant(id string) (Grant, error)
	// GCGrants drops grants that ended (End or RevokedAt) before `before`;
	// returns how many.
	GCGrants(before time.Time) (int, error)

	// AppendAudit appends recs in order, assigning Seq, PrevHash and Hash.
	AppendAudit(recs ...AuditRecord) error
	// Audit calls fn for records in Seq order with Time >= since (zero =
	// all) until fn returns false.
	Audit(since time.Time, fn func(AuditRecord) bool) error
	// VerifyAudit recomputes the chain; on the first record whose hash or
	// link is wrong it returns its Seq and an error naming it ("audit
	// record 17 was altered: its hash does not match its content"),
	// wrapping ErrAuditBroken; (0, nil) when intact.
	VerifyAudit() (badSeq uint64, err error)

	// PutStatus stores a small opaque blob the reconciler owns.
	PutStatus(key string, value []byte) error
	// Status returns nil, nil when the key is absent.
	Status(key string) ([]byte, error)
}
