package scim

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
)

func TestFilterPrefix(t *testing.T) {
	for _, tc := range []struct {
		raw, prefix string
		ok          bool
	}{
		{`userName eq "alice@example.com"`, `userName eq `, true},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName eq ""`, `urn:ietf:params:scim:schemas:core:2.0:User:userName eq `, true},
		{`members.value eq "x y"`, `members.value eq `, true},
		{` userName eq "a"`, "", false},
		{`userName eq "a" `, "", false},
		{`userName  eq "a"`, "", false},
		{`userName eq "a\"b"`, "", false},
		{`userName eq "a\\b"`, "", false},
		{"userName eq \"caf\u00e9\"", "", false},
		{"userName eq \"a\tb\"", "", false},
		{`userName eq "a" or id eq "b"`, "", false},
		{`emails[value eq "a"]`, "", false},
		{`userName pr`, "", false},
		{`userName eq true`, "", false},
		{`"`, "", false},
		{`userName eq"a"`, "", false},
		{`1userName eq "a"`, "", false},
	} {
		prefix, ok := filterPrefix(tc.raw)
		if prefix != tc.prefix || ok != tc.ok {
			t.Errorf("filterPrefix(%q) = %q, %v; want %q, %v", tc.raw, prefix, ok, tc.prefix, tc.ok)
		}
	}
}

// TestListFilterFastPath holds serveHTTP's shortcut for list filters to the
// library's own answer: for every filter, the answer through the handler
// (which skips the library's filter check when it knows the verdict) is the
// answer the library gives when it checks the filter itself.
func TestListFilterFastPath(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	alice, err := st.CreateUser(now, store.User{UserName: "alice@example.com", Email: "alice@example.com", ExternalID: "ext-a", Active: true,
		Doc: []byte(`{"displayName":"Alice","name":{"givenName":"Alice"},"emails":[{"value":"alice@example.com","primary":true}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateUser(now, store.User{UserName: "bob@example.com", Email: "bob@example.com", Active: false}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateGroup(now, store.Group{DisplayName: "eng", ExternalID: "ext-g"}, []store.MemberRef{{ID: alice.ID, Type: store.MemberUser}}); err != nil {
		t.Fatal(err)
	}
	const token = "sf-listfilter-test-token-0123456789"
	s, err := New(st, Options{BasePath: "/scim/v2", EmailFrom: "userName", Auth: NewAuthenticator(token, st, func() time.Time { return now }),
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	attrs := []string{
		"userName", "USERNAME", "externalId", "id", "displayName", "name.givenName", "name.nosuch",
		"emails.value", "emails", "active", "meta.created", "meta.lastModified", "nosuch",
		"urn:ietf:params:scim:schemas:core:2.0:User:userName", "urn:ietf:params:scim:schemas:core:2.0:Group:displayName",
		"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "employeeNumber",
		"members", "members.value", "password", "schemas",
	}
	ops := []string{"eq", "EQ", "ne", "co", "sw", "gt", "le", "xx"}
	values := []string{"alice@example.com", "eng", alice.ID, "", "2026-05-01T00:00:00Z"}
	var fast, slow int
	for _, res := range []string{"Users", "Groups"} {
		for _, a := range attrs {
			for _, op := range ops {
				for _, v := range values {
					filter := a + " " + op + " \"" + v + "\""
					q := "?filter=" + url.QueryEscape(filter) + "&count=5"
					rt, _ := s.listType(http.MethodGet, "/"+res)
					if s.shapes.libraryAccepts(rt, filter) {
						fast++
					} else {
						slow++
					}

					viaHandler := httptest.NewRecorder()
					r := httptest.NewRequest(http.MethodGet, "/scim/v2/"+res+q, nil)
					r.Header.Set("Authorization", "Bearer "+token)
					s.Handler().ServeHTTP(viaHandler, r)

					viaLibrary := httptest.NewRecorder()
					s.lib.ServeHTTP(viaLibrary, httptest.NewRequest(http.MethodGet, "/"+res+q, nil))

					if viaHandler.Code != viaLibrary.Code || viaHandler.Body.String() != viaLibrary.Body.String() ||
						viaHandler.Header().Get("Content-Type") != viaLibrary.Header().Get("Content-Type") {
						t.Errorf("GET /%s filter %q: handler answered %d %s; library %d %s",
							res, filter, viaHandler.Code, viaHandler.Body, viaLibrary.Code, viaLibrary.Body)
					}
				}
			}
		}
	}
	// Both sides of the shortcut must have been exercised.
	if fast == 0 || slow == 0 {
		t.Fatalf("fast path taken %d times, library path %d times; want both", fast, slow)
	}
}
