package plan

import (
	"slices"
	"testing"
)

// The identity rule in Build: a user whose address is not plain gets
// nothing and is reported once; users sharing one Cloudflare email are
// reported as a conflict; "İnfo@" is never "info@".
func TestBuildIdentityRule(t *testing.T) {
	dir := newDir().group("g", "Deployers", "").
		user("u-info", "info@example.com", false, at(0)). // deactivated
		user("u-dotted-i", "İnfo@example.com", true, at(0)).
		user("u-space", "breakglass@example.com ", true, at(0)).
		user("u-zw", "eve\u200b@example.com", true, at(0)).
		user("u-a", "shared@example.com", true, at(0)).
		user("u-b", "Shared@Example.com", true, at(0)).
		user("u-ok", "bob@example.com", true, at(0))
	for _, id := range []string{"u-info", "u-dotted-i", "u-space", "u-zw", "u-a", "u-b", "u-ok"} {
		dir.member("g", id, at(0))
	}
	d := mustBuild(t, dir, resolved(rm(0, "Deployers", prod, "role:r")), nil, nil, at(1))

	var got []string
	for email := range d.Accounts[prod].All() {
		got = append(got, email)
	}
	slices.Sort(got)
	if want := []string{"bob@example.com", "shared@example.com"}; !slices.Equal(got, want) {
		t.Fatalf("granted emails = %q, want %q: the deactivated info@ must stay without access whatever İnfo@ is", got, want)
	}
	byKind := map[string][]string{}
	for _, p := range d.Problems {
		byKind[p.Kind] = append(byKind[p.Kind], p.Email)
		if p.Why == "" {
			t.Errorf("problem %+v says no why", p)
		}
	}
	if want := []string{"breakglass@example.com ", "eve\u200b@example.com", "İnfo@example.com"}; !slices.Equal(byKind[ProblemInvalidEmail], want) {
		t.Errorf("invalid = %q, want %q", byKind[ProblemInvalidEmail], want)
	}
	if want := []string{"shared@example.com"}; !slices.Equal(byKind[ProblemSharedEmail], want) {
		t.Errorf("shared = %q, want %q", byKind[ProblemSharedEmail], want)
	}

	// A targeted build over one bad user reports it the same way.
	d = mustBuild(t, dir, resolved(rm(0, "Deployers", prod, "role:r")), nil, map[string]bool{"u-dotted-i": true}, at(1))
	if d.Accounts[prod].Len() != 0 || len(d.Problems) != 1 || d.Problems[0].UserIDs[0] != "u-dotted-i" {
		t.Errorf("targeted: accounts %v, problems %+v", wantedMap(d.Accounts[prod]), d.Problems)
	}

	// A temporary grant for info@ does not come alive through İnfo@.
	g := TempGrant{ID: "g-1", Email: "info@example.com", AccountID: prod, Keys: []string{"role:r"}, Start: at(0), End: at(5)}
	d = mustBuild(t, dir, resolved(), []TempGrant{g}, nil, at(1))
	if d.Accounts[prod].Len() != 0 {
		t.Errorf("a grant for a deactivated user is live: %v", wantedMap(d.Accounts[prod]))
	}
}
