package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
)

// Run runs the conformance suite. open must return a new, empty store for
// each call and arrange (t.Cleanup) for it to be closed. The cases run in
// parallel, each on its own store, so open must be safe for concurrent use.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateAndGetUser", testCreateAndGetUser},
		{"UserInvalidInput", testUserInvalidInput},
		{"UserNameUniqueInAnyCase", testUserNameUnique},
		{"UpdateUserRenameKeepsIndex", testUpdateUserRename},
		{"UpdateUserMetaAndVersion", testUpdateUserMeta},
		{"UpdateUserFnErrorWritesNothing", testUpdateUserFnError},
		{"ExternalIDIndex", testUserExternalIDIndex},
		{"EmailIndex", testUserEmailIndex},
		{"ActiveSince", testActiveSince},
		{"ListUsersPaging", testListUsersPaging},
		{"DeleteUserRemovesMemberships", testDeleteUser},
		{"CreateAndGetGroup", testCreateAndGetGroup},
		{"DisplayNameUniqueInAnyCase", testDisplayNameUnique},
		{"CreateGroupWithMembers", testCreateGroupWithMembers},
		{"CreateGroupUnknownMemberWritesNothing", testCreateGroupUnknownMember},
		{"UpdateGroupMembers", testUpdateGroupMembers},
		{"UpdateGroupNoChangeKeepsVersion", testUpdateGroupNoChange},
		{"UpdateGroupFnErrorWritesNothing", testUpdateGroupFnError},
		{"UpdateGroupAttributes", testUpdateGroupAttributes},
		{"UpdateGroupVersionMismatch", testUpdateGroupVersionMismatch},
		{"GroupCannotContainItself", testSelfMember},
		{"SetMembersKeepsSince", testSetMembers},
		{"RemoveAllMembers", testRemoveAllMembers},
		{"DeleteGroupRemovesNestedEdges", testDeleteGroup},
		{"ReadsOfUnknownIDs", testUnknownIDs},
		{"ViewIsASnapshot", testViewSnapshot},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each case has its own store; fsync latency overlaps
			tc.fn(t, open(t))
		})
	}
}

// t0 is the suite's clock: every time is t0 plus a whole number of minutes.
var t0 = time.Date(2026, 3, 1, 9, 0, 0, 123456789, time.UTC)

func at(minutes int) time.Time { return t0.Add(time.Duration(minutes) * time.Minute) }

var idPattern = regexp.MustCompile(`^([0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$`)

func createUser(t *testing.T, s store.Store, now time.Time, u store.User) store.User {
	t.Helper()
	got, err := s.CreateUser(now, u)
	if err != nil {
		t.Fatalf("CreateUser(%q): %v", u.UserName, err)
	}
	return got
}

func createGroup(t *testing.T, s store.Store, now time.Time, name string, members ...store.MemberRef) store.Group {
	t.Helper()
	got, err := s.CreateGroup(now, store.Group{DisplayName: name}, members)
	if err != nil {
		t.Fatalf("CreateGroup(%q): %v", name, err)
	}
	return got
}

func userRef(u store.User) store.MemberRef { return store.MemberRef{ID: u.ID, Type: store.MemberUser} }
func groupRef(g store.Group) store.MemberRef {
	return store.MemberRef{ID: g.ID, Type: store.MemberGroup}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error = %v, want %v", what, err, want)
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func getUser(t *testing.T, s store.Reader, id string) store.User {
	t.Helper()
	u, err := s.GetUser(id)
	noErr(t, "GetUser", err)
	return u
}

func getGroup(t *testing.T, s store.Reader, id string) store.Group {
	t.Helper()
	g, err := s.GetGroup(id)
	noErr(t, "GetGroup", err)
	return g
}

// sameJSON compares documents by meaning: a backend may compact them.
func sameJSON(t *testing.T, got, want json.RawMessage) bool {
	t.Helper()
	if len(got) == 0 || len(want) == 0 {
		return len(got) == len(want)
	}
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("stored doc %s is not JSON: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want doc %s is not JSON: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

func checkUser(t *testing.T, got, want store.User) {
	t.Helper()
	if got.ID != want.ID || got.UserName != want.UserName || got.ExternalID != want.ExternalID ||
		got.Active != want.Active || got.Email != want.Email || !got.ActiveSince.Equal(want.ActiveSince) ||
		!got.Meta.Created.Equal(want.Meta.Created) || !got.Meta.LastModified.Equal(want.Meta.LastModified) ||
		got.Meta.Version != want.Meta.Version || !sameJSON(t, got.Doc, want.Doc) {
		t.Fatalf("user mismatch:\n got  %+v doc=%s\n want %+v doc=%s", got, got.Doc, want, want.Doc)
	}
}

func checkGroup(t *testing.T, got, want store.Group) {
	t.Helper()
	if got.ID != want.ID || got.DisplayName != want.DisplayName || got.ExternalID != want.ExternalID ||
		!got.Meta.Created.Equal(want.Meta.Created) || !got.Meta.LastModified.Equal(want.Meta.LastModified) ||
		got.Meta.Version != want.Meta.Version || !sameJSON(t, got.Doc, want.Doc) {
		t.Fatalf("group mismatch:\n got  %+v doc=%s\n want %+v doc=%s", got, got.Doc, want, want.Doc)
	}
}

func members(t *testing.T, s store.Reader, groupID string) []store.Membership {
	t.Helper()
	var ms []store.Membership
	noErr(t, "GroupMembers", s.GroupMembers(groupID, func(m store.Membership) bool {
		ms = append(ms, m)
		return true
	}))
	return ms
}

func memberIDs(t *testing.T, s store.Reader, groupID string) []string {
	t.Helper()
	var ids []string
	for _, m := range members(t, s, groupID) {
		ids = append(ids, m.ID)
	}
	return ids
}

func sortedIDs(ids ...string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

func parentIDs(t *testing.T, s store.Reader, memberID string) []string {
	t.Helper()
	ms, err := s.GroupsOf(memberID)
	noErr(t, "GroupsOf", err)
	var ids []string
	for _, m := range ms {
		if m.Type != store.MemberGroup {
			t.Fatalf("GroupsOf(%q) returned type %q, want %q", memberID, m.Type, store.MemberGroup)
		}
		ids = append(ids, m.ID)
	}
	return ids
}

func count(t *testing.T, what string, f func() (int, error), want int) {
	t.Helper()
	n, err := f()
	noErr(t, what, err)
	if n != want {
		t.Fatalf("%s = %d, want %d", what, n, want)
	}
}

func countMembers(t *testing.T, s store.Reader, groupID string, want int) {
	t.Helper()
	count(t, "CountGroupMembers", func() (int, error) { return s.CountGroupMembers(groupID) }, want)
	if got := len(members(t, s, groupID)); got != want {
		t.Fatalf("GroupMembers yields %d members, counter says %d", got, want)
	}
}

func userIDs(us []store.User) []string {
	var ids []string
	for _, u := range us {
		ids = append(ids, u.ID)
	}
	return ids
}

func testCreateAndGetUser(t *testing.T, s store.Store) {
	in := store.User{
		UserName: "Alice@Example.com", ExternalID: "okta-1", Active: true, Email: "alice@example.com",
		Doc: json.RawMessage(`{ "name": {"givenName": "Alice"}, "displayName": "Alice A" }`),
		// Caller-supplied ID, meta and ActiveSince are the store's to set.
		ID: "chosen-by-caller", ActiveSince: at(-100), Meta: store.Meta{Version: 42, Created: at(-100)},
	}
	u := createUser(t, s, at(0), in)
	if !idPattern.MatchString(u.ID) {
		t.Fatalf("ID %q is not 128-bit hex or uuid", u.ID)
	}
	want := in
	want.ID, want.ActiveSince = u.ID, at(0)
	want.Meta = store.Meta{Created: at(0), LastModified: at(0), Version: 1}
	checkUser(t, u, want)
	checkUser(t, getUser(t, s, u.ID), want)

	other := createUser(t, s, at(1), store.User{UserName: "bob"})
	if other.ID == u.ID {
		t.Fatalf("two users got the same ID %q", u.ID)
	}
	if !other.ActiveSince.IsZero() || other.Doc != nil && !sameJSON(t, other.Doc, json.RawMessage(`{}`)) {
		t.Fatalf("inactive user without doc came back as %+v doc=%s", other, other.Doc)
	}
	count(t, "CountUsers", s.CountUsers, 2)
}

func testUserInvalidInput(t *testing.T, s store.Store) {
	_, err := s.CreateUser(at(0), store.User{UserName: ""})
	wantErr(t, "empty userName", err, store.ErrInvalid)
	_, err = s.CreateUser(at(0), store.User{UserName: "x", Doc: json.RawMessage(`[1,2]`)})
	wantErr(t, "doc not an object", err, store.ErrInvalid)
	_, err = s.CreateUser(at(0), store.User{UserName: "x", Doc: json.RawMessage(`{"a":`)})
	wantErr(t, "doc not JSON", err, store.ErrInvalid)
	count(t, "CountUsers", s.CountUsers, 0)
	_, err = s.UserByUserName("x")
	wantErr(t, "rejected userName must stay free", err, store.ErrNotFound)

	u := createUser(t, s, at(0), store.User{UserName: "x"})
	_, err = s.UpdateUser(u.ID, at(1), 0, func(u *store.User) error { u.UserName = ""; return nil })
	wantErr(t, "update to empty userName", err, store.ErrInvalid)
	checkUser(t, getUser(t, s, u.ID), u)
}

func testUserNameUnique(t *testing.T, s store.Store) {
	a := createUser(t, s, at(0), store.User{UserName: "Alice@Example.com"})
	for _, name := range []string{"Alice@Example.com", "alice@example.com", "ALICE@EXAMPLE.COM", "aLiCe@eXaMpLe.CoM"} {
		_, err := s.CreateUser(at(1), store.User{UserName: name})
		wantErr(t, "CreateUser("+name+")", err, store.ErrConflict)
		got, err := s.UserByUserName(name)
		noErr(t, "UserByUserName("+name+")", err)
		if got.ID != a.ID || got.UserName != "Alice@Example.com" {
			t.Fatalf("UserByUserName(%q) = %q %q, want %q as given", name, got.ID, got.UserName, a.ID)
		}
	}
	// Non-ASCII letters fold too.
	e := createUser(t, s, at(2), store.User{UserName: "Élodie"})
	_, err := s.CreateUser(at(3), store.User{UserName: "éLODIE"})
	wantErr(t, "CreateUser(éLODIE)", err, store.ErrConflict)
	got, err := s.UserByUserName("ÉLODIE")
	noErr(t, "UserByUserName(ÉLODIE)", err)
	if got.ID != e.ID {
		t.Fatalf("UserByUserName(ÉLODIE) = %q, want %q", got.ID, e.ID)
	}
	_, err = s.UserByUserName("Alice")
	wantErr(t, "prefix lookup", err, store.ErrNotFound)
	_, err = s.UserByUserName("")
	wantErr(t, "empty lookup", err, store.ErrNotFound)
	count(t, "CountUsers", s.CountUsers, 2)
}

func testUpdateUserRename(t *testing.T, s store.Store) {
	a := createUser(t, s, at(0), store.User{UserName: "alice"})
	b := createUser(t, s, at(0), store.User{UserName: "bob"})

	// Case-only rename: allowed, kept as given, still one index entry.
	a2, err := s.UpdateUser(a.ID, at(1), 0, func(u *store.User) error { u.UserName = "ALICE"; return nil })
	noErr(t, "rename alice->ALICE", err)
	if a2.UserName != "ALICE" || a2.Meta.Version != 2 {
		t.Fatalf("after case rename: %+v", a2)
	}

	// Rename to another user's name in any case: conflict, nothing changes.
	_, err = s.UpdateUser(a.ID, at(2), 0, func(u *store.User) error { u.UserName = "BoB"; return nil })
	wantErr(t, "rename to taken name", err, store.ErrConflict)
	checkUser(t, getUser(t, s, a.ID), a2)

	// A real rename frees the old name and takes the new one.
	a3, err := s.UpdateUser(a.ID, at(3), 0, func(u *store.User) error { u.UserName = "alicia"; return nil })
	noErr(t, "rename to alicia", err)
	got, err := s.UserByUserName("Alicia")
	noErr(t, "lookup new name", err)
	checkUser(t, got, a3)
	_, err = s.UserByUserName("alice")
	wantErr(t, "lookup old name", err, store.ErrNotFound)
	n := createUser(t, s, at(4), store.User{UserName: "Alice"})
	if n.ID == a.ID {
		t.Fatal("new user reused an id")
	}
	_, err = s.UpdateUser(b.ID, at(5), 0, func(u *store.User) error { u.UserName = "ALICIA"; return nil })
	wantErr(t, "rename bob to alicia", err, store.ErrConflict)

	_, err = s.UpdateUser("no-such-id", at(6), 0, func(*store.User) error { return nil })
	wantErr(t, "UpdateUser(unknown)", err, store.ErrNotFound)
}

func testUpdateUserMeta(t *testing.T, s store.Store) {
	u := createUser(t, s, at(0), store.User{UserName: "carol", Doc: json.RawMessage(`{"title":"eng"}`)})

	_, err := s.UpdateUser(u.ID, at(1), 7, func(u *store.User) error { u.Email = "x@y"; return nil })
	wantErr(t, "ifVersion 7", err, store.ErrVersionMismatch)
	checkUser(t, getUser(t, s, u.ID), u)

	u2, err := s.UpdateUser(u.ID, at(2), 1, func(v *store.User) error {
		v.Doc = json.RawMessage(`{"title":"manager"}`)
		v.ID = "hijack"
		v.Meta = store.Meta{Version: 99, Created: at(-50), LastModified: at(-50)}
		return nil
	})
	noErr(t, "UpdateUser ifVersion 1", err)
	want := u
	want.Doc = json.RawMessage(`{"title":"manager"}`)
	want.Meta = store.Meta{Created: at(0), LastModified: at(2), Version: 2}
	checkUser(t, u2, want)
	checkUser(t, getUser(t, s, u.ID), want)
	_, err = s.GetUser("hijack")
	wantErr(t, "GetUser(hijack)", err, store.ErrNotFound)

	// Editing Doc in place must not fool the change detection.
	u3, err := s.UpdateUser(u.ID, at(3), 0, func(v *store.User) error {
		copy(v.Doc, bytes.ToUpper(v.Doc))
		return nil
	})
	noErr(t, "in-place doc edit", err)
	if u3.Meta.Version != 3 {
		t.Fatalf("in-place doc edit: version %d, want 3", u3.Meta.Version)
	}

	// Nothing changed: version and lastModified stay (stable ETag).
	u4, err := s.UpdateUser(u.ID, at(4), 3, func(v *store.User) error { v.UserName = "carol"; return nil })
	noErr(t, "no-op update", err)
	checkUser(t, u4, u3)
	checkUser(t, getUser(t, s, u.ID), u3)

	_, err = s.UpdateUser(u.ID, at(5), 2, func(*store.User) error { return nil })
	wantErr(t, "stale ifVersion", err, store.ErrVersionMismatch)
}

func testUpdateUserFnError(t *testing.T, s store.Store) {
	u := createUser(t, s, at(0), store.User{UserName: "dave", ExternalID: "e1", Email: "dave@x", Active: true})
	boom := errors.New("patch failed")
	_, err := s.UpdateUser(u.ID, at(1), 0, func(v *store.User) error {
		v.UserName, v.ExternalID, v.Email, v.Active = "david", "e2", "david@x", false
		return boom
	})
	wantErr(t, "fn error", err, boom)
	checkUser(t, getUser(t, s, u.ID), u)
	_, err = s.UserByUserName("david")
	wantErr(t, "name from failed update", err, store.ErrNotFound)
	if us, err := s.UsersByExternalID("e2"); err != nil || len(us) != 0 {
		t.Fatalf("UsersByExternalID(e2) = %v, %v; want none", userIDs(us), err)
	}
	if us, err := s.UsersByEmail("dave@x"); err != nil || len(us) != 1 {
		t.Fatalf("UsersByEmail(dave@x) = %v, %v; want dave", userIDs(us), err)
	}
}

func testUserExternalIDIndex(t *testing.T, s store.Store) {
	a := createUser(t, s, at(0), store.User{UserName: "a", ExternalID: "E1"})
	b := createUser(t, s, at(0), store.User{UserName: "b", ExternalID: "E1"})
	createUser(t, s, at(0), store.User{UserName: "c"})
	byExt := func(ext string) []string {
		t.Helper()
		us, err := s.UsersByExternalID(ext)
		noErr(t, "UsersByExternalID", err)
		return userIDs(us)
	}
	if got, want := byExt("E1"), sortedIDs(a.ID, b.ID); !slices.Equal(got, want) {
		t.Fatalf("E1 -> %v, want %v", got, want)
	}
	if got := byExt("e1"); len(got) != 0 {
		t.Fatalf("externalId is case-exact, but e1 -> %v", got)
	}
	if got := byExt("E"); len(got) != 0 {
		t.Fatalf("prefix E -> %v", got)
	}
	if got := byExt(""); len(got) != 0 {
		t.Fatalf("empty externalId -> %v", got)
	}
	_, err := s.UpdateUser(b.ID, at(1), 0, func(u *store.User) error { u.ExternalID = "E2"; return nil })
	noErr(t, "change externalId", err)
	if got := byExt("E1"); !slices.Equal(got, []string{a.ID}) {
		t.Fatalf("E1 after change -> %v", got)
	}
	if got := byExt("E2"); !slices.Equal(got, []string{b.ID}) {
		t.Fatalf("E2 after change -> %v", got)
	}
	_, err = s.UpdateUser(a.ID, at(2), 0, func(u *store.User) error { u.ExternalID = ""; return nil })
	noErr(t, "clear externalId", err)
	if got := byExt("E1"); len(got) != 0 {
		t.Fatalf("E1 after clear -> %v", got)
	}
	// An externalId that extends another's must not match it.
	createUser(t, s, at(3), store.User{UserName: "d", ExternalID: "E2\x00x"})
	if got := byExt("E2"); !slices.Equal(got, []string{b.ID}) {
		t.Fatalf("E2 with a longer sibling -> %v", got)
	}
}

func testUserEmailIndex(t *testing.T, s store.Store) {
	a := createUser(t, s, at(0), store.User{UserName: "a", Email: "Pat@Example.com"})
	b := createUser(t, s, at(0), store.User{UserName: "b", Email: "pat@example.com"})
	byEmail := func(e string) []string {
		t.Helper()
		us, err := s.UsersByEmail(e)
		noErr(t, "UsersByEmail", err)
		return userIDs(us)
	}
	if got, want := byEmail("PAT@EXAMPLE.COM"), sortedIDs(a.ID, b.ID); !slices.Equal(got, want) {
		t.Fatalf("email lookup -> %v, want %v", got, want)
	}
	_, err := s.UpdateUser(a.ID, at(1), 0, func(u *store.User) error { u.Email = "pat.new@example.com"; return nil })
	noErr(t, "change email", err)
	if got := byEmail("pat@example.com"); !slices.Equal(got, []string{b.ID}) {
		t.Fatalf("old email -> %v", got)
	}
	if got := byEmail("Pat.New@example.com"); !slices.Equal(got, []string{a.ID}) {
		t.Fatalf("new email -> %v", got)
	}
	_, err = s.DeleteUser(b.ID)
	noErr(t, "DeleteUser", err)
	if got := byEmail("pat@example.com"); len(got) != 0 {
		t.Fatalf("email of deleted user -> %v", got)
	}
	if got := byEmail(""); len(got) != 0 {
		t.Fatalf("empty email -> %v", got)
	}
}

func testActiveSince(t *testing.T, s store.Store) {
	set := func(id string, now time.Time, f func(*store.User)) store.User {
		t.Helper()
		u, err := s.UpdateUser(id, now, 0, func(u *store.User) error { f(u); return nil })
		noErr(t, "UpdateUser", err)
		return u
	}
	check := func(u store.User, want time.Time) {
		t.Helper()
		if !u.ActiveSince.Equal(want) {
			t.Fatalf("ActiveSince = %v, want %v", u.ActiveSince, want)
		}
		if got := getUser(t, s, u.ID); !got.ActiveSince.Equal(want) {
			t.Fatalf("stored ActiveSince = %v, want %v", got.ActiveSince, want)
		}
	}
	active := createUser(t, s, at(0), store.User{UserName: "on", Active: true})
	check(active, at(0))
	check(set(active.ID, at(1), func(u *store.User) { u.Email = "on@x" }), at(0))
	check(set(active.ID, at(2), func(u *store.User) { u.ActiveSince = at(-9) }), at(0))
	check(set(active.ID, at(3), func(u *store.User) { u.Active = false }), time.Time{})
	check(set(active.ID, at(4), func(u *store.User) { u.Email = "on@y" }), time.Time{})
	check(set(active.ID, at(5), func(u *store.User) { u.Active = true }), at(5))

	inactive := createUser(t, s, at(0), store.User{UserName: "off", ActiveSince: at(-1)})
	check(inactive, time.Time{})
	check(set(inactive.ID, at(7), func(u *store.User) { u.Active = true }), at(7))
}

func testListUsersPaging(t *testing.T, s store.Store) {
	var want []string
	for i := range 25 {
		want = append(want, createUser(t, s, at(i), store.User{UserName: fmt.Sprintf("user%02d", i)}).ID)
	}
	slices.Sort(want)
	count(t, "CountUsers", s.CountUsers, 25)

	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatalf("paging does not end; so far %d ids", len(got))
		}
		var page []string
		noErr(t, "ListUsers", s.ListUsers(after, func(u store.User) bool {
			page = append(page, u.ID)
			return len(page) < 10
		}))
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = page[len(page)-1]
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged ids:\n got  %v\n want %v", got, want)
	}

	// afterID need not exist: listing resumes at the next id in order.
	gone := want[12]
	_, err := s.DeleteUser(gone)
	noErr(t, "DeleteUser", err)
	var first string
	noErr(t, "ListUsers after deleted id", s.ListUsers(gone, func(u store.User) bool { first = u.ID; return false }))
	if first != want[13] {
		t.Fatalf("ListUsers(after deleted %s) starts at %s, want %s", gone, first, want[13])
	}
	var last []string
	noErr(t, "ListUsers after last", s.ListUsers(want[24], func(u store.User) bool { last = append(last, u.ID); return true }))
	if len(last) != 0 {
		t.Fatalf("ListUsers after the last id yields %v", last)
	}
}

func testDeleteUser(t *testing.T, s store.Store) {
	u := createUser(t, s, at(0), store.User{UserName: "erin", ExternalID: "x1", Email: "erin@x"})
	other := createUser(t, s, at(0), store.User{UserName: "frank"})
	g1 := createGroup(t, s, at(1), "g1", userRef(u), userRef(other))
	g2 := createGroup(t, s, at(1), "g2", userRef(u))
	g3 := createGroup(t, s, at(1), "g3", userRef(other))

	del, err := s.DeleteUser(u.ID)
	noErr(t, "DeleteUser", err)
	if del.User.ID != u.ID || del.User.Email != "erin@x" || del.User.UserName != "erin" {
		t.Fatalf("DeleteUser returned user %+v, want erin as stored", del.User)
	}
	groups := del.GroupIDs
	slices.Sort(groups)
	if want := sortedIDs(g1.ID, g2.ID); !slices.Equal(groups, want) {
		t.Fatalf("DeleteUser returned groups %v, want %v", groups, want)
	}
	_, err = s.GetUser(u.ID)
	wantErr(t, "GetUser(deleted)", err, store.ErrNotFound)
	_, err = s.GroupsOf(u.ID)
	wantErr(t, "GroupsOf(deleted)", err, store.ErrNotFound)
	for _, g := range []store.Group{g1, g2} {
		if ok, err := s.IsMember(g.ID, u.ID); err != nil || ok {
			t.Fatalf("IsMember(%s, deleted) = %v, %v", g.DisplayName, ok, err)
		}
	}
	if got := memberIDs(t, s, g1.ID); !slices.Equal(got, []string{other.ID}) {
		t.Fatalf("g1 members = %v, want only frank", got)
	}
	countMembers(t, s, g1.ID, 1)
	countMembers(t, s, g2.ID, 0)
	countMembers(t, s, g3.ID, 1)
	count(t, "CountUsers", s.CountUsers, 1)
	createUser(t, s, at(2), store.User{UserName: "ERIN"}) // name is free again
	if us, _ := s.UsersByExternalID("x1"); len(us) != 0 {
		t.Fatalf("externalId of deleted user still indexed: %v", userIDs(us))
	}
	_, err = s.DeleteUser(u.ID)
	wantErr(t, "DeleteUser twice", err, store.ErrNotFound)
}

func testCreateAndGetGroup(t *testing.T, s store.Store) {
	in := store.Group{
		DisplayName: "CF Admins", ExternalID: "grp-1", Doc: json.RawMessage(`{"description":"x"}`),
		ID: "mine", Meta: store.Meta{Version: 5},
	}
	g, err := s.CreateGroup(at(0), in, nil)
	noErr(t, "CreateGroup", err)
	if !idPattern.MatchString(g.ID) {
		t.Fatalf("group ID %q is not 128-bit hex or uuid", g.ID)
	}
	want := in
	want.ID, want.Meta = g.ID, store.Meta{Created: at(0), LastModified: at(0), Version: 1}
	checkGroup(t, g, want)
	checkGroup(t, getGroup(t, s, g.ID), want)
	got, err := s.GroupByDisplayName("cf admins")
	noErr(t, "GroupByDisplayName", err)
	checkGroup(t, got, want)
	gs, err := s.GroupsByExternalID("grp-1")
	noErr(t, "GroupsByExternalID", err)
	if len(gs) != 1 || gs[0].ID != g.ID {
		t.Fatalf("GroupsByExternalID(grp-1) = %+v", gs)
	}
	g2 := createGroup(t, s, at(1), "other")
	count(t, "CountGroups", s.CountGroups, 2)
	countMembers(t, s, g.ID, 0)

	var listed []string
	noErr(t, "ListGroups", s.ListGroups("", func(g store.Group) bool { listed = append(listed, g.ID); return true }))
	if want := sortedIDs(g.ID, g2.ID); !slices.Equal(listed, want) {
		t.Fatalf("ListGroups = %v, want %v", listed, want)
	}
	listed = nil
	noErr(t, "ListGroups after", s.ListGroups(min(g.ID, g2.ID), func(g store.Group) bool { listed = append(listed, g.ID); return true }))
	if want := []string{max(g.ID, g2.ID)}; !slices.Equal(listed, want) {
		t.Fatalf("ListGroups after first = %v, want %v", listed, want)
	}

	_, err = s.CreateGroup(at(0), store.Group{}, nil)
	wantErr(t, "empty displayName", err, store.ErrInvalid)
}

func testDisplayNameUnique(t *testing.T, s store.Store) {
	g := createGroup(t, s, at(0), "Engineering")
	for _, name := range []string{"Engineering", "engineering", "ENGINEERING"} {
		_, err := s.CreateGroup(at(1), store.Group{DisplayName: name}, nil)
		wantErr(t, "CreateGroup("+name+")", err, store.ErrConflict)
		got, err := s.GroupByDisplayName(name)
		noErr(t, "GroupByDisplayName", err)
		if got.ID != g.ID || got.DisplayName != "Engineering" {
			t.Fatalf("GroupByDisplayName(%q) = %+v", name, got)
		}
	}
	count(t, "CountGroups", s.CountGroups, 1)
	_, err := s.GroupByDisplayName("Eng")
	wantErr(t, "prefix lookup", err, store.ErrNotFound)
}

func testCreateGroupWithMembers(t *testing.T, s store.Store) {
	u1 := createUser(t, s, at(0), store.User{UserName: "u1"})
	u2 := createUser(t, s, at(0), store.User{UserName: "u2"})
	child := createGroup(t, s, at(1), "child", userRef(u2))
	parent := createGroup(t, s, at(5), "parent", userRef(u1), groupRef(child), userRef(u2), userRef(u1))

	ms := members(t, s, parent.ID)
	wantIDs := sortedIDs(u1.ID, u2.ID, child.ID)
	if got := memberIDs(t, s, parent.ID); !slices.Equal(got, wantIDs) {
		t.Fatalf("members = %v, want %v (ordered by id, duplicates once)", got, wantIDs)
	}
	for _, m := range ms {
		wantType := store.MemberUser
		if m.ID == child.ID {
			wantType = store.MemberGroup
		}
		if m.Type != wantType || !m.Since.Equal(at(5)) {
			t.Fatalf("membership %+v, want type %s since %v", m, wantType, at(5))
		}
	}
	countMembers(t, s, parent.ID, 3)
	if got, want := parentIDs(t, s, u2.ID), sortedIDs(child.ID, parent.ID); !slices.Equal(got, want) {
		t.Fatalf("GroupsOf(u2) = %v, want %v", got, want)
	}
	pm, err := s.GroupsOf(child.ID)
	noErr(t, "GroupsOf(child)", err)
	if len(pm) != 1 || pm[0].ID != parent.ID || !pm[0].Since.Equal(at(5)) {
		t.Fatalf("GroupsOf(child) = %+v", pm)
	}
	if ok, err := s.IsMember(parent.ID, child.ID); err != nil || !ok {
		t.Fatalf("IsMember(parent, child) = %v, %v", ok, err)
	}
	if ok, err := s.IsMember(child.ID, u1.ID); err != nil || ok {
		t.Fatalf("IsMember(child, u1) = %v, %v", ok, err)
	}
	if parent.Meta.Version != 1 {
		t.Fatalf("new group with members has version %d", parent.Meta.Version)
	}

	// A reference without a type resolves to whatever exists.
	mixed := createGroup(t, s, at(6), "mixed", store.MemberRef{ID: u1.ID}, store.MemberRef{ID: child.ID})
	for _, m := range members(t, s, mixed.ID) {
		if want := map[string]store.MemberType{u1.ID: store.MemberUser, child.ID: store.MemberGroup}[m.ID]; m.Type != want {
			t.Fatalf("untyped ref %s stored as %q, want %q", m.ID, m.Type, want)
		}
	}
}

func testCreateGroupUnknownMember(t *testing.T, s store.Store) {
	u := createUser(t, s, at(0), store.User{UserName: "u"})
	g := createGroup(t, s, at(0), "existing")
	bad := []struct {
		name string
		ref  store.MemberRef
		want error
	}{
		{"unknown user", store.MemberRef{ID: "0123456789abcdef0123456789abcdef", Type: store.MemberUser}, store.ErrMemberNotFound},
		{"unknown untyped", store.MemberRef{ID: "nope"}, store.ErrMemberNotFound},
		{"user named as group", store.MemberRef{ID: u.ID, Type: store.MemberGroup}, store.ErrMemberNotFound},
		{"group named as user", store.MemberRef{ID: g.ID, Type: store.MemberUser}, store.ErrMemberNotFound},
		{"bad type", store.MemberRef{ID: u.ID, Type: "Robot"}, store.ErrInvalid},
	}
	for _, tc := range bad {
		_, err := s.CreateGroup(at(1), store.Group{DisplayName: "new", ExternalID: "ext-new"}, []store.MemberRef{userRef(u), tc.ref})
		wantErr(t, tc.name, err, tc.want)
		if tc.want == store.ErrMemberNotFound && !strings.Contains(err.Error(), tc.ref.ID) {
			t.Fatalf("%s: error %q does not name the member", tc.name, err)
		}
	}
	count(t, "CountGroups", s.CountGroups, 1)
	_, err := s.GroupByDisplayName("new")
	wantErr(t, "group of failed create", err, store.ErrNotFound)
	if gs, _ := s.GroupsByExternalID("ext-new"); len(gs) != 0 {
		t.Fatalf("failed create left externalId index entries: %+v", gs)
	}
	if got := parentIDs(t, s, u.ID); len(got) != 0 {
		t.Fatalf("failed create left edges: user is in %v", got)
	}
	createGroup(t, s, at(2), "new", userRef(u))
}

func testUpdateGroupMembers(t *testing.T, s store.Store) {
	u1 := createUser(t, s, at(0), store.User{UserName: "u1"})
	u2 := createUser(t, s, at(0), store.User{UserName: "u2"})
	sub := createGroup(t, s, at(0), "sub")
	g := createGroup(t, s, at(1), "g", userRef(u1))

	g2, err := s.UpdateGroup(g.ID, at(2), 1, func(tx store.GroupTx) error {
		if ok, err := tx.AddMember(userRef(u2)); err != nil || !ok {
			return fmt.Errorf("add u2: %v %w", ok, err)
		}
		if ok, err := tx.AddMember(groupRef(sub)); err != nil || !ok {
			return fmt.Errorf("add sub: %v %w", ok, err)
		}
		if ok, err := tx.AddMember(userRef(u1)); err != nil || ok {
			return fmt.Errorf("re-add u1: added=%v %w", ok, err)
		}
		if ok, err := tx.IsMember(u2.ID); err != nil || !ok {
			return fmt.Errorf("IsMember(u2) inside tx = %v, %w", ok, err)
		}
		n := 0
		if err := tx.Members(func(store.Membership) bool { n++; return true }); err != nil || n != 3 {
			return fmt.Errorf("members inside tx: %d, %w", n, err)
		}
		return nil
	})
	noErr(t, "UpdateGroup add", err)
	if g2.Meta.Version != 2 || !g2.Meta.LastModified.Equal(at(2)) || !g2.Meta.Created.Equal(at(1)) {
		t.Fatalf("after adding members meta = %+v", g2.Meta)
	}
	checkGroup(t, getGroup(t, s, g.ID), g2)
	countMembers(t, s, g.ID, 3)
	for _, m := range members(t, s, g.ID) {
		want := at(2)
		if m.ID == u1.ID {
			want = at(1) // re-add keeps the original Since
		}
		if !m.Since.Equal(want) {
			t.Fatalf("member %s since %v, want %v", m.ID, m.Since, want)
		}
	}
	if got := parentIDs(t, s, sub.ID); !slices.Equal(got, []string{g.ID}) {
		t.Fatalf("GroupsOf(sub) = %v", got)
	}

	g3, err := s.UpdateGroup(g.ID, at(3), 0, func(tx store.GroupTx) error {
		if ok, err := tx.RemoveMember(u1.ID); err != nil || !ok {
			return fmt.Errorf("remove u1: %v %w", ok, err)
		}
		if ok, err := tx.RemoveMember(u1.ID); err != nil || ok {
			return fmt.Errorf("remove u1 again: removed=%v %w", ok, err)
		}
		if ok, err := tx.RemoveMember("not-a-member"); err != nil || ok {
			return fmt.Errorf("remove stranger: removed=%v %w", ok, err)
		}
		return nil
	})
	noErr(t, "UpdateGroup remove", err)
	if g3.Meta.Version != 3 {
		t.Fatalf("after removal version = %d, want 3", g3.Meta.Version)
	}
	countMembers(t, s, g.ID, 2)
	if got := parentIDs(t, s, u1.ID); len(got) != 0 {
		t.Fatalf("removed member still has parents %v", got)
	}

	// Re-adding after a removal is a new edge: Since restarts.
	_, err = s.UpdateGroup(g.ID, at(4), 0, func(tx store.GroupTx) error { _, err := tx.AddMember(userRef(u1)); return err })
	noErr(t, "re-add after removal", err)
	ps, err := s.GroupsOf(u1.ID)
	noErr(t, "GroupsOf(u1)", err)
	if len(ps) != 1 || !ps[0].Since.Equal(at(4)) {
		t.Fatalf("GroupsOf(u1) after re-add = %+v, want since %v", ps, at(4))
	}

	_, err = s.UpdateGroup("no-such-group", at(5), 0, func(store.GroupTx) error { return nil })
	wantErr(t, "UpdateGroup(unknown)", err, store.ErrNotFound)
}

func testUpdateGroupNoChange(t *testing.T, s store.Store) {
	u := createUser(t, s, at(0), store.User{UserName: "u"})
	g, err := s.CreateGroup(at(1), store.Group{DisplayName: "g", ExternalID: "e", Doc: json.RawMessage(`{"a":1}`)}, []store.MemberRef{userRef(u)})
	noErr(t, "CreateGroup", err)
	got, err := s.UpdateGroup(g.ID, at(2), 1, func(tx store.GroupTx) error {
		if _, err := tx.AddMember(userRef(u)); err != nil {
			return err
		}
		if _, err := tx.RemoveMember("absent"); err != nil {
			return err
		}
		cur := tx.Group()
		return tx.SetGroup(store.Group{DisplayName: cur.DisplayName, ExternalID: cur.ExternalID, Doc: json.RawMessage(`{ "a" : 1 }`)})
	})
	noErr(t, "no-op UpdateGroup", err)
	checkGroup(t, got, g)
	checkGroup(t, getGroup(t, s, g.ID), g)
}

func testUpdateGroupFnError(t *testing.T, s store.Store) {
	u1 := createUser(t, s, at(0), store.User{UserName: "u1"})
	u2 := createUser(t, s, at(0), store.User{UserName: "u2"})
	g := createGroup(t, s, at(1), "team", userRef(u1))
	boom := errors.New("patch op 3 failed")

	_, err := s.UpdateGroup(g.ID, at(2), 0, func(tx store.GroupTx) error {
		if _, err := tx.AddMember(userRef(u2)); err != nil {
			return err
		}
		if _, err := tx.RemoveMember(u1.ID); err != nil {
			return err
		}
		if err := tx.SetGroup(store.Group{DisplayName: "renamed", ExternalID: "new-ext"}); err != nil {
			return err
		}
		return boom
	})
	wantErr(t, "fn error", err, boom)
	checkGroup(t, getGroup(t, s, g.ID), g)
	if got := memberIDs(t, s, g.ID); !slices.Equal(got, []string{u1.ID}) {
		t.Fatalf("members after rolled back update = %v, want only u1", got)
	}
	countMembers(t, s, g.ID, 1)
	if got := parentIDs(t, s, u2.ID); len(got) != 0 {
		t.Fatalf("rolled back add left reverse edge: %v", got)
	}
	if got := parentIDs(t, s, u1.ID); !slices.Equal(got, []string{g.ID}) {
		t.Fatalf("rolled back removal lost reverse edge: %v", got)
	}
	_, err = s.GroupByDisplayName("renamed")
	wantErr(t, "rolled back rename", err, store.ErrNotFound)
	if _, err := s.GroupByDisplayName("team"); err != nil {
		t.Fatalf("old name lost after rollback: %v", err)
	}

	// An unknown member in the middle of a PATCH: nothing of it is applied.
	_, err = s.UpdateGroup(g.ID, at(3), 0, func(tx store.GroupTx) error {
		if _, err := tx.AddMember(userRef(u2)); err != nil {
			return err
		}
		_, err := tx.AddMember(store.MemberRef{ID: "ghost", Type: store.MemberUser})
		return err
	})
	wantErr(t, "unknown member", err, store.ErrMemberNotFound)
	if !strings.Contains(err.Error(), "ghost") {
		t.Fatalf("error %q does not name the member", err)
	}
	countMembers(t, s, g.ID, 1)
	checkGroup(t, getGroup(t, s, g.ID), g)
}

func testUpdateGroupAttributes(t *testing.T, s store.Store) {
	a := createGroup(t, s, at(0), "Alpha")
	b := createGroup(t, s, at(0), "Beta")

	_, err := s.UpdateGroup(a.ID, at(1), 0, func(tx store.GroupTx) error {
		return tx.SetGroup(store.Group{DisplayName: "BETA"})
	})
	wantErr(t, "rename to taken name", err, store.ErrConflict)
	checkGroup(t, getGroup(t, s, a.ID), a)

	a2, err := s.UpdateGroup(a.ID, at(2), 1, func(tx store.GroupTx) error {
		if err := tx.SetGroup(store.Group{DisplayName: "Gamma", ExternalID: "x"}); err != nil {
			return err
		}
		if got := tx.Group(); got.DisplayName != "Gamma" || got.ID != a.ID {
			return fmt.Errorf("Group() inside tx = %+v", got)
		}
		return tx.SetGroup(store.Group{DisplayName: "Alpha2", ExternalID: "ext-a", Doc: json.RawMessage(`{"d":1}`), ID: "ignored", Meta: store.Meta{Version: 50}})
	})
	noErr(t, "rename", err)
	want := store.Group{ID: a.ID, DisplayName: "Alpha2", ExternalID: "ext-a", Doc: json.RawMessage(`{"d":1}`),
		Meta: store.Meta{Created: at(0), LastModified: at(2), Version: 2}}
	checkGroup(t, a2, want)
	checkGroup(t, getGroup(t, s, a.ID), want)
	for _, gone := range []string{"Alpha", "Gamma"} {
		_, err = s.GroupByDisplayName(gone)
		wantErr(t, "lookup "+gone, err, store.ErrNotFound)
	}
	if gs, _ := s.GroupsByExternalID("x"); len(gs) != 0 {
		t.Fatalf("intermediate externalId indexed: %+v", gs)
	}
	if gs, _ := s.GroupsByExternalID("ext-a"); len(gs) != 1 || gs[0].ID != a.ID {
		t.Fatalf("GroupsByExternalID(ext-a) = %+v", gs)
	}
	createGroup(t, s, at(3), "alpha") // old name is free

	_, err = s.UpdateGroup(b.ID, at(4), 0, func(tx store.GroupTx) error {
		return tx.SetGroup(store.Group{DisplayName: "alpha2"})
	})
	wantErr(t, "rename onto renamed group", err, store.ErrConflict)
	b2, err := s.UpdateGroup(b.ID, at(5), 0, func(tx store.GroupTx) error {
		return tx.SetGroup(store.Group{DisplayName: "beta"})
	})
	noErr(t, "case-only rename", err)
	if b2.DisplayName != "beta" || b2.Meta.Version != 2 {
		t.Fatalf("case-only rename = %+v", b2)
	}
	_, err = s.UpdateGroup(b.ID, at(6), 0, func(tx store.GroupTx) error { return tx.SetGroup(store.Group{}) })
	wantErr(t, "empty displayName", err, store.ErrInvalid)
}

func testUpdateGroupVersionMismatch(t *testing.T, s store.Store) {
	u := createUser(t, s, at(0), store.User{UserName: "u"})
	g := createGroup(t, s, at(0), "g")
	called := false
	_, err := s.UpdateGroup(g.ID, at(1), 2, func(tx store.GroupTx) error {
		called = true
		_, err := tx.AddMember(userRef(u))
		return err
	})
	wantErr(t, "ifVersion 2 on version 1", err, store.ErrVersionMismatch)
	if called {
		t.Fatal("fn ran despite the version mismatch")
	}
	countMembers(t, s, g.ID, 0)
}

func testSelfMember(t *testing.T, s store.Store) {
	g := createGroup(t, s, at(0), "g")
	_, err := s.UpdateGroup(g.ID, at(1), 0, func(tx store.GroupTx) error {
		_, err := tx.AddMember(groupRef(g))
		return err
	})
	if err == nil {
		t.Fatal("a group was added as its own member")
	}
	countMembers(t, s, g.ID, 0)
	checkGroup(t, getGroup(t, s, g.ID), g)
}

func testSetMembers(t *testing.T, s store.Store) {
	u1 := createUser(t, s, at(0), store.User{UserName: "u1"})
	u2 := createUser(t, s, at(0), store.User{UserName: "u2"})
	u3 := createUser(t, s, at(0), store.User{UserName: "u3"})
	g := createGroup(t, s, at(1), "g", userRef(u1), userRef(u2))

	var added, removed []store.MemberRef
	g2, err := s.UpdateGroup(g.ID, at(2), 0, func(tx store.GroupTx) (err error) {
		added, removed, err = tx.SetMembers([]store.MemberRef{{ID: u2.ID}, userRef(u3), userRef(u3)})
		return err
	})
	noErr(t, "SetMembers", err)
	if len(added) != 1 || added[0] != userRef(u3) {
		t.Fatalf("added = %+v, want u3 (typed)", added)
	}
	if len(removed) != 1 || removed[0] != userRef(u1) {
		t.Fatalf("removed = %+v, want u1", removed)
	}
	if g2.Meta.Version != 2 {
		t.Fatalf("version after SetMembers = %d", g2.Meta.Version)
	}
	for _, m := range members(t, s, g.ID) {
		want := map[string]time.Time{u2.ID: at(1), u3.ID: at(2)}[m.ID]
		if !m.Since.Equal(want) {
			t.Fatalf("member %s since %v, want %v", m.ID, m.Since, want)
		}
	}
	countMembers(t, s, g.ID, 2)

	same, err := s.UpdateGroup(g.ID, at(3), 0, func(tx store.GroupTx) error {
		_, _, err := tx.SetMembers([]store.MemberRef{userRef(u3), userRef(u2)})
		return err
	})
	noErr(t, "SetMembers same set", err)
	checkGroup(t, same, g2)

	_, err = s.UpdateGroup(g.ID, at(4), 0, func(tx store.GroupTx) error {
		_, _, err := tx.SetMembers([]store.MemberRef{userRef(u1), {ID: "ghost", Type: store.MemberUser}})
		return err
	})
	wantErr(t, "SetMembers with unknown", err, store.ErrMemberNotFound)
	if got, want := memberIDs(t, s, g.ID), sortedIDs(u2.ID, u3.ID); !slices.Equal(got, want) {
		t.Fatalf("members after failed SetMembers = %v, want %v", got, want)
	}
}

func testRemoveAllMembers(t *testing.T, s store.Store) {
	u1 := createUser(t, s, at(0), store.User{UserName: "u1"})
	sub := createGroup(t, s, at(0), "sub")
	g := createGroup(t, s, at(1), "g", userRef(u1), groupRef(sub))
	var removed []store.MemberRef
	g2, err := s.UpdateGroup(g.ID, at(2), 0, func(tx store.GroupTx) (err error) {
		removed, err = tx.RemoveAllMembers()
		return err
	})
	noErr(t, "RemoveAllMembers", err)
	want := []store.MemberRef{userRef(u1), groupRef(sub)}
	slices.SortFunc(want, func(a, b store.MemberRef) int { return strings.Compare(a.ID, b.ID) })
	if !slices.Equal(removed, want) {
		t.Fatalf("removed = %+v, want %+v", removed, want)
	}
	if g2.Meta.Version != 2 {
		t.Fatalf("version = %d, want 2", g2.Meta.Version)
	}
	countMembers(t, s, g.ID, 0)
	for _, id := range []string{u1.ID, sub.ID} {
		if got := parentIDs(t, s, id); len(got) != 0 {
			t.Fatalf("GroupsOf(%s) = %v after RemoveAllMembers", id, got)
		}
	}
	g3, err := s.UpdateGroup(g.ID, at(3), 0, func(tx store.GroupTx) error { _, err := tx.RemoveAllMembers(); return err })
	noErr(t, "RemoveAllMembers on empty", err)
	checkGroup(t, g3, g2)
}

func testDeleteGroup(t *testing.T, s store.Store) {
	u := createUser(t, s, at(0), store.User{UserName: "u"})
	v := createUser(t, s, at(0), store.User{UserName: "v"})
	grandchild := createGroup(t, s, at(0), "grandchild", userRef(v))
	child := createGroup(t, s, at(1), "child", userRef(u), groupRef(grandchild))
	parent := createGroup(t, s, at(2), "parent", groupRef(child), userRef(v))
	sibling := createGroup(t, s, at(2), "sibling", groupRef(child))

	got, err := s.DeleteGroup(child.ID)
	noErr(t, "DeleteGroup", err)
	want := []store.MemberRef{userRef(u), groupRef(grandchild)}
	slices.SortFunc(want, func(a, b store.MemberRef) int { return strings.Compare(a.ID, b.ID) })
	slices.SortFunc(got, func(a, b store.MemberRef) int { return strings.Compare(a.ID, b.ID) })
	if !slices.Equal(got, want) {
		t.Fatalf("DeleteGroup returned %+v, want %+v", got, want)
	}
	_, err = s.GetGroup(child.ID)
	wantErr(t, "GetGroup(deleted)", err, store.ErrNotFound)
	if got := memberIDs(t, s, parent.ID); !slices.Equal(got, []string{v.ID}) {
		t.Fatalf("parent members = %v, want only v", got)
	}
	countMembers(t, s, parent.ID, 1)
	countMembers(t, s, sibling.ID, 0)
	if got := parentIDs(t, s, u.ID); len(got) != 0 {
		t.Fatalf("GroupsOf(u) = %v after its group was deleted", got)
	}
	if got := parentIDs(t, s, grandchild.ID); len(got) != 0 {
		t.Fatalf("GroupsOf(grandchild) = %v after its parent was deleted", got)
	}
	countMembers(t, s, grandchild.ID, 1)
	count(t, "CountGroups", s.CountGroups, 3)
	count(t, "CountUsers", s.CountUsers, 2)
	createGroup(t, s, at(3), "CHILD") // name is free again
	_, err = s.DeleteGroup(child.ID)
	wantErr(t, "DeleteGroup twice", err, store.ErrNotFound)
}

func testUnknownIDs(t *testing.T, s store.Store) {
	u := createUser(t, s, at(0), store.User{UserName: "u"})
	g := createGroup(t, s, at(0), "g")
	const ghost = "ffffffffffffffffffffffffffffffff"
	for _, id := range []string{ghost, "", "a\x00b"} {
		_, err := s.GetUser(id)
		wantErr(t, "GetUser", err, store.ErrNotFound)
		_, err = s.GetGroup(id)
		wantErr(t, "GetGroup", err, store.ErrNotFound)
		err = s.GroupMembers(id, func(store.Membership) bool { return true })
		wantErr(t, "GroupMembers", err, store.ErrNotFound)
		_, err = s.CountGroupMembers(id)
		wantErr(t, "CountGroupMembers", err, store.ErrNotFound)
		_, err = s.IsMember(id, u.ID)
		wantErr(t, "IsMember", err, store.ErrNotFound)
		_, err = s.GroupsOf(id)
		wantErr(t, "GroupsOf", err, store.ErrNotFound)
		_, err = s.DeleteUser(id)
		wantErr(t, "DeleteUser", err, store.ErrNotFound)
		_, err = s.DeleteGroup(id)
		wantErr(t, "DeleteGroup", err, store.ErrNotFound)
	}
	if ok, err := s.IsMember(g.ID, ghost); err != nil || ok {
		t.Fatalf("IsMember(g, ghost) = %v, %v; want false, nil", ok, err)
	}
	// The user's id is not a group, and the other way round.
	_, err := s.GetGroup(u.ID)
	wantErr(t, "GetGroup(user id)", err, store.ErrNotFound)
	_, err = s.GetUser(g.ID)
	wantErr(t, "GetUser(group id)", err, store.ErrNotFound)
	if ps, err := s.GroupsOf(g.ID); err != nil || len(ps) != 0 {
		t.Fatalf("GroupsOf(top-level group) = %v, %v", ps, err)
	}
}

// testViewSnapshot checks that everything read inside one View comes from
// the same moment, even while a writer commits meanwhile.
func testViewSnapshot(t *testing.T, s store.Store) {
	u := createUser(t, s, at(0), store.User{UserName: "u", Active: true})
	g := createGroup(t, s, at(0), "g", userRef(u))

	writerDone := make(chan error, 1)
	err := s.View(func(r store.Reader) error {
		before := getUser(t, r, u.ID)
		countMembers(t, r, g.ID, 1)

		go func() {
			_, err := s.UpdateUser(u.ID, at(1), 0, func(u *store.User) error { u.Active = false; return nil })
			if err == nil {
				_, err = s.DeleteGroup(g.ID)
			}
			if err == nil {
				_, err = s.CreateUser(at(1), store.User{UserName: "late"})
			}
			writerDone <- err
		}()
		// A backend may block the writer until this View ends; either way
		// the reads below must not see its changes.
		select {
		case err := <-writerDone:
			noErr(t, "concurrent writer", err)
			writerDone <- nil
		case <-time.After(200 * time.Millisecond):
		}

		checkUser(t, getUser(t, r, u.ID), before)
		checkGroup(t, getGroup(t, r, g.ID), g)
		countMembers(t, r, g.ID, 1)
		count(t, "CountUsers in snapshot", r.CountUsers, 1)
		_, err := r.UserByUserName("late")
		wantErr(t, "user created after the snapshot", err, store.ErrNotFound)
		return nil
	})
	noErr(t, "View", err)
	noErr(t, "concurrent writer", <-writerDone)
	if got := getUser(t, s, u.ID); got.Active {
		t.Fatal("write made during the View is lost")
	}
	count(t, "CountUsers after View", s.CountUsers, 2)

	sentinel := errors.New("stop")
	wantErr(t, "View returns fn's error", s.View(func(store.Reader) error { return sentinel }), sentinel)
}
