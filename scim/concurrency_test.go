package scim_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/scimflare/scimflare/store"
)

// writeModes are the ways the store commits concurrent writes: one commit
// each, and group commit as serve opens it, where a write may run again
// when another of its group fails.
var writeModes = []struct {
	name string
	opts []store.Option
}{
	{"commit per write", nil},
	{"group commit", []store.Option{store.WithGroupCommit()}},
}

func newEnvMode(t *testing.T, opts []store.Option) *env {
	t.Helper()
	return newEnvStore(t, filepath.Join(t.TempDir(), "state.db"), opts)
}

// Sixteen IdP workers PATCH the same group and the same user at once; every
// acknowledged change must be in the store afterwards.
func TestConcurrentPatchesLoseNothing(t *testing.T) {
	for _, m := range writeModes {
		t.Run(m.name, func(t *testing.T) { testConcurrentPatchesLoseNothing(t, newEnvMode(t, m.opts)) })
	}
}

func testConcurrentPatchesLoseNothing(t *testing.T, e *env) {
	const n = 16
	users := make([]string, n)
	for i := range users {
		users[i] = e.createUser(fmt.Sprintf("member%d@example.com", i))
	}
	gid := e.createGroup("crowded")
	target := e.createUser("target@example.com")
	e.rec.take()

	var wg sync.WaitGroup
	errs := make(chan string, 3*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			r := e.req("PATCH", "/Groups/"+gid, patchBody(`[{"op":"add","path":"members","value":[{"value":"`+users[i]+`"}]}]`))
			if r.status != 204 {
				errs <- fmt.Sprintf("group PATCH %d: %d %s", i, r.status, r.raw)
			}
		}()
		go func() {
			defer wg.Done()
			r := e.req("PATCH", "/Users/"+target, patchBody(fmt.Sprintf(
				`[{"op":"add","path":"emails","value":[{"value":"alias%d@example.com","type":"other"}]},
				  {"op":"add","path":"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber","value":"%d"}]`, i, i)))
			if r.status != 204 {
				errs <- fmt.Sprintf("user PATCH %d: %d %s", i, r.status, r.raw)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	wantMembers(t, e.st, gid, users...)
	emails := jsonString(userDoc(t, e.st, target)["emails"])
	for i := range n {
		if !strings.Contains(emails, fmt.Sprintf(`"alias%d@example.com"`, i)) {
			t.Errorf("email alias%d lost: %s", i, emails)
		}
	}
	if g, _ := e.st.GetGroup(gid); g.Meta.Version != 1+n {
		t.Errorf("group version %d after %d member PATCHes from version 1", g.Meta.Version, n)
	}
	if u := getUser(t, e.st, target); u.Meta.Version != 1+n {
		t.Errorf("user version %d after %d PATCHes from version 1", u.Meta.Version, n)
	}
	// Every added member was reported to the reconciler.
	var notified []string
	for _, c := range e.rec.take() {
		notified = append(notified, c.UserIDs...)
	}
	for _, u := range append(users, target) {
		if !strings.Contains(strings.Join(notified, " "), u) {
			t.Errorf("user %s was never notified", u)
		}
	}
}

// Concurrent writers that each send the version they read: exactly one
// wins per version, the others get 412 and nothing of theirs is applied.
func TestConcurrentIfMatch(t *testing.T) {
	for _, m := range writeModes {
		t.Run(m.name, func(t *testing.T) { testConcurrentIfMatch(t, newEnvMode(t, m.opts)) })
	}
}

func testConcurrentIfMatch(t *testing.T, e *env) {
	uid := e.createUser("race@example.com")
	etag := e.must(200, "GET", "/Users/"+uid, "").header.Get("Etag")
	const n = 16
	var wg sync.WaitGroup
	status := make(chan int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.req("PATCH", "/Users/"+uid, patchBody(fmt.Sprintf(`[{"op":"replace","path":"displayName","value":"writer%d"}]`, i)), "If-Match", etag)
			status <- r.status
		}()
	}
	wg.Wait()
	close(status)
	won, lost := 0, 0
	for s := range status {
		switch s {
		case 204:
			won++
		case 412:
			lost++
		default:
			t.Errorf("status %d", s)
		}
	}
	if won != 1 || lost != n-1 {
		t.Fatalf("%d writers won and %d got 412; want 1 and %d", won, lost, n-1)
	}
	if v := getUser(t, e.st, uid).Meta.Version; v != 2 {
		t.Fatalf("version %d, want 2", v)
	}
}
