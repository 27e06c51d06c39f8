// Package store keeps scimflare's SCIM state: users, groups, group
// memberships (nested groups included) and SCIM bearer tokens, behind the
// Store interface, and the reconciler's state (ownership ledger, member
// cache, temporary grants, audit trail, status) behind SyncState, with a
// bbolt implementation of both (BoltStore). The SCIM layer
// writes it; the reconciler reads consistent snapshots of it through View.
// Backend is all of it as production holds it (the daemon and the CLI);
// store/postgres is the second implementation, for several replicas, and
// Copy moves a state between backends. Any backend must pass the suite in
// store/storetest.
//
// What the store guarantees:
//   - every write is one transaction, durable (fsync) when the method
//     returns; bad input never leaves a partial write;
//   - userName and displayName are unique under Fold (exactly
//     strings.EqualFold semantics, no NFC normalization); externalId and
//     email are indexed, not unique; those lookups never scan;
//   - memberships are one key per edge in each direction plus a per-group
//     counter, so changing one member of a 100k-member group writes a
//     handful of keys and reading a group never reads its members;
//   - meta.created, meta.lastModified and meta.version on every resource,
//     with the clock passed in by the caller (the store never reads it).
//
// What it must never do: interpret SCIM attributes beyond the indexed
// fields (Doc is opaque), store a token secret (only its hash), talk to
// Cloudflare, or read the clock.
//
// # bbolt layout
//
// All buckets of this package are top-level and named "scim/...":
//
//	scim/meta               schemaVersion, users and groups counters
//	scim/users              user id -> JSON record
//	scim/users.userName     Fold(userName) -> user id
//	scim/users.externalId   len|externalId|user id -> (empty)
//	scim/users.email        len|Fold(email)|user id -> (empty)
//	scim/groups             group id -> JSON record (no members)
//	scim/groups.displayName Fold(displayName) -> group id
//	scim/groups.externalId  len|externalId|group id -> (empty)
//	scim/members            len|group id|member id -> type + since
//	scim/memberOf           len|member id|group id -> type + since
//	scim/memberCounts       group id -> uint64
//	scim/tokens             token name -> JSON record
//
// ("len" is a uvarint length prefix.) User and group ids are 32 hex
// digits, 48 bits of creation time in milliseconds then 80 random bits, so
// that new records and edges append to their bucket or range instead of
// dirtying random pages; files with the fully random ids of earlier
// versions need no migration, ids being opaque. Buckets that grow at the
// end are split fuller than bbolt's 50% (fillPercents in bolt.go).
//
// The reconciler's state (SyncState, also implemented by BoltStore) lives
// in "sync/..." buckets with their own schema version:
//
//	sync/meta               schemaVersion, audit head (last seq and hash)
//	sync/ledger             len|accountId|Fold(email) -> JSON LedgerEntry
//	sync/memberCache        len|accountId|Fold(email) -> JSON CachedMember
//	sync/memberScans        accountId -> RFC3339Nano time of the last listing
//	sync/grants             grant id -> JSON Grant
//	sync/audit              big-endian seq -> JSON record, hash-chained
//	sync/status             key -> opaque value
//
// The audit trail is append-only: no method edits or deletes a record.
// Each record's hash covers its canonical JSON encoding (fields in fixed
// order, times RFC3339Nano UTC) including the previous record's hash, and
// the head in sync/meta lets VerifyAudit notice a record cut off the end.
//
// Every bucket belongs to this package: the SCIM layer and the reconciler
// reach the file only through Store and SyncState. BoltStore.DB is for
// tests and benchmarks (NoSync, Stats, a hand edit to prove the audit
// verifier). SchemaVersion covers the "scim/" buckets only.
package store
