package plan

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// A build's table must hold what a map of members, each with its own
// Wants grown by Wants.Add, would: the members share lists, and no step one
// member takes may change the list another holds (a key given many
// reasons appends past a shared list's end unless the step copies it).
func TestWantedMatchesAMapOfWants(t *testing.T) {
	for seed := range uint64(30) {
		rng := rand.New(rand.NewPCG(seed, 11))
		// A few shared reason slices of one reason each, as a build makes
		// them: len == cap, never written into.
		var reasons [][]Reason
		for i := range 12 {
			r := Reason{Kind: ReasonMapping, MappingIndex: i % 5, Group: fmt.Sprintf("g%d", i%3), Path: []string{fmt.Sprintf("g%d", i%3)}}
			if i%4 == 3 {
				r.Expires = time.Unix(int64(1_000_000+i), 0)
			}
			reasons = append(reasons, []Reason{r})
		}
		keys := []string{"role:a", "role:b", "role:c", "", "role:\x00"}
		p, ws := newPool(0), &wantsPool{}
		tables := map[string]*Wanted{"acct1": newWantedIn(p, ws, rng.IntN(3)), "acct2": newWantedIn(p, ws, 0)}
		want := map[string]map[string]*DesiredMember{"acct1": {}, "acct2": {}}
		spans := map[string]span{}
		// Members that take the same steps and then part: the lists they
		// share must stay as they were when one of them takes a further
		// step (an append into a list's spare capacity would write into the
		// list every other member holds).
		for i := range 8 {
			email := fmt.Sprintf("u%d@example.com", i)
			m := &DesiredMember{Email: email}
			want["acct1"][email] = m
			for _, rs := range append(reasons[:1+i%5:1+i%5], reasons[8+i%4]) {
				tables["acct1"].want(email, span{}, "role:a", rs)
				m.Keys.Add("role:a", rs...)
			}
		}
		for op := range 4000 {
			acct := "acct1"
			if rng.IntN(4) == 0 {
				acct = "acct2"
			}
			email := fmt.Sprintf("u%d@example.com", rng.IntN(80))
			key := keys[rng.IntN(len(keys))]
			rs := reasons[rng.IntN(len(reasons))]
			if rng.IntN(10) == 0 {
				// Many reasons for one key: the append that overruns a
				// shared list.
				key = "role:a"
			}
			var sp span
			if rng.IntN(2) == 0 {
				if sp = spans[email]; sp.n == 0 {
					sp = p.put(email)
					spans[email] = sp
				}
			}
			tables[acct].want(email, sp, key, rs)
			m := want[acct][email]
			if m == nil {
				m = &DesiredMember{Email: email}
				want[acct][email] = m
			}
			m.Keys.Add(key, rs...)
			if op%97 == 0 || op == 3999 {
				for a, members := range want {
					if got := tables[a].Len(); got != len(members) {
						t.Fatalf("seed %d op %d: %s holds %d members; want %d", seed, op, a, got, len(members))
					}
					for e, m := range members {
						got, ok := tables[a].Get(e)
						if !ok || !reflect.DeepEqual(got, *m) {
							t.Fatalf("seed %d op %d: %s %s = %#v, %v; want %#v", seed, op, a, e, got, ok, *m)
						}
					}
					n := 0
					for e, got := range tables[a].All() {
						n++
						if m := members[e]; m == nil || !reflect.DeepEqual(got, *m) {
							t.Fatalf("seed %d op %d: All yielded %s %s = %#v; want %#v", seed, op, a, e, got, m)
						}
					}
					if n != len(members) {
						t.Fatalf("seed %d op %d: All yielded %d members of %s; want %d", seed, op, n, a, len(members))
					}
				}
			}
		}
	}
}

// Members reached the same way share one list: the build's memory grows
// with the ways members are reached, not with the members.
func TestBuildSharesWantsBetweenMembersReachedAlike(t *testing.T) {
	const users = 2000
	dir := newDir().group("g-all", "Everyone", "").group("g-half", "Half", "")
	for i := range users {
		id := fmt.Sprintf("u%04d", i)
		dir.user(id, fmt.Sprintf("user%d@example.com", i), true, at(0)).member("g-all", id, at(0))
		if i < users/2 {
			dir.member("g-half", id, at(0))
		}
	}
	res := resolved(
		rm(0, "Everyone", "acct1", "role:a"),
		rm(1, "Half", "acct1", "role:b"),
		rm(2, "Half", "acct2", "role:a"),
	)
	d := mustBuild(t, dir, res, nil, nil, at(1))
	if got := d.Accounts["acct1"].Len(); got != users {
		t.Fatalf("acct1 wants %d members; want %d", got, users)
	}
	if got := d.Accounts["acct2"].Len(); got != users/2 {
		t.Fatalf("acct2 wants %d members; want %d", got, users/2)
	}
	// role:a alone, role:a then role:b, and acct2's role:a (a list of its
	// own step from nothing, equal to the first): three lists for 3,000
	// members.
	if got := len(d.Accounts["acct1"].ws.lists); got > 3 {
		t.Fatalf("the build made %d wanted-key lists for %d members; members reached alike must share one", got, users*3/2)
	}
	both, _ := d.Accounts["acct1"].Get("user0@example.com")
	if got := both.Keys.KeyList(); !reflect.DeepEqual(got, []string{"role:a", "role:b"}) {
		t.Fatalf("user0 wants %v in acct1; want [role:a role:b]", got)
	}
	one, _ := d.Accounts["acct1"].Get(fmt.Sprintf("user%d@example.com", users-1))
	if got := one.Keys.KeyList(); !reflect.DeepEqual(got, []string{"role:a"}) {
		t.Fatalf("the last user wants %v in acct1; want [role:a]", got)
	}
}

// A user read once is kept as a row and read back for every later mapping
// that reaches it: its activeSince must come back as the same time, zone
// included, whatever zone or range it has (a row holds UTC nanoseconds).
func TestBuildKeepsAUsersActiveSinceAsRead(t *testing.T) {
	ttl := 24 * time.Hour
	since := map[string]time.Time{
		"utc":    time.Date(2026, 1, 10, 8, 0, 0, 123, time.UTC),
		"zoned":  time.Date(2026, 1, 10, 8, 0, 0, 0, time.FixedZone("CET", 3600)),
		"local":  time.Date(2026, 1, 10, 8, 0, 0, 0, time.Local),
		"future": time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	dir := newDir().group("g", "Everyone", "").group("h", "Oncall", "")
	for name, at := range since {
		dir.user(name, name+"@example.com", true, at).member("g", name, time.Time{}).member("h", name, time.Time{})
	}
	first, second := rm(0, "Everyone", prod, "role:a"), rm(1, "Oncall", staging, "role:b")
	first.TTL, second.TTL = ttl, ttl
	d := mustBuild(t, dir, resolved(first, second), nil, nil, time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC))
	for name, at := range since {
		for _, c := range []struct{ account, key string }{{prod, "role:a"}, {staging, "role:b"}} {
			rs := held(d, c.account, name+"@example.com")[c.key]
			if len(rs) != 1 || rs[0].Expires != at.Add(ttl) {
				t.Errorf("%s in %s: reasons %+v; want one ending at %v (zone and all)", name, c.account, rs, at.Add(ttl))
			}
		}
	}
}

// Past the users one build can number, a build fails with an error that
// says so, instead of stopping the daemon.
func TestBuildPastItsUserCapacityFailsCleanly(t *testing.T) {
	defer func(n int) { maxUsers = n }(maxUsers)
	maxUsers = 50
	dir := newDir().group("g", "Everyone", "")
	for i := range 51 {
		id := fmt.Sprintf("u%02d", i)
		dir.user(id, id+"@example.com", true, at(0)).member("g", id, at(0))
	}
	_, err := Build(dir, resolved(rm(0, "Everyone", prod, "role:a")), nil, nil, at(1))
	if !errors.Is(err, errTooManyUsers) {
		t.Fatalf("Build of 51 users with room for 50: %v; want errTooManyUsers", err)
	}
	maxUsers = 51
	if _, err := Build(dir, resolved(rm(0, "Everyone", prod, "role:a")), nil, nil, at(1)); err != nil {
		t.Fatalf("Build of 51 users with room for 51: %v", err)
	}
}
