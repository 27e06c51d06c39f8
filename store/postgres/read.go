package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scimflare/scimflare/store"
)

// querier is what a pool and a transaction share.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// reader implements store.Reader over a pool (each call one statement, or
// a snapshot where it needs several) or a transaction.
type reader struct {
	ctx context.Context
	q   querier
}

var _ store.Reader = reader{}

// b makes a bytea parameter of a string (keys are bytea: see the schema).
func b(s string) []byte { return []byte(s) }

// nb is b, with "" as NULL.
func nb(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

func (r reader) one(sql string, args ...any) ([]byte, error) {
	var v []byte
	err := r.q.QueryRow(r.ctx, sql, args...).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return v, err
}

func (r reader) GetUser(id string) (store.User, error) {
	var v []byte
	var err error
	if store.ValidID(id) {
		if v, err = r.one("SELECT rec FROM scim_users WHERE id = $1", b(id)); err != nil {
			return store.User{}, err
		}
	}
	if v == nil {
		return store.User{}, fmt.Errorf("user %q: %w", id, store.ErrNotFound)
	}
	return store.DecodeUser(v)
}

func (r reader) UserByUserName(userName string) (store.User, error) {
	var v []byte
	var err error
	if userName != "" {
		if v, err = r.one("SELECT rec FROM scim_users WHERE user_name = $1", b(store.Fold(userName))); err != nil {
			return store.User{}, err
		}
	}
	if v == nil {
		return store.User{}, fmt.Errorf("user with userName %q: %w", userName, store.ErrNotFound)
	}
	return store.DecodeUser(v)
}

func (r reader) users(sql string, args ...any) ([]store.User, error) {
	rows, err := r.q.Query(r.ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	var out []store.User
	defer rows.Close()
	for rows.Next() {
		var v []byte
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		u, err := store.DecodeUser(v)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

func (r reader) UsersByExternalID(externalID string) ([]store.User, error) {
	if externalID == "" {
		return nil, nil
	}
	return r.users("SELECT rec FROM scim_users WHERE external_id = $1 ORDER BY id", b(externalID))
}

func (r reader) UsersByEmail(email string) ([]store.User, error) {
	if email == "" {
		return nil, nil
	}
	return r.users("SELECT rec FROM scim_users WHERE email = $1 ORDER BY id", b(store.Fold(email)))
}

// each streams (key, rec) rows to fn until it returns false.
func (r reader) each(fn func(k, v []byte) (bool, error), sql string, args ...any) error {
	rows, err := r.q.Query(r.ctx, sql, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k, v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return err
		}
		more, err := fn(k, v)
		if err != nil || !more {
			return err
		}
	}
	return rows.Err()
}

func (r reader) ListUsers(afterID string, fn func(store.User) bool) error {
	return r.each(func(k, v []byte) (bool, error) {
		u, err := store.DecodeUser(v)
		if err != nil {
			return false, fmt.Errorf("user %q: %w", k, err)
		}
		return fn(u), nil
	}, "SELECT id, rec FROM scim_users WHERE id > $1 ORDER BY id", b(afterID))
}

func (r reader) count(sql string, args ...any) (int, error) {
	var n int64
	err := r.q.QueryRow(r.ctx, sql, args...).Scan(&n)
	return int(n), err
}

func (r reader) CountUsers() (int, error) { return r.count("SELECT count(*) FROM scim_users") }

func (r reader) GetGroup(id string) (store.Group, error) {
	var v []byte
	var err error
	if store.ValidID(id) {
		if v, err = r.one("SELECT rec FROM scim_groups WHERE id = $1", b(id)); err != nil {
			return store.Group{}, err
		}
	}
	if v == nil {
		return store.Group{}, fmt.Errorf("group %q: %w", id, store.ErrNotFound)
	}
	return store.DecodeGroup(v)
}

func (r reader) GroupByDisplayName(name string) (store.Group, error) {
	var v []byte
	var err error
	if name != "" {
		if v, err = r.one("SELECT rec FROM scim_groups WHERE display_name = $1", b(store.Fold(name))); err != nil {
			return store.Group{}, err
		}
	}
	if v == nil {
		return store.Group{}, fmt.Errorf("group with displayName %q: %w", name, store.ErrNotFound)
	}
	return store.DecodeGroup(v)
}

func (r reader) GroupsByExternalID(externalID string) ([]store.Group, error) {
	if externalID == "" {
		return nil, nil
	}
	var out []store.Group
	err := r.each(func(k, v []byte) (bool, error) {
		g, err := store.DecodeGroup(v)
		out = append(out, g)
		return true, err
	}, "SELECT id, rec FROM scim_groups WHERE external_id = $1 ORDER BY id", b(externalID))
	return out, err
}

func (r reader) ListGroups(afterID string, fn func(store.Group) bool) error {
	return r.each(func(k, v []byte) (bool, error) {
		g, err := store.DecodeGroup(v)
		if err != nil {
			return false, fmt.Errorf("group %q: %w", k, err)
		}
		return fn(g), nil
	}, "SELECT id, rec FROM scim_groups WHERE id > $1 ORDER BY id", b(afterID))
}

func (r reader) CountGroups() (int, error) { return r.count("SELECT count(*) FROM scim_groups") }

func (r reader) exists(table, id string) (bool, error) {
	if !store.ValidID(id) {
		return false, nil
	}
	var ok bool
	err := r.q.QueryRow(r.ctx, "SELECT EXISTS (SELECT 1 FROM "+table+" WHERE id = $1)", b(id)).Scan(&ok)
	return ok, err
}

func (r reader) groupMust(groupID string) error {
	ok, err := r.exists("scim_groups", groupID)
	if err == nil && !ok {
		err = fmt.Errorf("group %q: %w", groupID, store.ErrNotFound)
	}
	return err
}

func since(s int64, ns int32) time.Time { return time.Unix(s, int64(ns)).UTC() }

// groupMembers streams the edges of groupID without checking it exists.
func (r reader) groupMembers(groupID string, fn func(store.Membership) bool) error {
	rows, err := r.q.Query(r.ctx, "SELECT member_id, member_type, since_s, since_ns FROM scim_members WHERE group_id = $1 ORDER BY member_id", b(groupID))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id []byte
		var typ string
		var s int64
		var ns int32
		if err := rows.Scan(&id, &typ, &s, &ns); err != nil {
			return err
		}
		if !fn(store.Membership{MemberRef: store.MemberRef{ID: string(id), Type: store.MemberType(typ)}, Since: since(s, ns)}) {
			return nil
		}
	}
	return rows.Err()
}

func (r reader) GroupMembers(groupID string, fn func(store.Membership) bool) error {
	if err := r.groupMust(groupID); err != nil {
		return err
	}
	return r.groupMembers(groupID, fn)
}

func (r reader) CountGroupMembers(groupID string) (int, error) {
	if err := r.groupMust(groupID); err != nil {
		return 0, err
	}
	return r.count("SELECT count(*) FROM scim_members WHERE group_id = $1", b(groupID))
}

func (r reader) isMember(groupID, memberID string) (bool, error) {
	if !store.ValidID(memberID) {
		return false, nil
	}
	var ok bool
	err := r.q.QueryRow(r.ctx, "SELECT EXISTS (SELECT 1 FROM scim_members WHERE group_id = $1 AND member_id = $2)", b(groupID), b(memberID)).Scan(&ok)
	return ok, err
}

func (r reader) IsMember(groupID, memberID string) (bool, error) {
	if err := r.groupMust(groupID); err != nil {
		return false, err
	}
	return r.isMember(groupID, memberID)
}

func (r reader) GroupsOf(memberID string) ([]store.Membership, error) {
	var found bool
	if store.ValidID(memberID) {
		if err := r.q.QueryRow(r.ctx, "SELECT EXISTS (SELECT 1 FROM scim_users WHERE id = $1) OR EXISTS (SELECT 1 FROM scim_groups WHERE id = $1)", b(memberID)).Scan(&found); err != nil {
			return nil, err
		}
	}
	if !found {
		return nil, fmt.Errorf("member %q: %w", memberID, store.ErrNotFound)
	}
	rows, err := r.q.Query(r.ctx, "SELECT group_id, since_s, since_ns FROM scim_members WHERE member_id = $1 ORDER BY group_id", b(memberID))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.Membership
	for rows.Next() {
		var id []byte
		var s int64
		var ns int32
		if err := rows.Scan(&id, &s, &ns); err != nil {
			return nil, err
		}
		out = append(out, store.Membership{MemberRef: store.MemberRef{ID: string(id), Type: store.MemberGroup}, Since: since(s, ns)})
	}
	return out, rows.Err()
}

func (r reader) Tokens() ([]store.Token, error) {
	var out []store.Token
	err := r.each(func(k, v []byte) (bool, error) {
		t, err := store.DecodeToken(v)
		if err != nil {
			return false, fmt.Errorf("token %q: %w", k, err)
		}
		out = append(out, t)
		return true, nil
	}, "SELECT name, rec FROM scim_tokens ORDER BY name")
	return out, err
}

// The store's own Reader methods: one statement each where one suffices,
// else one snapshot.

// GetUser implements store.Reader.
func (s *Store) GetUser(id string) (u store.User, err error) {
	err = s.read(func(r reader) error { u, err = r.GetUser(id); return err })
	return u, err
}

// UserByUserName implements store.Reader.
func (s *Store) UserByUserName(userName string) (u store.User, err error) {
	err = s.read(func(r reader) error { u, err = r.UserByUserName(userName); return err })
	return u, err
}

// UsersByExternalID implements store.Reader.
func (s *Store) UsersByExternalID(externalID string) (us []store.User, err error) {
	err = s.read(func(r reader) error { us, err = r.UsersByExternalID(externalID); return err })
	return us, err
}

// UsersByEmail implements store.Reader.
func (s *Store) UsersByEmail(email string) (us []store.User, err error) {
	err = s.read(func(r reader) error { us, err = r.UsersByEmail(email); return err })
	return us, err
}

// ListUsers implements store.Reader.
func (s *Store) ListUsers(afterID string, fn func(store.User) bool) error {
	return s.read(func(r reader) error { return r.ListUsers(afterID, fn) })
}

// CountUsers implements store.Reader.
func (s *Store) CountUsers() (n int, err error) {
	err = s.read(func(r reader) error { n, err = r.CountUsers(); return err })
	return n, err
}

// GetGroup implements store.Reader.
func (s *Store) GetGroup(id string) (g store.Group, err error) {
	err = s.read(func(r reader) error { g, err = r.GetGroup(id); return err })
	return g, err
}

// GroupByDisplayName implements store.Reader.
func (s *Store) GroupByDisplayName(name string) (g store.Group, err error) {
	err = s.read(func(r reader) error { g, err = r.GroupByDisplayName(name); return err })
	return g, err
}

// GroupsByExternalID implements store.Reader.
func (s *Store) GroupsByExternalID(externalID string) (gs []store.Group, err error) {
	err = s.read(func(r reader) error { gs, err = r.GroupsByExternalID(externalID); return err })
	return gs, err
}

// ListGroups implements store.Reader.
func (s *Store) ListGroups(afterID string, fn func(store.Group) bool) error {
	return s.read(func(r reader) error { return r.ListGroups(afterID, fn) })
}

// CountGroups implements store.Reader.
func (s *Store) CountGroups() (n int, err error) {
	err = s.read(func(r reader) error { n, err = r.CountGroups(); return err })
	return n, err
}

func (s *Store) view(fn func(r reader) error) error {
	ctx, cancel := s.ctx()
	defer cancel()
	return s.snapshot(ctx, fn)
}

// GroupMembers implements store.Reader.
func (s *Store) GroupMembers(groupID string, fn func(store.Membership) bool) error {
	return s.view(func(r reader) error { return r.GroupMembers(groupID, fn) })
}

// CountGroupMembers implements store.Reader.
func (s *Store) CountGroupMembers(groupID string) (n int, err error) {
	err = s.view(func(r reader) error { n, err = r.CountGroupMembers(groupID); return err })
	return n, err
}

// IsMember implements store.Reader.
func (s *Store) IsMember(groupID, memberID string) (ok bool, err error) {
	err = s.view(func(r reader) error { ok, err = r.IsMember(groupID, memberID); return err })
	return ok, err
}

// GroupsOf implements store.Reader.
func (s *Store) GroupsOf(memberID string) (ms []store.Membership, err error) {
	err = s.view(func(r reader) error { ms, err = r.GroupsOf(memberID); return err })
	return ms, err
}

// Tokens implements store.Reader.
func (s *Store) Tokens() (ts []store.Token, err error) {
	err = s.read(func(r reader) error { ts, err = r.Tokens(); return err })
	return ts, err
}
