package store

import (
	"encoding/json"
	"errors"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Sentinel errors. Every error a Store returns for one of these conditions
// wraps the sentinel with context (the id or name at fault); check with
// errors.Is.
var (
	// ErrNotFound: no user, group or token with that id or name.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a uniqueness rule (userName, displayName, token name) is violated.
	ErrConflict = errors.New("already exists")
	// ErrMemberNotFound: a member reference names no user or group of that type.
	ErrMemberNotFound = errors.New("member does not exist")
	// ErrVersionMismatch: the ifVersion precondition (HTTP If-Match) does not hold.
	ErrVersionMismatch = errors.New("version mismatch")
	// ErrSchemaVersion: the state file was written by an incompatible scimflare.
	ErrSchemaVersion = errors.New("schema version mismatch")
	// ErrLocked: another process (or another Open in this one) holds the state file.
	ErrLocked = errors.New("state file locked")
	// ErrInvalid: the input itself is unacceptable (empty userName or
	// displayName, Doc not a JSON object, unknown member type, a group as
	// its own member, empty token name).
	ErrInvalid = errors.New("invalid value")
)

// Meta is the SCIM meta block the store maintains for every resource.
type Meta struct {
	Created      time.Time
	LastModified time.Time
	// Version starts at 1 and grows by one on every change that alters the
	// resource; it backs the SCIM ETag (meta.version).
	Version uint64
}

// User is a SCIM user as the store keeps it: the attributes the store
// indexes or interprets are fields, everything else stays opaque in Doc.
type User struct {
	// ID is assigned by the store on create and never changes: 32 hex
	// digits, the creation time in milliseconds then 80 random bits.
	// Callers must treat it as opaque (files written before this format
	// hold fully random ids).
	ID string
	// UserName is kept as given; uniqueness is case-insensitive (see Fold).
	UserName string
	// ExternalID is "" when absent; indexed, not unique.
	ExternalID string
	Active     bool
	// ActiveSince is set by the store: now when the user is created active
	// or turns from inactive to active, zero while inactive. Values the
	// caller puts here are ignored.
	ActiveSince time.Time
	// Email is the identity email chosen by the SCIM layer; indexed
	// case-insensitively, not unique.
	Email string
	// Doc holds every other SCIM attribute as a JSON object, opaque to the
	// store. It is stored compacted; nil when absent.
	Doc  json.RawMessage
	Meta Meta
}

// Group is a SCIM group without its members: members are separate records
// so that a 100k-member group is never read or rewritten as a whole.
type Group struct {
	ID string
	// DisplayName is unique case-insensitively (see Fold).
	DisplayName string
	ExternalID  string
	Doc         json.RawMessage
	Meta        Meta
}

// MemberType says what a member reference points at.
type MemberType string

// Member types. An empty MemberType in a reference passed to the store
// means "whichever exists", which is what IdPs that omit members[].type
// need; the stored edge always carries the resolved type.
const (
	MemberUser  MemberType = "User"
	MemberGroup MemberType = "Group"
)

// MemberRef names a member of a group.
type MemberRef struct {
	ID   string
	Type MemberType
}

// Membership is one group->member edge. Since is when the edge was first
// stored; adding an existing edge again keeps the old Since, because
// time-bound grants count from it.
type Membership struct {
	MemberRef
	Since time.Time
}

// Token is a SCIM bearer token; only its hash is stored.
type Token struct {
	Name      string
	Hash      []byte
	CreatedAt time.Time
	// ExpiresAt zero means the token never expires.
	ExpiresAt time.Time
}

// Reader is every read the SCIM layer and the reconciler need. Lookups by
// userName, displayName, externalId and email are index lookups, never scans.
//
// Callbacks (fn) run inside a read transaction: they must not call back
// into the Store's write methods.
type Reader interface {
	GetUser(id string) (User, error)
	// UserByUserName matches case-insensitively (see Fold).
	UserByUserName(userName string) (User, error)
	// UsersByExternalID returns the users with exactly that externalId,
	// ordered by ID; none (and no error) for "".
	UsersByExternalID(externalID string) ([]User, error)
	// UsersByEmail matches case-insensitively, ordered by ID.
	UsersByEmail(email string) ([]User, error)
	// ListUsers calls fn for every user in ID order, starting after afterID
	// ("" = from the start; afterID need not exist). fn returns false to stop.
	ListUsers(afterID string, fn func(User) bool) error
	CountUsers() (int, error)

	// GetGroup never reads members.
	GetGroup(id string) (Group, error)
	GroupByDisplayName(name string) (Group, error)
	GroupsByExternalID(externalID string) ([]Group, error)
	ListGroups(afterID string, fn func(Group) bool) error
	CountGroups() (int, error)
	// GroupMembers calls fn for each direct member, ordered by member ID.
	GroupMembers(groupID string, fn func(Membership) bool) error
	// CountGroupMembers reads a counter; it does not iterate the members.
	CountGroupMembers(groupID string) (int, error)
	IsMember(groupID, memberID string) (bool, error)
	// GroupsOf returns the direct parent groups of a user or group (the
	// reference names the group, Type MemberGroup) with the edge's Since,
	// ordered by group ID.
	GroupsOf(memberID string) ([]Membership, error)

	// Tokens returns every token ordered by name.
	Tokens() ([]Token, error)
}

// Store is the SCIM state. Every write is one transaction: it happens
// entirely or not at all, and it is durable once the method returns nil.
//
// The fn passed to UpdateUser and UpdateGroup may be called more than once
// (a backend may retry a batched transaction); it must act only on its
// argument and must not call back into the Store.
type Store interface {
	Reader
	// View runs fn against one consistent snapshot; the Reader is valid
	// only inside fn.
	View(fn func(Reader) error) error

	// CreateUser assigns ID, Meta and ActiveSince. ErrConflict when the
	// userName is taken in any letter case.
	CreateUser(now time.Time, u User) (User, error)
	// UpdateUser applies fn to the stored user in one write transaction.
	// ifVersion 0 skips the precondition, anything else must equal
	// Meta.Version or ErrVersionMismatch. An error from fn aborts with
	// nothing written. ID, Meta and ActiveSince cannot be set through fn.
	// When fn changes nothing, nothing is written and Version stays.
	UpdateUser(id string, now time.Time, ifVersion uint64, fn func(*User) error) (User, error)
	// DeleteUser removes the user and every membership edge it has, and
	// returns the user as it was when deleted, read in the same transaction
	// (so a caller acting on its email sees the last one stored), and the
	// groups it was a direct member of.
	DeleteUser(id string) (DeletedUser, error)

	// CreateGroup stores the group with its initial members. ErrConflict
	// when the displayName is taken; ErrMemberNotFound (naming the id) when
	// a member does not exist, in which case nothing is written.
	CreateGroup(now time.Time, g Group, members []MemberRef) (Group, error)
	// UpdateGroup runs fn in one write transaction. An error from fn aborts
	// with nothing written, member edits included. Version and
	// LastModified move only when attributes or members changed.
	UpdateGroup(id string, now time.Time, ifVersion uint64, fn func(GroupTx) error) (Group, error)
	// DeleteGroup removes the group, its member edges (both directions) and
	// its edges as a member of other groups; it returns its direct members.
	DeleteGroup(id string) (members []MemberRef, err error)

	Close() error
}

// GroupTx is the group being changed inside UpdateGroup.
type GroupTx interface {
	// Group is the group with the attribute changes made so far (Meta as
	// stored before this transaction).
	Group() Group
	// SetGroup replaces DisplayName, ExternalID and Doc; ID and Meta are
	// ignored. ErrConflict when the new displayName belongs to another group.
	SetGroup(g Group) error
	// AddMember is idempotent: an existing edge is kept with its Since and
	// added is false. ErrMemberNotFound when the reference names no
	// existing user or group of that type; ErrInvalid for the group itself.
	AddMember(ref MemberRef) (added bool, err error)
	RemoveMember(memberID string) (removed bool, err error)
	RemoveAllMembers() (removed []MemberRef, err error)
	// SetMembers makes the member set exactly refs: edges that stay keep
	// their Since (a full PUT must not restart time-bound grants).
	SetMembers(refs []MemberRef) (added, removed []MemberRef, err error)
	IsMember(memberID string) (bool, error)
	Members(fn func(Membership) bool) error
}

// Fold returns the key under which userNames, displayNames and emails are
// compared: Fold(a) == Fold(b) exactly when strings.EqualFold(a, b), so an
// index lookup and a filter evaluated with EqualFold always agree. Each
// rune maps to the smallest rune of its Unicode simple case-folding orbit
// (ASCII letters therefore fold to upper case). No Unicode normalization
// (NFC) is applied: golang.org/x/text is not a dependency, and IdPs send
// NFC already; a caller that wants NFC must normalize before the store.
func Fold(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return foldUnicode(s)
		}
	}
	return strings.ToUpper(s)
}

func foldUnicode(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if f < m {
				m = f
			}
		}
		b.WriteRune(m)
	}
	return b.String()
}

// DeletedUser is what DeleteUser removed.
type DeletedUser struct {
	User     User
	GroupIDs []string // groups the user was a direct member of
}
