package scim

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/store"
)

// diffEnv is one store served twice: by scimflare's own user answers and
// through the library (viaLibrary), to compare them.
type diffEnv struct {
	st       *store.BoltStore
	own, lib http.Handler
}

const diffToken = "review-diff-token"

func newDiffEnv(tb testing.TB, dir string) *diffEnv {
	st, err := store.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		tb.Fatal(err)
	}
	st.DB().NoSync = true
	tb.Cleanup(func() { _ = st.Close() })
	now := time.Date(2026, 5, 1, 10, 11, 12, 0, time.UTC)
	clock := func() time.Time { return now }
	return &diffEnv{st: st, own: ownOrLibrary(tb, st, diffToken, clock, false), lib: ownOrLibrary(tb, st, diffToken, clock, true)}
}

type diffAnswer struct {
	status int
	hdr    string
	body   string
}

func (e *diffEnv) do(tb testing.TB, h http.Handler, method, target, body string) diffAnswer {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, "http://127.0.0.1/scim/v2"+target, rd)
	req.Header.Set("Authorization", "Bearer "+diffToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return diffAnswer{res.StatusCode, res.Header.Get("Content-Type") + " Etag=" + res.Header.Get("Etag") + " Location=" + res.Header.Get("Location"), string(b)}
}

// compare fails when the two answers to the same GET differ.
func (e *diffEnv) compare(tb testing.TB, target string) {
	tb.Helper()
	g := e.do(tb, e.own, http.MethodGet, target, "")
	w := e.do(tb, e.lib, http.MethodGet, target, "")
	if g != w {
		tb.Errorf("GET %s\n own:     %d %s %s\n library: %d %s %s", target, g.status, g.hdr, g.body, w.status, w.hdr, w.body)
	}
}

// FuzzUserAnswersAgree: for any stored user (any document the store
// accepts, any userName and externalId) and any filter and projection, the
// list and GET answers scimflare writes itself are the library's.
func FuzzUserAnswersAgree(f *testing.F) {
	f.Add(`{"displayName":"Ann","emails":[{"value":"a@b"}]}`, "ann@example.com", "ext", `userName eq "ann@example.com"`, "")
	f.Add(`{"name":{"givenName":"x"}}`, "Bob", "", `userName sw "b"`, "userName")
	f.Add(`{"a":[1,2],"b":"\u00e9"}`, "k\u212a@x", "e", `externalId eq "e"`, "name")
	f.Add(`{"z":null}`, "x", "", `meta.created gt "2020-01-01T00:00:00Z"`, "")
	f.Add(`{"userName":"other"}`, "x", "", `userName eq "other"`, "")
	e := newDiffEnv(f, f.TempDir())
	f.Fuzz(func(t *testing.T, doc, userName, ext, filter, attrs string) {
		u, err := e.st.CreateUser(time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC), store.User{UserName: userName, ExternalID: ext, Email: userName, Active: len(doc)%2 == 0, Doc: []byte(doc)})
		if err != nil {
			t.Skipf("not stored: %v", err)
		}
		defer func() { _, _ = e.st.DeleteUser(u.ID) }()
		e.compare(t, "/Users/"+url.PathEscape(u.ID))
		e.compare(t, "/Users/"+url.PathEscape(u.ID)+"?attributes="+url.QueryEscape(attrs))
		e.compare(t, "/Users?filter="+url.QueryEscape(filter))
		e.compare(t, "/Users?filter="+url.QueryEscape(filter)+"&excludedAttributes="+url.QueryEscape(attrs))
	})
}

// FuzzUserCreateAgrees: any POST /Users body gets the library's answer.
func FuzzUserCreateAgrees(f *testing.F) {
	f.Add(`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@example.com","name":{"givenName":"A"}}`)
	f.Add(`{"userName":"b","active":"True","emails":[{"value":"b@x","primary":true}]}`)
	f.Add(`{"userName":"c","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":"m"}}`)
	own, lib := newDiffEnv(f, f.TempDir()), newDiffEnv(f, f.TempDir())
	f.Fuzz(func(t *testing.T, body string) {
		g := own.do(t, own.own, http.MethodPost, "/Users", body)
		w := lib.do(t, lib.lib, http.MethodPost, "/Users", body)
		norm := func(a diffAnswer) diffAnswer {
			if i := strings.Index(a.hdr, "Location="); i >= 0 {
				loc := a.hdr[i+len("Location="):]
				if j := strings.LastIndex(loc, "/"); j >= 0 && j+1 < len(loc) {
					id := loc[j+1:]
					a.body = strings.ReplaceAll(a.body, id, "ID")
					a.hdr = strings.ReplaceAll(a.hdr, id, "ID")
				}
			}
			return a
		}
		g, w = norm(g), norm(w)
		if g != w {
			t.Errorf("POST %q\n own:     %d %s %s\n library: %d %s %s", body, g.status, g.hdr, g.body, w.status, w.hdr, w.body)
		}
		for _, x := range []*diffEnv{own, lib} {
			var ids []string
			_ = x.st.ListUsers("", func(u store.User) bool { ids = append(ids, u.ID); return true })
			for _, id := range ids {
				_, _ = x.st.DeleteUser(id)
			}
		}
	})
}
