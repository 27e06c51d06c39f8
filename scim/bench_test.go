package scim_test

import (
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
)

// populate fills a state file with n users (and, when groupName is set, one
// group holding all of them) before the server opens it. store/bench_test.go
// writes 20k users per transaction through the store's internals; from
// outside the package the same effect comes from bbolt batching many
// concurrent CreateUser calls into shared commits with fsync off. The file
// is closed afterwards, so the benchmark runs on a normally opened store.
func populate(b *testing.B, path string, n int, groupName string) []string {
	b.Helper()
	st, err := store.Open(path, store.WithBatch(time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	st.DB().NoSync = true
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	ids := make([]string, n)
	const workers = 64
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				u, err := st.CreateUser(now, store.User{
					UserName: fmt.Sprintf("user%d@example.com", i), Email: fmt.Sprintf("user%d@example.com", i),
					ExternalID: fmt.Sprintf("ext-%d", i), Active: true,
					// As the SCIM server stores a document: json.Marshal's
					// form, keys sorted.
					Doc: []byte(`{"displayName":"Given Family","name":{"familyName":"Family","givenName":"Given"}}`),
				})
				if err != nil {
					errc <- err
					return
				}
				ids[i] = u.ID
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	if groupName != "" {
		refs := make([]store.MemberRef, n)
		for i, id := range ids {
			refs[i] = store.MemberRef{ID: id, Type: store.MemberUser}
		}
		if _, err := st.CreateGroup(now, store.Group{DisplayName: groupName}, refs); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.DB().Sync(); err != nil {
		b.Fatal(err)
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	return ids
}

// benchEnv serves a state file that populate may already have filled.
func benchEnv(b *testing.B, fill func(path string)) *env {
	b.Helper()
	dir := b.TempDir()
	path := filepath.Join(dir, "state.db")
	if fill != nil {
		fill(path)
	}
	return newEnvAt(b, path)
}

func BenchmarkHTTPCreateUser(b *testing.B) {
	e := benchEnv(b, nil)
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i++
		e.must(http.StatusCreated, "POST", "/Users", fmt.Sprintf(`{"schemas":[%q],"userName":"bench%d@example.com","name":{"givenName":"B","familyName":"N"},"emails":[{"value":"bench%d@example.com","primary":true}],"active":true}`, userURN, i, i))
	}
}

func BenchmarkHTTPUserNameEq100k(b *testing.B) {
	const n = 100000
	e := benchEnv(b, func(path string) { populate(b, path, n, "") })
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		i = (i + 7919) % n
		r := e.must(http.StatusOK, "GET", "/Users?"+filterQuery(fmt.Sprintf(`userName eq "USER%d@example.com"`, i)), "")
		if len(r.raw) < 200 {
			b.Fatalf("no user found: %s", r.raw)
		}
	}
}

func BenchmarkHTTPAddMember100kGroup(b *testing.B) {
	const n = 100000
	var gid string
	e := benchEnv(b, func(path string) { populate(b, path, n, "big") })
	g, err := e.st.GroupByDisplayName("big")
	if err != nil {
		b.Fatal(err)
	}
	gid = g.ID
	if c, _ := e.st.CountGroupMembers(gid); c != n {
		b.Fatalf("group has %d members, want %d", c, n)
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		i++
		u := e.createUser(fmt.Sprintf("new%d@example.com", i))
		b.StartTimer()
		e.must(http.StatusNoContent, "PATCH", "/Groups/"+gid, patchBody(`[{"op":"add","path":"members","value":[{"value":"`+u+`"}]}]`))
	}
}

func BenchmarkHTTPListUsers100(b *testing.B) {
	e := benchEnv(b, func(path string) { populate(b, path, 100000, "") })
	b.ReportAllocs()
	for b.Loop() {
		r := e.must(http.StatusOK, "GET", "/Users?startIndex=1&count=100", "")
		if len(r.raw) < 100*200 {
			b.Fatalf("short page: %d bytes", len(r.raw))
		}
	}
}
