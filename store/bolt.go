package store

import (
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout version of the "scim/" buckets. Open refuses
// a file with any other version rather than misreading it.
const SchemaVersion = 1

// DefaultLockTimeout is how long Open waits for the file lock before it
// reports ErrLocked.
const DefaultLockTimeout = time.Second

// BoltStore is the bbolt implementation of Store.
type BoltStore struct {
	db    *bolt.DB
	path  string
	batch bool
	// writers counts update calls in flight, so that under WithBatch a
	// writer with no company commits at once.
	writers atomic.Int32
	// group is set by WithGroupCommit.
	group *groupCommit
}

var (
	_ Store     = (*BoltStore)(nil)
	_ SyncState = (*BoltStore)(nil)
)

type options struct {
	lockTimeout time.Duration
	batch       bool
	batchDelay  time.Duration
	group       bool
}

// Option configures Open.
type Option func(*options)

// WithLockTimeout sets how long Open waits for another holder of the file
// to let go; d <= 0 keeps DefaultLockTimeout (never wait forever: a second
// scimflare must fail fast, not hang).
func WithLockTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.lockTimeout = d
		}
	}
}

// WithBatch makes concurrent writes share commits (bbolt's db.Batch, as
// etcd does): writes arriving within maxDelay of each other are committed
// with one fsync. It raises throughput under many concurrent writers; a
// write with no other in flight commits at once, and one that arrives
// while others are in flight waits up to maxDelay. The fn passed to
// UpdateUser/UpdateGroup may then run more than once, as Store documents.
func WithBatch(maxDelay time.Duration) Option {
	return func(o *options) {
		o.batch = true
		o.batchDelay = maxDelay
	}
}

// WithGroupCommit makes concurrent writes share commits without a timer
// (what `scimflare serve` uses): a write with no commit in flight commits
// at once; writes that arrive while one is in flight are committed
// together, in one transaction, as soon as it ends. Every
// write is still durable before its call returns. The fn passed to
// UpdateUser/UpdateGroup may run more than once, as Store documents.
// It takes precedence over WithBatch.
func WithGroupCommit() Option {
	return func(o *options) { o.group = true }
}

// Open opens (creating with mode 0600 if needed) the state file at path.
// The file is locked for as long as the store is open: a second Open of the
// same file, from this process or another, fails with ErrLocked after the
// lock timeout. A file written with another SchemaVersion fails with
// ErrSchemaVersion.
//
// The list of free pages is not written by each commit (etcd's choice
// too) but by Close; a file a process left without closing is walked to
// find them when it is opened (0.1 s for 100k users, 1.4–1.8 s for 1M
// with the file in the page cache, 3 s after the 1M import):
// a full run's long read lets the pages every write frees pile up, and
// a file kept through many runs had 17k (100k users) and 173k (1M) free
// pages, a list of 34 and 339 pages that every later commit — every
// SCIM write, every change the reconciler records — wrote again. The
// map form of the list keeps allocation from scanning it.
func Open(path string, opts ...Option) (*BoltStore, error) {
	o := options{lockTimeout: DefaultLockTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.lockTimeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("state file %s is in use by another scimflare process: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	if o.batch {
		db.MaxBatchDelay = o.batchDelay
	}
	if err := initSchema(db, path); err != nil {
		_ = db.Close()
		return nil, err
	}
	s := &BoltStore{db: db, path: path, batch: o.batch}
	if o.group {
		s.batch, s.group = false, &groupCommit{maxLinger: defaultMaxLinger}
	}
	return s, nil
}

func initSchema(db *bolt.DB, path string) error {
	return db.Update(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketMeta); meta != nil {
			v := meta.Get(keySchemaVersion)
			if got := decodeUint(v); v == nil || got != SchemaVersion {
				return fmt.Errorf("state file %s has schema version %d, this scimflare expects %d: %w", path, got, SchemaVersion, ErrSchemaVersion)
			}
		}
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("state file %s: create bucket %s: %w", path, name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if meta.Get(keySchemaVersion) == nil {
			if err := meta.Put(keySchemaVersion, encodeUint(SchemaVersion)); err != nil {
				return err
			}
		}
		if err := initSyncSchema(tx, path); err != nil {
			return err
		}
		return initUserGroupSchema(tx)
	})
}

// DB exposes the bbolt handle to tests and benchmarks (NoSync, Stats, a
// hand edit the audit verifier must notice). Production code never uses
// it: every bucket belongs to this package and is written through its
// methods.
func (s *BoltStore) DB() *bolt.DB { return s.db }

// Path is the state file's path, for messages.
func (s *BoltStore) Path() string { return s.path }

// Backup writes a consistent copy of the whole state file (every bucket,
// not only "scim/") to w while writers keep going, and returns its size.
func (s *BoltStore) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("back up state file %s: %w", s.path, err)
	}
	return n, nil
}

// Close releases the file and its lock.
func (s *BoltStore) Close() error {
	// Leave the list of free pages in the file, so that the next Open
	// reads it instead of walking the whole file (3 s at 1M users); only
	// a process that dies without closing leaves the walk to the next.
	// The next commit drops the list again (Open). Set inside a write,
	// which no other write runs beside: commits read it.
	if s.db.IsReadOnly() {
		return s.closeDB()
	}
	if err := s.db.Update(func(*bolt.Tx) error { s.db.NoFreelistSync = false; return nil }); err != nil {
		_ = s.db.Close()
		return fmt.Errorf("close state file %s: write its list of free pages: %w", s.path, err)
	}
	return s.closeDB()
}

func (s *BoltStore) closeDB() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close state file %s: %w", s.path, err)
	}
	return nil
}

func (s *BoltStore) view(fn func(readTx) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(newReadTx(tx)) })
}

// fillPercents are the bbolt FillPercent of the buckets whose new keys
// mostly arrive in ascending order. bbolt splits a page only once it is
// full; with its default 0.5 the left half of each split of an
// append-mostly bucket stays half empty for good, which inflates the file
// (and the mmap the daemon's RSS counts) and the pages a commit writes.
//
//   - users, groups, memberCounts, sync/audit: keys are time-ordered ids or
//     a sequence number, so inserts always append; 0.9 leaves room for a
//     record to grow in place (a user update) without a split.
//   - members: keys end with the member's id inside the group's range, so
//     they append only if the IdP adds members roughly in creation order
//     (imports do). 0.75: BenchmarkImportChunks measured 304 B/membership
//     at 0.9, 324 at 0.75 in creation order, but 454 at 0.9, 354 at 0.75
//     and 348 at 0.5 in random order, where a fuller split only means the
//     next insert splits the page again.
//   - memberOf and the name indexes stay at the default: their keys arrive
//     out of order (a user joins groups at different times; names come in
//     whatever order the IdP sends). memberOf at 0.9 ended 48% full on the
//     200k-membership load, at 0.5 67%.
var fillPercents = []struct {
	bucket []byte
	fill   float64
}{
	{bucketUsers, 0.9}, {bucketGroups, 0.9}, {bucketMemberCounts, 0.9}, {bucketAudit, 0.9},
	{bucketMembers, 0.75},
}

// newWriteTx wraps a read-write transaction. bbolt does not store
// FillPercent in the file: it is set on every write transaction.
func newWriteTx(tx *bolt.Tx) writeTx {
	for _, f := range fillPercents {
		if b := tx.Bucket(f.bucket); b != nil {
			b.FillPercent = f.fill
		}
	}
	return writeTx{newReadTx(tx)}
}

// update runs fn in one write transaction. Under WithBatch or
// WithGroupCommit fn may run more than once, so every caller assigns its
// results afresh on each run.
func (s *BoltStore) update(fn func(writeTx) error) error {
	f := func(tx *bolt.Tx) error { return fn(newWriteTx(tx)) }
	if s.group != nil {
		return s.group.update(s.db, f)
	}
	if !s.batch {
		return s.db.Update(f)
	}
	// bbolt's Batch holds every call for the whole window waiting for
	// others to share the commit; a writer that finds no other in flight
	// has nobody to wait for and commits at once. Writers that arrive while
	// it commits batch among themselves, as before.
	n := s.writers.Add(1)
	defer s.writers.Add(-1)
	if n == 1 {
		return s.db.Update(f)
	}
	return s.db.Batch(f)
}

// View implements Store.
func (s *BoltStore) View(fn func(Reader) error) error {
	return s.view(func(r readTx) error { return fn(r) })
}

// CreateUser implements Store.
func (s *BoltStore) CreateUser(now time.Time, u User) (User, error) {
	// Checked before the write transaction: what needs no state does not
	// keep the other writers of a group commit waiting.
	if err := validateUser(&u); err != nil {
		return User{}, err
	}
	var out User
	err := s.update(func(w writeTx) (err error) {
		out, err = w.createUser(now.UTC(), u)
		return err
	})
	return out, err
}

// UpdateUser implements Store.
func (s *BoltStore) UpdateUser(id string, now time.Time, ifVersion uint64, fn func(*User) error) (User, error) {
	var out User
	err := s.update(func(w writeTx) (err error) {
		out, err = w.updateUser(id, now.UTC(), ifVersion, fn)
		return err
	})
	return out, err
}

// DeleteUser implements Store.
func (s *BoltStore) DeleteUser(id string) (DeletedUser, error) {
	var out DeletedUser
	err := s.update(func(w writeTx) (err error) {
		out, err = w.deleteUser(id)
		return err
	})
	return out, err
}

// CreateGroup implements Store.
func (s *BoltStore) CreateGroup(now time.Time, g Group, members []MemberRef) (Group, error) {
	var out Group
	err := s.update(func(w writeTx) (err error) {
		out, err = w.createGroup(now.UTC(), g, members)
		return err
	})
	return out, err
}

// UpdateGroup implements Store.
func (s *BoltStore) UpdateGroup(id string, now time.Time, ifVersion uint64, fn func(GroupTx) error) (Group, error) {
	var out Group
	err := s.update(func(w writeTx) (err error) {
		out, err = w.updateGroup(id, now.UTC(), ifVersion, fn)
		return err
	})
	return out, err
}

// DeleteGroup implements Store.
func (s *BoltStore) DeleteGroup(id string) ([]MemberRef, error) {
	var out []MemberRef
	err := s.update(func(w writeTx) (err error) {
		out, err = w.deleteGroup(id)
		return err
	})
	return out, err
}

// PutToken implements Store.
func (s *BoltStore) PutToken(t Token) error {
	return s.update(func(w writeTx) error { return w.putToken(t) })
}

// DeleteToken implements Store.
func (s *BoltStore) DeleteToken(name string) error {
	return s.update(func(w writeTx) error { return w.deleteToken(name) })
}

// The Reader methods each run one read transaction.

// GetUser implements Reader.
func (s *BoltStore) GetUser(id string) (u User, err error) {
	err = s.view(func(r readTx) error { u, err = r.GetUser(id); return err })
	return u, err
}

// UserByUserName implements Reader.
func (s *BoltStore) UserByUserName(userName string) (u User, err error) {
	err = s.view(func(r readTx) error { u, err = r.UserByUserName(userName); return err })
	return u, err
}

// UsersByExternalID implements Reader.
func (s *BoltStore) UsersByExternalID(externalID string) (us []User, err error) {
	err = s.view(func(r readTx) error { us, err = r.UsersByExternalID(externalID); return err })
	return us, err
}

// UsersByEmail implements Reader.
func (s *BoltStore) UsersByEmail(email string) (us []User, err error) {
	err = s.view(func(r readTx) error { us, err = r.UsersByEmail(email); return err })
	return us, err
}

// ListUsers implements Reader.
func (s *BoltStore) ListUsers(afterID string, fn func(User) bool) error {
	return s.view(func(r readTx) error { return r.ListUsers(afterID, fn) })
}

// CountUsers implements Reader.
func (s *BoltStore) CountUsers() (n int, err error) {
	err = s.view(func(r readTx) error { n, err = r.CountUsers(); return err })
	return n, err
}

// GetGroup implements Reader.
func (s *BoltStore) GetGroup(id string) (g Group, err error) {
	err = s.view(func(r readTx) error { g, err = r.GetGroup(id); return err })
	return g, err
}

// GroupByDisplayName implements Reader.
func (s *BoltStore) GroupByDisplayName(name string) (g Group, err error) {
	err = s.view(func(r readTx) error { g, err = r.GroupByDisplayName(name); return err })
	return g, err
}

// GroupsByExternalID implements Reader.
func (s *BoltStore) GroupsByExternalID(externalID string) (gs []Group, err error) {
	err = s.view(func(r readTx) error { gs, err = r.GroupsByExternalID(externalID); return err })
	return gs, err
}

// ListGroups implements Reader.
func (s *BoltStore) ListGroups(afterID string, fn func(Group) bool) error {
	return s.view(func(r readTx) error { return r.ListGroups(afterID, fn) })
}

// CountGroups implements Reader.
func (s *BoltStore) CountGroups() (n int, err error) {
	err = s.view(func(r readTx) error { n, err = r.CountGroups(); return err })
	return n, err
}

// GroupMembers implements Reader.
func (s *BoltStore) GroupMembers(groupID string, fn func(Membership) bool) error {
	return s.view(func(r readTx) error { return r.GroupMembers(groupID, fn) })
}

// CountGroupMembers implements Reader.
func (s *BoltStore) CountGroupMembers(groupID string) (n int, err error) {
	err = s.view(func(r readTx) error { n, err = r.CountGroupMembers(groupID); return err })
	return n, err
}

// IsMember implements Reader.
func (s *BoltStore) IsMember(groupID, memberID string) (ok bool, err error) {
	err = s.view(func(r readTx) error { ok, err = r.IsMember(groupID, memberID); return err })
	return ok, err
}

// GroupsOf implements Reader.
func (s *BoltStore) GroupsOf(memberID string) (ms []Membership, err error) {
	err = s.view(func(r readTx) error { ms, err = r.GroupsOf(memberID); return err })
	return ms, err
}

// Tokens implements Reader.
func (s *BoltStore) Tokens() (ts []Token, err error) {
	err = s.view(func(r readTx) error { ts, err = r.Tokens(); return err })
	return ts, err
}
