package store_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/scimflare/scimflare/store"
)

func auditCount(t *testing.T, s *store.BoltStore) int {
	t.Helper()
	n := 0
	if err := s.Audit(now.AddDate(-1, 0, 0), func(store.AuditRecord) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTokenWritesAreAuditedAtomically(t *testing.T) {
	s := openBolt(t)
	rec := store.AuditRecord{Time: now, Actor: "token", Action: "token_create", Reason: "t1"}
	if err := s.PutTokenAudited(store.Token{Name: "okta", Hash: []byte("h"), CreatedAt: now}, rec); err != nil {
		t.Fatal(err)
	}
	// A refused write leaves no audit record behind.
	if err := s.PutTokenAudited(store.Token{Name: "okta", Hash: []byte("h"), CreatedAt: now}, rec); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate token: %v, want ErrConflict", err)
	}
	if err := s.DeleteTokenAudited("nope", store.AuditRecord{Time: now, Actor: "token", Action: "token_revoke"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
	if got := auditCount(t, s); got != 1 {
		t.Fatalf("audit records = %d, want 1 (failed writes must not audit)", got)
	}
	// And an invalid audit record stops the token write.
	if err := s.DeleteTokenAudited("okta", store.AuditRecord{Time: now, Actor: "token"}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("revoke with an invalid audit record: %v", err)
	}
	if toks, _ := s.Tokens(); len(toks) != 1 {
		t.Fatalf("token removed although its audit record was refused")
	}
	if err := s.DeleteTokenAudited("okta", store.AuditRecord{Time: now, Actor: "token", Action: "token_revoke"}); err != nil {
		t.Fatal(err)
	}
	seq, hash, err := s.AuditHead()
	if err != nil || seq != 2 || len(hash) != 64 {
		t.Fatalf("AuditHead = %d %q %v", seq, hash, err)
	}
}

func TestBackupFileIsSoundAndPrivate(t *testing.T) {
	s := openBolt(t)
	if _, err := s.CreateUser(now, store.User{UserName: "alice@example.com", Active: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(store.AuditRecord{Time: now, Actor: "x", Action: "y"}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "copy.db")
	if err := os.WriteFile(out, []byte("old backup"), 0o644); err != nil {
		t.Fatal(err)
	}
	n, err := s.BackupFile(out)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != n {
		t.Errorf("backup mode %v size %d, want 0600 and %d", fi.Mode().Perm(), fi.Size(), n)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temporary files left next to the backup: %v", ents)
	}
	if err := store.CheckFile(out, 0); err != nil {
		t.Fatal(err)
	}
	c, err := store.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if u, err := c.UserByUserName("ALICE@example.com"); err != nil || u.UserName != "alice@example.com" {
		t.Errorf("user in the copy: %+v %v", u, err)
	}
	if seq, err := c.VerifyAudit(); seq != 0 || err != nil {
		t.Errorf("audit of the copy: %d %v", seq, err)
	}
	if _, err := s.BackupFile(s.Path()); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("backup over the live state file: %v, want ErrInvalid", err)
	}
}

func TestCheckFileRejectsDamage(t *testing.T) {
	dir := t.TempDir()
	// Not a bbolt file at all.
	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, make([]byte, 16384), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := store.CheckFile(junk, 0); !errors.Is(err, store.ErrBackupCorrupt) {
		t.Errorf("zero file: %v, want ErrBackupCorrupt", err)
	}
	// A bbolt file that is not scimflare's.
	other := filepath.Join(dir, "other.db")
	db, err := bolt.Open(other, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("x")); return err })
	db.Close()
	if err := store.CheckFile(other, 0); !errors.Is(err, store.ErrBackupCorrupt) {
		t.Errorf("foreign bbolt file: %v, want ErrBackupCorrupt", err)
	}
	if err := store.CheckFile(filepath.Join(dir, "missing.db"), 0); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
