package scim_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scimflare/scimflare/scim"
	"github.com/scimflare/scimflare/store"
)

const (
	testToken = "sf-test-token-0123456789"
	basePath  = "/scim/v2"
	patchURN  = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	errorURN  = "urn:ietf:params:scim:api:messages:2.0:Error"
	userURN   = "urn:ietf:params:scim:schemas:core:2.0:User"
	groupURN  = "urn:ietf:params:scim:schemas:core:2.0:Group"
	entURN    = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
)

// recorder is the Notifier the reconciler would be: it keeps every Change.
type recorder struct {
	mu      sync.Mutex
	changes []scim.Change
}

func (r *recorder) Changed(c scim.Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.changes = append(r.changes, c)
}

// take returns the changes recorded since the last take.
func (r *recorder) take() []scim.Change {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.changes
	r.changes = nil
	return out
}

// clock hands out a strictly increasing time, one second per reading, so
// meta.lastModified moves visibly between writes.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Second)
	return c.now
}

type env struct {
	t     testing.TB
	st    *store.BoltStore
	srv   *httptest.Server
	rec   *recorder
	base  string // server URL + base path
	token string
}

type envOption func(*scim.Options, *storeWrap)

// storeWrap lets a test put a decorator around the real store.
type storeWrap struct{ wrap func(store.Store) store.Store }

func withMaxBody(n int64) envOption {
	return func(o *scim.Options, _ *storeWrap) { o.MaxBodyBytes = n }
}

func withEmailFrom(v string) envOption {
	return func(o *scim.Options, _ *storeWrap) { o.EmailFrom = v }
}

func withStore(f func(store.Store) store.Store) envOption {
	return func(_ *scim.Options, w *storeWrap) { w.wrap = f }
}

// newEnv serves the SCIM endpoint over the real bbolt store on loopback,
// mounted the way internal/daemon mounts it.
func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	return newEnvAt(t, filepath.Join(t.TempDir(), "state.db"), opts...)
}

func newEnvAt(t testing.TB, path string, opts ...envOption) *env {
	t.Helper()
	return newEnvStore(t, path, nil, opts...)
}

// newEnvStore is newEnvAt with the store opened with storeOpts
// (store.WithGroupCommit: as serve opens it).
func newEnvStore(t testing.TB, path string, storeOpts []store.Option, opts ...envOption) *env {
	t.Helper()
	st, err := store.Open(path, storeOpts...)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, rec: &recorder{}, token: testToken}
	clk := &clock{now: time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)}
	o := scim.Options{
		BasePath:     basePath,
		MaxBodyBytes: 1 << 20,
		EmailFrom:    "userName",
		Auth:         scim.NewAuthenticator(testToken, st, clk.Now),
		Notifier:     e.rec,
		Now:          clk.Now,
		// The failed-authentication limit has tests of its own
		// (limit_test.go, the daemon's); here it would turn the refusals
		// under test into 429s on the fixed clock.
		AuthFailureLimit: -1,
	}
	var w storeWrap
	for _, opt := range opts {
		opt(&o, &w)
	}
	var s store.Store = st
	if w.wrap != nil {
		s = w.wrap(st)
	}
	srv, err := scim.New(s, o)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(basePath+"/", srv.Handler())
	mux.Handle(basePath, srv.Handler())
	e.srv = httptest.NewServer(mux)
	e.base = e.srv.URL + basePath
	t.Cleanup(func() {
		e.srv.Close()
		_ = st.Close()
	})
	return e
}

type resp struct {
	status int
	header http.Header
	raw    []byte
}

// obj decodes the body as one JSON object.
func (r resp) obj(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.raw, &m); err != nil {
		t.Fatalf("response body is not a JSON object (%v): %s", err, r.raw)
	}
	return m
}

func (e *env) req(method, path, body string, hdr ...string) resp {
	e.t.Helper()
	r, err := e.send(method, path, body, hdr...)
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// send is req for other goroutines than the test's: it returns the
// transport error instead of failing the test.
func (e *env) send(method, path, body string, hdr ...string) (resp, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	url := path
	if !strings.HasPrefix(path, "http") {
		url = e.base + path
	}
	r, err := http.NewRequest(method, url, rd)
	if err != nil {
		return resp{}, err
	}
	r.Header.Set("Authorization", "Bearer "+e.token)
	if body != "" {
		r.Header.Set("Content-Type", "application/scim+json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == "" {
			r.Header.Del(hdr[i])
		} else {
			r.Header.Set(hdr[i], hdr[i+1])
		}
	}
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		return resp{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return resp{}, fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	return resp{status: res.StatusCode, header: res.Header, raw: raw}, nil
}

// must sends a request and fails the test unless the status is want.
func (e *env) must(want int, method, path, body string, hdr ...string) resp {
	e.t.Helper()
	r := e.req(method, path, body, hdr...)
	if r.status != want {
		e.t.Fatalf("%s %s: status %d, want %d; body: %s", method, path, r.status, want, r.raw)
	}
	return r
}

func patchBody(ops string) string {
	return `{"schemas":["` + patchURN + `"],"Operations":` + ops + `}`
}

// createUser POSTs a minimal user and returns its id.
func (e *env) createUser(userName string) string {
	e.t.Helper()
	r := e.must(201, "POST", "/Users", fmt.Sprintf(`{"schemas":[%q],"userName":%q,"active":true}`, userURN, userName))
	return str(r.obj(e.t)["id"])
}

func (e *env) createGroup(name string, members ...string) string {
	e.t.Helper()
	ms := make([]string, len(members))
	for i, m := range members {
		ms[i] = fmt.Sprintf(`{"value":%q}`, m)
	}
	r := e.must(201, "POST", "/Groups", fmt.Sprintf(`{"schemas":[%q],"displayName":%q,"members":[%s]}`, groupURN, name, strings.Join(ms, ",")))
	return str(r.obj(e.t)["id"])
}

func str(v any) string { s, _ := v.(string); return s }

// wantSCIMError checks an RFC 7644 §3.12 error body.
func wantSCIMError(t testing.TB, r resp, status int, scimType string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body: %s", r.status, status, r.raw)
	}
	if ct := r.header.Get("Content-Type"); !strings.Contains(ct, "json") {
		t.Errorf("error Content-Type %q, want a JSON type", ct)
	}
	var body map[string]any
	if err := json.Unmarshal(r.raw, &body); err != nil {
		t.Fatalf("error body is not JSON: %s", r.raw)
	}
	schemas, _ := body["schemas"].([]any)
	if len(schemas) != 1 || schemas[0] != errorURN {
		t.Errorf("error schemas = %v, want [%s]", body["schemas"], errorURN)
	}
	if s, ok := body["status"].(string); !ok || s != fmt.Sprint(status) {
		t.Errorf("error status = %#v, want the string %q", body["status"], fmt.Sprint(status))
	}
	if got := str(body["scimType"]); got != scimType {
		t.Errorf("scimType = %q, want %q (body %s)", got, scimType, r.raw)
	}
	if str(body["detail"]) == "" {
		t.Errorf("error has no detail: %s", r.raw)
	}
}

// snapshot renders the whole SCIM state (users, groups, member edges, with
// their versions) so that a test can assert a rejected request changed
// nothing at all.
func snapshot(t testing.TB, st store.Store) string {
	t.Helper()
	var b strings.Builder
	err := st.View(func(rd store.Reader) error {
		if err := rd.ListUsers("", func(u store.User) bool {
			fmt.Fprintf(&b, "user %s %q ext=%q active=%t email=%q v=%d doc=%s\n", u.ID, u.UserName, u.ExternalID, u.Active, u.Email, u.Meta.Version, u.Doc)
			return true
		}); err != nil {
			return err
		}
		var groups []store.Group
		if err := rd.ListGroups("", func(g store.Group) bool { groups = append(groups, g); return true }); err != nil {
			return err
		}
		for _, g := range groups {
			fmt.Fprintf(&b, "group %s %q ext=%q v=%d doc=%s\n", g.ID, g.DisplayName, g.ExternalID, g.Meta.Version, g.Doc)
			if err := rd.GroupMembers(g.ID, func(m store.Membership) bool {
				fmt.Fprintf(&b, "  member %s %s\n", m.ID, m.Type)
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

func unchanged(t testing.TB, st store.Store, before string) {
	t.Helper()
	if after := snapshot(t, st); after != before {
		t.Errorf("store changed by a rejected request:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func memberIDs(t testing.TB, st store.Store, groupID string) []string {
	t.Helper()
	var ids []string
	if err := st.GroupMembers(groupID, func(m store.Membership) bool { ids = append(ids, m.ID); return true }); err != nil {
		t.Fatal(err)
	}
	sort.Strings(ids)
	return ids
}

func wantMembers(t testing.TB, st store.Store, groupID string, want ...string) {
	t.Helper()
	want = slices.Clone(want)
	sort.Strings(want)
	if got := memberIDs(t, st, groupID); !slices.Equal(got, want) {
		t.Errorf("members of %s = %v, want %v", groupID, got, want)
	}
}

func getUser(t testing.TB, st store.Store, id string) store.User {
	t.Helper()
	u, err := st.GetUser(id)
	if err != nil {
		t.Fatalf("user %s: %v", id, err)
	}
	return u
}

func userDoc(t testing.TB, st store.Store, id string) map[string]any {
	t.Helper()
	u := getUser(t, st, id)
	m := map[string]any{}
	if len(u.Doc) > 0 {
		if err := json.Unmarshal(u.Doc, &m); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// wantChange asserts the notifications since the last check name exactly
// these users and groups (order-insensitive, duplicates ignored).
func (e *env) wantChange(users, groups []string) {
	e.t.Helper()
	var gotU, gotG []string
	for _, c := range e.rec.take() {
		gotU = append(gotU, c.UserIDs...)
		gotG = append(gotG, c.GroupIDs...)
	}
	norm := func(s []string) []string {
		s = slices.Clone(s)
		sort.Strings(s)
		return slices.Compact(s)
	}
	if !slices.Equal(norm(gotU), norm(users)) || !slices.Equal(norm(gotG), norm(groups)) {
		e.t.Errorf("notified users %v groups %v, want users %v groups %v", norm(gotU), norm(gotG), norm(users), norm(groups))
	}
}

// wantNoChange asserts nothing was notified since the last check.
func (e *env) wantNoChange() {
	e.t.Helper()
	if got := e.rec.take(); len(got) > 0 {
		e.t.Errorf("a rejected or read-only request notified %+v", got)
	}
}

func jsonString(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSpace(b.String())
}
