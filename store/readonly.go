package store

import (
	"errors"
	"fmt"
	"os"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// ErrNoStateFile: OpenReadOnly found no file at the path.
var ErrNoStateFile = errors.New("no state file")

// OpenReadOnly opens an existing state file for reading only. Unlike Open
// it never creates the file, never adds a bucket or a schema version, and
// never writes at all (bbolt's read-only mode, a shared lock): looking at
// the state with status, audit or plan must not change it, and must work
// for an auditor who may only read the file. A file of another schema
// version, or one that lacks a bucket this version writes, is
// ErrSchemaVersion; every write through the returned store fails.
func OpenReadOnly(path string, opts ...Option) (*BoltStore, error) {
	o := options{lockTimeout: DefaultLockTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("state file %s: %w", path, ErrNoStateFile)
		}
		return nil, fmt.Errorf("state file %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.lockTimeout, ReadOnly: true})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("state file %s is in use by another scimflare process: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open state file %s: %w", path, err)
	}
	err = db.View(func(tx *bolt.Tx) error {
		for _, v := range []struct {
			bucket []byte
			want   uint64
			what   string
		}{{bucketMeta, SchemaVersion, "schema"}, {bucketSyncMeta, syncSchemaVersion, "sync schema"}} {
			var got uint64
			var raw []byte
			if b := tx.Bucket(v.bucket); b != nil {
				raw = b.Get(keySchemaVersion)
				got = decodeUint(raw)
			}
			// A sync schema 1 file differs only by the ledger tally,
			// which reads count the ledger for instead.
			old := string(v.bucket) == string(bucketSyncMeta) && got == 1
			if raw == nil || got != v.want && !old {
				return fmt.Errorf("state file %s has %s version %d, this scimflare expects %d: %w", path, v.what, got, v.want, ErrSchemaVersion)
			}
		}
		for _, name := range append(append([][]byte{}, allBuckets...), syncBuckets...) {
			if string(name) == string(bucketLedgerTally) {
				continue // not in a sync schema 1 file; see managedGrants
			}
			if tx.Bucket(name) == nil {
				return fmt.Errorf("state file %s lacks bucket %s (written by an older scimflare; `serve` brings it up to date): %w", path, name, ErrSchemaVersion)
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return &BoltStore{db: db, path: path}, nil
}
