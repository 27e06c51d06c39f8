package store

import (
	"errors"
	"time"
)

// ErrNotEmpty: Load (and so Copy) refuses a target that already holds
// state; nothing is written then.
var ErrNotEmpty = errors.New("target state is not empty")

// ErrUnavailable: the backend cannot serve the call now (a database that
// is down, unreachable or too slow, or writes that kept conflicting); the
// call wrote nothing and may be retried later (SCIM: 503 with
// Retry-After). BoltStore never returns it.
var ErrUnavailable = errors.New("state backend unavailable")

// Backend is the whole state as production holds it: what the daemon,
// the CLI and `scimflare migrate` open, whichever backend keeps it
// (BoltStore, or postgres.Store from store/postgres). It is exactly the
// set of methods production calls; store/storetest.RunBackend covers all
// of it.
type Backend interface {
	// Store is the SCIM state (the SCIM server takes only this part).
	Store
	// SyncState is the reconciler's state.
	SyncState

	// PutTokenAudited stores a new token and its audit records in one
	// transaction, so that no token exists without the record of its
	// creation. ErrConflict if the name exists (nothing is written then).
	PutTokenAudited(t Token, audit ...AuditRecord) error
	// DeleteTokenAudited removes a token and appends its audit records in
	// one transaction. ErrNotFound if there is none (nothing is written).
	DeleteTokenAudited(name string, audit ...AuditRecord) error
	// AuditHead is the Seq and hash of the last audit record written (0,
	// "" for an empty trail): what a verified trail ends with.
	AuditHead() (seq uint64, hash string, err error)

	// Location names where the state lives, for messages: the file path,
	// or the database without its password.
	Location() string
	// BackupFile writes a consistent copy of the whole state to path as a
	// bbolt state file (mode 0600, written to a temporary file and renamed
	// into place) that CheckFile accepts and Open can serve from, and
	// returns its size. It refuses to write over a live state file.
	BackupFile(path string) (int64, error)

	// Dump calls fn with every record of the state, read from one
	// consistent snapshot, in the order Load needs (users, groups,
	// memberships, tokens, ledger, member cache and scans, grants, the
	// audit trail in Seq order, status). An error from fn stops it.
	Dump(fn func(DumpItem) error) error
	// Load writes what fill puts into this store, all or nothing
	// (preserving ids, meta, Since times and audit hashes as given). It
	// fails with ErrNotEmpty, writing nothing, if the store holds any
	// state; an error from fill or put leaves it empty again. An audit
	// record whose hash does not match its content is refused. It is for
	// the target of a copy or a backup: nobody else may write meanwhile
	// (PostgreSQL makes them wait; a bbolt file commits in chunks).
	Load(fill func(put func(DumpItem) error) error) error
}

// DumpItem is one record of a Dump: exactly one field is set.
type DumpItem struct {
	User      *User
	Group     *Group
	Member    *DumpedMember
	Token     *Token
	Ledger    *LedgerEntry
	Cached    *CachedMember
	CacheScan *CacheScan
	Grant     *Grant
	// Audit carries Seq, PrevHash and Hash as stored.
	Audit  *AuditRecord
	Status *StatusEntry
	// OwnedUserGroup is a user group scimflare owns (usergroups.go).
	OwnedUserGroup *OwnedUserGroup
}

// DumpedMember is one group membership edge with its Since.
type DumpedMember struct {
	GroupID string
	Membership
}

// CacheScan is when an account's members were last listed.
type CacheScan struct {
	AccountID string
	ScannedAt time.Time
}

// StatusEntry is one PutStatus blob.
type StatusEntry struct {
	Key   string
	Value []byte
}

var _ Backend = (*BoltStore)(nil)
