package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/scimflare/scimflare/store"
)

// A bbolt Load commits in chunks (one huge transaction is quadratic in
// bbolt); a failure after the first chunk must still leave the file as
// empty as it was, and usable.
func TestLoadFailingLateLeavesFileEmpty(t *testing.T) {
	s := openBolt(t)
	err := s.Load(func(put func(store.DumpItem) error) error {
		for i := range 25000 {
			u := store.User{ID: store.NewID(now), UserName: fmt.Sprintf("u%d", i), Meta: store.Meta{Created: now, LastModified: now, Version: 1}}
			if err := put(store.DumpItem{User: &u}); err != nil {
				return err
			}
		}
		if err := put(store.DumpItem{Status: &store.StatusEntry{Key: "k", Value: []byte("v")}}); err != nil {
			return err
		}
		return put(store.DumpItem{User: &store.User{ID: "bad", UserName: ""}})
	})
	if !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("Load ending in an invalid user: %v, want ErrInvalid", err)
	}
	sum, err := store.Summarize(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if sum != (store.Summary{}) {
		t.Fatalf("after a failed Load the file holds %s", sum)
	}
	if n, err := s.CountUsers(); n != 0 || err != nil {
		t.Fatalf("CountUsers after a failed Load = %d, %v", n, err)
	}
	if _, err := s.CreateUser(now, store.User{UserName: "u1"}); err != nil {
		t.Fatalf("CreateUser of a name the failed Load had written: %v", err)
	}
}
