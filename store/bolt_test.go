package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/store/storetest"
)

func openBolt(t *testing.T, opts ...store.Option) *store.BoltStore {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "state.db"), opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openBolt(t) })
}

func TestConformanceBatched(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openBolt(t, store.WithBatch(time.Millisecond)) })
}

func TestBackendConformance(t *testing.T) {
	storetest.RunBackend(t, func(t *testing.T) store.Backend { return openBolt(t, store.WithBatch(time.Millisecond)) })
}

var now = time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC)

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.DB().NoSync {
		t.Fatal("writes must be fsynced: NoSync is set")
	}
	u, err := s.CreateUser(now, store.User{UserName: "Alice", Email: "alice@x", ExternalID: "e", Active: true})
	if err != nil {
		t.Fatal(err)
	}
	g, err := s.CreateGroup(now, store.Group{DisplayName: "Ops"}, []store.MemberRef{{ID: u.ID, Type: store.MemberUser}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutToken(store.Token{Name: "okta", Hash: []byte("h"), CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = store.Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	got, err := s.UserByUserName("ALICE")
	if err != nil || got.ID != u.ID || !got.ActiveSince.Equal(now) || got.Meta.Version != 1 {
		t.Fatalf("user after reopen = %+v, %v", got, err)
	}
	if us, err := s.UsersByEmail("ALICE@X"); err != nil || len(us) != 1 {
		t.Fatalf("email index after reopen = %v, %v", us, err)
	}
	if gr, err := s.GroupByDisplayName("ops"); err != nil || gr.ID != g.ID {
		t.Fatalf("group after reopen = %+v, %v", gr, err)
	}
	if ok, err := s.IsMember(g.ID, u.ID); err != nil || !ok {
		t.Fatalf("membership after reopen = %v, %v", ok, err)
	}
	if n, err := s.CountGroupMembers(g.ID); err != nil || n != 1 {
		t.Fatalf("member count after reopen = %d, %v", n, err)
	}
	if n, err := s.CountUsers(); err != nil || n != 1 {
		t.Fatalf("user count after reopen = %d, %v", n, err)
	}
	if ts, err := s.Tokens(); err != nil || len(ts) != 1 || string(ts[0].Hash) != "h" {
		t.Fatalf("tokens after reopen = %+v, %v", ts, err)
	}
}

func TestSchemaVersionMismatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("scim/meta")).Put([]byte("schemaVersion"), []byte{0, 0, 0, 0, 0, 0, 0, 99})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	_, err = store.Open(path)
	if !errors.Is(err, store.ErrSchemaVersion) {
		t.Fatalf("Open of a version-99 file: %v, want ErrSchemaVersion", err)
	}
	want := fmt.Sprintf("state file %s has schema version 99, this scimflare expects %d", path, store.SchemaVersion)
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	// The refused file is left untouched and unlocked.
	db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("file still locked after refused Open: %v", err)
	}
	defer db.Close()
	_ = db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket([]byte("scim/meta")).Get([]byte("schemaVersion")); !bytes.Equal(v, []byte{0, 0, 0, 0, 0, 0, 0, 99}) {
			t.Errorf("schema version rewritten to %v", v)
		}
		return nil
	})
}

func TestSecondOpenFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s2, err := store.Open(path)
	elapsed := time.Since(start)
	if err == nil {
		s2.Close()
		t.Fatal("second Open of the same file succeeded")
	}
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if want := "state file " + path + " is in use by another scimflare process"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not say %q", err, want)
	}
	if elapsed > 2*time.Second {
		t.Fatalf("second Open took %v, want under 2s", elapsed)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s3, err := store.Open(path)
	if err != nil {
		t.Fatalf("Open after the holder closed: %v", err)
	}
	s3.Close()
}

func TestFileMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("state file mode %v, want 0600", perm)
	}
}

func TestOpenNotABoltFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, bytes.Repeat([]byte("not bolt "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := store.Open(path)
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("Open of garbage: %v, want an error naming %s", err, path)
	}
}

func TestBackupIsAUsableCopy(t *testing.T) {
	s := openBolt(t)
	u, err := s.CreateUser(now, store.User{UserName: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := s.Backup(&buf)
	if err != nil || n != int64(buf.Len()) || n == 0 {
		t.Fatalf("Backup = %d, %v (buffer %d)", n, err, buf.Len())
	}
	path := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := store.Open(path)
	if err != nil {
		t.Fatalf("open backup: %v", err)
	}
	defer c.Close()
	if got, err := c.UserByUserName("BOB"); err != nil || got.ID != u.ID {
		t.Fatalf("user in backup = %+v, %v", got, err)
	}
}

// TestConcurrentWriters checks uniqueness and counters when many writers
// race, with and without shared commits (a failed member of a batch or a
// group is re-run alone, which must not turn a conflict into a double
// write).
func TestConcurrentWriters(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []store.Option
	}{{"update", nil}, {"batch", []store.Option{store.WithBatch(2 * time.Millisecond)}}, {"group commit", []store.Option{store.WithGroupCommit()}}} {
		t.Run(tc.name, func(t *testing.T) {
			s := openBolt(t, tc.opts...)
			g, err := s.CreateGroup(now, store.Group{DisplayName: "all"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			const writers, names = 16, 8
			var (
				wg        sync.WaitGroup
				mu        sync.Mutex
				created   = map[string]int{}
				conflicts int
			)
			for i := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					name := fmt.Sprintf("User%d", i%names)
					if i%2 == 1 {
						name = strings.ToLower(name)
					}
					u, err := s.CreateUser(now, store.User{UserName: name})
					if errors.Is(err, store.ErrConflict) {
						mu.Lock()
						conflicts++
						mu.Unlock()
						return
					}
					if err != nil {
						t.Errorf("CreateUser(%s): %v", name, err)
						return
					}
					mu.Lock()
					created[strings.ToLower(name)]++
					mu.Unlock()
					_, err = s.UpdateGroup(g.ID, now, 0, func(tx store.GroupTx) error {
						_, err := tx.AddMember(store.MemberRef{ID: u.ID, Type: store.MemberUser})
						return err
					})
					if err != nil {
						t.Errorf("AddMember: %v", err)
					}
				}()
			}
			wg.Wait()
			if len(created) != names || conflicts != writers-names {
				t.Fatalf("created %v, %d conflicts; want each of %d names once", created, conflicts, names)
			}
			for name, n := range created {
				if n != 1 {
					t.Fatalf("%s created %d times", name, n)
				}
			}
			if n, _ := s.CountUsers(); n != names {
				t.Fatalf("CountUsers = %d, want %d", n, names)
			}
			if n, _ := s.CountGroupMembers(g.ID); n != names {
				t.Fatalf("CountGroupMembers = %d, want %d", n, names)
			}
			if got, _ := s.GetGroup(g.ID); got.Meta.Version != 1+names {
				t.Fatalf("group version = %d, want %d", got.Meta.Version, 1+names)
			}
		})
	}
}

// TestLoneBatchedWriterCommitsAtOnce: under WithBatch, a write with no other
// write in flight must not sit out the batch window, or every lone SCIM
// write would pay it as latency. The window here is far longer than the
// test allows for three writes, a failed one included. Group commit (what
// serve uses) has no window: a lone write is its own group.
func TestLoneBatchedWriterCommitsAtOnce(t *testing.T) {
	for name, opt := range map[string]store.Option{"batch": store.WithBatch(30 * time.Second), "group commit": store.WithGroupCommit()} {
		t.Run(name, func(t *testing.T) { testLoneWriterCommitsAtOnce(t, openBolt(t, opt)) })
	}
}

func testLoneWriterCommitsAtOnce(t *testing.T, s *store.BoltStore) {
	writes := []struct {
		name    string
		wantErr error
		run     func() error
	}{
		{"create", nil, func() error {
			_, err := s.CreateUser(now, store.User{UserName: "alice@example.com"})
			return err
		}},
		{"conflicting create", store.ErrConflict, func() error {
			_, err := s.CreateUser(now, store.User{UserName: "ALICE@example.com"})
			return err
		}},
		{"create group", nil, func() error {
			_, err := s.CreateGroup(now, store.Group{DisplayName: "eng"}, nil)
			return err
		}},
	}
	for _, w := range writes {
		done := make(chan error, 1)
		go func() { done <- w.run() }()
		select {
		case err := <-done:
			if !errors.Is(err, w.wantErr) {
				t.Fatalf("%s: %v, want %v", w.name, err, w.wantErr)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: a lone write waited for the batch window", w.name)
		}
	}
	if n, _ := s.CountUsers(); n != 1 {
		t.Fatalf("CountUsers = %d, want 1", n)
	}
}
