package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scimflare/scimflare/store"
)

// Dump implements store.Backend from one REPEATABLE READ snapshot.
func (s *Store) Dump(fn func(store.DumpItem) error) error {
	return s.snapshot(context.Background(), func(r reader) error { return r.dump(fn) })
}

func (r reader) dump(fn func(store.DumpItem) error) error {
	steps := []func() error{
		func() error {
			return r.each(func(k, v []byte) (bool, error) {
				u, err := store.DecodeUser(v)
				if err != nil {
					return false, fmt.Errorf("user %q: %w", k, err)
				}
				return true, fn(store.DumpItem{User: &u})
			}, "SELECT id, rec FROM scim_users ORDER BY id")
		},
		func() error {
			return r.each(func(k, v []byte) (bool, error) {
				g, err := store.DecodeGroup(v)
				if err != nil {
					return false, fmt.Errorf("group %q: %w", k, err)
				}
				return true, fn(store.DumpItem{Group: &g})
			}, "SELECT id, rec FROM scim_groups ORDER BY id")
		},
		func() error {
			rows, err := r.q.Query(r.ctx, "SELECT group_id, member_id, member_type, since_s, since_ns FROM scim_members ORDER BY group_id, member_id")
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var gid, mid []byte
				var typ string
				var sec int64
				var ns int32
				if err := rows.Scan(&gid, &mid, &typ, &sec, &ns); err != nil {
					return err
				}
				m := store.DumpedMember{GroupID: string(gid), Membership: store.Membership{
					MemberRef: store.MemberRef{ID: string(mid), Type: store.MemberType(typ)}, Since: since(sec, ns)}}
				if err := fn(store.DumpItem{Member: &m}); err != nil {
					return err
				}
			}
			return rows.Err()
		},
		func() error {
			return r.each(func(k, v []byte) (bool, error) {
				t, err := store.DecodeToken(v)
				if err != nil {
					return false, fmt.Errorf("token %q: %w", k, err)
				}
				return true, fn(store.DumpItem{Token: &t})
			}, "SELECT name, rec FROM scim_tokens ORDER BY name")
		},
		func() error {
			return r.each(func(k, v []byte) (bool, error) {
				e, err := store.DecodeLedger(v)
				if err != nil {
					return false, err
				}
				return true, fn(store.DumpItem{Ledger: &e})
			}, "SELECT email, rec FROM sync_ledger ORDER BY account, email")
		},
		func() error {
			return r.each(func(k, v []byte) (bool, error) {
				m, err := store.DecodeCached(v)
				if err != nil {
					return false, err
				}
				return true, fn(store.DumpItem{Cached: &m})
			}, "SELECT email, rec FROM sync_member_cache ORDER BY account, email")
		},
		func() error {
			return r.each(func(k, v []byte) (bool, error) {
				t, err := store.ParseScanTime(string(k), string(v))
				if err != nil {
					return false, err
				}
				return true, fn(store.DumpItem{CacheScan: &store.CacheScan{AccountID: string(k), ScannedAt: t}})
			}, "SELECT account, convert_to(scanned_at, 'UTF8') FROM sync_member_scans ORDER BY account")
		},
		func() error {
			return r.each(func(k, v []byte) (bool, error) {
				g, err := store.DecodeGrant(v)
				if err != nil {
					return false, fmt.Errorf("grant %s: %w", k, err)
				}
				return true, fn(store.DumpItem{Grant: &g})
			}, "SELECT id, rec FROM sync_grants ORDER BY id")
		},
		func() error {
			var ferr error
			err := r.audit(time.Time{}, func(a store.AuditRecord) bool {
				ferr = fn(store.DumpItem{Audit: &a})
				return ferr == nil
			})
			return errors.Join(err, ferr)
		},
		func() error {
			return r.each(func(k, v []byte) (bool, error) {
				return true, fn(store.DumpItem{Status: &store.StatusEntry{Key: string(k), Value: v}})
			}, "SELECT key, value FROM sync_status ORDER BY key")
		},
		func() error {
			return r.each(func(k, v []byte) (bool, error) {
				g, err := store.DecodeOwnedUserGroup(v)
				if err != nil {
					return false, err
				}
				return true, fn(store.DumpItem{OwnedUserGroup: &g})
			}, "SELECT key, rec FROM sync_user_groups ORDER BY account, key")
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// loadTables are the tables Load fills, with their COPY columns.
var loadTables = map[string][]string{
	"scim_users":        {"id", "user_name", "external_id", "email", "rec"},
	"scim_groups":       {"id", "display_name", "external_id", "rec"},
	"scim_members":      {"group_id", "member_id", "member_type", "since_s", "since_ns"},
	"scim_tokens":       {"name", "rec"},
	"sync_ledger":       {"account", "email", "rec"},
	"sync_member_cache": {"account", "email", "rec"},
	"sync_member_scans": {"account", "scanned_at"},
	"sync_grants":       {"id", "rec"},
	"sync_audit":        {"seq", "rec"},
	"sync_user_groups":  {"account", "key", "rec"},
	"sync_status":       {"key", "value"},
}

// loadChunk rows are sent per COPY.
const loadChunk = 5000

type pgLoader struct {
	ctx  context.Context
	tx   pgx.Tx
	rows map[string][][]any
	seq  uint64
	hash string
}

func (l *pgLoader) add(table string, row ...any) error {
	l.rows[table] = append(l.rows[table], row)
	if len(l.rows[table]) >= loadChunk {
		return l.flush(table)
	}
	return nil
}

func (l *pgLoader) flush(table string) error {
	rows := l.rows[table]
	if len(rows) == 0 {
		return nil
	}
	l.rows[table] = rows[:0]
	if _, err := l.tx.CopyFrom(l.ctx, pgx.Identifier{table}, loadTables[table], pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("load %s: %w", table, err)
	}
	return nil
}

func (l *pgLoader) put(it store.DumpItem) error {
	switch {
	case it.User != nil:
		u := *it.User
		if !store.ValidID(u.ID) {
			return fmt.Errorf("load user %q: invalid id: %w", u.ID, store.ErrInvalid)
		}
		if err := store.PrepareUser(&u); err != nil {
			return err
		}
		v, err := store.EncodeUser(u)
		if err != nil {
			return err
		}
		return l.add("scim_users", b(u.ID), b(store.Fold(u.UserName)), nb(u.ExternalID), nb(store.Fold(u.Email)), v)
	case it.Group != nil:
		g := *it.Group
		if !store.ValidID(g.ID) {
			return fmt.Errorf("load group %q: invalid id: %w", g.ID, store.ErrInvalid)
		}
		if err := store.PrepareGroup(&g); err != nil {
			return err
		}
		v, err := store.EncodeGroup(g)
		if err != nil {
			return err
		}
		return l.add("scim_groups", b(g.ID), b(store.Fold(g.DisplayName)), nb(g.ExternalID), v)
	case it.Member != nil:
		m := it.Member
		if m.Type != store.MemberUser && m.Type != store.MemberGroup {
			return fmt.Errorf("load membership of %q in group %q: type %q: %w", m.ID, m.GroupID, m.Type, store.ErrInvalid)
		}
		return l.add("scim_members", b(m.GroupID), b(m.ID), string(m.Type), m.Since.Unix(), int32(m.Since.Nanosecond()))
	case it.Token != nil:
		v, err := store.PrepareToken(*it.Token)
		if err != nil {
			return err
		}
		return l.add("scim_tokens", b(it.Token.Name), v)
	case it.Ledger != nil:
		v, err := store.EncodeLedger(*it.Ledger)
		if err != nil {
			return err
		}
		return l.add("sync_ledger", b(it.Ledger.AccountID), b(store.Fold(it.Ledger.Email)), v)
	case it.Cached != nil:
		v, err := store.EncodeCached(*it.Cached)
		if err != nil {
			return err
		}
		return l.add("sync_member_cache", b(it.Cached.AccountID), b(store.Fold(it.Cached.Email)), v)
	case it.CacheScan != nil:
		if err := store.CheckAccount(it.CacheScan.AccountID); err != nil {
			return err
		}
		return l.add("sync_member_scans", b(it.CacheScan.AccountID), store.FormatScanTime(it.CacheScan.ScannedAt))
	case it.Grant != nil:
		v, err := store.EncodeGrant(*it.Grant)
		if err != nil {
			return err
		}
		return l.add("sync_grants", b(it.Grant.ID), v)
	case it.Audit != nil:
		a, err := store.ResealAudit(*it.Audit)
		if err != nil {
			return err
		}
		if a.Seq != l.seq+1 || it.Audit.PrevHash != l.hash {
			return fmt.Errorf("audit record %d does not follow record %d: the trail being loaded is broken: %w", a.Seq, l.seq, store.ErrAuditBroken)
		}
		l.seq, l.hash = a.Seq, a.Hash
		return l.add("sync_audit", int64(a.Seq), a.Bytes)
	case it.Status != nil:
		if err := store.CheckStatusKey(it.Status.Key); err != nil {
			return err
		}
		v := it.Status.Value
		if v == nil {
			v = []byte{}
		}
		return l.add("sync_status", b(it.Status.Key), v)
	case it.OwnedUserGroup != nil:
		g := *it.OwnedUserGroup
		if err := store.CheckOwnedUserGroup(g); err != nil {
			return err
		}
		v, err := store.EncodeOwnedUserGroup(g)
		if err != nil {
			return err
		}
		return l.add("sync_user_groups", b(g.AccountID), b(g.Key), v)
	}
	return fmt.Errorf("load: empty dump item: %w", store.ErrInvalid)
}

// Load implements store.Backend: one transaction, COPY in chunks.
func (s *Store) Load(fill func(put func(store.DumpItem) error) error) error {
	ctx := context.Background()
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return s.wrap(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	// Writers (another replica, a stray daemon) wait for the load; the
	// exclusive locks also make the emptiness check below hold until commit.
	if _, err := tx.Exec(ctx, `LOCK TABLE scim_users, scim_groups, scim_members, scim_tokens, sync_ledger, sync_member_cache,
		sync_member_scans, sync_grants, sync_audit, sync_audit_head, sync_status, sync_user_groups IN EXCLUSIVE MODE`); err != nil {
		return s.wrap(err)
	}
	var nonEmpty string
	err = tx.QueryRow(ctx, `SELECT t FROM (VALUES
		('users', EXISTS (SELECT 1 FROM scim_users)), ('groups', EXISTS (SELECT 1 FROM scim_groups)),
		('memberships', EXISTS (SELECT 1 FROM scim_members)), ('tokens', EXISTS (SELECT 1 FROM scim_tokens)),
		('ledger', EXISTS (SELECT 1 FROM sync_ledger)), ('member cache', EXISTS (SELECT 1 FROM sync_member_cache)),
		('member listings', EXISTS (SELECT 1 FROM sync_member_scans)), ('grants', EXISTS (SELECT 1 FROM sync_grants)),
		('audit trail', EXISTS (SELECT 1 FROM sync_audit) OR (SELECT seq FROM sync_audit_head) <> 0),
		('status', EXISTS (SELECT 1 FROM sync_status)), ('user groups', EXISTS (SELECT 1 FROM sync_user_groups))) AS v(t, nonempty) WHERE nonempty LIMIT 1`).Scan(&nonEmpty)
	switch {
	case err == nil:
		return fmt.Errorf("%s already holds state (%s): %w", s.location, nonEmpty, store.ErrNotEmpty)
	case !errors.Is(err, pgx.ErrNoRows):
		return s.wrap(err)
	}
	l := &pgLoader{ctx: ctx, tx: tx, rows: map[string][][]any{}}
	if err := fill(l.put); err != nil {
		return err
	}
	for table := range loadTables {
		if err := l.flush(table); err != nil {
			return s.wrap(err)
		}
	}
	// Every edge must join an existing group to an existing member of its
	// type, as AddMember would have checked one by one.
	var bad int64
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM scim_members m
		WHERE NOT EXISTS (SELECT 1 FROM scim_groups g WHERE g.id = m.group_id)
		   OR (m.member_type = 'User' AND NOT EXISTS (SELECT 1 FROM scim_users u WHERE u.id = m.member_id))
		   OR (m.member_type = 'Group' AND NOT EXISTS (SELECT 1 FROM scim_groups g WHERE g.id = m.member_id))
		   OR m.group_id = m.member_id`).Scan(&bad); err != nil {
		return s.wrap(err)
	}
	if bad > 0 {
		return fmt.Errorf("load: %d memberships name a group or member that is not loaded: %w", bad, store.ErrMemberNotFound)
	}
	if _, err := tx.Exec(ctx, "UPDATE sync_audit_head SET seq = $1, hash = $2", int64(l.seq), l.hash); err != nil {
		return s.wrap(err)
	}
	return s.wrap(tx.Commit(ctx))
}

// BackupFile implements store.Backend: the state, read from one snapshot,
// becomes a bbolt state file at path (which `scimflare migrate` can load
// back into an empty database, and which a single scimflare can serve
// from). For routine backups of a PostgreSQL deployment, also use the
// database's own (pg_dump, base backups, a provider's snapshots).
func (s *Store) BackupFile(path string) (int64, error) {
	if _, err := os.Stat(path); err == nil {
		// Never rename over a state file a scimflare has open.
		live, err := store.Open(path, store.WithLockTimeout(50*time.Millisecond))
		if errors.Is(err, store.ErrLocked) {
			return 0, fmt.Errorf("backup target %s is a state file in use: %w", path, store.ErrInvalid)
		}
		if err == nil {
			_ = live.Close()
		}
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return 0, fmt.Errorf("create backup next to %s: %w", path, err)
	}
	tmp := f.Name()
	_ = f.Close()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o600); err != nil {
		return 0, fmt.Errorf("chmod backup %s: %w", tmp, err)
	}
	dst, err := store.Open(tmp)
	if err != nil {
		return 0, err
	}
	err = dst.Load(func(put func(store.DumpItem) error) error { return s.Dump(put) })
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("back up %s to %s: %w", s.location, path, err)
	}
	fi, err := os.Stat(tmp)
	if err != nil {
		return 0, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return 0, fmt.Errorf("move backup into place at %s: %w", path, err)
	}
	ok = true
	return fi.Size(), nil
}
