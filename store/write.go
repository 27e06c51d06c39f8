package store

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// writeTx is the write half of one bbolt read-write transaction. Its
// methods are the only code that changes records, so every index, edge and
// counter rule lives here once.
type writeTx struct{ readTx }

func (w writeTx) put(bucket, k, v []byte) error {
	if err := w.bucket(bucket).Put(k, v); err != nil {
		return fmt.Errorf("write %s: %w", bucket, err)
	}
	return nil
}

func (w writeTx) del(bucket, k []byte) error {
	if err := w.bucket(bucket).Delete(k); err != nil {
		return fmt.Errorf("delete from %s: %w", bucket, err)
	}
	return nil
}

// addCount adjusts a uint64 counter; it never goes below zero.
func (w writeTx) addCount(bucket, key []byte, delta int) error {
	n := int64(decodeUint(w.bucket(bucket).Get(key))) + int64(delta)
	if n < 0 {
		n = 0
	}
	return w.put(bucket, key, encodeUint(uint64(n)))
}

// newID returns 32 hex digits that name no user or group yet: the first
// 48 bits are now in Unix milliseconds, the other 80 are random. Ids made
// in creation order then sort in creation order, so new users, groups and
// their edges land at the end of each bucket (or of a group's edge range)
// instead of on a random page: a commit dirties a few neighbouring pages,
// and pages fill up instead of splitting half empty. 80 random bits keep
// ids unguessable (2^80 per millisecond); a collision is still checked,
// which is one Get. Ids are opaque, so files holding the random ids of
// earlier versions need no migration: both kinds coexist.
func (w writeTx) newID(now time.Time) string {
	var b [16]byte
	ms := uint64(now.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	for {
		_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails (Go >= 1.24)
		id := hex.EncodeToString(b[:])
		if !w.userExists(id) && !w.groupExists(id) {
			return id
		}
	}
}

func (w writeTx) putUser(u User) error {
	v, err := encodeUser(u)
	if err != nil {
		return fmt.Errorf("encode user %q: %w", u.ID, err)
	}
	return w.put(bucketUsers, []byte(u.ID), v)
}

// reindex moves a value in a non-unique pair index from old to new.
func (w writeTx) reindex(bucket []byte, id, old, new string) error {
	if old == new {
		return nil
	}
	if old != "" {
		if err := w.del(bucket, pairKey(old, id)); err != nil {
			return err
		}
	}
	if new != "" {
		return w.put(bucket, pairKey(new, id), nil)
	}
	return nil
}

// claimUnique points a unique index key at id, or fails with ErrConflict if
// another id holds it. The old key is released.
func (w writeTx) claimUnique(bucket []byte, id, oldName, newName, what string) error {
	if oldName != "" && oldName == newName {
		// Every member change of a group comes here with its name unchanged.
		return nil
	}
	oldKey, newKey := Fold(oldName), Fold(newName)
	if oldName != "" && oldKey == newKey {
		return nil
	}
	if holder := w.bucket(bucket).Get([]byte(newKey)); holder != nil && string(holder) != id {
		return fmt.Errorf("%s %q is taken: %w", what, newName, ErrConflict)
	}
	if oldName != "" {
		if err := w.del(bucket, []byte(oldKey)); err != nil {
			return err
		}
	}
	return w.put(bucket, []byte(newKey), []byte(id))
}

func (w writeTx) checkUnique(bucket []byte, id, name, what string) error {
	if holder := w.bucket(bucket).Get([]byte(Fold(name))); holder != nil && string(holder) != id {
		return fmt.Errorf("%s %q is taken: %w", what, name, ErrConflict)
	}
	return nil
}

// maxIndexedLen bounds every indexed string well below bbolt's 32 KiB key
// limit, so an oversized value is a clear ErrInvalid, not a storage error.
const maxIndexedLen = 4096

func checkLen(what, v string) error {
	if len(v) > maxIndexedLen {
		return fmt.Errorf("%s is %d bytes long, the limit is %d: %w", what, len(v), maxIndexedLen, ErrInvalid)
	}
	return nil
}

func validateUser(u *User) error {
	if u.UserName == "" {
		return fmt.Errorf("userName is required: %w", ErrInvalid)
	}
	for _, err := range []error{checkLen("userName", u.UserName), checkLen("externalId", u.ExternalID), checkLen("email", u.Email)} {
		if err != nil {
			return err
		}
	}
	doc, err := normalizeDoc(u.Doc)
	if err != nil {
		return fmt.Errorf("user %q: %w", u.UserName, err)
	}
	u.Doc = doc
	return nil
}

// createUser stores u, which validateUser has passed, as a new user.
func (w writeTx) createUser(now time.Time, u User) (User, error) {
	u.ID = w.newID(now)
	if err := w.claimUnique(bucketUserNames, u.ID, "", u.UserName, "userName"); err != nil {
		return User{}, err
	}
	u.Meta = Meta{Created: now, LastModified: now, Version: 1}
	u.ActiveSince = time.Time{}
	if u.Active {
		u.ActiveSince = now
	}
	if err := w.reindex(bucketUserExtIDs, u.ID, "", u.ExternalID); err != nil {
		return User{}, err
	}
	if err := w.reindex(bucketUserEmails, u.ID, "", Fold(u.Email)); err != nil {
		return User{}, err
	}
	if err := w.putUser(u); err != nil {
		return User{}, err
	}
	return u, w.addCount(bucketMeta, keyUserCount, 1)
}

func sameUser(a, b User) bool {
	return a.UserName == b.UserName && a.ExternalID == b.ExternalID && a.Active == b.Active &&
		a.Email == b.Email && bytes.Equal(a.Doc, b.Doc)
}

func (w writeTx) updateUser(id string, now time.Time, ifVersion uint64, fn func(*User) error) (User, error) {
	old, err := w.GetUser(id)
	if err != nil {
		return User{}, err
	}
	if ifVersion != 0 && ifVersion != old.Meta.Version {
		return User{}, fmt.Errorf("user %q is at version %d, not %d: %w", id, old.Meta.Version, ifVersion, ErrVersionMismatch)
	}
	u := old
	u.Doc = append([]byte(nil), old.Doc...) // fn may edit Doc in place; old must stay intact for the comparison
	if err := fn(&u); err != nil {
		return User{}, err
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
	if err := validateUser(&u); err != nil {
		return User{}, err
	}
	if sameUser(old, u) {
		return old, nil
	}
	if err := w.claimUnique(bucketUserNames, id, old.UserName, u.UserName, "userName"); err != nil {
		return User{}, err
	}
	if err := w.reindex(bucketUserExtIDs, id, old.ExternalID, u.ExternalID); err != nil {
		return User{}, err
	}
	if err := w.reindex(bucketUserEmails, id, Fold(old.Email), Fold(u.Email)); err != nil {
		return User{}, err
	}
	u.Meta.Version++
	u.Meta.LastModified = now
	return u, w.putUser(u)
}

func (w writeTx) deleteUser(id string) (DeletedUser, error) {
	u, err := w.GetUser(id)
	if err != nil {
		return DeletedUser{}, err
	}
	groupIDs, err := w.dropMemberOf(id)
	if err != nil {
		return DeletedUser{}, err
	}
	if err := w.del(bucketUserNames, []byte(Fold(u.UserName))); err != nil {
		return DeletedUser{}, err
	}
	if err := w.reindex(bucketUserExtIDs, id, u.ExternalID, ""); err != nil {
		return DeletedUser{}, err
	}
	if err := w.reindex(bucketUserEmails, id, Fold(u.Email), ""); err != nil {
		return DeletedUser{}, err
	}
	if err := w.del(bucketUsers, []byte(id)); err != nil {
		return DeletedUser{}, err
	}
	return DeletedUser{User: u, GroupIDs: groupIDs}, w.addCount(bucketMeta, keyUserCount, -1)
}

// dropMemberOf removes memberID from every group it is a direct member of
// (both edge directions, counters adjusted) and returns those groups.
func (w writeTx) dropMemberOf(memberID string) ([]string, error) {
	// Collect first: deleting under a live bbolt cursor can skip keys.
	groupIDs := w.idsWithPrefix(bucketMemberOf, memberID)
	for _, gid := range groupIDs {
		if _, err := w.removeMember(gid, memberID); err != nil {
			return nil, err
		}
	}
	return groupIDs, nil
}

func validateGroup(g *Group) error {
	if g.DisplayName == "" {
		return fmt.Errorf("displayName is required: %w", ErrInvalid)
	}
	if err := checkLen("displayName", g.DisplayName); err != nil {
		return err
	}
	if err := checkLen("externalId", g.ExternalID); err != nil {
		return err
	}
	doc, err := normalizeDoc(g.Doc)
	if err != nil {
		return fmt.Errorf("group %q: %w", g.DisplayName, err)
	}
	g.Doc = doc
	return nil
}

func (w writeTx) putGroup(g Group) error {
	v, err := encodeGroup(g)
	if err != nil {
		return fmt.Errorf("encode group %q: %w", g.ID, err)
	}
	return w.put(bucketGroups, []byte(g.ID), v)
}

func (w writeTx) createGroup(now time.Time, g Group, members []MemberRef) (Group, error) {
	if err := validateGroup(&g); err != nil {
		return Group{}, err
	}
	g.ID = w.newID(now)
	if err := w.claimUnique(bucketGroupNames, g.ID, "", g.DisplayName, "displayName"); err != nil {
		return Group{}, err
	}
	g.Meta = Meta{Created: now, LastModified: now, Version: 1}
	if err := w.reindex(bucketGroupExtIDs, g.ID, "", g.ExternalID); err != nil {
		return Group{}, err
	}
	if err := w.putGroup(g); err != nil {
		return Group{}, err
	}
	if err := w.addCount(bucketMeta, keyGroupCount, 1); err != nil {
		return Group{}, err
	}
	for _, ref := range members {
		if _, _, err := w.addMember(g.ID, ref, now); err != nil {
			return Group{}, err
		}
	}
	return g, nil
}

// resolveMember checks that ref names an existing user or group of its
// type and returns it with the type filled in.
func (w writeTx) resolveMember(groupID string, ref MemberRef) (MemberRef, error) {
	if ref.ID == groupID {
		return MemberRef{}, fmt.Errorf("group %q cannot be a member of itself: %w", groupID, ErrInvalid)
	}
	var ok bool
	switch ref.Type {
	case MemberUser:
		ok = w.userExists(ref.ID)
	case MemberGroup:
		ok = w.groupExists(ref.ID)
	case "":
		if w.userExists(ref.ID) {
			ref.Type, ok = MemberUser, true
		} else if w.groupExists(ref.ID) {
			ref.Type, ok = MemberGroup, true
		}
	default:
		return MemberRef{}, fmt.Errorf("member %q has type %q, want %q or %q: %w", ref.ID, ref.Type, MemberUser, MemberGroup, ErrInvalid)
	}
	if !ok {
		if ref.Type == "" {
			return MemberRef{}, fmt.Errorf("member %q names no user or group: %w", ref.ID, ErrMemberNotFound)
		}
		return MemberRef{}, fmt.Errorf("member %q names no %s: %w", ref.ID, ref.Type, ErrMemberNotFound)
	}
	return ref, nil
}

// addMember writes the edge in both directions and bumps the counter:
// three small Puts whatever the group's size.
func (w writeTx) addMember(groupID string, ref MemberRef, now time.Time) (MemberRef, bool, error) {
	ref, err := w.resolveMember(groupID, ref)
	if err != nil {
		return MemberRef{}, false, err
	}
	if w.isMember(groupID, ref.ID) {
		return ref, false, nil
	}
	edge := encodeEdge(ref.Type, now)
	if err := w.put(bucketMembers, pairKey(groupID, ref.ID), edge); err != nil {
		return MemberRef{}, false, err
	}
	if err := w.put(bucketMemberOf, pairKey(ref.ID, groupID), edge); err != nil {
		return MemberRef{}, false, err
	}
	return ref, true, w.addCount(bucketMemberCounts, []byte(groupID), 1)
}

func (w writeTx) removeMember(groupID, memberID string) (bool, error) {
	if !w.isMember(groupID, memberID) {
		return false, nil
	}
	if err := w.del(bucketMembers, pairKey(groupID, memberID)); err != nil {
		return false, err
	}
	if err := w.del(bucketMemberOf, pairKey(memberID, groupID)); err != nil {
		return false, err
	}
	return true, w.addCount(bucketMemberCounts, []byte(groupID), -1)
}

func (w writeTx) members(groupID string) ([]Membership, error) {
	var ms []Membership
	err := w.groupMembers(groupID, func(m Membership) bool {
		ms = append(ms, m)
		return true
	})
	return ms, err
}

func (w writeTx) removeAllMembers(groupID string) ([]MemberRef, error) {
	ms, err := w.members(groupID)
	if err != nil {
		return nil, err
	}
	removed := make([]MemberRef, 0, len(ms))
	for _, m := range ms {
		if _, err := w.removeMember(groupID, m.ID); err != nil {
			return nil, err
		}
		removed = append(removed, m.MemberRef)
	}
	return removed, nil
}

func (w writeTx) deleteGroup(id string) ([]MemberRef, error) {
	g, err := w.GetGroup(id)
	if err != nil {
		return nil, err
	}
	members, err := w.removeAllMembers(id)
	if err != nil {
		return nil, err
	}
	if _, err := w.dropMemberOf(id); err != nil {
		return nil, err
	}
	if err := w.del(bucketMemberCounts, []byte(id)); err != nil {
		return nil, err
	}
	if err := w.del(bucketGroupNames, []byte(Fold(g.DisplayName))); err != nil {
		return nil, err
	}
	if err := w.reindex(bucketGroupExtIDs, id, g.ExternalID, ""); err != nil {
		return nil, err
	}
	if err := w.del(bucketGroups, []byte(id)); err != nil {
		return nil, err
	}
	return members, w.addCount(bucketMeta, keyGroupCount, -1)
}

func (w writeTx) putToken(t Token) error {
	if t.Name == "" {
		return fmt.Errorf("token name is required: %w", ErrInvalid)
	}
	if err := checkLen("token name", t.Name); err != nil {
		return err
	}
	if w.bucket(bucketTokens).Get([]byte(t.Name)) != nil {
		return fmt.Errorf("token %q: %w", t.Name, ErrConflict)
	}
	t.CreatedAt, t.ExpiresAt = t.CreatedAt.UTC(), t.ExpiresAt.UTC()
	v, err := encodeToken(t)
	if err != nil {
		return fmt.Errorf("encode token %q: %w", t.Name, err)
	}
	return w.put(bucketTokens, []byte(t.Name), v)
}

func (w writeTx) deleteToken(name string) error {
	if name == "" || w.bucket(bucketTokens).Get([]byte(name)) == nil {
		return fmt.Errorf("token %q: %w", name, ErrNotFound)
	}
	return w.del(bucketTokens, []byte(name))
}
