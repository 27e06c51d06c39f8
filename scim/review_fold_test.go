package scim_test

import (
	"fmt"
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
