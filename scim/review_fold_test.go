package scim_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// TestUserNameEqFindsWhatConflicts: whenever POST /Users of a userName is
// refused with 409 because a user with that name in another letter case
// exists (the store's uniqueness is Unicode case folding), `userName eq`
// with the name as posted must find that user. Otherwise an IdP that looks
// a user up before each write (all of them) finds nothing, POSTs, gets 409,
// and can neither link nor deprovision the user. Greek final sigma and the
// long s are in the same case-folding orbit as σ and s, but strings.ToLower
// leaves them as they are.
func TestUserNameEqFindsWhatConflicts(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct{ stored, asked string }{
		{"barbara@example.com", "BARBARA@EXAMPLE.COM"},
		{"νίκος@example.gr", "ΝΊΚΟΣ@EXAMPLE.GR"},
		{"ſam@example.com", "SAM@example.com"},
		{"Kelvin@example.com", "\u212aelvin@example.com"},
	} {
		id := e.createUser(c.stored)
		r := e.req("POST", "/Users", fmt.Sprintf(`{"schemas":[%q],"userName":%q}`, userURN, c.asked))
		if r.status != 409 {
			t.Fatalf("POST %q with %q stored: status %d, want 409: %s", c.asked, c.stored, r.status, r.raw)
		}
		for _, q := range []string{
			fmt.Sprintf(`userName eq %q`, c.asked),
			fmt.Sprintf(`userName eq %q and active eq true`, c.asked),
			fmt.Sprintf(`userName eq %q or userName eq "nobody"`, c.asked),
		} {
			got := e.must(200, "GET", "/Users?"+filterQuery(q), "").obj(t)
			res, _ := got["Resources"].([]any)
			if len(res) != 1 || str(res[0].(map[string]any)["id"]) != id {
				t.Errorf("%s finds %v, want the user %q (%s) that made the POST conflict", q, got["totalResults"], c.stored, id)
			}
		}
	}
}

// TestConcurrentLookupsAndCreates: IdP lookups (`userName eq`, GET by id,
// plain lists) running while users are created, all on scimflare's own
// answer writers, each see a whole user or none (run with -race).
func TestConcurrentLookupsAndCreates(t *testing.T) {
	e := newEnv(t)
	seed := e.createUser("seed@example.com")
	const writers, per = 4, 15
	done := make(chan struct{})
	errs := make(chan string, 64)
	go func() {
		defer close(done)
		for w := range writers {
			for i := range per {
				name := fmt.Sprintf("u%d-%d@example.com", w, i)
				r, err := e.send("POST", "/Users", fmt.Sprintf(`{"schemas":[%q],"userName":%q,"displayName":"U %d"}`, userURN, name, i))
				if err != nil {
					errs <- err.Error()
					return
				}
				if r.status != 201 {
					errs <- fmt.Sprintf("POST %s: %d %s", name, r.status, r.raw)
					return
				}
			}
		}
	}()
	var readers sync.WaitGroup
	for range 3 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				for _, p := range []string{"/Users?" + filterQuery(`userName eq "SEED@example.com"`), "/Users/" + seed, "/Users?count=5"} {
					r, err := e.send("GET", p, "")
					if err != nil {
						errs <- err.Error()
						return
					}
					if r.status != 200 {
						errs <- fmt.Sprintf("GET %s: %d %s", p, r.status, r.raw)
						return
					}
					if p != "/Users?count=5" && !strings.Contains(string(r.raw), `"id":"`+seed+`"`) {
						errs <- fmt.Sprintf("GET %s lost the seeded user: %s", p, r.raw)
						return
					}
				}
			}
		}()
	}
	<-done
	readers.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
	r := e.must(200, "GET", "/Users?count=0", "").obj(t)
	if r["totalResults"] != float64(1+writers*per) {
		t.Errorf("totalResults %v, want %d", r["totalResults"], 1+writers*per)
	}
}
