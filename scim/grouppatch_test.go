package scim

import (
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/scimflare/scimflare/scim/patch"
	"github.com/scimflare/scimflare/store"
)

// patchPair is one state file copied twice: one copy served with the
// one-member PATCH reader (grouppatch.go), the other with every Group PATCH
// through the generic patch package (viaLibrary), so that the same PATCH
// can be sent to both and the answers, notifications and files compared.
type patchPair struct {
	fast, slow   *store.BoltStore
	fastH, slowH http.Handler
	fastN, slowN *changeLog
	group, small string   // a group with members, and one without
	users        []string // users[0..2] are members of group
	unknown      string   // names nothing
}

type changeLog struct {
	mu sync.Mutex
	cs []Change
}

func (l *changeLog) Changed(c Change) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cs = append(l.cs, c)
}

func (l *changeLog) take() []Change {
	l.mu.Lock()
	defer l.mu.Unlock()
	cs := l.cs
	l.cs = nil
	return cs
}

const pairToken = "group-patch-pair-token"

func newPatchPair(tb testing.TB, dir string) *patchPair {
	tb.Helper()
	now := time.Date(2026, 5, 1, 10, 11, 12, 0, time.UTC)
	p := &patchPair{unknown: "0123456789abcdef0123456789abcdef"}
	a := filepath.Join(dir, "fast.db")
	st, err := store.Open(a)
	if err != nil {
		tb.Fatal(err)
	}
	st.DB().NoSync = true
	for i := range 6 {
		u, err := st.CreateUser(now, store.User{UserName: fmt.Sprintf("u%d@example.com", i), Active: true})
		if err != nil {
			tb.Fatal(err)
		}
		p.users = append(p.users, u.ID)
	}
	refs := []store.MemberRef{{ID: p.users[0]}, {ID: p.users[1]}, {ID: p.users[2]}}
	g, err := st.CreateGroup(now, store.Group{DisplayName: "big", Doc: []byte(`{"note":"kept"}`)}, refs)
	if err != nil {
		tb.Fatal(err)
	}
	small, err := st.CreateGroup(now, store.Group{DisplayName: "small", ExternalID: "ext-small"}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	p.group, p.small = g.ID, small.ID
	if err := st.Close(); err != nil {
		tb.Fatal(err)
	}
	raw, err := os.ReadFile(a)
	if err != nil {
		tb.Fatal(err)
	}
	b := filepath.Join(dir, "slow.db")
	if err := os.WriteFile(b, raw, 0o600); err != nil {
		tb.Fatal(err)
	}
	later := now.Add(time.Hour)
	clock := func() time.Time { return later }
	serve := func(path string, library bool) (*store.BoltStore, http.Handler, *changeLog) {
		st, err := store.Open(path)
		if err != nil {
			tb.Fatal(err)
		}
		st.DB().NoSync = true
		tb.Cleanup(func() { _ = st.Close() })
		log := &changeLog{}
		s, err := New(st, Options{BasePath: "/scim/v2", Auth: NewAuthenticator(pairToken, st, clock), AuthFailureLimit: -1, Now: clock, Notifier: log})
		if err != nil {
			tb.Fatal(err)
		}
		s.viaLibrary = library
		return st, s.Handler(), log
	}
	p.fast, p.fastH, p.fastN = serve(a, false)
	p.slow, p.slowH, p.slowN = serve(b, true)
	return p
}

// expand replaces $U0…$U5 with user ids, $G with the group, $S with the
// other group and $X with an id that names nothing.
func (p *patchPair) expand(s string) string {
	for i := len(p.users) - 1; i >= 0; i-- {
		s = strings.ReplaceAll(s, fmt.Sprintf("$U%d", i), p.users[i])
	}
	return strings.NewReplacer("$G", p.group, "$S", p.small, "$X", p.unknown).Replace(s)
}

type pairAnswer struct {
	status  int
	headers string
	body    string
	changes []Change
}

func send(tb testing.TB, h http.Handler, log *changeLog, target, ifMatch, body string) pairAnswer {
	req := httptest.NewRequest(http.MethodPatch, "http://127.0.0.1/scim/v2"+target, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+pairToken)
	req.Header.Set("Content-Type", "application/scim+json")
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	var hs []string
	for k, v := range res.Header {
		hs = append(hs, k+"="+strings.Join(v, ","))
	}
	sort.Strings(hs)
	return pairAnswer{res.StatusCode, strings.Join(hs, " "), string(b), log.take()}
}

// rawState is every key and value of every bucket of a state file.
func rawState(tb testing.TB, db *bolt.DB) string {
	tb.Helper()
	var sb strings.Builder
	var walk func(prefix string, b *bolt.Bucket) error
	walk = func(prefix string, b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				if nb := b.Bucket(k); nb != nil {
					return walk(prefix+string(k)+"/", nb)
				}
			}
			fmt.Fprintf(&sb, "%s%s = %s\n", prefix, hex.EncodeToString(k), hex.EncodeToString(v))
			return nil
		})
	}
	err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error { return walk(string(name)+"/", b) })
	})
	if err != nil {
		tb.Fatal(err)
	}
	return sb.String()
}

// agree sends one PATCH to both copies and fails unless the answers (status,
// every header, body), the changes told to the reconciler and the state
// files are the same, byte for byte. It returns the fast copy's answer.
func (p *patchPair) agree(tb testing.TB, target, ifMatch, body string) pairAnswer {
	tb.Helper()
	target, ifMatch, body = p.expand(target), p.expand(ifMatch), p.expand(body)
	f := send(tb, p.fastH, p.fastN, target, ifMatch, body)
	s := send(tb, p.slowH, p.slowN, target, ifMatch, body)
	if f.status != s.status || f.headers != s.headers || f.body != s.body || !reflect.DeepEqual(f.changes, s.changes) {
		tb.Fatalf("PATCH %s %s\n fast:    %d %s %s %+v\n generic: %d %s %s %+v", target, shorten(body), f.status, f.headers, f.body, f.changes, s.status, s.headers, s.body, s.changes)
	}
	if fs, ss := rawState(tb, p.fast.DB()), rawState(tb, p.slow.DB()); fs != ss {
		tb.Fatalf("PATCH %s %s: the state files differ\n fast:\n%s\n generic:\n%s", target, shorten(body), fs, ss)
	}
	return f
}

func patchOf(ops ...string) string {
	return `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[` + strings.Join(ops, ",") + `]}`
}

// TestGroupPatchAgrees: every one-member shape the IdPs send, and the
// errors around them, answer and store the same through the one-member
// reader as through the generic PATCH path: status, headers (ETag), body,
// the reconciler's notification and every byte of the state file.
func TestGroupPatchAgrees(t *testing.T) {
	p := newPatchPair(t, t.TempDir())
	add := func(v string) string { return `{"op":"add","path":"members","value":[` + v + `]}` }
	oktaRemove := func(id string) string { return `{"op":"remove","path":"members[value eq \"` + id + `\"]"}` }
	entraRemove := func(v string) string { return `{"op":"Remove","path":"members","value":[` + v + `]}` }
	many := func(n int, op func(i int) string) string {
		ops := make([]string, n)
		for i := range ops {
			ops[i] = op(i)
		}
		return patchOf(ops...)
	}
	cases := []struct {
		name, target, ifMatch, body string
		status                      int
	}{
		{"okta add", "/Groups/$G", "", patchOf(add(`{"value":"$U3"}`)), 204},
		{"duplicate add", "/Groups/$G", "", patchOf(add(`{"value":"$U3"}`)), 204},
		{"entra add with type", "/Groups/$G", "", patchOf(`{"op":"Add","path":"members","value":[{"value":"$U4","type":"User"}]}`), 204},
		{"okta remove", "/Groups/$G", "", patchOf(oktaRemove("$U3")), 204},
		{"remove of a non-member", "/Groups/$G", "", patchOf(oktaRemove("$U5")), 204},
		{"remove of an unknown id", "/Groups/$G", "", patchOf(oktaRemove("$X")), 204},
		{"entra remove", "/Groups/$G", "", patchOf(entraRemove(`{"value":"$U4"}`)), 204},
		{"unknown member", "/Groups/$G", "", patchOf(add(`{"value":"$X"}`)), 400},
		{"a group as member", "/Groups/$G", "", patchOf(add(`{"value":"$S"}`)), 204},
		{"a group typed User", "/Groups/$G", "", patchOf(add(`{"value":"$S","type":"User"}`)), 400},
		{"a user by $ref to Groups", "/Groups/$G", "", patchOf(add(`{"value":"$U5","$ref":"https://x/scim/v2/Groups/$U5","display":"U5"}`)), 400},
		{"the group itself", "/Groups/$G", "", patchOf(add(`{"value":"$G"}`)), 400},
		{"bad type", "/Groups/$G", "", patchOf(add(`{"value":"$U5","type":"Robot"}`)), 400},
		{"unknown group", "/Groups/$X", "", patchOf(add(`{"value":"$U5"}`)), 404},
		{"stale If-Match", "/Groups/$G", `W/"1"`, patchOf(add(`{"value":"$U5"}`)), 412},
		{"bad JSON", "/Groups/$G", "", `{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[` + add(`{"value":"$U5"}`), 400},
		{"trailing data", "/Groups/$G", "", patchOf(add(`{"value":"$U5"}`)) + `{}`, 400},
		{"wrong schema", "/Groups/$G", "", strings.Replace(patchOf(add(`{"value":"$U5"}`)), "PatchOp", "ListResponse", 1), 400},
		{"no operations", "/Groups/$G", "", patchOf(), 400},
		{"add without value", "/Groups/$G", "", patchOf(`{"op":"add","path":"members"}`), 400},
		{"filtered add", "/Groups/$G", "", patchOf(`{"op":"add","path":"members[value eq \"$U5\"]","value":[{"value":"$U5"}]}`), 400},
		{"1000 adds", "/Groups/$G", "", many(1000, func(i int) string { return add(`{"value":"$U` + fmt.Sprint(i%6) + `"}`) }), 204},
		{"1000 removes", "/Groups/$G", "", many(1000, func(i int) string { return oktaRemove("$U" + fmt.Sprint(i%6)) }), 204},
		{"1001 operations", "/Groups/$G", "", many(1001, func(i int) string { return add(`{"value":"$U1"}`) }), 400},
		{"1000 with one unknown", "/Groups/$G", "", many(1000, func(i int) string {
			if i == 999 {
				return add(`{"value":"$X"}`)
			}
			return add(`{"value":"$U` + fmt.Sprint(i%3) + `"}`)
		}), 400},
		{"representation asked", "/Groups/$G?excludedAttributes=members", "", patchOf(add(`{"value":"$U5"}`)), 200},
		{"members asked", "/Groups/$G?attributes=members", "", patchOf(oktaRemove("$U5")), 200},
		{"remove all stays generic", "/Groups/$S", "", patchOf(`{"op":"remove","path":"members"}`), 204},
	}
	for _, c := range cases {
		got := p.agree(t, c.target, c.ifMatch, c.body)
		if got.status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, got.status, c.status, got.body)
		}
	}
}

// TestMemberPatchReadsIdPShapes: the shapes Okta and Entra send for a
// one-member change take the one-member reader (so the fast path is the
// one that runs), and what it reads is what the generic reader reads.
func TestMemberPatchReadsIdPShapes(t *testing.T) {
	id := "0190a1b2c3d4e5f60718293a4b5c6d7e"
	for _, body := range []string{
		patchOf(`{"op":"add","path":"members","value":[{"value":"` + id + `"}]}`),
		patchOf(`{"op":"Add","path":"members","value":[{"value":"` + id + `","display":"Ann"}]}`),
		patchOf(`{"op":"remove","path":"members[value eq \"` + id + `\"]"}`),
		patchOf(`{"op":"Remove","path":"members","value":[{"value":"` + id + `"}]}`),
		"{\n  \"schemas\": [\"urn:ietf:params:scim:api:messages:2.0:PatchOp\"],\n  \"Operations\": [ { \"op\": \"add\", \"path\": \"members\", \"value\": [ { \"value\": \"" + id + "\", \"$ref\": \"https://h/scim/v2/Users/" + id + "\" } ] } ]\n}\n",
	} {
		got, ok := memberPatch([]byte(body))
		if !ok {
			t.Errorf("not read by the one-member reader: %s", body)
			continue
		}
		checkSameOps(t, body, got)
	}
}

// checkSameOps fails unless the generic reader reads body as exactly ops,
// with no attribute operation.
func checkSameOps(tb testing.TB, body string, ops []patch.MemberOp) {
	tb.Helper()
	parsed, err := patch.Parse([]byte(body))
	if err != nil {
		tb.Fatalf("one-member reader took a body the generic one refuses (%v): %s", err, body)
	}
	attrOps, memberOps, err := patch.SplitMembers(parsed)
	if err != nil || len(attrOps) > 0 || !reflect.DeepEqual(memberOps, ops) {
		tb.Fatalf("%s\n one-member reader: %+v\n generic: %+v %+v %v", body, ops, memberOps, attrOps, err)
	}
}

// FuzzGroupPatchAgrees: for any PATCH body (with $U0…$U5, $G, $S and $X
// standing for users, the two groups and an unknown id), what the
// one-member reader reads is what the generic reader reads, and a PATCH
// sent to both copies of a state file answers, notifies and stores the
// same.
func FuzzGroupPatchAgrees(f *testing.F) {
	for _, s := range []string{
		patchOf(`{"op":"add","path":"members","value":[{"value":"$U3"}]}`),
		patchOf(`{"op":"remove","path":"members[value eq \"$U0\"]"}`),
		patchOf(`{"op":"Remove","path":"members","value":[{"value":"$U1"},{"value":"$U1"}]}`),
		patchOf(`{"op":"add","path":"members","value":[{"value":"$S","type":"group"}]}`, `{"op":"remove","path":"members[value eq \"$X\"]"}`),
		patchOf(`{"op":"ADD","path":"members","value":[{"value":"$U4","$ref":"../Users/$U4","type":""}]}`),
		patchOf(`{"op":"add","path":"members","value":[{"value":" $U4"}]}`),
		patchOf(`{"op":"remove","path":"members[value eq \"$U2\" or value eq \"$U1\"]"}`),
		patchOf(`{"op":"replace","path":"displayName","value":"renamed"}`),
		`{"schemas":["urn:ietf:params:scim:api:messages:2.0:patchop"],"Operations":[{"op":"add","path":"members","value":[{"value":"$U5"}]}]} `,
	} {
		f.Add(s, uint8(0))
	}
	f.Add(patchOf(`{"op":"add","path":"members","value":[{"value":"$U2"}]}`), uint8(1))
	f.Add(patchOf(`{"op":"remove","path":"members[value eq \"$U2\"]"}`), uint8(2))
	p := newPatchPair(f, f.TempDir())
	f.Fuzz(func(t *testing.T, body string, mode uint8) {
		if len(body) > 64<<10 {
			return
		}
		b := p.expand(body)
		if ops, ok := memberPatch([]byte(b)); ok {
			checkSameOps(t, b, ops)
		}
		target, ifMatch := "/Groups/$G", ""
		switch mode % 5 {
		case 1:
			target += "?excludedAttributes=members"
		case 2:
			target += "?attributes=members,displayName"
		case 3:
			target = "/Groups/$S"
		case 4:
			g, err := p.fast.GetGroup(p.group)
			if err != nil {
				t.Fatal(err)
			}
			ifMatch = versionTag(g.Meta.Version - uint64(mode/5%2))
		}
		p.agree(t, target, ifMatch, body)
	})
}
