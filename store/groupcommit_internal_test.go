package store

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// openGroupCommit opens a state file whose writes share commits, as serve's.
func openGroupCommit(t *testing.T) *BoltStore {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "state.db"), WithGroupCommit())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// A leader waits for the writers the last commit saw, so that clients
// whose answers just left share the next commit instead of the first of
// them committing alone: with 8 IdP connections, commits of 1 and 7 writes
// in turn became commits of 8 (creates 2,662–3,080/s → 2,947–3,641/s
// when it was added: docs/benchmarks-history.md). The wait ends as soon as they are there: here the last
// commit "took" an hour and the bound is an hour, and the 8 writes still
// commit at once, together.
func TestGroupCommitWaitsForTheWritersTheLastCommitSaw(t *testing.T) {
	s := openGroupCommit(t)
	s.group.mu.Lock()
	s.group.writers, s.group.took, s.group.maxLinger = 8, time.Hour, time.Hour
	s.group.mu.Unlock()
	before := lastTxID(t, s)
	began := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			_, err := s.CreateUser(gcNow(), User{UserName: fmt.Sprintf("user%d@example.com", i)})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(began); d > time.Minute {
		t.Fatalf("8 writes took %v: the leader waited out its bound although every writer it waited for had queued", d)
	}
	if got := lastTxID(t, s) - before; got != 1 {
		t.Fatalf("8 writers the last commit saw took %d commits, want 1", got)
	}
}

// A writer alone after a burst waits once, at most for what the last
// commit took, bounded (here by 50 ms), and not at all after that: the
// commit it made saw one writer. A lone writer's every write would
// otherwise pay the wait.
func TestGroupCommitLoneWriterStopsWaiting(t *testing.T) {
	s := openGroupCommit(t)
	s.group.mu.Lock()
	s.group.writers, s.group.took, s.group.maxLinger = 8, time.Hour, 50*time.Millisecond
	s.group.mu.Unlock()
	for i := range 3 {
		if _, err := s.CreateUser(gcNow(), User{UserName: fmt.Sprintf("lone%d@example.com", i)}); err != nil {
			t.Fatal(err)
		}
		s.group.mu.Lock()
		writers, lingering, queued := s.group.writers, s.group.lingering, len(s.group.queue)
		s.group.mu.Unlock()
		if writers != 1 || lingering || queued != 0 {
			t.Fatalf("after lone write %d: the last commit saw %d writers (want 1), lingering %v, %d queued", i, writers, lingering, queued)
		}
	}
}

func gcNow() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

// A leader carries at most maxGroup writes, so once that many have queued
// it has nobody left to wait for: after a burst of more than maxGroup
// writers (the last commit saw twice as many), a leader with a full group
// must commit at once, not linger for writers it could not take. Here the
// bound is an hour: a leader that lingers anyway keeps maxGroup IdP writes
// unanswered, and while a backlog drains every round would pay the wait.
func TestGroupCommitFullGroupDoesNotWait(t *testing.T) {
	s := openGroupCommit(t)
	s.group.mu.Lock()
	s.group.writers, s.group.took, s.group.maxLinger = 2*maxGroup, time.Hour, time.Hour
	s.group.mu.Unlock()
	before := lastTxID(t, s)
	errs := make(chan error, maxGroup)
	for i := range maxGroup {
		go func() {
			_, err := s.CreateUser(gcNow(), User{UserName: fmt.Sprintf("burst%04d@example.com", i)})
			errs <- err
		}()
	}
	deadline := time.After(30 * time.Second)
	for i := range maxGroup {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-deadline:
			t.Fatalf("%d of %d writes answered after 30 s: the leader lingered with a full group queued", i, maxGroup)
		}
	}
	if got := lastTxID(t, s) - before; got != 1 {
		t.Fatalf("a full group of %d writes took %d commits, want 1", maxGroup, got)
	}
}
