package plan

import (
	"fmt"
	stdmaps "maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/sync/identity"
)

// randomDirectory is a nested group graph with cycles, self-nesting
// through several hops, edges stored at few distinct moments (so that
// many paths tie), users active since one of those moments, some
// inactive, some without a usable address and some sharing one email in
// another letter case.
func randomDirectory(r *rand.Rand) (*memDir, []string) {
	dir := newDir()
	moments := []time.Time{at(0), at(1), at(2), at(3), at(4)}
	moment := func() time.Time { return moments[r.IntN(len(moments))] }
	nGroups, nUsers := 1+r.IntN(9), 1+r.IntN(14)
	exts := []string{"", "", "ext-1", "ext-2"}
	for g := range nGroups {
		dir.group(fmt.Sprintf("g%02d", g), fmt.Sprintf("Group%d", g), exts[r.IntN(len(exts))])
	}
	var users []string
	for u := range nUsers {
		id := fmt.Sprintf("u%02d", u)
		email := fmt.Sprintf("user%d@example.com", u)
		switch p := r.IntN(20); {
		case p == 0:
			email = ""
		case p == 1:
			email = "not an address"
		case p < 5 && u > 0:
			// Another user's address, in upper case.
			email = strings.ToUpper(dir.users[users[r.IntN(len(users))]].Email)
		}
		dir.user(id, email, r.IntN(6) != 0, moment())
		users = append(users, id)
	}
	for g := range nGroups {
		gid := fmt.Sprintf("g%02d", g)
		for range r.IntN(4) {
			child := fmt.Sprintf("g%02d", r.IntN(nGroups))
			if child != gid && !slices.ContainsFunc(dir.groups[gid].members, func(m Membership) bool { return m.MemberID == child }) {
				dir.member(gid, child, moment())
			}
		}
		for range r.IntN(nUsers + 1) {
			uid := users[r.IntN(nUsers)]
			if !slices.ContainsFunc(dir.groups[gid].members, func(m Membership) bool { return m.MemberID == uid }) {
				dir.member(gid, uid, moment())
			}
		}
	}
	return dir, users
}

// mappedKeys are the keys random mappings grant.
var mappedKeys = []string{"role:a", "role:b", "role:c", "role:t"}

// randomMappings maps random groups (by name, sometimes one that does not
// exist, or by externalId) to random keys, some with a ttl, an end or
// both, some twice.
func randomMappings(r *rand.Rand, nGroups int) *mapping.Resolved {
	ttls := []time.Duration{0, 0, time.Hour, 3 * time.Hour, 10 * time.Hour}
	ends := []*time.Time{nil, ptrTime(at(4)), ptrTime(at(5)), ptrTime(at(7))}
	var ms []mapping.ResolvedMapping
	for i := range 1 + r.IntN(6) {
		m := mapping.ResolvedMapping{Index: i, AccountID: []string{prod, staging}[r.IntN(2)]}
		if r.IntN(4) == 0 {
			m.GroupExternalID = []string{"ext-1", "ext-2"}[r.IntN(2)]
		} else {
			m.Group = fmt.Sprintf("GROUP%d", r.IntN(nGroups+1)) // sometimes no such group
		}
		m.TTL = ttls[r.IntN(len(ttls))]
		if r.IntN(2) == 0 {
			m.ExpiresAt = ends[r.IntN(len(ends))]
		}
		m.Keys = []string{mappedKeys[r.IntN(len(mappedKeys))]}
		for r.IntN(3) == 0 {
			m.Keys = append(m.Keys, mappedKeys[r.IntN(len(mappedKeys))])
		}
		ms = append(ms, m)
		if r.IntN(4) == 0 {
			again := m
			again.Index = i + 100
			ms = append(ms, again)
		}
	}
	return resolved(ms...)
}

func ptrTime(t time.Time) *time.Time { return &t }

func randomGrants(r *rand.Rand, dir *memDir, users []string) []TempGrant {
	var gs []TempGrant
	for i := range r.IntN(3) {
		email := dir.users[users[r.IntN(len(users))]].Email
		if email == "" || !identity.Valid(email) {
			continue
		}
		gs = append(gs, TempGrant{
			ID: fmt.Sprintf("tg%d", i), Email: email, AccountID: prod, Keys: []string{"role:t"},
			Start: at(r.IntN(8)), End: at(6 + r.IntN(4)),
		})
	}
	return gs
}

// emailScope is subset plus every user sharing an email with one of them,
// as the reconciler's scope expands a targeted run; and those emails.
func emailScope(dir *memDir, subset []string) (map[string]bool, map[string]bool) {
	users, emails := map[string]bool{}, map[string]bool{}
	for _, id := range subset {
		users[id] = true
		if e := dir.users[id].Email; e != "" {
			emails[identity.Key(e)] = true
		}
	}
	for id, u := range dir.users {
		if u.Email != "" && emails[identity.Key(u.Email)] {
			users[id] = true
		}
	}
	return users, emails
}

// TestTargetedBuildWalksUpwardSameAsFullFlatten: a targeted Build, which
// reads only the groups above its users, wants exactly what flattening
// every mapped group whole wants for those users — same keys, same
// reasons, same nesting path and start (hence the same ttl and expires_at
// ends), same expiries, identity problems and next expiry — and exactly
// what a full Build wants for their emails, on random nested graphs with
// cycles and tied paths.
func TestTargetedBuildWalksUpwardSameAsFullFlatten(t *testing.T) {
	t.Parallel()
	const graphs, subsets = 3000, 4
	now := at(5)
	for seed := range uint64(graphs) {
		r := rand.New(rand.NewPCG(seed, 12))
		dir, users := randomDirectory(r)
		res := randomMappings(r, len(dir.groups))
		grants := randomGrants(r, dir, users)
		full := mustBuild(t, dir, res, grants, nil, now)
		for s := range subsets {
			var subset []string
			for _, id := range users {
				if r.IntN(3) == 0 {
					subset = append(subset, id)
				}
			}
			if s == 0 {
				subset = users[:1]
			}
			if r.IntN(10) == 0 {
				subset = append(subset, "deleted-user")
			}
			scope, emails := emailScope(dir, subset)

			got, err := build(dir, res, grants, scope, now, true)
			if err != nil {
				t.Fatal(err)
			}
			want, err := build(dir, res, grants, scope, now, false)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(viewDesired(got), viewDesired(want)) {
				t.Fatalf("seed %d, users %v: upward walk\n%s\nwhole flatten\n%s", seed, slices.Sorted(stdmaps.Keys(scope)), dump(got), dump(want))
			}

			// Against the full Build, email by email.
			for _, acct := range []string{prod, staging} {
				for email := range got.Accounts[acct].All() {
					if !emails[email] {
						t.Fatalf("seed %d: targeted Build wants %s in %s, outside its users %v", seed, email, acct, subset)
					}
				}
				for email := range emails {
					g, gok := got.Accounts[acct].Get(email)
					f, fok := full.Accounts[acct].Get(email)
					if gok != fok || !reflect.DeepEqual(g, f) {
						t.Fatalf("seed %d, users %v, %s in %s: targeted %+v (present %v), full %+v (present %v)", seed, subset, email, acct, g, gok, f, fok)
					}
				}
			}
			var fullExpired []Expired
			for _, e := range full.Expired {
				if emails[identity.Key(e.Email)] {
					fullExpired = append(fullExpired, e)
				}
			}
			if !reflect.DeepEqual(got.Expired, fullExpired) {
				t.Fatalf("seed %d, users %v: expired targeted %+v, full %+v", seed, subset, got.Expired, fullExpired)
			}
		}
	}
}

func dump(d *Desired) string {
	var b strings.Builder
	for _, acct := range []string{prod, staging} {
		members := wantedMap(d.Accounts[acct])
		for _, email := range slices.Sorted(stdmaps.Keys(members)) {
			m := members[email]
			for _, w := range m.Keys {
				fmt.Fprintf(&b, "  %s %s %s: %+v\n", acct[:4], email, w.Key, w.Reasons)
			}
		}
	}
	fmt.Fprintf(&b, "  expired %+v\n  next %v\n  problems %+v\n", d.Expired, d.NextExpiry, d.Problems)
	return b.String()
}

// countingDir counts what a Build reads.
type countingDir struct {
	*memDir
	listed map[string]int // group id -> GroupMembers calls
	users  int
}

func (d *countingDir) GroupMembers(id string, fn func(Membership) bool) error {
	d.listed[id]++
	return d.memDir.GroupMembers(id, fn)
}

func (d *countingDir) User(id string) (User, bool, error) {
	d.users++
	return d.memDir.User(id)
}

// TestTargetedBuildReadsOnlyTheUsersGroups: one user's targeted Build
// under a mapped group of 5,000 members (2,000 of them through a nested
// group) lists no group's members and reads one user, and still finds the
// user's nested path.
func TestTargetedBuildReadsOnlyTheUsersGroups(t *testing.T) {
	t.Parallel()
	dir := newDir().group("g-all", "Everyone", "").group("g-eng", "Engineering", "")
	dir.member("g-all", "g-eng", at(0))
	for i := range 5000 {
		id := fmt.Sprintf("u%04d", i)
		dir.user(id, id+"@example.com", true, at(0))
		if i < 2000 {
			dir.member("g-eng", id, at(1))
		} else {
			dir.member("g-all", id, at(1))
		}
	}
	cd := &countingDir{memDir: dir, listed: map[string]int{}}
	res := resolved(rm(0, "Everyone", prod, "role:a"))
	d := mustBuild(t, cd, res, nil, map[string]bool{"u0042": true}, at(2))
	if len(cd.listed) != 0 || cd.users != 1 {
		t.Errorf("a one-user targeted Build listed members of %v and read %d users, want none and 1", cd.listed, cd.users)
	}
	want := map[string][]Reason{"role:a": {{Kind: ReasonMapping, Group: "Everyone", Path: []string{"Everyone", "Engineering"}, MappingIndex: 0}}}
	if got := held(d, prod, "u0042@example.com"); !reflect.DeepEqual(got, want) {
		t.Errorf("u0042 holds %+v, want %+v", got, want)
	}
	if n := d.Accounts[prod].Len(); n != 1 {
		t.Errorf("targeted Build wants %d members, want 1", n)
	}
}
