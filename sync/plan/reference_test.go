package plan

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/sync/identity"
)

// refTime is a time a store may hand back: mostly UTC hours, sometimes
// in another zone, named UTC but not time.UTC, zero, or out of the range
// of Unix nanoseconds (a build keeps UTC times as such).
func refTime(r *rand.Rand) time.Time {
	base := at(r.IntN(6))
	switch r.IntN(14) {
	case 0:
		return base.In(time.FixedZone("CET", 3600))
	case 1:
		return time.Time{}
	case 2:
		return time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	case 3:
		return time.Date(1600, 1, 1, 0, 0, 0, 0, time.UTC)
	case 4:
		return base.In(time.FixedZone("UTC", 0))
	case 5:
		return base.Add(time.Duration(r.IntN(3)))
	}
	return base
}

// refInput is a random directory, mappings, temporary grants and scope:
// user ids that are empty, hold a NUL or differ from another only by it;
// emails shared in other letter cases, invalid or empty; memberships of
// unknown users; nested groups with cycles; the same mapping twice; keys
// repeated in one mapping or grant; ttl and expires_at; grants ended,
// live and to come, some for the same email in another case.
func refInput(seed uint64) (dir *memDir, res *mapping.Resolved, grants []TempGrant, users map[string]bool) {
	r := rand.New(rand.NewPCG(seed, 77))
	dir = newDir()
	nGroups := 1 + r.IntN(6)
	for g := range nGroups {
		dir.group(fmt.Sprintf("g%02d", g), fmt.Sprintf("Group%d", g), []string{"", "", "ext-1", "ext-2"}[r.IntN(4)])
	}
	ids := []string{"u00", "u01", "u02", "u03", "u04", "u05", "u06", "u07", "", "u\x00", "u", "U00", "ü1"}
	r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	ids = ids[:1+r.IntN(len(ids))]
	emails := []string{"a@example.com", "A@Example.com", "b@example.com", "B@EXAMPLE.COM", "c@example.com", "", "not an address", "a\x00@example.com"}
	for i, id := range ids {
		e := emails[r.IntN(len(emails))]
		if r.IntN(3) == 0 {
			e = fmt.Sprintf("user%d@example.com", i)
		}
		dir.user(id, e, r.IntN(6) != 0, refTime(r))
	}
	members := append(slices.Clone(ids), "ghost")
	for g := range nGroups {
		gid := fmt.Sprintf("g%02d", g)
		for range r.IntN(3) {
			if child := fmt.Sprintf("g%02d", r.IntN(nGroups)); child != gid {
				dir.member(gid, child, refTime(r))
			}
		}
		for range r.IntN(len(members) + 2) {
			dir.member(gid, members[r.IntN(len(members))], refTime(r))
		}
	}
	keys := mappedKeys
	res = randomMappings(r, nGroups)
	for i := range r.IntN(5) {
		e := dir.users[ids[r.IntN(len(ids))]].Email
		if r.IntN(3) == 0 {
			e = strings.ToUpper(e)
		}
		g := TempGrant{ID: fmt.Sprintf("tg%d", i), Email: e, AccountID: []string{prod, staging}[r.IntN(2)], Start: at(r.IntN(8)), End: at(3 + r.IntN(6))}
		for range 1 + r.IntN(3) {
			g.Keys = append(g.Keys, keys[r.IntN(len(keys))])
		}
		grants = append(grants, g)
	}
	if r.IntN(3) == 0 {
		users = map[string]bool{}
		for _, id := range members {
			if r.IntN(2) == 0 {
				users[id] = true
			}
		}
	}
	return dir, res, grants, users
}

// refKey is one key of one member of one account.
type refKey struct{ account, email, key string }

// refModel is what the SPEC's rules want, derived without the builder:
// every source (mapping or grant, with its end) per member and key, the
// ended ones' latest end where no live one is left, and the next moment
// the answer changes by the clock.
type refModel struct {
	live    map[refKey][]string
	expired map[refKey]time.Time
	next    time.Time
}

func refInstant(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func refSource(mappingIndex int, grantID string, expires time.Time) string {
	return fmt.Sprintf("mapping %d grant %q until %s", mappingIndex, grantID, refInstant(expires))
}

// reference is the model's answer. A user's start over a nesting path is
// its latest edge, over several paths the earliest of those, found here
// by relaxing every edge until nothing changes (not by the builder's
// ordered walk), and never before the user became active.
func reference(dir *memDir, res *mapping.Resolved, grants []TempGrant, users map[string]bool, now time.Time) refModel {
	m := refModel{live: map[refKey][]string{}, expired: map[refKey]time.Time{}}
	wake := func(t time.Time) {
		if !t.IsZero() && t.After(now) && (m.next.IsZero() || t.Before(m.next)) {
			m.next = t
		}
	}
	source := func(k refKey, src string, expires time.Time) {
		if !expires.IsZero() && !expires.After(now) {
			if old, ok := m.expired[k]; !ok || expires.After(old) {
				m.expired[k] = expires
			}
			return
		}
		wake(expires)
		m.live[k] = append(m.live[k], src)
	}
	for _, mp := range res.Mappings {
		var roots []string
		for id, g := range dir.groups {
			if (mp.Group != "" && strings.EqualFold(g.name, mp.Group)) || (mp.Group == "" && mp.GroupExternalID != "" && g.ext == mp.GroupExternalID) {
				roots = append(roots, id)
			}
		}
		for _, root := range roots {
			groups, reached := map[string]time.Time{root: {}}, map[string]time.Time{}
			for changed := true; changed; {
				changed = false
				for gid, gsince := range groups {
					for _, e := range dir.groups[gid].members {
						t := e.Since
						if gsince.After(t) {
							t = gsince
						}
						into := reached
						if e.IsGroup {
							into = groups
						}
						if old, ok := into[e.MemberID]; !ok || t.Before(old) {
							into[e.MemberID], changed = t, true
						}
					}
				}
			}
			for id, start := range reached {
				u, ok := dir.users[id]
				if (users != nil && !users[id]) || !ok || !u.Active {
					continue
				}
				email, err := identity.Email(u.Email)
				if err != nil {
					continue
				}
				if u.ActiveSince.After(start) {
					start = u.ActiveSince
				}
				var ends time.Time
				if mp.TTL > 0 {
					ends = start.Add(mp.TTL)
				}
				if mp.ExpiresAt != nil && (ends.IsZero() || mp.ExpiresAt.Before(ends)) {
					ends = *mp.ExpiresAt
				}
				for _, key := range mp.Keys {
					source(refKey{mp.AccountID, email, key}, refSource(mp.Index, "", ends), ends)
				}
			}
		}
	}
	var scope map[string]bool
	if users != nil {
		scope = map[string]bool{}
		for id := range users {
			if u, ok := dir.users[id]; ok && u.Email != "" {
				scope[identity.Key(u.Email)] = true
			}
		}
	}
	for _, g := range grants {
		lower := identity.Key(g.Email)
		if scope != nil && !scope[lower] {
			continue
		}
		active := false
		for _, u := range dir.users {
			active = active || (u.Active && identity.Valid(u.Email) && identity.Key(u.Email) == lower)
		}
		if !active {
			continue
		}
		if g.Start.After(now) {
			wake(g.Start)
			continue
		}
		for _, key := range g.Keys {
			source(refKey{g.AccountID, lower, key}, refSource(-1, g.ID, g.End), g.End)
		}
	}
	for k := range m.expired {
		if len(m.live[k]) > 0 {
			delete(m.expired, k)
		}
	}
	for _, srcs := range m.live {
		slices.Sort(srcs)
	}
	return m
}

// TestBuildWantsWhatAReferenceModelWants: on random directories a Build —
// full or targeted — wants for every member exactly the keys the rules
// give, each with one reason per source and that source's end, reports
// as ended exactly the keys whose every source has ended, and wakes at the
// next change. A model that knows nothing of how the build shares lists,
// rows and reasons between members, so a list one member's step changes
// under another (a leaver keeping a key, or a member losing one) shows
// here as a key the rules do not give.
func TestBuildWantsWhatAReferenceModelWants(t *testing.T) {
	t.Parallel()
	now := at(5)
	for seed := range uint64(3000) {
		dir, res, grants, users := refInput(seed)
		d, err := Build(dir, res, grants, users, now)
		if err != nil {
			t.Fatal(err)
		}
		want := reference(dir, res, grants, users, now)
		got := map[refKey][]string{}
		for account, members := range d.Accounts {
			for email, dm := range members.All() {
				if dm.Email != email {
					t.Fatalf("seed %d: %s in %s has email %q", seed, email, account, dm.Email)
				}
				for _, w := range dm.Keys {
					k := refKey{account, email, w.Key}
					if len(w.Reasons) == 0 {
						t.Fatalf("seed %d: %+v is listed without a reason", seed, k)
					}
					for _, r := range w.Reasons {
						got[k] = append(got[k], refSource(r.MappingIndex, r.GrantID, r.Expires))
					}
					slices.Sort(got[k])
				}
			}
		}
		for k, srcs := range want.live {
			if !slices.Equal(got[k], srcs) {
				t.Fatalf("seed %d: %+v has sources %q; the rules give %q\n%s", seed, k, got[k], srcs, dump(d))
			}
		}
		for k, srcs := range got {
			if _, ok := want.live[k]; !ok {
				t.Fatalf("seed %d: %+v is wanted (%q); the rules give it nothing\n%s", seed, k, srcs, dump(d))
			}
		}
		ended := map[refKey]time.Time{}
		for _, e := range d.Expired {
			ended[refKey{e.AccountID, e.Email, e.Key}] = e.Reason.Expires
		}
		if len(ended) != len(d.Expired) || len(ended) != len(want.expired) {
			t.Fatalf("seed %d: ended %v; the rules end %v", seed, d.Expired, want.expired)
		}
		for k, end := range want.expired {
			if got, ok := ended[k]; !ok || !got.Equal(end) {
				t.Fatalf("seed %d: %+v ended at %v (reported %v); the rules end it at %v", seed, k, got, ok, end)
			}
		}
		if !d.NextExpiry.Equal(want.next) {
			t.Fatalf("seed %d: next expiry %v; the rules give %v", seed, d.NextExpiry, want.next)
		}
	}
}
