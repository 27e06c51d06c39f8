package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Bucket names. Every bucket this package owns starts with "scim/"; other
// packages adding buckets through BoltStore.DB must use another prefix.
var (
	bucketMeta          = []byte("scim/meta")               // schemaVersion, user and group counters
	bucketUsers         = []byte("scim/users")              // user id -> userRecord (JSON)
	bucketUserNames     = []byte("scim/users.userName")     // Fold(userName) -> user id (unique)
	bucketUserExtIDs    = []byte("scim/users.externalId")   // lp(externalId)+user id -> ""
	bucketUserEmails    = []byte("scim/users.email")        // lp(Fold(email))+user id -> ""
	bucketGroups        = []byte("scim/groups")             // group id -> groupRecord (JSON), no members
	bucketGroupNames    = []byte("scim/groups.displayName") // Fold(displayName) -> group id (unique)
	bucketGroupExtIDs   = []byte("scim/groups.externalId")  // lp(externalId)+group id -> ""
	bucketMembers       = []byte("scim/members")            // lp(group id)+member id -> edge
	bucketMemberOf      = []byte("scim/memberOf")           // lp(member id)+group id -> edge
	bucketMemberCounts  = []byte("scim/memberCounts")       // group id -> uint64 member count
	bucketTokens        = []byte("scim/tokens")             // token name -> tokenRecord (JSON)
	keySchemaVersion    = []byte("schemaVersion")
	keyUserCount        = []byte("users")
	keyGroupCount       = []byte("groups")
	allBuckets          = [][]byte{bucketMeta, bucketUsers, bucketUserNames, bucketUserExtIDs, bucketUserEmails, bucketGroups, bucketGroupNames, bucketGroupExtIDs, bucketMembers, bucketMemberOf, bucketMemberCounts, bucketTokens}
	errCorruptEdgeValue = errors.New("corrupt membership edge")
)

// pairKey builds a composite key for a non-unique index or an edge. The
// first part is length-prefixed (uvarint), so no byte value in it can make
// one prefix match another's keys: uvarints are prefix-free.
func pairKey(first, second string) []byte {
	k := make([]byte, 0, binary.MaxVarintLen64+len(first)+len(second))
	k = binary.AppendUvarint(k, uint64(len(first)))
	k = append(k, first...)
	return append(k, second...)
}

func pairPrefix(first string) []byte { return pairKey(first, "") }

// edge is the value of both edge buckets: the member's type and when the
// edge was stored. Fixed binary, 13 bytes: edges are the bulk of a large
// state file.
func encodeEdge(t MemberType, since time.Time) []byte {
	v := make([]byte, 13)
	if t == MemberGroup {
		v[0] = 'G'
	} else {
		v[0] = 'U'
	}
	binary.BigEndian.PutUint64(v[1:9], uint64(since.Unix()))
	binary.BigEndian.PutUint32(v[9:13], uint32(since.Nanosecond()))
	return v
}

func decodeEdge(v []byte) (MemberType, time.Time, error) {
	if len(v) != 13 {
		return "", time.Time{}, errCorruptEdgeValue
	}
	t := MemberUser
	if v[0] == 'G' {
		t = MemberGroup
	}
	since := time.Unix(int64(binary.BigEndian.Uint64(v[1:9])), int64(binary.BigEndian.Uint32(v[9:13]))).UTC()
	return t, since, nil
}

func encodeUint(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

func decodeUint(v []byte) uint64 {
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// Records use short JSON keys: they are read on every SCIM request and the
// file stays readable with `bbolt get` when debugging.
type userRecord struct {
	ID           string          `json:"id"`
	UserName     string          `json:"un"`
	ExternalID   string          `json:"ext,omitempty"`
	Active       bool            `json:"act,omitempty"`
	ActiveSince  time.Time       `json:"as"`
	Email        string          `json:"em,omitempty"`
	Doc          json.RawMessage `json:"doc,omitempty"`
	Created      time.Time       `json:"c"`
	LastModified time.Time       `json:"m"`
	Version      uint64          `json:"v"`
}

type groupRecord struct {
	ID           string          `json:"id"`
	DisplayName  string          `json:"dn"`
	ExternalID   string          `json:"ext,omitempty"`
	Doc          json.RawMessage `json:"doc,omitempty"`
	Created      time.Time       `json:"c"`
	LastModified time.Time       `json:"m"`
	Version      uint64          `json:"v"`
}

type tokenRecord struct {
	Name      string    `json:"name"`
	Hash      []byte    `json:"hash"`
	CreatedAt time.Time `json:"created"`
	ExpiresAt time.Time `json:"expires"`
}

func encodeUser(u User) ([]byte, error) {
	if v, ok := appendUserRecord(make([]byte, 0, 224+len(u.ID)+len(u.UserName)+len(u.ExternalID)+len(u.Email)+len(u.Doc)), u); ok {
		return v, nil
	}
	return encodeUserJSON(u)
}

// encodeUserJSON is encodeUser through json.Marshal, for any user
// appendUserRecord does not take.
func encodeUserJSON(u User) ([]byte, error) {
	return json.Marshal(userRecord{
		ID: u.ID, UserName: u.UserName, ExternalID: u.ExternalID, Active: u.Active,
		ActiveSince: u.ActiveSince, Email: u.Email, Doc: u.Doc,
		Created: u.Meta.Created, LastModified: u.Meta.LastModified, Version: u.Meta.Version,
	})
}

// decodeUser copies everything out of v (json.Unmarshal copies strings and
// RawMessage), so the result outlives the transaction that read v.
func decodeUser(v []byte) (User, error) {
	if u, ok := scanUser(v); ok {
		return u, nil
	}
	return decodeUserJSON(v)
}

// decodeUserJSON is decodeUser through json.Unmarshal, for any record
// scanUser does not take.
func decodeUserJSON(v []byte) (User, error) {
	var r userRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return User{}, fmt.Errorf("decode user record: %w", err)
	}
	return User{
		ID: r.ID, UserName: r.UserName, ExternalID: r.ExternalID, Active: r.Active,
		ActiveSince: r.ActiveSince, Email: r.Email, Doc: r.Doc,
		Meta: Meta{Created: r.Created, LastModified: r.LastModified, Version: r.Version},
	}, nil
}

func encodeGroup(g Group) ([]byte, error) {
	if v, ok := appendGroupRecord(make([]byte, 0, 160+len(g.Doc)), g); ok {
		return v, nil
	}
	return encodeGroupJSON(g)
}

// encodeGroupJSON is encodeGroup through json.Marshal, for any group
// appendGroupRecord does not take.
func encodeGroupJSON(g Group) ([]byte, error) {
	return json.Marshal(groupRecord{
		ID: g.ID, DisplayName: g.DisplayName, ExternalID: g.ExternalID, Doc: g.Doc,
		Created: g.Meta.Created, LastModified: g.Meta.LastModified, Version: g.Meta.Version,
	})
}

func decodeGroup(v []byte) (Group, error) {
	if g, ok := scanGroup(v); ok {
		return g, nil
	}
	return decodeGroupJSON(v)
}

// decodeGroupJSON is decodeGroup through json.Unmarshal, for any record
// scanGroup does not take.
func decodeGroupJSON(v []byte) (Group, error) {
	var r groupRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return Group{}, fmt.Errorf("decode group record: %w", err)
	}
	return Group{
		ID: r.ID, DisplayName: r.DisplayName, ExternalID: r.ExternalID, Doc: r.Doc,
		Meta: Meta{Created: r.Created, LastModified: r.LastModified, Version: r.Version},
	}, nil
}

// normalizeDoc accepts nothing, JSON null or a JSON object, and returns the
// object compacted (nil for nothing), so that "unchanged" is a byte
// comparison.
func normalizeDoc(doc json.RawMessage) (json.RawMessage, error) {
	trimmed := bytes.TrimSpace(doc)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil, nil
	}
	if trimmed[0] != '{' || !json.Valid(trimmed) {
		return nil, fmt.Errorf("doc must be a JSON object: %w", ErrInvalid)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, trimmed); err != nil {
		return nil, fmt.Errorf("doc must be a JSON object: %w", ErrInvalid)
	}
	return b.Bytes(), nil
}

func encodeToken(t Token) ([]byte, error) {
	return json.Marshal(tokenRecord(t))
}

func decodeToken(v []byte) (Token, error) {
	var r tokenRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return Token{}, fmt.Errorf("decode token record: %w", err)
	}
	return Token(r), nil
}

// UserAccess is the part of a user that access decisions read: a
// reconciler's plan reads it for every user, so it is decoded without the
// SCIM document (decodeUserAccess).
type UserAccess struct {
	ID, Email   string
	Active      bool
	ActiveSince time.Time
}

// decodeUserAccess reads id, act, as and em from a record encodeUser
// wrote. json.Marshal writes userRecord's fields in declaration order and
// those four come before doc, so the scan stops at the first later key
// without reading the document. Anything it does not expect (an escape in
// a string, another key order) falls back to decodeUser, so the answer is
// always decodeUser's.
func decodeUserAccess(v []byte) (UserAccess, error) {
	if a, ok := scanUserAccess(v); ok {
		return a, nil
	}
	u, err := decodeUser(v)
	if err != nil {
		return UserAccess{}, err
	}
	return UserAccess{ID: u.ID, Email: u.Email, Active: u.Active, ActiveSince: u.ActiveSince}, nil
}

func scanUserAccess(v []byte) (UserAccess, bool) {
	var a UserAccess
	if len(v) < 2 || v[0] != '{' {
		return a, false
	}
	i := 1
	// str reads a JSON string without escapes starting at v[i] == '"'.
	str := func() ([]byte, bool) {
		if i >= len(v) || v[i] != '"' {
			return nil, false
		}
		end := bytes.IndexByte(v[i+1:], '"')
		if end < 0 {
			return nil, false
		}
		s := v[i+1 : i+1+end]
		if bytes.IndexByte(s, '\\') >= 0 {
			return nil, false
		}
		i += end + 2
		return s, true
	}
	seenAS := false
	for {
		key, ok := str()
		if !ok || i >= len(v) || v[i] != ':' {
			return a, false
		}
		i++
		switch string(key) {
		case "id", "un", "ext", "em":
			s, ok := str()
			if !ok {
				return a, false
			}
			switch key[0] {
			case 'i':
				a.ID = string(s)
			case 'e':
				if key[1] == 'm' {
					a.Email = string(s)
				}
			}
		case "act":
			switch {
			case bytes.HasPrefix(v[i:], []byte("true")):
				a.Active, i = true, i+4
			case bytes.HasPrefix(v[i:], []byte("false")):
				i += 5
			default:
				return a, false
			}
		case "as":
			s, ok := str()
			if !ok || a.ActiveSince.UnmarshalText(s) != nil {
				return a, false
			}
			seenAS = true
		case "doc", "c", "m", "v":
			// Past the fields read here (userRecord's order).
			return a, seenAS
		default:
			return a, false
		}
		if i >= len(v) || v[i] != ',' {
			return a, false
		}
		i++
	}
}
