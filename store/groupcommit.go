package store

import (
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxGroup bounds the writes one group commit carries (bbolt's Batch uses
// the same default), so that one transaction stays small whatever the
// number of writers queued.
const maxGroup = 1000

// groupCommit lets concurrent writes share commits: a write that finds no
// commit in flight leads the next one; writes that arrive while a commit is
// in flight queue, and the first of them, once that commit ends, commits
// the whole queue in one transaction (one commit's fdatasyncs) for
// everyone.
//
// Before it commits, a leader waits for as many writers as the last commit
// saw (those it carried and those that queued while it ran) to queue, but
// no longer than that commit took (at most 2 ms). Without the wait,
// 8 clients settled into commits of 1 and 7 writes in turn: the lone one
// committed the writer whose answer had just left, while the 7 it did not
// wait for queued behind it; with it, the 8 share one commit. A lone
// writer waits for no one (the last commit saw one writer), and a writer
// after a burst waits once, for at most one commit's time. bbolt's Batch
// instead cuts a batch when its timer fires, and a batch that started
// waiting for the writer lock takes no one else (BENCHMARKS.md, "What
// bounds writes").
type groupCommit struct {
	mu      sync.Mutex
	leading bool         // a writer is committing a group
	queue   []*groupCall // writes waiting for the next group, in arrival order
	// writers is how many writers the last commit saw; took, how long it
	// took.
	writers int
	took    time.Duration
	// lingering is set while a leader waits for writers; a write that
	// queues then wakes it through arrived.
	lingering bool
	arrived   chan struct{}
	// maxLinger bounds the wait (defaultMaxLinger; tests set their own).
	maxLinger time.Duration
}

// defaultMaxLinger bounds how long a leader waits for writers to queue.
const defaultMaxLinger = 2 * time.Millisecond

// groupCall is one write. done receives, exactly once per send: errLead
// (take the queue and commit it), errSolo (run alone) or the write's result.
type groupCall struct {
	fn   func(*bolt.Tx) error
	done chan error
}

var (
	errLead = errors.New("store: lead the next group commit")
	errSolo = errors.New("store: run this write in a transaction of its own")
)

// update runs fn in a transaction that may carry other writes; fn may run
// more than once (see BoltStore.update).
func (g *groupCommit) update(db *bolt.DB, fn func(*bolt.Tx) error) error {
	c := &groupCall{fn: fn, done: make(chan error, 1)}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	if g.lingering {
		select {
		case g.arrived <- struct{}{}:
		default: // the leader has a wake-up pending already
		}
	}
	if g.leading {
		g.mu.Unlock()
		if err := <-c.done; err != errLead {
			return finishCall(db, fn, err)
		}
		g.mu.Lock()
	}
	g.leading = true
	g.linger()
	n := min(len(g.queue), maxGroup)
	calls := g.queue[:n:n]
	g.queue = g.queue[n:]
	g.mu.Unlock()

	began := time.Now()
	commitGroup(db, calls)
	took := time.Since(began)

	g.mu.Lock()
	g.writers, g.took = n+len(g.queue), took
	if len(g.queue) > 0 {
		// Hand over: the first waiter commits everyone who queued
		// meanwhile, while this writer returns.
		next := g.queue[0]
		g.mu.Unlock()
		next.done <- errLead
	} else {
		g.leading = false
		g.queue = nil
		g.mu.Unlock()
	}
	return finishCall(db, fn, <-c.done)
}

// linger waits, g.mu held on entry and on return, until as many writers
// as the last commit saw have queued, or for as long as that commit took
// (at most g.maxLinger). It holds no transaction: reads and the writers
// queueing go on meanwhile. A group carries at most maxGroup writes, so
// the wait ends once that many have queued: after a burst of more, the
// last commit saw more writers than the next can take, and waiting for
// them would only hold up a full group (each round of a backlog).
func (g *groupCommit) linger() {
	want := min(g.writers, maxGroup)
	if len(g.queue) >= want || g.took <= 0 {
		return
	}
	if g.arrived == nil {
		g.arrived = make(chan struct{}, 1)
	}
	t := time.NewTimer(min(g.took, g.maxLinger))
	defer t.Stop()
	g.lingering = true
	defer func() { g.lingering = false }()
	for len(g.queue) < want {
		g.mu.Unlock()
		select {
		case <-g.arrived:
			g.mu.Lock()
		case <-t.C:
			g.mu.Lock()
			return
		}
	}
}

// finishCall turns what a group answered into the write's result.
func finishCall(db *bolt.DB, fn func(*bolt.Tx) error, err error) error {
	if err == errSolo {
		return db.Update(fn)
	}
	return err
}

// commitGroup runs calls in one transaction and answers each. A call that
// fails (or panics) leaves the group and is told to run alone, as bbolt's
// Batch does: its error may be the effect of a call before it in the
// group, and the others must not be rolled back with it. The rest run
// again in a fresh transaction.
func commitGroup(db *bolt.DB, calls []*groupCall) {
	for len(calls) > 0 {
		failed := -1
		// A panic in bbolt itself (the calls' own are caught one by one)
		// is answered to every call of the group as an error: raised in
		// the leader, it would leave the others waiting for ever.
		err := callSafely(func(*bolt.Tx) error {
			return db.Update(func(tx *bolt.Tx) error {
				for i, c := range calls {
					if err := callSafely(c.fn, tx); err != nil {
						failed = i
						return err
					}
				}
				return nil
			})
		}, nil)
		if failed >= 0 {
			if len(calls) == 1 {
				// Alone already: its transaction was its own, so the
				// error stands (a panic is raised again in its goroutine).
				if errors.As(err, new(panicked)) {
					err = errSolo
				}
				calls[0].done <- err
				return
			}
			calls[failed].done <- errSolo
			calls = append(calls[:failed:failed], calls[failed+1:]...)
			continue
		}
		for _, c := range calls {
			c.done <- err
		}
		return
	}
}

// panicked is a panic in a write, caught so that the writer that led the
// group is not the one to die for another's write.
type panicked struct{ v any }

func (p panicked) Error() string { return fmt.Sprintf("panic: %v", p.v) }

func callSafely(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = panicked{v}
		}
	}()
	return fn(tx)
}
