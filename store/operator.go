package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// PutTokenAudited stores a new token and its audit records in one
// transaction, so that no token exists without the record of its creation.
// ErrConflict if the name exists (nothing is written then).
func (s *BoltStore) PutTokenAudited(t Token, audit ...AuditRecord) error {
	return s.update(func(w writeTx) error {
		if err := w.putToken(t); err != nil {
			return err
		}
		return w.appendAudit(audit)
	})
}

// DeleteTokenAudited removes a token and appends its audit records in one
// transaction. ErrNotFound if there is none (nothing is written then).
func (s *BoltStore) DeleteTokenAudited(name string, audit ...AuditRecord) error {
	return s.update(func(w writeTx) error {
		if err := w.deleteToken(name); err != nil {
			return err
		}
		return w.appendAudit(audit)
	})
}

// AuditHead is the Seq and hash of the last audit record written (0, ""
// for an empty trail): what a verified trail ends with.
func (s *BoltStore) AuditHead() (seq uint64, hash string, err error) {
	err = s.view(func(r readTx) error {
		meta := r.bucket(bucketSyncMeta)
		seq, hash = decodeUint(meta.Get(keyAuditSeq)), string(meta.Get(keyAuditHash))
		return nil
	})
	return seq, hash, err
}

// ErrBackupCorrupt: a backup file fails bbolt's consistency check or is not
// a scimflare state file this version can open.
var ErrBackupCorrupt = errors.New("backup is not a sound state file")

// CheckFile opens the state file at path read-only (it must not be open
// elsewhere for writing), runs bbolt's full consistency check (every page
// reachable once, no page both free and in use, keys in order) and checks
// both schema versions. It never creates or changes the file.
func CheckFile(path string, lockTimeout time.Duration) error {
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	if lockTimeout <= 0 {
		lockTimeout = DefaultLockTimeout
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: lockTimeout})
	if err != nil {
		return fmt.Errorf("open %s read-only: %v: %w", path, err, ErrBackupCorrupt)
	}
	defer db.Close()
	return db.View(func(tx *bolt.Tx) error {
		// Drain the channel: the checker goroutine reads pages of this
		// transaction until it closes it.
		var first error
		for err := range tx.Check() {
			if first == nil {
				first = err
			}
		}
		if first != nil {
			return fmt.Errorf("%s fails bbolt's consistency check: %v: %w", path, first, ErrBackupCorrupt)
		}
		for _, b := range [][]byte{bucketMeta, bucketSyncMeta} {
			meta := tx.Bucket(b)
			if meta == nil {
				return fmt.Errorf("%s has no %s bucket: %w", path, b, ErrBackupCorrupt)
			}
			want := uint64(SchemaVersion)
			if string(b) == string(bucketSyncMeta) {
				want = syncSchemaVersion
			}
			got := decodeUint(meta.Get(keySchemaVersion))
			// A sync schema 1 file (before the ledger tally) is sound: Open
			// brings it up to date, OpenReadOnly reads it as it is.
			if got != want && !(string(b) == string(bucketSyncMeta) && got == 1) {
				return fmt.Errorf("%s has %s schema version %d, this scimflare expects %d: %w", path, b, got, want, ErrBackupCorrupt)
			}
		}
		return nil
	})
}

// BackupFile writes a consistent hot copy of the state to path: a temporary
// file (mode 0600) in the same directory, synced, then renamed over path,
// so a crash never leaves a half-written backup under the final name. It
// refuses to write over the live state file itself.
func (s *BoltStore) BackupFile(path string) (int64, error) {
	if same, err := sameFile(path, s.path); err != nil {
		return 0, err
	} else if same {
		return 0, fmt.Errorf("backup target %s is the live state file: %w", path, ErrInvalid)
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("create backup next to %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return 0, fmt.Errorf("chmod backup %s: %w", tmp, err)
	}
	n, err := s.Backup(f)
	if err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("sync backup %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("close backup %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("move backup into place at %s: %w", path, err)
	}
	ok = true
	return n, nil
}

func sameFile(a, b string) (bool, error) {
	fa, err := os.Stat(a)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("stat %s: %w", a, err)
	}
	fb, err := os.Stat(b)
	if err != nil {
		return false, nil
	}
	return os.SameFile(fa, fb), nil
}
