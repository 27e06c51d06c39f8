package postgres_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
	"github.com/scimflare/scimflare/store/postgres/pgtest"
)

func ledgerPut(email string) store.SyncCommit {
	return store.SyncCommit{PutLedger: []store.LedgerEntry{{AccountID: "acc", Email: email, MemberID: "m", UpdatedAt: now}}}
}

// One term after another: acquire, renew, a second replica refused while
// the term lasts, release, the second replica takes over at the next epoch
// and the first one's term is over for renewals and fenced commits.
func TestLeaseTerms(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	la, err := a.AcquireLease("reconciler", "replica-a", time.Minute)
	if err != nil || la.Epoch != 1 {
		t.Fatalf("first AcquireLease = %+v, %v; want epoch 1", la, err)
	}
	if _, err := b.AcquireLease("reconciler", "replica-b", time.Minute); !errors.Is(err, store.ErrLeaseHeld) || !strings.Contains(err.Error(), "replica-a") {
		t.Fatalf("AcquireLease of a held lease: %v; want ErrLeaseHeld naming replica-a", err)
	}
	renewed, err := a.RenewLease(la, 2*time.Minute)
	if err != nil || renewed.Epoch != 1 || !renewed.Expires.After(la.Expires) {
		t.Fatalf("RenewLease = %+v, %v; want the same epoch, later expiry than %v", renewed, err, la.Expires)
	}
	if err := a.CommitFenced(renewed, ledgerPut("a1@example.com")); err != nil {
		t.Fatalf("CommitFenced by the holder: %v", err)
	}
	if err := a.ReleaseLease(renewed); err != nil {
		t.Fatalf("ReleaseLease: %v", err)
	}
	lb, err := b.AcquireLease("reconciler", "replica-b", time.Minute)
	if err != nil || lb.Epoch != 2 {
		t.Fatalf("AcquireLease after release = %+v, %v; want epoch 2", lb, err)
	}
	if _, err := a.RenewLease(renewed, time.Minute); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("RenewLease of an ended term: %v, want ErrLeaseLost", err)
	}
	if err := a.CommitFenced(renewed, ledgerPut("a2@example.com")); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("CommitFenced by the deposed holder: %v, want ErrLeaseLost", err)
	}
	if err := b.CommitFenced(lb, ledgerPut("b1@example.com")); err != nil {
		t.Fatalf("CommitFenced by the new holder: %v", err)
	}
	l, err := a.Ledger("acc")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l[store.Fold("a2@example.com")]; ok || len(l) != 2 {
		t.Fatalf("ledger = %v; want a1 and b1 only (the deposed holder's write must not land)", l)
	}
	// A restarted holder takes its own unexpired lease back, at a new epoch.
	again, err := b.AcquireLease("reconciler", "replica-b", time.Minute)
	if err != nil || again.Epoch != 3 {
		t.Fatalf("re-acquire by the holder = %+v, %v; want epoch 3", again, err)
	}
	if err := b.CommitFenced(lb, ledgerPut("b2@example.com")); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("CommitFenced at the holder's previous epoch: %v, want ErrLeaseLost", err)
	}
}

// A term that runs out (the holder paused past its ttl) can be taken by
// another replica, and the paused holder can neither renew nor commit.
func TestLeaseExpiry(t *testing.T) {
	dsn := pgtest.DSN(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	la, err := a.AcquireLease("reconciler", "a", 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	lb, err := b.AcquireLease("reconciler", "b", time.Minute)
	if err != nil || lb.Epoch != la.Epoch+1 {
		t.Fatalf("AcquireLease after expiry = %+v, %v", lb, err)
	}
	if _, err := a.RenewLease(la, time.Minute); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("RenewLease after expiry: %v, want ErrLeaseLost", err)
	}
	if err := a.CommitFenced(la, ledgerPut("stray@example.com")); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("CommitFenced after expiry: %v, want ErrLeaseLost", err)
	}
}

// Two replicas compete with short terms and random pauses that often
// outlast them, each committing fenced intents tagged with its epoch,
// until there were enough terms and intents to test anything (or 20 s, on
// a machine too busy to give them turns). In commit order (audit Seq) the epochs never go back: once a
// replica committed at epoch e, no intent of an earlier term landed, which
// is what fencing promises a deposed leader's writes.
func TestFencedCommitsNeverGoBack(t *testing.T) {
	dsn := pgtest.DSN(t)
	const ttl = 60 * time.Millisecond
	deadline := time.Now().Add(20 * time.Second)
	var mu sync.Mutex
	committed := map[uint64]int{} // intents committed per epoch
	more := func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, c := range committed {
			n += c
		}
		return time.Now().Before(deadline) && (len(committed) < 3 || n < 10)
	}
	var wg sync.WaitGroup
	for r := range 2 {
		s := openDSN(t, dsn)
		holder := fmt.Sprintf("replica-%d", r)
		wg.Go(func() {
			for more() {
				l, err := s.AcquireLease("reconciler", holder, ttl)
				if errors.Is(err, store.ErrLeaseHeld) {
					time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				for more() {
					// A pause between deciding and writing, sometimes
					// past the ttl: the deposed leader's write in flight.
					time.Sleep(time.Duration(rand.IntN(80)) * time.Millisecond)
					err := s.CommitFenced(l, store.SyncCommit{Audit: []store.AuditRecord{{Time: now, Actor: holder, Action: "intent", Reason: strconv.FormatUint(l.Epoch, 10)}}})
					if errors.Is(err, store.ErrLeaseLost) {
						break
					}
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					committed[l.Epoch]++
					mu.Unlock()
					if l, err = s.RenewLease(l, ttl); err != nil {
						if !errors.Is(err, store.ErrLeaseLost) {
							t.Error(err)
						}
						break
					}
				}
			}
		})
	}
	wg.Wait()
	s := openDSN(t, dsn)
	var last uint64
	epochs := map[uint64]bool{}
	n := 0
	if err := s.Audit(time.Time{}, func(r store.AuditRecord) bool {
		e, _ := strconv.ParseUint(r.Reason, 10, 64)
		if e < last {
			t.Errorf("audit record %d: an intent of epoch %d committed after one of epoch %d", r.Seq, e, last)
		}
		last = max(last, e)
		epochs[e] = true
		n++
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(epochs) < 3 || n < 10 {
		t.Fatalf("%d intents over %d terms: the replicas did not take turns enough to test anything", n, len(epochs))
	}
}
