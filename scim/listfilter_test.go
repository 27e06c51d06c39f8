package scim

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	elimity "github.com/elimity-com/scim"
	"github.com/elimity-com/scim/filter"
	"github.com/elimity-com/scim/schema"

	"github.com/scimflare/scimflare/scim/query"
	"github.com/scimflare/scimflare/store"
)

// libraryValidates is the library's list-request filter check
// (getFilterValidator in elimity-com/scim's server.go): the resource schema
// with the common attributes, plus its extensions.
func libraryValidates(rt elimity.ResourceType, raw string) bool {
	withCommon := rt.Schema
	attrs := make([]schema.CoreAttribute, len(rt.Schema.Attributes), len(rt.Schema.Attributes)+len(schema.CommonAttributes()))
	copy(attrs, rt.Schema.Attributes)
	withCommon.Attributes = append(attrs, schema.CommonAttributes()...)
	exts := make([]schema.Schema, 0, len(rt.SchemaExtensions))
	for _, e := range rt.SchemaExtensions {
		exts = append(exts, e.Schema)
	}
	v, err := filter.NewValidator(raw, withCommon, exts...)
	if err != nil {
		return false
	}
	return v.Validate() == nil
}

// TestOwnFilterAcceptsWhatLibraryAccepted: scimflare's parser now decides
// every list filter (the library never sees one). No filter answered
// before (accepted by the library's validator, then by scimflare's parser)
// may be refused: an IdP's lookup that worked keeps working. Every refusal
// is 400 invalidFilter.
func TestOwnFilterAcceptsWhatLibraryAccepted(t *testing.T) {
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
	ops := []string{"eq", "EQ", "ne", "co", "sw", "gt", "le", "pr", "xx"}
	values := []string{"alice@example.com", "eng", alice.ID, "", "2026-05-01T00:00:00Z"}
	var accepted, refused, widened int
	for _, rt := range []elimity.ResourceType{s.userType, s.grpType} {
		for _, a := range attrs {
			for _, op := range ops {
				for _, v := range values {
					f := a + " " + op + " \"" + v + "\""
					if op == "pr" {
						f = a + " pr"
					}
					rec := httptest.NewRecorder()
					r := httptest.NewRequest(http.MethodGet, "/scim/v2"+rt.Endpoint+"?filter="+url.QueryEscape(f)+"&count=5", nil)
					r.Header.Set("Authorization", "Bearer "+token)
					s.Handler().ServeHTTP(rec, r)
					res := userResource
					if rt.Endpoint == "/Groups" {
						res = groupResource
					}
					_, cerr := query.Compile(f, res)
					// Before, a filter was answered when the library's
					// validator and then scimflare's parser accepted it.
					answeredBefore := libraryValidates(rt, f) && cerr == nil
					switch {
					case rec.Code == http.StatusOK:
						accepted++
						if !libraryValidates(rt, f) {
							widened++
						}
					case answeredBefore:
						t.Errorf("GET %s filter %q: answered before, now %d %s", rt.Endpoint, f, rec.Code, rec.Body)
					case rec.Code != http.StatusBadRequest || !bytesContains(rec.Body.Bytes(), `"invalidFilter"`):
						t.Errorf("GET %s filter %q: %d %s, want 200 or 400 invalidFilter", rt.Endpoint, f, rec.Code, rec.Body)
					default:
						refused++
					}
				}
			}
		}
	}
	if accepted == 0 || refused == 0 {
		t.Fatalf("%d filters accepted, %d refused; want both", accepted, refused)
	}
	t.Logf("%d filters answered (%d of them refused by the library's validator), %d refused", accepted, widened, refused)
}

func bytesContains(b []byte, s string) bool { return strings.Contains(string(b), s) }

// TestSetItemsPerPage: the library's key order takes the fast path; any
// other shape is decoded and re-encoded, never left wrong.
func TestSetItemsPerPage(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"Resources":[{"itemsPerPage":7}],"itemsPerPage":100,"schemas":[],"startIndex":1,"totalResults":2}`,
			`{"Resources":[{"itemsPerPage":7}],"itemsPerPage":2,"schemas":[],"startIndex":1,"totalResults":2}`},
		{`{"itemsPerPage":100,"Resources":[{"itemsPerPage":7}]}`, `{"Resources":[{"itemsPerPage":7}],"itemsPerPage":2}`},
		{`{"Resources":[],"itemsPerPage":1e2}`, `{"Resources":[],"itemsPerPage":2}`},
	} {
		if got := string(setItemsPerPage([]byte(c.in), 2)); got != c.want {
			t.Errorf("setItemsPerPage(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}
