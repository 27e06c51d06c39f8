package plan

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/scimflare/scimflare/mapping"
)

const (
	prod    = "0123456789abcdef0123456789abcdef"
	staging = "fedcba9876543210fedcba9876543210"
)

var t0 = time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)

func at(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }

func rm(index int, group, account string, keys ...string) mapping.ResolvedMapping {
	return mapping.ResolvedMapping{Mapping: mapping.Mapping{Group: group}, Index: index, AccountID: account, Keys: keys}
}

func resolved(ms ...mapping.ResolvedMapping) *mapping.Resolved {
	return &mapping.Resolved{Mappings: ms}
}

// held is what Build wants for one member: key -> reasons.
func held(d *Desired, account, email string) map[string][]Reason {
	m, ok := d.Accounts[account].Get(email)
	if !ok {
		return nil
	}
	out := map[string][]Reason{}
	for _, w := range m.Keys {
		out[w.Key] = w.Reasons
	}
	return out
}

func mustBuild(t *testing.T, dir Directory, res *mapping.Resolved, grants []TempGrant, users map[string]bool, now time.Time) *Desired {
	t.Helper()
	d, err := Build(dir, res, grants, users, now)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	return d
}

func TestBuildMembership(t *testing.T) {
	dir := newDir().
		group("g-top", "Top", "ext-top").group("g-mid", "Mid", "").group("g-low", "Low", "").
		group("g-a", "CycleA", "").group("g-b", "CycleB", "").
		user("u1", "Alice@Example.com", true, at(0)).
		user("u2", "bob@example.com", true, at(0)).
		user("u3", "carol@example.com", false, at(0)).
		user("u4", "", true, at(0)).
		user("u5", "dan@example.com", true, at(0))
	dir.member("g-top", "g-mid", at(0)).member("g-mid", "g-low", at(0)).
		member("g-top", "u1", at(0)).
		member("g-low", "u2", at(0)).
		member("g-top", "u3", at(0)).
		member("g-top", "u4", at(0)).
		member("g-a", "g-b", at(0)).member("g-b", "g-a", at(0)).member("g-b", "u5", at(0))

	res := resolved(
		rm(0, "top", prod, "role:a"), // display names match case-insensitively
		rm(1, "CycleA", staging, "role:b"),
		mapping.ResolvedMapping{Mapping: mapping.Mapping{GroupExternalID: "ext-top"}, Index: 2, AccountID: staging, Keys: []string{"role:c"}},
		rm(3, "No Such Group", prod, "role:z"),
	)
	d := mustBuild(t, dir, res, nil, nil, at(1))

	tests := []struct {
		name, account, email string
		keys                 []string
		path                 []string
	}{
		{"direct member", prod, "alice@example.com", []string{"role:a"}, []string{"Top"}},
		{"nested three deep", prod, "bob@example.com", []string{"role:a"}, []string{"Top", "Mid", "Low"}},
		{"cycle terminates", staging, "dan@example.com", []string{"role:b"}, []string{"CycleA", "CycleB"}},
		{"by external id", staging, "bob@example.com", []string{"role:c"}, []string{"Top", "Mid", "Low"}},
		{"inactive user", prod, "carol@example.com", nil, nil},
		{"user without email", prod, "", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := held(d, tc.account, tc.email)
			var keys []string
			for k := range h {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, tc.keys) {
				t.Fatalf("keys = %v, want %v", keys, tc.keys)
			}
			if tc.path != nil {
				r := h[tc.keys[0]][0]
				if !slices.Equal(r.Path, tc.path) || r.Group != tc.path[0] || r.Kind != ReasonMapping {
					t.Errorf("reason = %+v, want path %v", r, tc.path)
				}
			}
		})
	}
	// One identity rule: the SCIM "Alice@Example.com" is the Cloudflare
	// "alice@example.com", everywhere it is compared or written.
	if m, ok := d.Accounts[prod].Get("alice@example.com"); !ok || m.Email != "alice@example.com" {
		t.Errorf("member's email is the identity rule's: %+v (present %v)", m, ok)
	}
	if len(d.Expired) != 0 || !d.NextExpiry.IsZero() {
		t.Errorf("nothing expires: %v %v", d.Expired, d.NextExpiry)
	}
}

func TestBuildExpiry(t *testing.T) {
	ttl := 12 * time.Hour
	ttlMapping := func(keys ...string) mapping.ResolvedMapping {
		m := rm(0, "oncall", prod, keys...)
		m.TTL = ttl
		return m
	}
	tests := []struct {
		name        string
		since       time.Time // user's edge into the group
		activeSince time.Time
		nested      *time.Time // if set, the user is in a nested group joined at this time instead
		now         time.Time
		wantExpires time.Time // zero = not desired
		wantExpired bool
	}{
		{"live: ends since+ttl", at(0), at(-100), nil, at(1), at(12), false},
		{"ends at exactly now is expired", at(0), at(-100), nil, at(12), time.Time{}, true},
		{"expired after ttl although still a member", at(0), at(-100), nil, at(13), time.Time{}, true},
		{"rejoin resets start", at(20), at(-100), nil, at(21), at(32), false},
		{"reactivation resets start", at(0), at(20), nil, at(21), at(32), false},
		{"nested: latest edge on the path counts", at(0), at(-100), ptr(at(5)), at(6), at(17), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := newDir().group("g", "oncall", "").user("u", "u@example.com", true, tc.activeSince)
			if tc.nested != nil {
				dir.group("n", "oncall-eu", "").member("g", "n", *tc.nested).member("n", "u", tc.since)
			} else {
				dir.member("g", "u", tc.since)
			}
			d := mustBuild(t, dir, resolved(ttlMapping("role:admin")), nil, nil, tc.now)
			h := held(d, prod, "u@example.com")
			if tc.wantExpires.IsZero() {
				if h != nil {
					t.Fatalf("desired %v, want nothing", h)
				}
			} else if got := h["role:admin"]; len(got) != 1 || !got[0].Expires.Equal(tc.wantExpires) {
				t.Fatalf("reasons = %+v, want expiry %v", got, tc.wantExpires)
			}
			if tc.wantExpired != (len(d.Expired) == 1) {
				t.Fatalf("expired = %+v, want %v", d.Expired, tc.wantExpired)
			}
			if tc.wantExpired {
				e := d.Expired[0]
				if e.AccountID != prod || e.Email != "u@example.com" || e.Key != "role:admin" || e.Reason.MappingIndex != 0 {
					t.Errorf("expired entry = %+v", e)
				}
			}
			if !d.NextExpiry.Equal(tc.wantExpires) {
				t.Errorf("NextExpiry = %v, want %v", d.NextExpiry, tc.wantExpires)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestBuildEarliestPath(t *testing.T) {
	// u reaches "oncall" twice: directly since hour 10, and through "eu"
	// (joined hour 2, nested into oncall at hour 4). The earlier path wins.
	dir := newDir().group("g", "oncall", "").group("eu", "eu", "").
		user("u", "u@example.com", true, at(-100)).
		member("g", "u", at(10)).member("g", "eu", at(4)).member("eu", "u", at(2))
	m := rm(0, "oncall", prod, "role:admin")
	m.TTL = 12 * time.Hour
	d := mustBuild(t, dir, resolved(m), nil, nil, at(5))
	r := held(d, prod, "u@example.com")["role:admin"]
	if len(r) != 1 || !r[0].Expires.Equal(at(16)) || !slices.Equal(r[0].Path, []string{"oncall", "eu"}) {
		t.Fatalf("reason = %+v, want expiry at hour 16 via oncall > eu", r)
	}
}

func TestBuildExpiresAt(t *testing.T) {
	dir := newDir().group("g", "contractors", "").user("u", "u@example.com", true, at(0)).member("g", "u", at(0)).
		group("h", "readers", "").member("h", "u", at(0))
	end := at(48)
	contractors := rm(0, "contractors", staging, "role:read", "role:write")
	contractors.ExpiresAt = &end
	readers := rm(1, "readers", staging, "role:read")

	before := mustBuild(t, dir, resolved(contractors, readers), nil, nil, at(47))
	if r := held(before, staging, "u@example.com")["role:write"]; len(r) != 1 || !r[0].Expires.Equal(end) {
		t.Fatalf("before expiry: %+v", r)
	}
	if !before.NextExpiry.Equal(end) {
		t.Errorf("NextExpiry = %v, want %v", before.NextExpiry, end)
	}

	after := mustBuild(t, dir, resolved(contractors, readers), nil, nil, at(48))
	h := held(after, staging, "u@example.com")
	if _, ok := h["role:write"]; ok {
		t.Errorf("role:write still desired after expires_at")
	}
	if r := h["role:read"]; len(r) != 1 || r[0].MappingIndex != 1 {
		t.Errorf("role:read from the live mapping = %+v", r)
	}
	// role:read is still wanted by "readers": only role:write has expired.
	if len(after.Expired) != 1 || after.Expired[0].Key != "role:write" {
		t.Errorf("Expired = %+v, want only role:write", after.Expired)
	}
	if !after.NextExpiry.IsZero() {
		t.Errorf("NextExpiry = %v, want none", after.NextExpiry)
	}
}

func TestBuildTempGrants(t *testing.T) {
	dir := newDir().
		user("u1", "alice@example.com", true, at(0)).
		user("u2", "bob@example.com", false, at(0))
	grants := []TempGrant{
		{ID: "live", Email: "ALICE@example.com", AccountID: prod, Keys: []string{"role:a"}, Start: at(0), End: at(5)},
		{ID: "over", Email: "alice@example.com", AccountID: prod, Keys: []string{"role:b"}, Start: at(0), End: at(1)},
		{ID: "later", Email: "alice@example.com", AccountID: prod, Keys: []string{"role:c"}, Start: at(3), End: at(9)},
		{ID: "inactive", Email: "bob@example.com", AccountID: prod, Keys: []string{"role:a"}, Start: at(0), End: at(5)},
		{ID: "stranger", Email: "eve@example.com", AccountID: prod, Keys: []string{"role:a"}, Start: at(0), End: at(5)},
	}
	d := mustBuild(t, dir, resolved(), grants, nil, at(2))
	h := held(d, prod, "alice@example.com")
	if len(h) != 1 || len(h["role:a"]) != 1 || h["role:a"][0].GrantID != "live" || h["role:a"][0].Kind != ReasonGrant || !h["role:a"][0].Expires.Equal(at(5)) {
		t.Fatalf("alice = %+v, want only the live grant", h)
	}
	if held(d, prod, "bob@example.com") != nil || held(d, prod, "eve@example.com") != nil {
		t.Errorf("grants of inactive or unknown users are desired: %+v", wantedMap(d.Accounts[prod]))
	}
	if len(d.Expired) != 1 || d.Expired[0].Key != "role:b" || d.Expired[0].Reason.GrantID != "over" {
		t.Errorf("Expired = %+v", d.Expired)
	}
	// The grant starting at hour 3 wakes the reconciler before the one ending at 5.
	if !d.NextExpiry.Equal(at(3)) {
		t.Errorf("NextExpiry = %v, want hour 3", d.NextExpiry)
	}
}

func TestBuildTargeted(t *testing.T) {
	dir := newDir().group("g", "devs", "").
		user("u1", "alice@example.com", true, at(0)).
		user("u2", "bob@example.com", true, at(0)).
		member("g", "u1", at(0)).member("g", "u2", at(0))
	grants := []TempGrant{{ID: "g2", Email: "bob@example.com", AccountID: prod, Keys: []string{"role:x"}, Start: at(0), End: at(9)}}
	d := mustBuild(t, dir, resolved(rm(0, "devs", prod, "role:a")), grants, map[string]bool{"u1": true}, at(1))
	if d.Accounts[prod].Len() != 1 || held(d, prod, "alice@example.com") == nil {
		t.Fatalf("targeted build = %+v, want only alice", wantedMap(d.Accounts[prod]))
	}
	if !d.NextExpiry.IsZero() {
		t.Errorf("bob's grant leaked into a run for alice: NextExpiry %v", d.NextExpiry)
	}
}

func TestBuildDirectoryError(t *testing.T) {
	boom := errors.New("snapshot closed")
	dir := newDir().group("g", "devs", "")
	dir.err = boom
	_, err := Build(dir, resolved(rm(0, "devs", prod, "role:a")), nil, nil, at(0))
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want wrapped %v", err, boom)
	}
}
