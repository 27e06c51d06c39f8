package store_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/store/storetest"
)

func TestConformanceGroupCommit(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openBolt(t, store.WithGroupCommit()) })
}

func TestBackendConformanceGroupCommit(t *testing.T) {
	storetest.RunBackend(t, func(t *testing.T) store.Backend { return openBolt(t, store.WithGroupCommit()) })
}

func TestSyncConformanceGroupCommit(t *testing.T) {
	storetest.RunSync(t, func(t *testing.T) store.SyncState { return openBolt(t, store.WithGroupCommit()) })
}

// lastTxID is the id of the last committed write transaction: it grows by
// one per commit.
func lastTxID(t *testing.T, s *store.BoltStore) int {
	t.Helper()
	var id int
	if err := s.DB().View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// holdCommit starts a write that stays inside its transaction until the
// returned release is called, and waits until it is in there: every write
// started meanwhile finds a commit in flight.
func holdCommit(t *testing.T, s *store.BoltStore) (release func() error) {
	t.Helper()
	u, err := s.CreateUser(now, store.User{UserName: "holder@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	entered, proceed, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	var once sync.Once
	go func() {
		_, err := s.UpdateUser(u.ID, now, 0, func(u *store.User) error {
			once.Do(func() { close(entered) })
			<-proceed
			u.ExternalID = "held"
			return nil
		})
		done <- err
	}()
	<-entered
	return func() error {
		close(proceed)
		return <-done
	}
}

// waitQueued waits (at most 10 s) until n writes wait for the next group.
func waitQueued(t *testing.T, s *store.BoltStore, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for store.QueuedWrites(s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued after 10 s, want %d", store.QueuedWrites(s), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGroupCommitSharesOneCommit: writes that arrive while a commit is in
// flight are committed together, in one transaction (one fsync), as soon
// as it ends — that is what lets concurrent SCIM writes through faster
// than one disk sync each — and every one of them is on disk when its call
// returns. bbolt's Batch (WithBatch) cut the group by its timer instead.
func TestGroupCommitSharesOneCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := store.Open(path, store.WithGroupCommit())
	if err != nil {
		t.Fatal(err)
	}
	release := holdCommit(t, s)
	before := lastTxID(t, s)
	const writers = 12
	errs := make(chan error, writers)
	for i := range writers {
		go func() {
			_, err := s.CreateUser(now, store.User{UserName: fmt.Sprintf("user%02d@example.com", i)})
			errs <- err
		}()
	}
	waitQueued(t, s, writers)
	if err := release(); err != nil {
		t.Fatalf("held write: %v", err)
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatalf("queued write: %v", err)
		}
	}
	if got := lastTxID(t, s) - before; got != 2 {
		t.Fatalf("%d commits for the held write and %d queued ones, want 2 (the held one, then one for the queue)", got, writers)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, _ := s.CountUsers(); n != writers+1 {
		t.Fatalf("after reopening: %d users, want %d", n, writers+1)
	}
}

// TestGroupCommitFailureStaysWithItsWrite: in a shared commit, a write
// that fails — a taken userName, here taken by another write of the same
// group — or panics gets its own outcome, and the others still commit.
func TestGroupCommitFailureStaysWithItsWrite(t *testing.T) {
	s := openBolt(t, store.WithGroupCommit())
	victim, err := s.CreateUser(now, store.User{UserName: "victim@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	release := holdCommit(t, s)
	names := []string{"a@example.com", "b@example.com", "A@example.com", "c@example.com"}
	type outcome struct {
		name     string
		err      error
		panicked any
	}
	out := make(chan outcome, len(names)+1)
	for i, name := range names {
		go func() {
			_, err := s.CreateUser(now, store.User{UserName: name})
			out <- outcome{name: name, err: err}
		}()
		waitQueued(t, s, i+1)
		if i == 1 {
			go func() {
				defer func() { out <- outcome{name: "panicking update", panicked: recover()} }()
				_, _ = s.UpdateUser(victim.ID, now, 0, func(*store.User) error { panic("boom") })
			}()
			waitQueued(t, s, i+2)
		}
	}
	if err := release(); err != nil {
		t.Fatalf("held write: %v", err)
	}
	conflicts := 0
	for range len(names) + 1 {
		o := <-out
		switch {
		case o.name == "panicking update":
			if o.panicked != "boom" {
				t.Errorf("the panicking write's goroutine saw %v, want its own panic", o.panicked)
			}
		case errors.Is(o.err, store.ErrConflict):
			conflicts++
		case o.err != nil:
			t.Errorf("create %s: %v", o.name, o.err)
		}
	}
	if conflicts != 1 {
		t.Fatalf("%d creates refused as taken, want 1 (a@ and A@ fold to the same userName)", conflicts)
	}
	for _, name := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		if _, err := s.UserByUserName(name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if n, _ := s.CountUsers(); n != 5 {
		t.Fatalf("CountUsers = %d, want 5 (victim, holder, a, b, c)", n)
	}
}
