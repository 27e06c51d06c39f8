package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
)

// TestUserAccessAgreesWithGetUser: the lean decode a reconciler's plan
// uses answers what GetUser answers for id, email, active and activeSince,
// whatever the strings hold (escapes, quotes, non-ASCII, look-alike keys
// inside the document) — through a real bbolt file.
func TestUserAccessAgreesWithGetUser(t *testing.T) {
	t.Parallel()
	s, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	s.DB().NoSync = true // hundreds of users; durability is not under test

	pieces := []string{"a", "Z", "@", ".", `"`, `\`, "<", ">", "&", "é", "💥", "\u2028", "\x01", `","em":"x`, " "}
	word := func(r *rand.Rand) string {
		var w string
		for range r.IntN(6) {
			w += pieces[r.IntN(len(pieces))]
		}
		return w
	}
	r := rand.New(rand.NewPCG(3, 4))
	now := time.Date(2026, 12, 6, 7, 0, 0, 123456789, time.UTC)
	var ids []string
	for i := range 300 {
		u := User{UserName: fmt.Sprintf("u%d-%s", i, word(r)), ExternalID: word(r), Email: word(r), Active: r.IntN(3) != 0}
		if r.IntN(2) == 0 {
			em, _ := json.Marshal(word(r))
			title, _ := json.Marshal(word(r))
			u.Doc = []byte(fmt.Sprintf(`{"em":%s,"act":true,"as":"2000-01-01T00:00:00Z","title":%s}`, em, title))
		}
		if r.IntN(5) == 0 {
			u.Email = fmt.Sprintf("user%d@example.com", i) // the common, escape-free case
		}
		created, err := s.CreateUser(now.Add(time.Duration(i)*time.Millisecond), u)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, created.ID)
	}
	err = s.View(func(rd Reader) error {
		lean := rd.(interface {
			GetUserAccess(string) (UserAccess, error)
		})
		for _, id := range ids {
			u, err := rd.GetUser(id)
			if err != nil {
				return err
			}
			a, err := lean.GetUserAccess(id)
			if err != nil {
				return err
			}
			if want := (UserAccess{ID: u.ID, Email: u.Email, Active: u.Active, ActiveSince: u.ActiveSince}); a != want {
				t.Errorf("GetUserAccess(%s) = %+v, GetUser says %+v", id, a, want)
			}
		}
		if _, err := lean.GetUserAccess("no-such-user"); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetUserAccess of an unknown id: %v, want ErrNotFound", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUserAccessScanMatchesDecode: records written by encodeUser take the
// fast path when their strings need no unescaping, and any record, fast
// path or not, decodes as decodeUser does.
func TestUserAccessScanMatchesDecode(t *testing.T) {
	t.Parallel()
	since := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, u := range []User{
		{ID: "1", UserName: "a", Email: "a@example.com", Active: true, ActiveSince: since, Doc: []byte(`{"x":1}`)},
		{ID: "2", UserName: "b"},
		{ID: "3", UserName: "c", ExternalID: "e", Email: `q"uote@example.com`, Active: true, ActiveSince: since},
		{ID: "4", UserName: `b\s`, Email: "d@example.com", ActiveSince: since},
		{ID: "5", UserName: "<&>", Email: "é@example.com", Active: true},
	} {
		v, err := encodeUser(u)
		if err != nil {
			t.Fatal(err)
		}
		full, err := decodeUser(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeUserAccess(v)
		if err != nil {
			t.Fatal(err)
		}
		if want := (UserAccess{ID: full.ID, Email: full.Email, Active: full.Active, ActiveSince: full.ActiveSince}); got != want {
			t.Errorf("%s: decodeUserAccess = %+v, want %+v", v, got, want)
		}
		_, fast := scanUserAccess(v)
		if plain := u.ID != "3" && u.ID != "4" && u.ID != "5"; fast != plain {
			t.Errorf("%s: fast path %v, want %v", v, fast, plain)
		}
	}
	if _, err := decodeUserAccess([]byte(`{"id":`)); err == nil {
		t.Error("a truncated record decodes without error")
	}
}
