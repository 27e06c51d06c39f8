package postgres

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scimflare/scimflare/store"
)

// wtx is one write transaction; its methods mirror BoltStore's writeTx,
// rule for rule.
type wtx struct {
	reader
	tx pgx.Tx
}

func (w *wtx) exec(sql string, args ...any) (int64, error) {
	tag, err := w.tx.Exec(w.ctx, sql, args...)
	return tag.RowsAffected(), err
}

// uniqueViolation reports a unique_violation of the named constraint.
func uniqueViolation(err error, constraint string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == constraint
}

func (w *wtx) putUser(u store.User, insert bool) error {
	v, err := store.EncodeUser(u)
	if err != nil {
		return fmt.Errorf("encode user %q: %w", u.ID, err)
	}
	if insert {
		_, err = w.exec("INSERT INTO scim_users (id, user_name, external_id, email, rec) VALUES ($1, $2, $3, $4, $5)",
			b(u.ID), b(store.Fold(u.UserName)), nb(u.ExternalID), nb(store.Fold(u.Email)), v)
	} else {
		_, err = w.exec("UPDATE scim_users SET user_name = $2, external_id = $3, email = $4, rec = $5 WHERE id = $1",
			b(u.ID), b(store.Fold(u.UserName)), nb(u.ExternalID), nb(store.Fold(u.Email)), v)
	}
	if uniqueViolation(err, "scim_users_user_name_key") {
		return fmt.Errorf("userName %q is taken: %w", u.UserName, store.ErrConflict)
	}
	return err
}

func (w *wtx) createUser(now time.Time, u store.User) (store.User, error) {
	if err := store.PrepareUser(&u); err != nil {
		return store.User{}, err
	}
	// A new id colliding with an existing one (2^-80 per millisecond) fails
	// the primary key and the write, which is the safe way round.
	u.ID = store.NewID(now)
	u.Meta = store.Meta{Created: now, LastModified: now, Version: 1}
	u.ActiveSince = time.Time{}
	if u.Active {
		u.ActiveSince = now
	}
	return u, w.putUser(u, true)
}

// lockedUser reads a user under a row lock (FOR NO KEY UPDATE to change
// it, FOR UPDATE to delete it).
func (w *wtx) lockedUser(id, lock string) (store.User, error) {
	var v []byte
	var err error
	if store.ValidID(id) {
		if v, err = w.one("SELECT rec FROM scim_users WHERE id = $1 FOR "+lock, b(id)); err != nil {
			return store.User{}, err
		}
	}
	if v == nil {
		return store.User{}, fmt.Errorf("user %q: %w", id, store.ErrNotFound)
	}
	return store.DecodeUser(v)
}

// lockedGroup is lockedUser for groups.
func (w *wtx) lockedGroup(id, lock string) (store.Group, error) {
	var v []byte
	var err error
	if store.ValidID(id) {
		if v, err = w.one("SELECT rec FROM scim_groups WHERE id = $1 FOR "+lock, b(id)); err != nil {
			return store.Group{}, err
		}
	}
	if v == nil {
		return store.Group{}, fmt.Errorf("group %q: %w", id, store.ErrNotFound)
	}
	return store.DecodeGroup(v)
}

func (w *wtx) updateUser(id string, now time.Time, ifVersion uint64, fn func(*store.User) error) (store.User, error) {
	old, err := w.lockedUser(id, "NO KEY UPDATE")
	if err != nil {
		return store.User{}, err
	}
	if ifVersion != 0 && ifVersion != old.Meta.Version {
		return store.User{}, fmt.Errorf("user %q is at version %d, not %d: %w", id, old.Meta.Version, ifVersion, store.ErrVersionMismatch)
	}
	u := old
	u.Doc = append([]byte(nil), old.Doc...)
	if err := fn(&u); err != nil {
		return store.User{}, err
	}
	u.ID, u.Meta = old.ID, old.Meta
	switch {
	case !u.Active:
		u.ActiveSince = time.Time{}
	case old.Active:
		u.ActiveSince = old.ActiveSince
	default:
		u.ActiveSince = now
	}
	if err := store.PrepareUser(&u); err != nil {
		return store.User{}, err
	}
	if store.SameUser(old, u) {
		return old, nil
	}
	u.Meta.Version++
	u.Meta.LastModified = now
	return u, w.putUser(u, false)
}

func (w *wtx) deleteUser(id string) (store.DeletedUser, error) {
	// FOR UPDATE waits for every transaction holding the user FOR KEY
	// SHARE (adding it to a group); the edge delete below then sees their
	// edges, READ COMMITTED taking a fresh snapshot per statement.
	u, err := w.lockedUser(id, "UPDATE")
	if err != nil {
		return store.DeletedUser{}, err
	}
	groupIDs, err := w.dropMemberOf(id)
	if err != nil {
		return store.DeletedUser{}, err
	}
	if _, err := w.exec("DELETE FROM scim_users WHERE id = $1", b(id)); err != nil {
		return store.DeletedUser{}, err
	}
	return store.DeletedUser{User: u, GroupIDs: groupIDs}, nil
}

// dropMemberOf removes memberID from every group it is a direct member of
// and returns those groups in id order.
func (w *wtx) dropMemberOf(memberID string) ([]string, error) {
	rows, err := w.tx.Query(w.ctx, "DELETE FROM scim_members WHERE member_id = $1 RETURNING group_id", b(memberID))
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
		var id []byte
		err := row.Scan(&id)
		return string(id), err
	})
	slices.Sort(ids)
	return ids, err
}

func (w *wtx) putGroup(g store.Group, insert bool) error {
	v, err := store.EncodeGroup(g)
	if err != nil {
		return fmt.Errorf("encode group %q: %w", g.ID, err)
	}
	if insert {
		_, err = w.exec("INSERT INTO scim_groups (id, display_name, external_id, rec) VALUES ($1, $2, $3, $4)",
			b(g.ID), b(store.Fold(g.DisplayName)), nb(g.ExternalID), v)
	} else {
		_, err = w.exec("UPDATE scim_groups SET display_name = $2, external_id = $3, rec = $4 WHERE id = $1",
			b(g.ID), b(store.Fold(g.DisplayName)), nb(g.ExternalID), v)
	}
	if uniqueViolation(err, "scim_groups_display_name_key") {
		return fmt.Errorf("displayName %q is taken: %w", g.DisplayName, store.ErrConflict)
	}
	return err
}

func (w *wtx) createGroup(now time.Time, g store.Group, members []store.MemberRef) (store.Group, error) {
	if err := store.PrepareGroup(&g); err != nil {
		return store.Group{}, err
	}
	g.ID = store.NewID(now)
	g.Meta = store.Meta{Created: now, LastModified: now, Version: 1}
	if err := w.putGroup(g, true); err != nil {
		return store.Group{}, err
	}
	refs, err := w.resolveAll(g.ID, members)
	if err != nil {
		return store.Group{}, err
	}
	if _, err := w.insertEdges(g.ID, refs, now); err != nil {
		return store.Group{}, err
	}
	return g, nil
}

func (w *wtx) resolveMember(groupID string, ref store.MemberRef) (store.MemberRef, error) {
	if ref.ID == groupID {
		return store.MemberRef{}, fmt.Errorf("group %q cannot be a member of itself: %w", groupID, store.ErrInvalid)
	}
	var isUser, isGroup bool
	switch ref.Type {
	case store.MemberUser, store.MemberGroup, "":
	default:
		return store.MemberRef{}, fmt.Errorf("member %q has type %q, want %q or %q: %w", ref.ID, ref.Type, store.MemberUser, store.MemberGroup, store.ErrInvalid)
	}
	if store.ValidID(ref.ID) {
		// FOR KEY SHARE: the member cannot be deleted until this
		// transaction ends (and its delete then removes the new edge too).
		if err := w.tx.QueryRow(w.ctx, `WITH u AS (SELECT 1 FROM scim_users WHERE id = $1 FOR KEY SHARE),
			g AS (SELECT 1 FROM scim_groups WHERE id = $1 FOR KEY SHARE)
			SELECT EXISTS (SELECT 1 FROM u), EXISTS (SELECT 1 FROM g)`,
			b(ref.ID)).Scan(&isUser, &isGroup); err != nil {
			return store.MemberRef{}, err
		}
	}
	ok := false
	switch ref.Type {
	case store.MemberUser:
		ok = isUser
	case store.MemberGroup:
		ok = isGroup
	default:
		if isUser {
			ref.Type, ok = store.MemberUser, true
		} else if isGroup {
			ref.Type, ok = store.MemberGroup, true
		}
	}
	if !ok {
		if ref.Type == "" {
			return store.MemberRef{}, fmt.Errorf("member %q names no user or group: %w", ref.ID, store.ErrMemberNotFound)
		}
		return store.MemberRef{}, fmt.Errorf("member %q names no %s: %w", ref.ID, ref.Type, store.ErrMemberNotFound)
	}
	return ref, nil
}

// resolveAll resolves refs as resolveMember does, one after the other
// (the error names the first bad reference), in two statements whatever
// their number, holding every member FOR KEY SHARE. Duplicates are dropped;
// the order of first appearance is kept.
func (w *wtx) resolveAll(groupID string, refs []store.MemberRef) ([]store.MemberRef, error) {
	ids := make([][]byte, 0, len(refs))
	for _, r := range refs {
		if store.ValidID(r.ID) {
			ids = append(ids, b(r.ID))
		}
	}
	users, groups := map[string]bool{}, map[string]bool{}
	for _, q := range []struct {
		table string
		into  map[string]bool
	}{{"scim_users", users}, {"scim_groups", groups}} {
		rows, err := w.tx.Query(w.ctx, "SELECT id FROM "+q.table+" WHERE id = ANY($1::bytea[]) ORDER BY id FOR KEY SHARE", ids)
		if err != nil {
			return nil, err
		}
		found, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
			var id []byte
			err := row.Scan(&id)
			return string(id), err
		})
		if err != nil {
			return nil, err
		}
		for _, id := range found {
			q.into[id] = true
		}
	}
	out := make([]store.MemberRef, 0, len(refs))
	seen := make(map[string]bool, len(refs))
	for _, ref := range refs {
		if ref.ID == groupID {
			return nil, fmt.Errorf("group %q cannot be a member of itself: %w", groupID, store.ErrInvalid)
		}
		ok := false
		switch ref.Type {
		case store.MemberUser:
			ok = users[ref.ID]
		case store.MemberGroup:
			ok = groups[ref.ID]
		case "":
			if users[ref.ID] {
				ref.Type, ok = store.MemberUser, true
			} else if groups[ref.ID] {
				ref.Type, ok = store.MemberGroup, true
			}
		default:
			return nil, fmt.Errorf("member %q has type %q, want %q or %q: %w", ref.ID, ref.Type, store.MemberUser, store.MemberGroup, store.ErrInvalid)
		}
		if !ok {
			if ref.Type == "" {
				return nil, fmt.Errorf("member %q names no user or group: %w", ref.ID, store.ErrMemberNotFound)
			}
			return nil, fmt.Errorf("member %q names no %s: %w", ref.ID, ref.Type, store.ErrMemberNotFound)
		}
		if !seen[ref.ID] {
			seen[ref.ID] = true
			out = append(out, ref)
		}
	}
	return out, nil
}

// insertEdges adds the edges that do not exist yet, in one statement, and
// returns those it added.
func (w *wtx) insertEdges(groupID string, refs []store.MemberRef, since time.Time) ([]store.MemberRef, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	ids := make([][]byte, len(refs))
	types := make([]string, len(refs))
	for i, r := range refs {
		ids[i], types[i] = b(r.ID), string(r.Type)
	}
	rows, err := w.tx.Query(w.ctx, `INSERT INTO scim_members (group_id, member_id, member_type, since_s, since_ns)
		SELECT $1, m.id, m.t, $4, $5 FROM unnest($2::bytea[], $3::text[]) AS m(id, t)
		ON CONFLICT DO NOTHING RETURNING member_id`, b(groupID), ids, types, since.Unix(), int32(since.Nanosecond()))
	if err != nil {
		return nil, err
	}
	added, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
		var id []byte
		err := row.Scan(&id)
		return string(id), err
	})
	if err != nil {
		return nil, err
	}
	isAdded := make(map[string]bool, len(added))
	for _, id := range added {
		isAdded[id] = true
	}
	var out []store.MemberRef
	for _, r := range refs {
		if isAdded[r.ID] {
			out = append(out, r)
		}
	}
	return out, nil
}

// addMember keeps an existing edge with its Since. It resolves the member
// and inserts the edge in one statement (one round trip per member: an
// IdP's 1000-member PATCH is 1000 of them); only a member that does not
// resolve takes resolveMember's slower path, for its exact error.
func (w *wtx) addMember(groupID string, ref store.MemberRef, now time.Time) (store.MemberRef, bool, error) {
	if ref.ID == groupID || !store.ValidID(ref.ID) || (ref.Type != store.MemberUser && ref.Type != store.MemberGroup && ref.Type != "") {
		_, err := w.resolveMember(groupID, ref)
		if err == nil {
			err = fmt.Errorf("member %q: %w", ref.ID, store.ErrMemberNotFound)
		}
		return store.MemberRef{}, false, err
	}
	var typ *string
	var added bool
	err := w.tx.QueryRow(w.ctx, `WITH u AS (
			SELECT 'User'::text AS t FROM scim_users WHERE id = $2 AND $3 IN ('User', '') FOR KEY SHARE
		), g AS (
			SELECT 'Group'::text AS t FROM scim_groups WHERE id = $2 AND $3 IN ('Group', '') FOR KEY SHARE
		), m AS (
			SELECT coalesce((SELECT t FROM u), (SELECT t FROM g)) AS t
		), ins AS (
			INSERT INTO scim_members (group_id, member_id, member_type, since_s, since_ns)
			SELECT $1, $2, t, $4, $5 FROM m WHERE t IS NOT NULL
			ON CONFLICT DO NOTHING RETURNING 1
		)
		SELECT (SELECT t FROM m), EXISTS (SELECT 1 FROM ins)`,
		b(groupID), b(ref.ID), string(ref.Type), now.Unix(), int32(now.Nanosecond())).Scan(&typ, &added)
	if err != nil {
		return store.MemberRef{}, false, err
	}
	if typ == nil {
		_, err := w.resolveMember(groupID, ref)
		if err == nil {
			err = fmt.Errorf("member %q: %w", ref.ID, store.ErrMemberNotFound)
		}
		return store.MemberRef{}, false, err
	}
	ref.Type = store.MemberType(*typ)
	return ref, added, nil
}

func (w *wtx) removeMember(groupID, memberID string) (bool, error) {
	if !store.ValidID(memberID) {
		return false, nil
	}
	n, err := w.exec("DELETE FROM scim_members WHERE group_id = $1 AND member_id = $2", b(groupID), b(memberID))
	return n == 1, err
}

func (w *wtx) members(groupID string) ([]store.Membership, error) {
	var ms []store.Membership
	err := w.groupMembers(groupID, func(m store.Membership) bool { ms = append(ms, m); return true })
	return ms, err
}

func (w *wtx) removeAllMembers(groupID string) ([]store.MemberRef, error) {
	rows, err := w.tx.Query(w.ctx, "DELETE FROM scim_members WHERE group_id = $1 RETURNING member_id, member_type", b(groupID))
	if err != nil {
		return nil, err
	}
	removed, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.MemberRef, error) {
		var id []byte
		var typ string
		err := row.Scan(&id, &typ)
		return store.MemberRef{ID: string(id), Type: store.MemberType(typ)}, err
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(removed, func(a, b store.MemberRef) int { return bytes.Compare([]byte(a.ID), []byte(b.ID)) })
	if removed == nil {
		removed = []store.MemberRef{}
	}
	return removed, nil
}

func (w *wtx) deleteGroup(id string) ([]store.MemberRef, error) {
	if _, err := w.lockedGroup(id, "UPDATE"); err != nil {
		return nil, err
	}
	members, err := w.removeAllMembers(id)
	if err != nil {
		return nil, err
	}
	if _, err := w.dropMemberOf(id); err != nil {
		return nil, err
	}
	if _, err := w.exec("DELETE FROM scim_groups WHERE id = $1", b(id)); err != nil {
		return nil, err
	}
	return members, nil
}

func (w *wtx) putToken(t store.Token) error {
	v, err := store.PrepareToken(t)
	if err != nil {
		return err
	}
	n, err := w.exec("INSERT INTO scim_tokens (name, rec) VALUES ($1, $2) ON CONFLICT DO NOTHING", b(t.Name), v)
	if err == nil && n == 0 {
		err = fmt.Errorf("token %q: %w", t.Name, store.ErrConflict)
	}
	return err
}

func (w *wtx) deleteToken(name string) error {
	var n int64
	var err error
	if name != "" {
		n, err = w.exec("DELETE FROM scim_tokens WHERE name = $1", b(name))
	}
	if err == nil && n == 0 {
		err = fmt.Errorf("token %q: %w", name, store.ErrNotFound)
	}
	return err
}

var errGroupTxDone = errors.New("group transaction already ended")

// groupTx is the store.GroupTx handed to UpdateGroup's fn, as BoltStore's.
type groupTx struct {
	w              *wtx
	now            time.Time
	cur            store.Group
	membersChanged bool
	done           bool
}

var _ store.GroupTx = (*groupTx)(nil)

func (t *groupTx) Group() store.Group {
	g := t.cur
	g.Doc = append([]byte(nil), t.cur.Doc...)
	return g
}

func (t *groupTx) SetGroup(g store.Group) error {
	if t.done {
		return errGroupTxDone
	}
	if err := store.PrepareGroup(&g); err != nil {
		return err
	}
	holder, err := t.w.one("SELECT id FROM scim_groups WHERE display_name = $1", b(store.Fold(g.DisplayName)))
	if err != nil {
		return err
	}
	if holder != nil && string(holder) != t.cur.ID {
		return fmt.Errorf("displayName %q is taken: %w", g.DisplayName, store.ErrConflict)
	}
	t.cur.DisplayName, t.cur.ExternalID, t.cur.Doc = g.DisplayName, g.ExternalID, g.Doc
	return nil
}

func (t *groupTx) AddMember(ref store.MemberRef) (bool, error) {
	if t.done {
		return false, errGroupTxDone
	}
	_, added, err := t.w.addMember(t.cur.ID, ref, t.now)
	t.membersChanged = t.membersChanged || added
	return added, err
}

func (t *groupTx) RemoveMember(memberID string) (bool, error) {
	if t.done {
		return false, errGroupTxDone
	}
	removed, err := t.w.removeMember(t.cur.ID, memberID)
	t.membersChanged = t.membersChanged || removed
	return removed, err
}

func (t *groupTx) RemoveAllMembers() ([]store.MemberRef, error) {
	if t.done {
		return nil, errGroupTxDone
	}
	removed, err := t.w.removeAllMembers(t.cur.ID)
	t.membersChanged = t.membersChanged || len(removed) > 0
	return removed, err
}

func (t *groupTx) SetMembers(refs []store.MemberRef) (added, removed []store.MemberRef, err error) {
	if t.done {
		return nil, nil, errGroupTxDone
	}
	// A handful of statements whatever the size: an IdP's PUT of a
	// 10k-member group is not 20k round trips.
	order, err := t.w.resolveAll(t.cur.ID, refs)
	if err != nil {
		return nil, nil, err
	}
	want := make(map[string]bool, len(order))
	for _, r := range order {
		want[r.ID] = true
	}
	current, err := t.w.members(t.cur.ID)
	if err != nil {
		return nil, nil, err
	}
	have := make(map[string]bool, len(current))
	var gone [][]byte
	for _, m := range current {
		have[m.ID] = true
		if !want[m.ID] {
			removed = append(removed, m.MemberRef)
			gone = append(gone, b(m.ID))
		}
	}
	if len(gone) > 0 {
		if _, err := t.w.exec("DELETE FROM scim_members WHERE group_id = $1 AND member_id = ANY($2::bytea[])", b(t.cur.ID), gone); err != nil {
			return nil, nil, err
		}
	}
	var fresh []store.MemberRef
	for _, r := range order {
		if !have[r.ID] {
			fresh = append(fresh, r)
		}
	}
	if added, err = t.w.insertEdges(t.cur.ID, fresh, t.now); err != nil {
		return nil, nil, err
	}
	t.membersChanged = t.membersChanged || len(added) > 0 || len(removed) > 0
	return added, removed, nil
}

func (t *groupTx) IsMember(memberID string) (bool, error) {
	if t.done {
		return false, errGroupTxDone
	}
	return t.w.isMember(t.cur.ID, memberID)
}

func (t *groupTx) Members(fn func(store.Membership) bool) error {
	if t.done {
		return errGroupTxDone
	}
	return t.w.groupMembers(t.cur.ID, fn)
}

func (w *wtx) updateGroup(id string, now time.Time, ifVersion uint64, fn func(store.GroupTx) error) (store.Group, error) {
	// Writers of one group queue here; its edges change only under this lock
	// (or are deleted with a member).
	g, err := w.lockedGroup(id, "NO KEY UPDATE")
	if err != nil {
		return store.Group{}, err
	}
	if ifVersion != 0 && ifVersion != g.Meta.Version {
		return store.Group{}, fmt.Errorf("group %q is at version %d, not %d: %w", id, g.Meta.Version, ifVersion, store.ErrVersionMismatch)
	}
	t := &groupTx{w: w, now: now, cur: g}
	err = fn(t)
	t.done = true
	if err != nil {
		return store.Group{}, err
	}
	cur := t.cur
	attrsChanged := cur.DisplayName != g.DisplayName || cur.ExternalID != g.ExternalID || !bytes.Equal(cur.Doc, g.Doc)
	if !attrsChanged && !t.membersChanged {
		return g, nil
	}
	cur.Meta.Version++
	cur.Meta.LastModified = now
	return cur, w.putGroup(cur, false)
}

// The store.Store write methods: one transaction each.

// CreateUser implements store.Store.
func (s *Store) CreateUser(now time.Time, u store.User) (store.User, error) {
	var out store.User
	err := s.write(false, func(w *wtx) (err error) {
		out, err = w.createUser(now.UTC(), u)
		return err
	})
	return out, err
}

// UpdateUser implements store.Store.
func (s *Store) UpdateUser(id string, now time.Time, ifVersion uint64, fn func(*store.User) error) (store.User, error) {
	var out store.User
	err := s.write(false, func(w *wtx) (err error) {
		out, err = w.updateUser(id, now.UTC(), ifVersion, fn)
		return err
	})
	return out, err
}

// DeleteUser implements store.Store.
func (s *Store) DeleteUser(id string) (store.DeletedUser, error) {
	var out store.DeletedUser
	err := s.write(false, func(w *wtx) (err error) {
		out, err = w.deleteUser(id)
		return err
	})
	return out, err
}

// CreateGroup implements store.Store.
func (s *Store) CreateGroup(now time.Time, g store.Group, members []store.MemberRef) (store.Group, error) {
	var out store.Group
	err := s.write(false, func(w *wtx) (err error) {
		out, err = w.createGroup(now.UTC(), g, members)
		return err
	})
	return out, err
}

// UpdateGroup implements store.Store.
func (s *Store) UpdateGroup(id string, now time.Time, ifVersion uint64, fn func(store.GroupTx) error) (store.Group, error) {
	var out store.Group
	err := s.write(false, func(w *wtx) (err error) {
		out, err = w.updateGroup(id, now.UTC(), ifVersion, fn)
		return err
	})
	return out, err
}

// DeleteGroup implements store.Store.
func (s *Store) DeleteGroup(id string) ([]store.MemberRef, error) {
	var out []store.MemberRef
	err := s.write(false, func(w *wtx) (err error) {
		out, err = w.deleteGroup(id)
		return err
	})
	return out, err
}

// PutTokenAudited implements store.Backend.
func (s *Store) PutTokenAudited(t store.Token, audit ...store.AuditRecord) error {
	return s.write(len(audit) > 0, func(w *wtx) error {
		if err := w.putToken(t); err != nil {
			return err
		}
		return w.appendAudit(audit)
	})
}

// DeleteTokenAudited implements store.Backend.
func (s *Store) DeleteTokenAudited(name string, audit ...store.AuditRecord) error {
	return s.write(len(audit) > 0, func(w *wtx) error {
		if err := w.deleteToken(name); err != nil {
			return err
		}
		return w.appendAudit(audit)
	})
}
