package scim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scimflare/scimflare/scim"
	"github.com/scimflare/scimflare/store"
)

const fuzzToken = "sf-fuzz-token-0123456789"

// fuzzRoutes are the writes an IdP sends with a body. {user} and {group}
// stand for the id of a seeded user and group.
var fuzzRoutes = []struct{ method, path string }{
	{http.MethodPost, "/Users"},
	{http.MethodPut, "/Users/{user}"},
	{http.MethodPatch, "/Users/{user}"},
	{http.MethodPost, "/Groups"},
	{http.MethodPatch, "/Groups/{group}"},
	{http.MethodPut, "/Groups/{group}"},
}

// fuzzState is the seeded store every input starts from: alice and bob;
// group eng = {alice}; group all = {eng}. The file is built once per
// process and copied for each input, so that an input sees the same ids and
// versions every time it runs in that process.
type fuzzState struct {
	file       []byte
	alice, bob string
	eng, all   string
	versions   map[string]uint64
	created    time.Time
}

var (
	fuzzOnce   sync.Once
	fuzzSeeded fuzzState
	fuzzErr    error
)

// FuzzSCIMRequest sends arbitrary bodies to the real SCIM handler over the
// real bbolt store. sel picks the route and the request's headers. Whatever
// the body, the handler must answer promptly, never with a 5xx; a 4xx must
// be a SCIM error and leave the store exactly as it was (nobody gains or
// loses access through a rejected request); an unauthenticated request must
// get 401; a stale If-Match must never succeed; a 2xx that changed the store
// must have told the reconciler. In bodies, $ALICE, $BOB, $ENG and $ALL are
// replaced by the seeded ids, so inputs can name real members across runs.
// Seeds live in testdata/fuzz/FuzzSCIMRequest.
func FuzzSCIMRequest(f *testing.F) {
	f.Add(byte(0), []byte(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"carol@example.com","active":true}`))
	f.Add(byte(4), []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"add","path":"members","value":[{"value":"$BOB"}]}]}`))
	f.Fuzz(func(t *testing.T, sel byte, body []byte) {
		seed := seededState(t)
		st, h, rec := fuzzServer(t, seed)

		route := fuzzRoutes[int(sel)%len(fuzzRoutes)]
		v := int(sel) / len(fuzzRoutes) // 0..42: the request's variations
		user, group := seed.alice, seed.eng
		if v&1 != 0 {
			user, group = seed.bob, seed.all
		}
		path := strings.NewReplacer("{user}", user, "{group}", group).Replace(route.path)
		target := user
		if strings.HasPrefix(route.path, "/Groups/") {
			target = group
		}
		body = []byte(strings.NewReplacer(
			"$ALICE", seed.alice, "$BOB", seed.bob, "$ENG", seed.eng, "$ALL", seed.all,
		).Replace(string(body)))

		req := httptest.NewRequest(route.method, "/scim/v2"+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/scim+json")
		unauthenticated := v >= 40
		if !unauthenticated {
			req.Header.Set("Authorization", "Bearer "+fuzzToken)
		} else if v&1 != 0 {
			req.Header.Set("Authorization", "Bearer "+fuzzToken+"x")
		}
		if v&2 != 0 {
			req.Header.Set("Prefer", "return=representation")
		}
		stale := false
		if route.method != http.MethodPost {
			switch (v >> 2) & 3 {
			case 1:
				req.Header.Set("If-Match", `W/"`+strconv.FormatUint(seed.versions[target], 10)+`"`)
			case 2:
				req.Header.Set("If-Match", `W/"`+strconv.FormatUint(seed.versions[target]+7, 10)+`"`)
				stale = true
			case 3:
				req.Header.Set("If-Match", "*")
			}
		}

		before := fuzzSnapshot(t, st)
		accessBefore := accessSnapshot(t, st)
		res := serveWithin(t, h, req, 10*time.Second)
		after := fuzzSnapshot(t, st)
		accessAfter := accessSnapshot(t, st)
		changes := rec.take()
		what := fmt.Sprintf("%s %s (sel %d) -> %d %s", route.method, path, sel, res.Code, res.Body.Bytes())

		switch code := res.Code; {
		case code >= 500:
			t.Fatalf("server error: %s", what)
		case unauthenticated && code != http.StatusUnauthorized:
			t.Fatalf("unauthenticated request not refused with 401: %s", what)
		case stale && code < 300:
			t.Fatalf("stale If-Match succeeded: %s", what)
		case code >= 400:
			checkSCIMError(t, res, what)
			if after != before {
				t.Fatalf("rejected request changed the store: %s\nbefore:\n%s\nafter:\n%s", what, before, after)
			}
			if len(changes) > 0 {
				t.Fatalf("rejected request notified %+v: %s", changes, what)
			}
		case code == http.StatusOK || code == http.StatusCreated || code == http.StatusNoContent:
			if code != http.StatusNoContent {
				var doc map[string]any
				if err := json.Unmarshal(res.Body.Bytes(), &doc); err != nil {
					t.Fatalf("2xx body is not a JSON object (%v): %s", err, what)
				}
				if id, _ := doc["id"].(string); id == "" {
					t.Fatalf("2xx body has no id: %s", what)
				}
			}
			// Only what decides access must reach the reconciler; a change to
			// a group's description alone need not re-plan its members.
			if accessAfter != accessBefore && len(changes) == 0 {
				t.Fatalf("acknowledged write changed who may have access without telling the reconciler: %s", what)
			}
			checkIntegrity(t, st, what)
		default:
			t.Fatalf("unexpected status: %s", what)
		}
	})
}

// seededState builds the seeded store file once per process.
func seededState(t *testing.T) fuzzState {
	t.Helper()
	fuzzOnce.Do(func() { fuzzSeeded, fuzzErr = buildSeed() })
	if fuzzErr != nil {
		t.Fatal(fuzzErr)
	}
	return fuzzSeeded
}

func buildSeed() (fuzzState, error) {
	dir, err := os.MkdirTemp("", "scimflare-fuzz-seed-")
	if err != nil {
		return fuzzState{}, err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "state.db")
	st, err := store.Open(path)
	if err != nil {
		return fuzzState{}, err
	}
	created := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	s := fuzzState{created: created, versions: map[string]uint64{}}
	newUser := func(name string) (string, error) {
		u, err := st.CreateUser(created, store.User{UserName: name, Active: true, Email: name,
			Doc: json.RawMessage(`{"name":{"givenName":"A","familyName":"B"},"emails":[{"value":"` + name + `","type":"work","primary":true}]}`)})
		s.versions[u.ID] = u.Meta.Version
		return u.ID, err
	}
	if s.alice, err = newUser("alice@example.com"); err == nil {
		s.bob, err = newUser("bob@example.com")
	}
	if err != nil {
		_ = st.Close()
		return fuzzState{}, err
	}
	eng, err := st.CreateGroup(created, store.Group{DisplayName: "eng", ExternalID: "ext-eng"}, []store.MemberRef{{ID: s.alice, Type: store.MemberUser}})
	if err == nil {
		s.eng, s.versions[eng.ID] = eng.ID, eng.Meta.Version
		var all store.Group
		all, err = st.CreateGroup(created, store.Group{DisplayName: "all"}, []store.MemberRef{{ID: s.eng, Type: store.MemberGroup}})
		s.all, s.versions[all.ID] = all.ID, all.Meta.Version
	}
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fuzzState{}, err
	}
	s.file, err = os.ReadFile(path)
	return s, err
}

// fuzzClock moves one second per reading, so a write is visible in
// meta.lastModified.
type fuzzClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fuzzClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Second)
	return c.now
}

// fuzzServer opens a private copy of the seeded store and serves the SCIM
// endpoint over it the way internal/daemon does.
func fuzzServer(t *testing.T, seed fuzzState) (*store.BoltStore, http.Handler, *recorder) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, seed.file, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	clock := &fuzzClock{now: seed.created.Add(time.Hour)}
	rec := &recorder{}
	srv, err := scim.New(st, scim.Options{
		BasePath:     "/scim/v2",
		MaxBodyBytes: 1 << 20,
		EmailFrom:    "userName",
		Auth:         scim.NewAuthenticator(fuzzToken, st, clock.Now),
		Notifier:     rec,
		Now:          clock.Now,
		// Bad tokens are among the inputs; the limit would make every
		// later request a 429 on the fuzzer's fixed clock.
		AuthFailureLimit: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st, srv.Handler(), rec
}

// serveWithin fails the test if the handler has not answered after limit:
// a time check after the fact could not catch an input that loops forever.
func serveWithin(t *testing.T, h http.Handler, req *http.Request, limit time.Duration) *httptest.ResponseRecorder {
	t.Helper()
	res := httptest.NewRecorder()
	done := make(chan any, 1)
	go func() {
		defer func() { done <- recover() }()
		h.ServeHTTP(res, req)
	}()
	select {
	case p := <-done:
		if p != nil {
			t.Fatalf("handler panicked: %v", p)
		}
		return res
	case <-time.After(limit):
		t.Fatalf("%s %s: no answer within %v", req.Method, req.URL.Path, limit)
		return nil
	}
}

// checkSCIMError asserts the RFC 7644 §3.12 error shape.
func checkSCIMError(t *testing.T, res *httptest.ResponseRecorder, what string) {
	t.Helper()
	var e struct {
		Schemas []string `json:"schemas"`
		Status  any      `json:"status"`
		Detail  string   `json:"detail"`
	}
	if err := json.Unmarshal(res.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body is not JSON (%v): %s", err, what)
	}
	if len(e.Schemas) != 1 || e.Schemas[0] != "urn:ietf:params:scim:api:messages:2.0:Error" {
		t.Fatalf("error schemas %v: %s", e.Schemas, what)
	}
	if s, ok := e.Status.(string); !ok || s != strconv.Itoa(res.Code) {
		t.Fatalf("error status %#v is not the string %q: %s", e.Status, strconv.Itoa(res.Code), what)
	}
	if e.Detail == "" {
		t.Fatalf("error without detail: %s", what)
	}
	if ct := res.Header().Get("Content-Type"); !strings.Contains(ct, "json") {
		t.Fatalf("error Content-Type %q: %s", ct, what)
	}
}

// fuzzSnapshot renders everything the store holds about users, groups and
// memberships, both directions of every edge and the counters included, so
// that any change at all shows.
func fuzzSnapshot(t *testing.T, st store.Store) string {
	t.Helper()
	var b strings.Builder
	err := st.View(func(rd store.Reader) error {
		var users []store.User
		var groups []store.Group
		if err := rd.ListUsers("", func(u store.User) bool { users = append(users, u); return true }); err != nil {
			return err
		}
		if err := rd.ListGroups("", func(g store.Group) bool { groups = append(groups, g); return true }); err != nil {
			return err
		}
		nu, err := rd.CountUsers()
		if err != nil {
			return err
		}
		ng, err := rd.CountGroups()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "users %d groups %d\n", nu, ng)
		for _, u := range users {
			fmt.Fprintf(&b, "user %+v doc=%s\n", u, u.Doc)
			if err := snapshotParents(&b, rd, u.ID); err != nil {
				return err
			}
		}
		for _, g := range groups {
			n, err := rd.CountGroupMembers(g.ID)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "group %+v doc=%s members=%d\n", g, g.Doc, n)
			if err := rd.GroupMembers(g.ID, func(m store.Membership) bool {
				fmt.Fprintf(&b, "  member %+v\n", m)
				return true
			}); err != nil {
				return err
			}
			if err := snapshotParents(&b, rd, g.ID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// accessSnapshot renders only the state that decides access: who is
// active under which email, which groups carry which names, and every edge
// with its Since (time-bound grants count from it).
func accessSnapshot(t *testing.T, st store.Store) string {
	t.Helper()
	var b strings.Builder
	err := st.View(func(rd store.Reader) error {
		if err := rd.ListUsers("", func(u store.User) bool {
			fmt.Fprintf(&b, "user %s %s %v %s\n", u.ID, store.Fold(u.Email), u.Active, u.ActiveSince)
			return true
		}); err != nil {
			return err
		}
		var groups []store.Group
		if err := rd.ListGroups("", func(g store.Group) bool { groups = append(groups, g); return true }); err != nil {
			return err
		}
		for _, g := range groups {
			fmt.Fprintf(&b, "group %s %s %s\n", g.ID, store.Fold(g.DisplayName), g.ExternalID)
			if err := rd.GroupMembers(g.ID, func(m store.Membership) bool {
				fmt.Fprintf(&b, "  member %+v\n", m)
				return true
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func snapshotParents(b *strings.Builder, rd store.Reader, id string) error {
	parents, err := rd.GroupsOf(id)
	if err != nil {
		return err
	}
	for _, p := range parents {
		fmt.Fprintf(b, "  in %+v\n", p)
	}
	return nil
}

// checkIntegrity asserts what the reconciler relies on after any accepted
// write: every edge names an existing member of its type, both index
// directions agree, and names resolve to their owners.
func checkIntegrity(t *testing.T, st store.Store, what string) {
	t.Helper()
	err := st.View(func(rd store.Reader) error {
		var problems []string
		bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
		if err := rd.ListUsers("", func(u store.User) bool {
			if got, err := rd.UserByUserName(u.UserName); err != nil || got.ID != u.ID {
				bad("userName %q resolves to %q (%v), not %s", u.UserName, got.ID, err, u.ID)
			}
			return true
		}); err != nil {
			return err
		}
		var groups []store.Group
		if err := rd.ListGroups("", func(g store.Group) bool { groups = append(groups, g); return true }); err != nil {
			return err
		}
		for _, g := range groups {
			if got, err := rd.GroupByDisplayName(g.DisplayName); err != nil || got.ID != g.ID {
				bad("displayName %q resolves to %q (%v), not %s", g.DisplayName, got.ID, err, g.ID)
			}
			n := 0
			if err := rd.GroupMembers(g.ID, func(m store.Membership) bool {
				n++
				var err error
				if m.Type == store.MemberGroup {
					_, err = rd.GetGroup(m.ID)
				} else {
					_, err = rd.GetUser(m.ID)
				}
				if err != nil {
					bad("group %s has member %+v that does not exist: %v", g.ID, m.MemberRef, err)
				}
				parents, err := rd.GroupsOf(m.ID)
				found := false
				for _, p := range parents {
					found = found || p.ID == g.ID
				}
				if err != nil || !found {
					bad("member %s of group %s does not list it among its groups (%v)", m.ID, g.ID, err)
				}
				return true
			}); err != nil {
				return err
			}
			if c, err := rd.CountGroupMembers(g.ID); err != nil || c != n {
				bad("group %s counts %d members (%v) but lists %d", g.ID, c, err, n)
			}
		}
		if len(problems) > 0 {
			return fmt.Errorf("%s", strings.Join(problems, "\n"))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("store inconsistent after %s:\n%v", what, err)
	}
}
