package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scimflare/scimflare/store"
)

var _ store.Leaser = (*Store)(nil)

func checkLease(name, holder string, ttl time.Duration) error {
	if name == "" || holder == "" {
		return fmt.Errorf("lease name and holder are required: %w", store.ErrInvalid)
	}
	if ttl <= 0 {
		return fmt.Errorf("lease %s: ttl %v must be positive: %w", name, ttl, store.ErrInvalid)
	}
	return nil
}

// AcquireLease implements store.Leaser: one INSERT … ON CONFLICT DO
// UPDATE that takes the row only when it is expired or already holder's,
// bumping the epoch; the database's clock decides expiry.
func (s *Store) AcquireLease(name, holder string, ttl time.Duration) (store.Lease, error) {
	if err := checkLease(name, holder, ttl); err != nil {
		return store.Lease{}, err
	}
	var out store.Lease
	err := s.write(false, func(w *wtx) error {
		var epoch int64
		var expires time.Time
		err := w.tx.QueryRow(w.ctx, `INSERT INTO scimflare_leases AS l (name, holder, epoch, expires_at)
			VALUES ($1, $2, 1, clock_timestamp() + $3::bigint * interval '1 microsecond')
			ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, epoch = l.epoch + 1, expires_at = EXCLUDED.expires_at
			WHERE l.expires_at <= clock_timestamp() OR l.holder = EXCLUDED.holder
			RETURNING epoch, expires_at`, name, holder, ttl.Microseconds()).Scan(&epoch, &expires)
		if errors.Is(err, pgx.ErrNoRows) {
			var cur string
			var until time.Time
			if err := w.tx.QueryRow(w.ctx, "SELECT holder, expires_at FROM scimflare_leases WHERE name = $1", name).Scan(&cur, &until); err != nil {
				return err
			}
			return fmt.Errorf("lease %s is held by %s until %s: %w", name, cur, until.UTC().Format(time.RFC3339Nano), store.ErrLeaseHeld)
		}
		out = store.Lease{Name: name, Holder: holder, Epoch: uint64(epoch), Expires: expires}
		return err
	})
	return out, err
}

// RenewLease implements store.Leaser.
func (s *Store) RenewLease(l store.Lease, ttl time.Duration) (store.Lease, error) {
	if err := checkLease(l.Name, l.Holder, ttl); err != nil {
		return store.Lease{}, err
	}
	err := s.write(false, func(w *wtx) error {
		err := w.tx.QueryRow(w.ctx, `UPDATE scimflare_leases SET expires_at = clock_timestamp() + $4::bigint * interval '1 microsecond'
			WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp()
			RETURNING expires_at`, l.Name, l.Holder, int64(l.Epoch), ttl.Microseconds()).Scan(&l.Expires)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("lease %s at epoch %d is no longer held by %s: %w", l.Name, l.Epoch, l.Holder, store.ErrLeaseLost)
		}
		return err
	})
	if err != nil {
		return store.Lease{}, err
	}
	return l, nil
}

// ReleaseLease implements store.Leaser: the term ends now; the epoch
// stays, so the next acquisition still moves past it.
func (s *Store) ReleaseLease(l store.Lease) error {
	return s.write(false, func(w *wtx) error {
		n, err := w.exec(`UPDATE scimflare_leases SET expires_at = clock_timestamp()
			WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp()`, l.Name, l.Holder, int64(l.Epoch))
		if err == nil && n == 0 {
			err = fmt.Errorf("lease %s at epoch %d is no longer held by %s: %w", l.Name, l.Epoch, l.Holder, store.ErrLeaseLost)
		}
		return err
	})
}

// CommitFenced implements store.Leaser. The term is checked with a FOR
// SHARE lock on the lease row in the commit's own transaction: an
// acquisition by another replica (an UPDATE of that row) waits until this
// transaction ends, and one already under way makes this check wait and
// then re-read the row, finding the term over.
func (s *Store) CommitFenced(l store.Lease, c store.SyncCommit) error {
	return s.write(len(c.Audit) > 0, func(w *wtx) error {
		var held bool
		err := w.tx.QueryRow(w.ctx, `SELECT true FROM scimflare_leases
			WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp() FOR SHARE`,
			l.Name, l.Holder, int64(l.Epoch)).Scan(&held)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("lease %s at epoch %d is no longer held by %s; nothing committed: %w", l.Name, l.Epoch, l.Holder, store.ErrLeaseLost)
		}
		if err != nil {
			return err
		}
		return w.commit(c)
	})
}

// LeaseHolder implements store.Leaser.
func (s *Store) LeaseHolder(name string) (store.Lease, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	out := store.Lease{Name: name}
	var epoch int64
	err := s.pool.QueryRow(ctx, "SELECT holder, epoch, expires_at FROM scimflare_leases WHERE name = $1", name).Scan(&out.Holder, &epoch, &out.Expires)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Lease{Name: name}, nil
	}
	if err != nil {
		return store.Lease{}, s.wrap(err)
	}
	out.Epoch = uint64(epoch)
	return out, nil
}

var _ store.Notifier = (*Store)(nil)

// Notify implements store.Notifier with pg_notify.
func (s *Store) Notify(channel, payload string) error {
	if len(payload) > store.MaxNotifyPayload {
		return fmt.Errorf("notify %s: payload of %d bytes exceeds %d: %w", channel, len(payload), store.MaxNotifyPayload, store.ErrInvalid)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if _, err := s.pool.Exec(ctx, "SELECT pg_notify($1, $2)", channel, payload); err != nil {
		return s.wrap(err)
	}
	return nil
}

// Listen implements store.Notifier on a pooled connection held for as long
// as it listens.
func (s *Store) Listen(ctx context.Context, channel string, fn func(payload string), onGap func()) error {
	first := true
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, channel, fn, func() {
			if !first && onGap != nil {
				onGap()
			}
			first = false
		})
		if ctx.Err() != nil {
			return nil
		}
		_ = err
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return nil
}

func (s *Store) listenOnce(ctx context.Context, channel string, fn func(string), listening func()) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	defer func() {
		// The connection goes back to the pool: it must not keep listening.
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, _ = conn.Exec(c, "UNLISTEN *")
	}()
	listening()
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}
