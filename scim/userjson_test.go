package scim

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	elimity "github.com/elimity-com/scim"

	"github.com/scimflare/scimflare/store"
)

// userJSONDocs are stored user documents of every shape the answer writer
// must get right: canonical ones it copies as they are, and ones it must
// leave to the library's way (unsorted keys, numbers, escapes, a member
// named like a field, deep nesting).
var userJSONDocs = []struct {
	doc       string
	canonical bool
}{
	{`{"displayName":"Ann A","emails":[{"primary":true,"type":"work","value":"ann@example.com"}],"name":{"familyName":"A","givenName":"Ann"}}`, true},
	{``, true},
	{`{"Zeta":"z","aaa":"first","b":"between active and externalId","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Ops","manager":{"value":"m1"}},"zz":"last"}`, true},
	{`{"a":[null,true,false,{},[]],"b":{},"c":[],"title":"Zoë 日本"}`, true},
	{`{"name":{"givenName":"B","familyName":"C"},"displayName":"B C"}`, false},
	{`{"nums":[1,2.50,1e21,-0.0000001],"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"employeeNumber":"12","costCenter":3}}`, false},
	{`{"displayName":"A \"quoted\" <b>&amp; \u00e9 é \u2028 tab\t"}`, false},
	{`{"UserName":"shadow","displayName":"shadowed"}`, false},
	{`{"ACTIVE":"no","displayName":"shadowed active"}`, false},
	{`{"deep":` + strings.Repeat(`{"d":`, 40) + `"x"` + strings.Repeat(`}`, 40) + `}`, false},
	{`{"dup":"one","dup":"two"}`, false},
}

// TestUserListAnswerIsTheLibrarys: every user list and GET-by-id answer
// scimflare writes itself (userjson.go) is, byte for byte and header for
// header, the answer the library's handlers gave for the same state and
// request — with the stored document
// copied (canonical documents) and through a map (all others), with and
// without filters, projections and paging, and its refusals.
func TestUserListAnswerIsTheLibrarys(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	now := time.Date(2026, 5, 1, 10, 11, 12, 130000000, time.UTC)
	var ids []string
	for i, d := range userJSONDocs {
		ext := fmt.Sprintf("ext-%d", i)
		switch i {
		case 1:
			ext = ""
		case 2:
			ext = `ext<&>"\é`
		}
		u, err := st.CreateUser(now.Add(time.Duration(i)*time.Hour), store.User{
			UserName: fmt.Sprintf("user%d@example.com", i), Email: fmt.Sprintf("user%d@example.com", i),
			ExternalID: ext, Active: i%3 != 0, Doc: []byte(d.doc),
		})
		if err != nil {
			t.Fatalf("doc %d: %v", i, err)
		}
		ids = append(ids, u.ID)
		got, err := st.GetUser(u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := canonicalDoc(got.Doc, nil); ok != d.canonical {
			t.Errorf("doc %d stored as %s: canonical = %v, want %v", i, got.Doc, ok, d.canonical)
		}
	}
	if _, err := st.CreateUser(now, store.User{UserName: `odd<&>"\name@example.com`, Email: "odd@example.com", Active: true}); err != nil {
		t.Fatal(err)
	}

	const token = "userjson-test-token"
	serve := func(library bool) string {
		srv := httptest.NewServer(ownOrLibrary(t, st, token, time.Now, library))
		t.Cleanup(srv.Close)
		return srv.URL + "/scim/v2"
	}
	own, lib := serve(false), serve(true)

	queries := []string{
		"",
		"count=2&startIndex=3",
		"count=0",
		"count=-3&startIndex=0",
		"count=abc",
		"startIndex=x&count=y",
		"attributes=userName,emails",
		"excludedAttributes=name,emails",
		"attributes=" + url.QueryEscape("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"),
		"filter=" + url.QueryEscape(`emails.value co "example"`),
		"filter=" + url.QueryEscape(`userName sw "user" and active eq true`),
		"filter=" + url.QueryEscape(`userName sw "user"`) + "&count=3&startIndex=2",
		"filter=" + url.QueryEscape(`id pr`),
		"filter=" + url.QueryEscape(`meta.created gt "2026-05-01T12:00:00Z"`),
		"filter=" + url.QueryEscape(`externalId eq "ext<&>\"\\é"`),
		"filter=" + url.QueryEscape(`userName eq "nobody@example.com"`),
		"filter=" + url.QueryEscape(`userName eq odd`),
		"filter=" + url.QueryEscape(`nosuchattr eq "x"`),
		"filter=",
	}
	for i := range queries {
		queries[i] = "/Users?" + queries[i]
	}
	// GET by id is answered by the same writer (getUser).
	queries = append(queries, "/Users/no-such-id", "/Users/.search", "/Users/a%2Fb", "/users/"+ids[0]+"/")
	for _, id := range ids {
		queries = append(queries, "/Users/"+id, "/Users/"+id+"?attributes=userName,name.givenName", "/Users/"+id+"?excludedAttributes=emails")
	}
	for i, id := range ids {
		queries = append(queries,
			"filter="+url.QueryEscape(fmt.Sprintf(`userName eq "USER%d@example.com"`, i)),
			"filter="+url.QueryEscape(fmt.Sprintf(`id eq %q`, id)),
			"filter="+url.QueryEscape(fmt.Sprintf(`userName eq "user%d@example.com"`, i))+"&attributes=displayName",
			"filter="+url.QueryEscape(fmt.Sprintf(`userName eq "user%d@example.com" and displayName pr`, i)),
		)
		for j := len(queries) - 4; j < len(queries); j++ {
			queries[j] = "/Users?" + queries[j]
		}
	}
	get := func(base, q string) (int, string, string, string) {
		req, err := http.NewRequest(http.MethodGet, base+q, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, res.Header.Get("Content-Type") + " Etag=" + res.Header.Get("Etag"), res.Header.Get("Location"), string(b)
	}
	found := 0
	for _, q := range queries {
		gs, gct, gloc, gb := get(own, q)
		ws, wct, wloc, wb := get(lib, q)
		if gs != ws || gct != wct || gloc != wloc || gb != wb {
			t.Errorf("GET %s\n own:     %d %s %s %s\n library: %d %s %s %s", q, gs, gct, gloc, gb, ws, wct, wloc, wb)
		}
		if gs == http.StatusOK && strings.Contains(gb, `"id":`) {
			found++
		}
	}
	if found < len(ids) {
		t.Fatalf("only %d answers held a user: the comparison proves little", found)
	}
}

// TestUserCreateAnswerIsTheLibrarys: POST /Users answered by scimflare
// (postUser: cached schema, body decoded once, answer written directly)
// gives the library's status, headers and body for every body — accepted,
// normalized, refused — with only the generated ids differing.
func TestUserCreateAnswerIsTheLibrarys(t *testing.T) {
	const token = "userjson-test-token"
	now := time.Date(2026, 5, 1, 10, 11, 12, 130000000, time.UTC)
	serve := func(library bool) string {
		st, err := store.Open(filepath.Join(t.TempDir(), "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		srv := httptest.NewServer(ownOrLibrary(t, st, token, func() time.Time { return now }, library))
		t.Cleanup(srv.Close)
		return srv.URL + "/scim/v2"
	}
	own, lib := serve(false), serve(true)
	const core = `"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"]`
	bodies := []string{
		`{` + core + `,"userName":"a@example.com"}`,
		`{` + core + `,"userName":"b@example.com","externalId":"ext-b","active":false,"displayName":"B <&> \"Bee\"","name":{"givenName":"B","familyName":"Zoë"},"emails":[{"value":"b@example.com","primary":true,"type":"work"}],"roles":[]}`,
		`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"userName":"c@example.com","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"Ops","manager":"m-1"},"active":"True"}`,
		`{"schemas":["urn:scim:schemas:core:1.0"],"userName":"d@example.com","urn:scim:schemas:core:1.0":{"title":"Legacy"}}`,
		`{"userName":"e@example.com","password":"secret","nickName":null}`,
		`{` + core + `,"userName":"f@example.com","x509Certificates":[{"value":"abc"}],"unknownAttr":5}`,
		`{` + core + `,"userName":"a@example.com"}`,
		`{` + core + `,"userName":"A@EXAMPLE.COM"}`,
		`{` + core + `,"userName":""}`,
		`{` + core + `}`,
		`{` + core + `,"userName":5}`,
		`{` + core + `,"userName":"g@example.com","active":"maybe"}`,
		`{` + core + `,"userName":"h@example.com","emails":"not a list"}`,
		`{` + core + `,"userName":"i@example.com"} trailing`,
		`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"userName":"j@example.com"}`,
		`[]`,
		`null`,
		`"str"`,
		`{`,
	}
	post := func(base, body string) (status int, hdr http.Header, b string) {
		req, err := http.NewRequest(http.MethodPost, base+"/Users", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/scim+json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, res.Header, string(raw)
	}
	created := 0
	for _, body := range bodies {
		gs, gh, gb := post(own, body)
		ws, wh, wb := post(lib, body)
		// Each store generates its own ids: name them alike.
		if loc := gh.Get("Location"); loc != "" {
			id := loc[strings.LastIndex(loc, "/")+1:]
			gb = strings.ReplaceAll(gb, id, "ID")
			gh.Set("Location", strings.ReplaceAll(loc, id, "ID"))
			created++
		}
		if loc := wh.Get("Location"); loc != "" {
			id := loc[strings.LastIndex(loc, "/")+1:]
			wb = strings.ReplaceAll(wb, id, "ID")
			wh.Set("Location", strings.ReplaceAll(loc, id, "ID"))
		}
		for _, h := range []string{"Content-Type", "Location", "Etag"} {
			if gh.Get(h) != wh.Get(h) {
				t.Errorf("POST %s: %s %q, library %q", body, h, gh.Get(h), wh.Get(h))
			}
		}
		if gs != ws || gb != wb {
			t.Errorf("POST %s\n own:     %d %s\n library: %d %s", body, gs, gb, ws, wb)
		}
	}
	if created < 5 {
		t.Fatalf("only %d users created: the comparison proves little", created)
	}
}

// TestAppendJSONIsMarshal: appendJSON writes every value json.Marshal
// writes, byte for byte, and fails where json.Marshal fails.
func TestAppendJSONIsMarshal(t *testing.T) {
	docs := []string{
		`{"displayName":"B <&> \"Bee\" \u2028 \\ tab\t","name":{"givenName":"B","familyName":"Zoë 日本"},"emails":[{"value":"b@example.com","primary":true,"type":"work"}],"roles":[],"n":[1,2.50,1e21,-0.0000001,12345678901234567890],"z":null,"Zeta":{},"bad":"\ud800"}`,
		`{"a":[[],[[]],{"b":[null,false]}],"":"empty key","<key>":"html key"}`,
		"{\"raw\":\"bad\xffutf8 \x7f\"}",
	}
	var values []any
	for _, d := range docs {
		for _, useNumber := range []bool{false, true} {
			dec := json.NewDecoder(strings.NewReader(d))
			if useNumber {
				dec.UseNumber()
			}
			var v any
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("%s: %v", d, err)
			}
			values = append(values, v)
		}
	}
	values = append(values,
		map[string]any{"nilList": []any(nil), "nilMap": map[string]any(nil), "int": int64(-3), "named": elimity.ResourceAttributes{"b": 1, "a": "x"}, "strs": []string{"<", "b"}},
		[]any{json.Number("01.50"), float32(1.5), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		map[string]any{"nan": math.NaN()},
		map[string]any{"bad": json.Number("not a number")},
	)
	for _, v := range values {
		want, werr := json.Marshal(v)
		got, gerr := appendJSON(nil, v)
		if (gerr != nil) != (werr != nil) || (werr == nil && string(got) != string(want)) {
			t.Errorf("%#v:\n appendJSON:   %s %v\n json.Marshal: %s %v", v, got, gerr, want, werr)
		}
	}
}

// ownOrLibrary is a SCIM handler over st that answers users with
// scimflare's own writers, or (library) the way it did before them.
func ownOrLibrary(tb testing.TB, st store.Backend, token string, now func() time.Time, library bool) http.Handler {
	tb.Helper()
	s, err := New(st, Options{BasePath: "/scim/v2", Auth: NewAuthenticator(token, st, now), AuthFailureLimit: -1, Now: now})
	if err != nil {
		tb.Fatal(err)
	}
	s.viaLibrary = library
	return s.Handler()
}
