package daemon

import (
	"context"
	"sync/atomic"
	"time"
)

// storeProbe answers "does the state answer?" for /healthz and /readyz
// from memory. A probe must never wait on the state itself: behind a long
// reconcile's read transaction, a write that grows the bbolt file waits,
// and every new reader waits behind that write — a liveness check that
// reads the file would time out exactly when the daemon is busiest.
type storeProbe struct {
	check    func() error
	interval time.Duration
	// stale is how long after the last good answer the state counts as
	// not answering.
	stale  time.Duration
	now    func() time.Time
	lastOK atomic.Int64 // unix nanoseconds of the last good check; 0: none yet
}

func newStoreProbe(check func() error, now func() time.Time) *storeProbe {
	p := &storeProbe{check: check, interval: 2 * time.Second, stale: 15 * time.Second, now: now}
	p.once()
	return p
}

func (p *storeProbe) once() {
	if p.check() == nil {
		p.lastOK.Store(p.now().UnixNano())
	}
}

// run checks the state every interval until ctx ends.
func (p *storeProbe) run(ctx context.Context) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.once()
		}
	}
}

// answers reports whether the state answered a check recently.
func (p *storeProbe) answers() bool {
	last := p.lastOK.Load()
	return last != 0 && p.now().Sub(time.Unix(0, last)) <= p.stale
}
