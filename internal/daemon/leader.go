package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	gosync "sync"
	"time"

	"github.com/scimflare/scimflare/internal/metrics"
	"github.com/scimflare/scimflare/store"
	syncer "github.com/scimflare/scimflare/sync"
)

// leaseName is the lease of the one replica that reconciles.
const leaseName = "reconciler"

// changesChannel carries SCIM changes from every replica to the leader.
const changesChannel = "scimflare_changes"

// leadership keeps this replica's claim on the reconciler lease: acquire
// when free, renew every third of the term, and step down — stop the
// reconciler — before the term can run out unrenewed, so two replicas never
// reconcile at once. The lease's epoch fences the reconciler's intents
// (fencedState): a deposed leader commits no new intent, so it can make at
// most the one Cloudflare write already in flight.
type leadership struct {
	leaser  store.Leaser
	replica string
	ttl     time.Duration
	log     *slog.Logger
	m       *metrics.Metrics

	mu    gosync.Mutex
	lease store.Lease // zero Epoch: not the leader
	since time.Time
}

func newReplicaID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// current is the term this replica holds, if it leads.
func (l *leadership) current() (store.Lease, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lease, l.lease.Epoch != 0
}

// LeaderInfo is what /readyz and status say about leadership.
type LeaderInfo struct {
	Leader    bool      `json:"leader"`
	ReplicaID string    `json:"replica_id"`
	LeaderID  string    `json:"leader_id"`
	Since     time.Time `json:"since,omitzero"`
	Epoch     uint64    `json:"epoch"`
}

func (l *leadership) info() LeaderInfo {
	l.mu.Lock()
	in := LeaderInfo{Leader: l.lease.Epoch != 0, ReplicaID: l.replica, Since: l.since, Epoch: l.lease.Epoch}
	l.mu.Unlock()
	if in.Leader {
		in.LeaderID = l.replica
		return in
	}
	if cur, err := l.leaser.LeaseHolder(leaseName); err == nil && time.Now().Before(cur.Expires) {
		in.LeaderID, in.Epoch = cur.Holder, cur.Epoch
	}
	return in
}

// run campaigns until ctx ends. While this replica leads, lead runs with a
// context that ends when it steps down; run waits for lead to return before
// it campaigns again.
func (l *leadership) run(ctx context.Context, lead func(context.Context)) {
	tick := l.ttl / 3
	for ctx.Err() == nil {
		lease, err := l.leaser.AcquireLease(leaseName, l.replica, l.ttl)
		if err != nil {
			if !errors.Is(err, store.ErrLeaseHeld) {
				l.log.Warn("cannot campaign for the reconciler lease", "error", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(tick):
			}
			continue
		}
		l.mu.Lock()
		l.lease, l.since = lease, time.Now()
		l.mu.Unlock()
		l.m.Leader.Set(1)
		l.m.LeaseEpoch.Set(float64(lease.Epoch))
		l.log.Info("this replica leads: it reconciles and fires expiries", "replica", l.replica, "epoch", lease.Epoch, "lease", l.ttl.String())
		term, stepDown := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); lead(term) }()
		l.hold(term, lease)
		stepDown()
		<-done
		l.mu.Lock()
		held := l.lease
		l.lease, l.since = store.Lease{}, time.Time{}
		l.mu.Unlock()
		l.m.Leader.Set(0)
		l.m.LeaseEpoch.Set(0)
		if ctx.Err() != nil {
			// Shutting down: hand over at once instead of after the term.
			_ = l.leaser.ReleaseLease(held)
			l.log.Info("released the reconciler lease", "replica", l.replica, "epoch", held.Epoch)
			return
		}
		l.log.Warn("stepped down: the reconciler lease could not be renewed in time", "replica", l.replica, "epoch", held.Epoch)
	}
}

// hold renews lease every third of the term and returns when the term
// must end: ctx ended, the lease was lost, or two thirds of the term went
// by without a renewal (stepping down before the lease can expire).
func (l *leadership) hold(ctx context.Context, lease store.Lease) {
	tick := l.ttl / 3
	lastRenew := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(tick):
		}
		renewed, err := l.leaser.RenewLease(lease, l.ttl)
		switch {
		case err == nil:
			lease, lastRenew = renewed, time.Now()
			l.mu.Lock()
			l.lease = renewed
			l.mu.Unlock()
		case errors.Is(err, store.ErrLeaseLost):
			l.log.Warn("the reconciler lease was lost", "replica", l.replica, "epoch", lease.Epoch, "error", err)
			return
		default:
			l.log.Warn("cannot renew the reconciler lease", "replica", l.replica, "epoch", lease.Epoch, "error", err)
			if time.Since(lastRenew) >= 2*l.ttl/3 {
				return
			}
		}
	}
}

// fencedState is the reconciler's state on a multi-replica backend: every
// Commit — the intent before each Cloudflare write among them — commits
// only while this replica holds the lease at its epoch.
type fencedState struct {
	syncer.State
	leaser store.Leaser
	lead   *leadership
}

func (f fencedState) Commit(c store.SyncCommit) error {
	lease, ok := f.lead.current()
	if !ok {
		return fmt.Errorf("this replica does not lead: %w", store.ErrLeaseLost)
	}
	return f.leaser.CommitFenced(lease, c)
}

// Fence implements syncer.Fencer: an empty commit under the term.
func (f fencedState) Fence() error { return f.Commit(store.SyncCommit{}) }

// changeMessage is a SCIM change as NOTIFY carries it.
type changeMessage struct {
	Users  []string `json:"u,omitempty"`
	Groups []string `json:"g,omitempty"`
	Emails []string `json:"e,omitempty"`
	All    bool     `json:"all,omitempty"`
}

func encodeChange(users, groups, emails []string) string {
	raw, _ := json.Marshal(changeMessage{Users: users, Groups: groups, Emails: emails})
	if len(raw) > store.MaxNotifyPayload {
		raw, _ = json.Marshal(changeMessage{All: true})
	}
	return string(raw)
}

// listenForChanges touches rec with every change any replica announces;
// after a gap in the notifications it asks for a full run, which covers
// whatever was missed.
func listenForChanges(ctx context.Context, n store.Notifier, rec *syncer.Reconciler, log *slog.Logger) {
	err := n.Listen(ctx, changesChannel, func(payload string) {
		var m changeMessage
		if err := json.Unmarshal([]byte(payload), &m); err != nil {
			log.Warn("ignoring a malformed change notification", "error", err)
			return
		}
		if m.All {
			rec.TouchAll()
			return
		}
		rec.Touch(m.Users, m.Groups, m.Emails)
	}, func() {
		log.Warn("change notifications may have been missed; a full reconcile follows")
		rec.TouchAll()
	})
	if err != nil && ctx.Err() == nil {
		log.Error("cannot listen for SCIM changes from other replicas", "error", err)
	}
}
