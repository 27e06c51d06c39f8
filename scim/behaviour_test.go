package scim_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
)

func TestUserNameFilterIgnoresCase(t *testing.T) {
	e := newEnv(t)
	id := e.createUser("Barbara.Jensen@Example.com")
	e.createUser("someone@example.com")
	for _, f := range []string{
		`userName eq "barbara.jensen@example.com"`,
		`userName eq "BARBARA.JENSEN@EXAMPLE.COM"`,
		`USERNAME eq "bArBaRa.JeNsEn@eXaMpLe.CoM"`,
		`userName sw "BARBARA"`,
		`userName ew "@EXAMPLE.COM" and userName co "JENSEN"`,
		`userName ne "someone@EXAMPLE.com" and userName pr`,
		`userName eq "barbara.jensen@example.com" and active eq true`,
	} {
		t.Run(f, func(t *testing.T) {
			wantIDs(t, listIDs(t, e.must(200, "GET", "/Users?"+filterQuery(f), ""), 1), id)
		})
	}
}

// id never changes: a PATCH that targets id is rejected (400 mutability),
// an id in a no-path value or a PUT body is ignored when it is the
// resource's own id (Okta sends that) and rejected when it differs.
func TestIDNeverChanges(t *testing.T) {
	e := newEnv(t)
	uid := e.createUser("a@example.com")
	gid := e.createGroup("g")
	const other = "0123456789abcdef0123456789abcdef"

	wantSCIMError(t, e.req("PATCH", "/Users/"+uid, patchBody(`[{"op":"replace","path":"id","value":"`+other+`"}]`)), 400, "mutability")
	wantSCIMError(t, e.req("PATCH", "/Groups/"+gid, patchBody(`[{"op":"replace","value":{"id":"`+other+`","displayName":"h"}}]`)), 400, "mutability")
	e.must(204, "PATCH", "/Groups/"+gid, patchBody(`[{"op":"replace","value":{"id":"`+gid+`","displayName":"h"}}]`))

	// PUT: id in the body is ignored; the URL names the resource.
	r := e.must(200, "PUT", "/Users/"+uid, `{"schemas":["`+userURN+`"],"id":"`+other+`","userName":"a@example.com","active":true}`)
	if got := str(r.obj(t)["id"]); got != uid {
		t.Fatalf("PUT answered id %q, want %q", got, uid)
	}
	r = e.must(200, "PUT", "/Groups/"+gid, `{"schemas":["`+groupURN+`"],"id":"`+other+`","displayName":"h"}`)
	if got := str(r.obj(t)["id"]); got != gid {
		t.Fatalf("PUT answered id %q, want %q", got, gid)
	}
	e.must(404, "GET", "/Users/"+other, "")
	e.must(404, "GET", "/Groups/"+other, "")
	if n, _ := e.st.CountUsers(); n != 1 {
		t.Fatalf("%d users stored, want 1", n)
	}
	getUser(t, e.st, uid)
}

// The password is accepted on POST, PUT and PATCH, never returned, and
// never written to the state file.
func TestPasswordNeverStored(t *testing.T) {
	e := newEnv(t)
	const p1, p2, p3 = "Pa55-first-S3cret", "Pa55-second-S3cret", "Pa55-third-S3cret"
	r := e.must(201, "POST", "/Users", `{"schemas":["`+userURN+`"],"userName":"p@example.com","password":"`+p1+`"}`)
	uid := str(r.obj(t)["id"])
	for _, got := range []resp{
		r,
		e.must(200, "PUT", "/Users/"+uid, `{"schemas":["`+userURN+`"],"userName":"p@example.com","password":"`+p2+`"}`),
		e.must(200, "PATCH", "/Users/"+uid+"?attributes=userName,password", patchBody(`[{"op":"replace","path":"password","value":"`+p3+`"}]`)),
		e.must(200, "PATCH", "/Users/"+uid+"?excludedAttributes=emails", patchBody(`[{"op":"replace","value":{"password":"`+p3+`"}}]`)),
		e.must(200, "GET", "/Users/"+uid, ""),
		e.must(200, "GET", "/Users/"+uid+"?attributes=password", ""),
		e.must(200, "GET", "/Users?"+filterQuery(`userName eq "p@example.com"`), ""),
	} {
		if bytes.Contains(got.raw, []byte("Pa55")) || bytes.Contains(bytes.ToLower(got.raw), []byte("password")) {
			t.Errorf("a response carries the password: %s", got.raw)
		}
	}
	path := e.st.Path()
	e.srv.Close()
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(raw, []byte("p@example.com")) {
		t.Fatal("the state file does not hold the user at all; the check below would prove nothing")
	}
	for _, p := range []string{p1, p2, p3} {
		if bytes.Contains(raw, []byte(p)) {
			t.Errorf("the state file contains password %q", p)
		}
	}
}

func TestDeleteUserLeavesEveryGroup(t *testing.T) {
	e := newEnv(t)
	u := e.createUser("leaver@example.com")
	stay := e.createUser("stayer@example.com")
	g1 := e.createGroup("g1", u, stay)
	g2 := e.createGroup("g2", u)
	g3 := e.createGroup("g3", stay)
	parent := e.createGroup("parent", g2)
	e.rec.take()

	e.must(204, "DELETE", "/Users/"+u, "")
	wantMembers(t, e.st, g1, stay)
	wantMembers(t, e.st, g2)
	wantMembers(t, e.st, g3, stay)
	wantMembers(t, e.st, parent, g2)
	if gs, err := e.st.GroupsOf(u); len(gs) != 0 || (err != nil && !errors.Is(err, store.ErrNotFound)) {
		t.Fatalf("GroupsOf(deleted user) = %v, %v", gs, err)
	}
	listIDs(t, e.must(200, "GET", "/Groups?"+filterQuery(`members.value eq "`+u+`"`), ""), 0)
	g := e.must(200, "GET", "/Groups/"+g1, "").obj(t)
	if strings.Contains(jsonString(g["members"]), u) {
		t.Fatalf("GET still lists the deleted user: %s", jsonString(g))
	}
	c := e.rec.take()
	if len(c) != 1 || fmt.Sprint(c[0].UserIDs) != fmt.Sprint([]string{u}) || fmt.Sprint(c[0].Emails) != "[leaver@example.com]" {
		t.Fatalf("delete notified %+v", c)
	}
}

// emailChangedBeforeDelete changes a user's email in its own transaction
// just before DeleteUser runs: the interleaving of a concurrent PATCH
// landing between the DELETE handler's read and its delete.
type emailChangedBeforeDelete struct {
	store.Store
	newEmail string
}

func (s emailChangedBeforeDelete) DeleteUser(id string) (store.DeletedUser, error) {
	if _, err := s.Store.UpdateUser(id, time.Now(), 0, func(u *store.User) error { u.Email = s.newEmail; return nil }); err != nil {
		return store.DeletedUser{}, err
	}
	return s.Store.DeleteUser(id)
}

func TestDeleteUserNotifiesTheEmailChangedByAConcurrentPatch(t *testing.T) {
	e := newEnv(t, withStore(func(s store.Store) store.Store { return emailChangedBeforeDelete{s, "renamed@example.com"} }))
	u := e.createUser("leaver@example.com")
	e.rec.take()
	e.must(204, "DELETE", "/Users/"+u, "")
	c := e.rec.take()
	if len(c) != 1 {
		t.Fatalf("delete notified %+v, want one change", c)
	}
	got := fmt.Sprint(c[0].Emails)
	if !strings.Contains(got, "renamed@example.com") || !strings.Contains(got, "leaver@example.com") {
		t.Fatalf("delete notified emails %s, want both the email at deletion (renamed@) and the one read before (leaver@)", got)
	}
}

// noMembersStore fails the test when anything reads a group's member list.
type noMembersStore struct {
	store.Store
	reads *atomic.Int64
}

func (s noMembersStore) GroupMembers(id string, fn func(store.Membership) bool) error {
	s.reads.Add(1)
	return s.Store.GroupMembers(id, fn)
}

func (s noMembersStore) View(fn func(store.Reader) error) error {
	return s.Store.View(func(rd store.Reader) error { return fn(noMembersReader{rd, s.reads}) })
}

type noMembersReader struct {
	store.Reader
	reads *atomic.Int64
}

func (r noMembersReader) GroupMembers(id string, fn func(store.Membership) bool) error {
	r.reads.Add(1)
	return r.Reader.GroupMembers(id, fn)
}

func TestExcludedMembersNeverReadsMembers(t *testing.T) {
	var reads atomic.Int64
	e := newEnv(t, withStore(func(s store.Store) store.Store { return noMembersStore{s, &reads} }))
	u := e.createUser("a@example.com")
	g := e.createGroup("big", u)
	e.createGroup("other", u)
	reads.Store(0)

	for _, path := range []string{
		"/Groups?excludedAttributes=members",
		"/Groups?excludedAttributes=members&startIndex=2&count=1",
		"/Groups?excludedAttributes=members&" + filterQuery(`displayName eq "BIG"`),
		"/Groups?excludedAttributes=members&" + filterQuery(`members.value eq "`+u+`"`),
		"/Groups?attributes=displayName",
		"/Groups/" + g + "?excludedAttributes=members",
		"/Groups/" + g + "?attributes=displayName,externalId",
	} {
		r := e.must(200, "GET", path, "")
		if strings.Contains(string(r.raw), `"members"`) {
			t.Errorf("GET %s returned members: %s", path, r.raw)
		}
		if n := reads.Swap(0); n != 0 {
			t.Errorf("GET %s read a member list %d times", path, n)
		}
	}
	e.must(204, "PATCH", "/Groups/"+g, patchBody(`[{"op":"replace","path":"displayName","value":"bigger"}]`))
	if n := reads.Swap(0); n != 0 {
		t.Errorf("a rename read the member list %d times", n)
	}
	// The decorator is live: a plain GET does read members.
	e.must(200, "GET", "/Groups/"+g, "")
	if reads.Load() == 0 {
		t.Fatal("the decorator saw no member read on a plain GET; the checks above prove nothing")
	}
}

func TestPaginationStable(t *testing.T) {
	e := newEnv(t)
	for i := range 7 {
		e.createUser(fmt.Sprintf("user%d@example.com", i))
	}
	all := listIDs(t, e.must(200, "GET", "/Users", ""), 7)
	var paged []string
	for start := 1; start <= 7; start += 3 {
		r := e.must(200, "GET", fmt.Sprintf("/Users?startIndex=%d&count=3", start), "")
		m := r.obj(t)
		if m["startIndex"].(float64) != float64(start) {
			t.Errorf("startIndex %v, want %d", m["startIndex"], start)
		}
		paged = append(paged, listIDs(t, r, 7)...)
	}
	wantIDs(t, paged, all...)
	// The same page twice is the same page.
	wantIDs(t, listIDs(t, e.must(200, "GET", "/Users?startIndex=4&count=3", ""), 7), all[3:6]...)
	// Filtered pages.
	f := filterQuery(`userName sw "user"`)
	wantIDs(t, listIDs(t, e.must(200, "GET", "/Users?"+f+"&startIndex=6&count=5", ""), 7), all[5:]...)

	// Past the end, and count=0: Resources is [], never null or absent.
	for _, path := range []string{"/Users?startIndex=50", "/Users?count=0", "/Groups", "/Users?" + filterQuery(`userName eq "nobody"`)} {
		r := e.must(200, "GET", path, "")
		if !bytes.Contains(r.raw, []byte(`"Resources":[]`)) {
			t.Errorf("GET %s: want \"Resources\":[] in %s", path, r.raw)
		}
	}
}

func TestIfMatch(t *testing.T) {
	e := newEnv(t)
	uid := e.createUser("etag@example.com")
	gid := e.createGroup("etag")
	r := e.must(200, "GET", "/Users/"+uid, "")
	v1 := r.header.Get("Etag")
	if v1 == "" || v1 != r.obj(t)["meta"].(map[string]any)["version"] {
		t.Fatalf("ETag %q does not match meta.version in %s", v1, r.raw)
	}
	// Current version: accepted.
	r = e.must(204, "PATCH", "/Users/"+uid, patchBody(`[{"op":"replace","path":"displayName","value":"One"}]`), "If-Match", v1)
	v2 := r.header.Get("Etag")
	if v2 == "" || v2 == v1 {
		t.Fatalf("ETag after PATCH %q, before %q", v2, v1)
	}
	e.rec.take()
	before := snapshot(t, e.st)
	// Stale version: 412 on PATCH and PUT, nothing applied.
	wantSCIMError(t, e.req("PATCH", "/Users/"+uid, patchBody(`[{"op":"replace","path":"displayName","value":"Two"}]`), "If-Match", v1), 412, "")
	wantSCIMError(t, e.req("PUT", "/Users/"+uid, `{"schemas":["`+userURN+`"],"userName":"etag@example.com","displayName":"Two"}`, "If-Match", v1), 412, "")
	wantSCIMError(t, e.req("PUT", "/Users/"+uid, `{"schemas":["`+userURN+`"],"userName":"etag@example.com"}`, "If-Match", `W/"not-ours"`), 412, "")
	unchanged(t, e.st, before)
	e.wantNoChange()
	g := e.must(200, "GET", "/Groups/"+gid, "").header.Get("Etag")
	e.must(204, "PATCH", "/Groups/"+gid, patchBody(`[{"op":"add","path":"members","value":[{"value":"`+uid+`"}]}]`), "If-Match", g)
	e.rec.take()
	before = snapshot(t, e.st)
	wantSCIMError(t, e.req("PATCH", "/Groups/"+gid, patchBody(`[{"op":"remove","path":"members"}]`), "If-Match", g), 412, "")
	wantSCIMError(t, e.req("PUT", "/Groups/"+gid, `{"schemas":["`+groupURN+`"],"displayName":"etag","members":[]}`, "If-Match", g), 412, "")
	unchanged(t, e.st, before)
	e.wantNoChange()
	// The service provider config says so.
	if spc := e.must(200, "GET", "/ServiceProviderConfig", "").obj(t); jsonString(spc["etag"]) != `{"supported":true}` {
		t.Errorf("ServiceProviderConfig etag = %s", jsonString(spc["etag"]))
	}
	// "*" matches any version.
	e.must(200, "PUT", "/Users/"+uid, `{"schemas":["`+userURN+`"],"userName":"etag@example.com"}`, "If-Match", "*")
}

func TestWriteStatusCodes(t *testing.T) {
	e := newEnv(t)
	r := e.must(201, "POST", "/Users", `{"schemas":["`+userURN+`"],"userName":"s@example.com","displayName":"S"}`)
	uid := str(r.obj(t)["id"])
	if loc := r.header.Get("Location"); !strings.HasSuffix(loc, basePath+"/Users/"+uid) {
		t.Errorf("POST /Users Location %q", loc)
	}
	r = e.must(201, "POST", "/Groups", `{"schemas":["`+groupURN+`"],"displayName":"G"}`)
	gid := str(r.obj(t)["id"])
	if loc := r.header.Get("Location"); !strings.HasSuffix(loc, basePath+"/Groups/"+gid) {
		t.Errorf("POST /Groups Location %q", loc)
	}

	// PATCH: 204 without a body by default.
	r = e.must(204, "PATCH", "/Users/"+uid, patchBody(`[{"op":"replace","path":"displayName","value":"T"}]`))
	if len(r.raw) != 0 {
		t.Errorf("204 with a body: %s", r.raw)
	}
	e.must(204, "PATCH", "/Groups/"+gid, patchBody(`[{"op":"add","path":"members","value":[{"value":"`+uid+`"}]}]`))

	// 200 with the asked-for attributes.
	m := e.must(200, "PATCH", "/Users/"+uid+"?attributes=displayName", patchBody(`[{"op":"replace","path":"displayName","value":"U"}]`)).obj(t)
	if m["displayName"] != "U" || m["id"] != uid || m["userName"] != nil {
		t.Errorf("PATCH ?attributes=displayName answered %s", jsonString(m))
	}
	m = e.must(200, "PATCH", "/Groups/"+gid+"?attributes=members", patchBody(`[{"op":"replace","path":"displayName","value":"H"}]`)).obj(t)
	if !strings.Contains(jsonString(m["members"]), uid) || m["displayName"] != nil {
		t.Errorf("PATCH ?attributes=members answered %s", jsonString(m))
	}
	m = e.must(200, "PATCH", "/Groups/"+gid+"?attributes=displayName", patchBody(`[{"op":"replace","path":"displayName","value":"I"}]`)).obj(t)
	if m["displayName"] != "I" || m["members"] != nil {
		t.Errorf("PATCH ?attributes=displayName answered %s", jsonString(m))
	}
	e.must(204, "DELETE", "/Groups/"+gid, "")
	e.must(204, "DELETE", "/Users/"+uid, "")
}

// With identity.email_from: primaryEmail the Cloudflare identity follows
// the primary email, and a change of it reports the old address so its
// access is re-planned.
func TestIdentityEmailFromPrimaryEmail(t *testing.T) {
	e := newEnv(t, withEmailFrom("primaryEmail"))
	r := e.must(201, "POST", "/Users", `{"schemas":["`+userURN+`"],"userName":"jdoe","emails":[{"value":"home@example.com","type":"home"},{"value":"jdoe@example.com","type":"work","primary":true}]}`)
	uid := str(r.obj(t)["id"])
	if got := getUser(t, e.st, uid).Email; got != "jdoe@example.com" {
		t.Fatalf("identity email %q, want the primary one", got)
	}
	e.rec.take()
	e.must(204, "PATCH", "/Users/"+uid, patchBody(`[{"op":"replace","path":"emails[primary eq true].value","value":"john.doe@example.com"}]`))
	if got := getUser(t, e.st, uid).Email; got != "john.doe@example.com" {
		t.Fatalf("identity email %q after PATCH", got)
	}
	c := e.rec.take()
	if len(c) != 1 || fmt.Sprint(c[0].Emails) != "[jdoe@example.com]" {
		t.Fatalf("notified %+v, want the old email", c)
	}
}
