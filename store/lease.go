package store

import (
	"context"
	"errors"
	"time"
)

// Lease errors.
var (
	// ErrLeaseHeld: another holder has the lease and it has not expired.
	ErrLeaseHeld = errors.New("lease held by another replica")
	// ErrLeaseLost: the lease is no longer held at this epoch (it expired,
	// or another replica took it); a fenced write was not committed.
	ErrLeaseLost = errors.New("lease lost")
)

// Lease is one term of a leadership lease: Holder holds Name at Epoch
// until Expires (the backend's clock, which every replica shares).
type Lease struct {
	Name    string
	Holder  string
	Epoch   uint64
	Expires time.Time
}

// Leaser is the leadership lease a multi-replica backend offers (River's
// pattern): acquire by insert-on-conflict when free or expired, renew
// scoped to holder and epoch, release to step down, and commit the
// reconciler's intents only while the term lasts. Epochs grow by one on
// every acquisition, so they are fencing tokens: once a replica has
// acquired epoch e, no write fenced by an earlier epoch commits.
type Leaser interface {
	// AcquireLease takes name for holder for ttl, with the next epoch, when
	// it is free, expired, or already holder's (a restarted holder starts a
	// new term). ErrLeaseHeld (naming the holder) otherwise.
	AcquireLease(name, holder string, ttl time.Duration) (Lease, error)
	// RenewLease extends l's term to ttl from now; ErrLeaseLost when l is
	// no longer the unexpired term of its lease.
	RenewLease(l Lease, ttl time.Duration) (Lease, error)
	// ReleaseLease ends l's term now, so another replica can take over at
	// once; ErrLeaseLost when l was no longer held.
	ReleaseLease(l Lease) error
	// CommitFenced is SyncState.Commit, committed only if l is still the
	// unexpired term of its lease when it commits; ErrLeaseLost (nothing
	// written) otherwise. A replica acquiring the lease meanwhile waits for
	// it, so its first run sees every intent its predecessor committed.
	CommitFenced(l Lease, c SyncCommit) error
	// LeaseHolder is name's current term as the backend records it (zero
	// when never taken); Expires tells whether it still runs.
	LeaseHolder(name string) (Lease, error)
}

// Notifier carries a small message from any replica to every replica that
// listens (PostgreSQL LISTEN/NOTIFY): how a SCIM write on a follower
// reaches the leader's reconciler. Delivery is best effort; the scheduled
// full run covers what was missed.
type Notifier interface {
	// Notify sends payload (at most MaxNotifyPayload bytes) on channel.
	Notify(channel, payload string) error
	// Listen calls fn with every payload on channel until ctx ends, over a
	// connection of its own, reconnecting after a failure; onGap is called
	// after a reconnect, when notifications may have been missed.
	Listen(ctx context.Context, channel string, fn func(payload string), onGap func()) error
}

// MaxNotifyPayload is PostgreSQL's NOTIFY payload limit, less a margin.
const MaxNotifyPayload = 7900
