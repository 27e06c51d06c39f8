package store

import (
	"bytes"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"
)

// readTx implements Reader over one bbolt transaction (read or write).
// Every bucket exists: Open creates them all.
type readTx struct {
	tx *bolt.Tx
	// cache is set on a read-only transaction (see txCache).
	cache *txCache
}

// txCache is what a read-only transaction keeps between user reads.
// Bucket.Get opens the bucket again (bbolt caches buckets for a writable
// transaction only) and makes a new cursor every time; a full plan reads
// a million users by id, mostly neighbours, in one transaction.
type txCache struct {
	users *bolt.Cursor // userRecord's, made at the first read
	// at and atV are the key and value users is on (at nil: unpositioned).
	at, atV []byte
}

var _ Reader = readTx{}

func newReadTx(tx *bolt.Tx) readTx {
	r := readTx{tx: tx}
	if !tx.Writable() {
		r.cache = &txCache{}
	}
	return r
}

func (r readTx) bucket(name []byte) *bolt.Bucket { return r.tx.Bucket(name) }

// userRecord is the stored record of user id, or nil.
func (r readTx) userRecord(id string) []byte {
	if !validID(id) {
		return nil
	}
	if r.cache == nil {
		return r.bucket(bucketUsers).Get([]byte(id))
	}
	c := r.cache
	if c.users == nil {
		c.users = r.bucket(bucketUsers).Cursor()
	}
	// Users asked for in id order — a group's members, as GroupMembers
	// lists them — are mostly neighbours: one step, not a seek from the
	// root.
	if c.at != nil && string(c.at) <= id {
		if string(c.at) == id {
			return c.atV
		}
		c.at, c.atV = c.users.Next()
		switch {
		case c.at == nil || string(c.at) > id:
			return nil // between two neighbours: no such user
		case string(c.at) == id:
			return c.atV
		}
	}
	c.at, c.atV = c.users.Seek([]byte(id))
	if string(c.at) != id {
		return nil
	}
	return c.atV
}

// validID rejects ids that no store-assigned id can equal; it keeps a NUL
// or an empty string from ever reaching a composite key.
func validID(id string) bool { return id != "" && !strings.ContainsRune(id, 0) }

func (r readTx) GetUser(id string) (User, error) {
	v := r.userRecord(id)
	if v == nil {
		return User{}, fmt.Errorf("user %q: %w", id, ErrNotFound)
	}
	return decodeUser(v)
}

func (r readTx) userExists(id string) bool {
	return validID(id) && r.bucket(bucketUsers).Get([]byte(id)) != nil
}

func (r readTx) groupExists(id string) bool {
	return validID(id) && r.bucket(bucketGroups).Get([]byte(id)) != nil
}

func (r readTx) UserByUserName(userName string) (User, error) {
	id := r.bucket(bucketUserNames).Get([]byte(Fold(userName)))
	if id == nil || userName == "" {
		return User{}, fmt.Errorf("user with userName %q: %w", userName, ErrNotFound)
	}
	return r.GetUser(string(id))
}

// idsWithPrefix returns the second halves of every pairKey(first, ·) in b,
// in key order.
func (r readTx) idsWithPrefix(b []byte, first string) []string {
	prefix := pairPrefix(first)
	var ids []string
	c := r.bucket(b).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		ids = append(ids, string(k[len(prefix):]))
	}
	return ids
}

func (r readTx) usersByIDs(ids []string) ([]User, error) {
	users := make([]User, 0, len(ids))
	for _, id := range ids {
		u, err := r.GetUser(id)
		if err != nil {
			return nil, fmt.Errorf("index points at missing user: %w", err)
		}
		users = append(users, u)
	}
	return users, nil
}

func (r readTx) UsersByExternalID(externalID string) ([]User, error) {
	if externalID == "" {
		return nil, nil
	}
	return r.usersByIDs(r.idsWithPrefix(bucketUserExtIDs, externalID))
}

func (r readTx) UsersByEmail(email string) ([]User, error) {
	if email == "" {
		return nil, nil
	}
	return r.usersByIDs(r.idsWithPrefix(bucketUserEmails, Fold(email)))
}

// seekAfter positions c on the first key strictly after afterID.
func seekAfter(c *bolt.Cursor, afterID string) ([]byte, []byte) {
	if afterID == "" {
		return c.First()
	}
	k, v := c.Seek([]byte(afterID))
	if k != nil && string(k) == afterID {
		return c.Next()
	}
	return k, v
}

func (r readTx) ListUsers(afterID string, fn func(User) bool) error {
	c := r.bucket(bucketUsers).Cursor()
	for k, v := seekAfter(c, afterID); k != nil; k, v = c.Next() {
		u, err := decodeUser(v)
		if err != nil {
			return fmt.Errorf("user %q: %w", k, err)
		}
		if !fn(u) {
			return nil
		}
	}
	return nil
}

func (r readTx) count(key []byte) int {
	return int(decodeUint(r.bucket(bucketMeta).Get(key)))
}

func (r readTx) CountUsers() (int, error) { return r.count(keyUserCount), nil }

func (r readTx) GetGroup(id string) (Group, error) {
	var v []byte
	if validID(id) {
		v = r.bucket(bucketGroups).Get([]byte(id))
	}
	if v == nil {
		return Group{}, fmt.Errorf("group %q: %w", id, ErrNotFound)
	}
	return decodeGroup(v)
}

func (r readTx) GroupByDisplayName(name string) (Group, error) {
	id := r.bucket(bucketGroupNames).Get([]byte(Fold(name)))
	if id == nil || name == "" {
		return Group{}, fmt.Errorf("group with displayName %q: %w", name, ErrNotFound)
	}
	return r.GetGroup(string(id))
}

func (r readTx) GroupsByExternalID(externalID string) ([]Group, error) {
	if externalID == "" {
		return nil, nil
	}
	ids := r.idsWithPrefix(bucketGroupExtIDs, externalID)
	groups := make([]Group, 0, len(ids))
	for _, id := range ids {
		g, err := r.GetGroup(id)
		if err != nil {
			return nil, fmt.Errorf("index points at missing group: %w", err)
		}
		groups = append(groups, g)
	}
	return groups, nil
}

func (r readTx) ListGroups(afterID string, fn func(Group) bool) error {
	c := r.bucket(bucketGroups).Cursor()
	for k, v := seekAfter(c, afterID); k != nil; k, v = c.Next() {
		g, err := decodeGroup(v)
		if err != nil {
			return fmt.Errorf("group %q: %w", k, err)
		}
		if !fn(g) {
			return nil
		}
	}
	return nil
}

func (r readTx) CountGroups() (int, error) { return r.count(keyGroupCount), nil }

func (r readTx) groupMembers(groupID string, fn func(Membership) bool) error {
	prefix := pairPrefix(groupID)
	c := r.bucket(bucketMembers).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		t, since, err := decodeEdge(v)
		if err != nil {
			return fmt.Errorf("group %q member %q: %w", groupID, k[len(prefix):], err)
		}
		if !fn(Membership{MemberRef: MemberRef{ID: string(k[len(prefix):]), Type: t}, Since: since}) {
			return nil
		}
	}
	return nil
}

func (r readTx) GroupMembers(groupID string, fn func(Membership) bool) error {
	if !r.groupExists(groupID) {
		return fmt.Errorf("group %q: %w", groupID, ErrNotFound)
	}
	return r.groupMembers(groupID, fn)
}

func (r readTx) memberCount(groupID string) int {
	return int(decodeUint(r.bucket(bucketMemberCounts).Get([]byte(groupID))))
}

func (r readTx) CountGroupMembers(groupID string) (int, error) {
	if !r.groupExists(groupID) {
		return 0, fmt.Errorf("group %q: %w", groupID, ErrNotFound)
	}
	return r.memberCount(groupID), nil
}

func (r readTx) isMember(groupID, memberID string) bool {
	return validID(memberID) && r.bucket(bucketMembers).Get(pairKey(groupID, memberID)) != nil
}

func (r readTx) IsMember(groupID, memberID string) (bool, error) {
	if !r.groupExists(groupID) {
		return false, fmt.Errorf("group %q: %w", groupID, ErrNotFound)
	}
	return r.isMember(groupID, memberID), nil
}

func (r readTx) GroupsOf(memberID string) ([]Membership, error) {
	if !r.userExists(memberID) && !r.groupExists(memberID) {
		return nil, fmt.Errorf("member %q: %w", memberID, ErrNotFound)
	}
	prefix := pairPrefix(memberID)
	var out []Membership
	c := r.bucket(bucketMemberOf).Cursor()
	for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		_, since, err := decodeEdge(v)
		if err != nil {
			return nil, fmt.Errorf("member %q of group %q: %w", memberID, k[len(prefix):], err)
		}
		out = append(out, Membership{MemberRef: MemberRef{ID: string(k[len(prefix):]), Type: MemberGroup}, Since: since})
	}
	return out, nil
}

func (r readTx) Tokens() ([]Token, error) {
	var out []Token
	err := r.bucket(bucketTokens).ForEach(func(k, v []byte) error {
		t, err := decodeToken(v)
		if err != nil {
			return fmt.Errorf("token %q: %w", k, err)
		}
		out = append(out, t)
		return nil
	})
	return out, err
}

// GetUserAccess is GetUser without the SCIM document: what a reconciler's
// plan reads for every user. Not part of Reader (yet): callers reach it
// through a type assertion and fall back to GetUser.
func (r readTx) GetUserAccess(id string) (UserAccess, error) {
	v := r.userRecord(id)
	if v == nil {
		return UserAccess{}, fmt.Errorf("user %q: %w", id, ErrNotFound)
	}
	a, err := decodeUserAccess(v)
	if err != nil {
		return UserAccess{}, fmt.Errorf("user %q: %w", id, err)
	}
	return a, nil
}
