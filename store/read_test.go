package store_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/scimflare/scimflare/store"
)

// One read-only snapshot answers every user lookup as the store holds it,
// whatever the order of the ids asked for: ascending (a group's members, a
// full plan's order), with unknown ids between and past the last user,
// repeated, descending and shuffled. The reader keeps its position between
// lookups; a wrong step would answer another user or none.
func TestUserLookupsInAnyOrderInOneSnapshot(t *testing.T) {
	s := openBolt(t)
	want := map[string]string{} // id -> email
	var ids []string
	for i := range 300 {
		u, err := s.CreateUser(now, store.User{UserName: fmt.Sprintf("u%03d", i), Email: fmt.Sprintf("u%03d@example.com", i), Active: true})
		if err != nil {
			t.Fatal(err)
		}
		want[u.ID], ids = u.Email, append(ids, u.ID)
	}
	slices.Sort(ids)
	var asc []string
	for i, id := range ids {
		asc = append(asc, id)
		if i%7 == 0 {
			asc = append(asc, id+"0", id) // unknown, between neighbours; then again
		}
	}
	asc = append(asc, ids[len(ids)-1]+"z", ids[0], "", "\x00")
	desc := slices.Clone(asc)
	slices.Reverse(desc)
	shuffled := slices.Clone(asc)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for name, order := range map[string][]string{"ascending": asc, "descending": desc, "shuffled": shuffled} {
		err := s.View(func(r store.Reader) error {
			ar := r.(interface {
				GetUserAccess(id string) (store.UserAccess, error)
			})
			for _, id := range order {
				email, exists := want[id]
				a, err := ar.GetUserAccess(id)
				u, uerr := r.GetUser(id)
				switch {
				case !exists && (!errors.Is(err, store.ErrNotFound) || !errors.Is(uerr, store.ErrNotFound)):
					t.Errorf("%s: unknown id %q: GetUserAccess %v, GetUser %v; want not found", name, id, err, uerr)
				case exists && (err != nil || a.ID != id || a.Email != email):
					t.Errorf("%s: GetUserAccess(%q) = %+v, %v; want %s", name, id, a, err, email)
				case exists && (uerr != nil || u.ID != id || u.Email != email):
					t.Errorf("%s: GetUser(%q) = %s %s, %v; want %s", name, id, u.ID, u.Email, uerr, email)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}
