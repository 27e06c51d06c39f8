package plan

import (
	"reflect"
	"testing"

	"github.com/scimflare/scimflare/mapping"
)

func want(keys ...string) *DesiredMember {
	m := &DesiredMember{Email: "x@example.com"}
	for _, k := range keys {
		m.Keys.Add(k, Reason{Kind: ReasonMapping, Group: "devs", Path: []string{"devs"}, MappingIndex: 0})
	}
	return m
}

func actual(status string, keys ...string) Actual {
	return Actual{MemberID: "m1", Email: "x@example.com", Status: status, Keys: keys}
}

func TestPlan(t *testing.T) {
	const x = "x@example.com"
	expiredB := []Expired{{AccountID: prod, Email: x, Key: "role:b", Reason: Reason{Kind: ReasonMapping, Group: "oncall", MappingIndex: 2, Expires: at(12)}}}
	tests := []struct {
		name      string
		desired   *DesiredMember
		actual    *Actual
		ledger    *LedgerEntry
		expired   []Expired
		unmanaged bool
		want      *Change // nil = no change
		drift     []string
	}{
		{name: "create", desired: want("role:a"),
			want: &Change{Kind: AddMember, Op: OpCreate, After: []string{"role:a"}, Added: []string{"role:a"}, Privileged: true,
				Reason: "member of devs (mappings[0])", NewLedger: LedgerEntry{Created: true, Managed: []string{"role:a"}}}},
		{name: "unchanged", desired: want("role:a"), actual: ptr(actual("accepted", "role:a")), ledger: &LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a"}}},
		{name: "pending invite counts as present", desired: want("role:a"), actual: ptr(actual("pending", "role:a")), ledger: &LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a"}}},
		{name: "member removed by hand is invited again", desired: want("role:a"), ledger: &LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a"}},
			want: &Change{Kind: AddMember, Op: OpCreate, After: []string{"role:a"}, Added: []string{"role:a"}, Privileged: true,
				Reason: "member of devs (mappings[0])", NewLedger: LedgerEntry{Created: true, Managed: []string{"role:a"}}}},
		{name: "adopt: add desired, keep found", desired: want("role:a"), actual: ptr(actual("accepted", "role:b")),
			want: &Change{Kind: UpdateRoles, Op: OpUpdate, MemberID: "m1", Before: []string{"role:b"}, After: []string{"role:a", "role:b"}, Added: []string{"role:a"}, Privileged: true,
				Reason: "member of devs (mappings[0])", NewLedger: LedgerEntry{MemberID: "m1", Managed: []string{"role:a"}, Found: []string{"role:b"}}}},
		{name: "adopt: desired already held", desired: want("role:a"), actual: ptr(actual("accepted", "role:a"))},
		{name: "found key is never removed", actual: ptr(actual("accepted", "role:a", "role:b")), ledger: &LedgerEntry{MemberID: "m1", Managed: []string{"role:a"}, Found: []string{"role:b"}},
			want: &Change{Kind: UpdateRoles, Op: OpUpdate, MemberID: "m1", Before: []string{"role:a", "role:b"}, After: []string{"role:b"}, Removed: []string{"role:a"},
				Reason: "no longer granted by any mapping or grant", NewLedger: LedgerEntry{MemberID: "m1", Found: []string{"role:b"}}}},
		{name: "adopted member holding nothing else is removed", actual: ptr(actual("accepted", "role:a")), ledger: &LedgerEntry{MemberID: "m1", Managed: []string{"role:a"}, Found: []string{"role:b"}},
			want: &Change{Kind: RemoveMember, Op: OpDelete, MemberID: "m1", Before: []string{"role:a"}, Removed: []string{"role:a"},
				Reason: "no longer granted by any mapping or grant"}},
		{name: "drift is reported", desired: want("role:a"), actual: ptr(actual("accepted", "role:a", "role:z")), ledger: &LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a"}},
			drift: []string{"role:z"}},
		{name: "drift is removed with unmanaged: remove", desired: want("role:a"), actual: ptr(actual("accepted", "role:a", "role:z")), ledger: &LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a"}},
			unmanaged: true, drift: []string{"role:z"},
			want: &Change{Kind: UpdateRoles, Op: OpUpdate, MemberID: "m1", Before: []string{"role:a", "role:z"}, After: []string{"role:a"}, RemovedUnmanaged: []string{"role:z"},
				Reason: unmanagedReason, NewLedger: LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a"}}}},
		{name: "a hand-added deny policy is reported but never removed: removing it would widen access",
			desired: want("role:a"), actual: ptr(actual("accepted", "role:a", "role:z", mapping.DenyKey("policy:pg|rg"))),
			ledger: &LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a"}}, unmanaged: true,
			drift: []string{mapping.DenyKey("policy:pg|rg"), "role:z"},
			want: &Change{Kind: UpdateRoles, Op: OpUpdate, MemberID: "m1", Before: []string{mapping.DenyKey("policy:pg|rg"), "role:a", "role:z"},
				After: []string{mapping.DenyKey("policy:pg|rg"), "role:a"}, RemovedUnmanaged: []string{"role:z"},
				Reason: unmanagedReason, NewLedger: LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a"}}}},
		{name: "hand-added key that becomes desired is claimed, not drift", desired: want("role:a", "role:z"), actual: ptr(actual("accepted", "role:a", "role:z")), ledger: &LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a"}}},
		{name: "last managed key of a created member", actual: ptr(actual("accepted", "role:a")), ledger: &LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a"}},
			want: &Change{Kind: RemoveMember, Op: OpDelete, MemberID: "m1", Before: []string{"role:a"}, Removed: []string{"role:a"},
				Reason: "no longer granted by any mapping or grant"}},
		{name: "last managed key with other roles left", actual: ptr(actual("accepted", "role:a", "role:z")), ledger: &LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a"}},
			drift: []string{"role:z"},
			want: &Change{Kind: UpdateRoles, Op: OpUpdate, MemberID: "m1", Before: []string{"role:a", "role:z"}, After: []string{"role:z"}, Removed: []string{"role:a"},
				Reason: "no longer granted by any mapping or grant", NewLedger: LedgerEntry{MemberID: "m1", Created: true}}},
		{name: "last managed key with other roles left, unmanaged: remove", actual: ptr(actual("accepted", "role:a", "role:z")), ledger: &LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a"}},
			unmanaged: true, drift: []string{"role:z"},
			want: &Change{Kind: RemoveMember, Op: OpDelete, MemberID: "m1", Before: []string{"role:a", "role:z"}, Removed: []string{"role:a"}, RemovedUnmanaged: []string{"role:z"},
				Reason: "no longer granted by any mapping or grant; " + unmanagedReason}},
		{name: "expire one grant", desired: want("role:a"), actual: ptr(actual("accepted", "role:a", "role:b")), ledger: &LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a", "role:b"}},
			expired: expiredB,
			want: &Change{Kind: ExpireGrant, Op: OpUpdate, MemberID: "m1", Before: []string{"role:a", "role:b"}, After: []string{"role:a"}, Removed: []string{"role:b"},
				Reason: "grant from oncall (mappings[2]) ended 2026-01-10T20:00:00Z", NewLedger: LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a"}}}},
		{name: "expire the last grant", actual: ptr(actual("accepted", "role:b")), ledger: &LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:b"}},
			expired: expiredB,
			want: &Change{Kind: ExpireGrant, Op: OpDelete, MemberID: "m1", Before: []string{"role:b"}, Removed: []string{"role:b"},
				Reason: "grant from oncall (mappings[2]) ended 2026-01-10T20:00:00Z"}},
		{name: "expired key not held: nothing to do", desired: want("role:a"), actual: ptr(actual("accepted", "role:a")), ledger: &LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a"}},
			expired: expiredB},
		{name: "unmanaged member is reported", actual: ptr(actual("accepted", "role:z")), drift: []string{"role:z"}},
		{name: "unmanaged member is removed with unmanaged: remove", actual: ptr(actual("accepted", "role:z")), unmanaged: true, drift: []string{"role:z"},
			want: &Change{Kind: RemoveMember, Op: OpDelete, MemberID: "m1", Before: []string{"role:z"}, RemovedUnmanaged: []string{"role:z"}, Reason: unmanagedReason}},
		{name: "ledger only, member gone, nothing desired", ledger: &LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := AccountInput{ID: prod, Name: "prod", Desired: NewWanted(1), Actual: NewActuals(0), Ledger: NewLedger(0), Expired: tc.expired}
			if tc.desired != nil {
				in.Desired.Set(x, *tc.desired)
			}
			if tc.actual != nil {
				in.Actual.Set(x, *tc.actual)
			}
			if tc.ledger != nil {
				in.Ledger.Set(x, *tc.ledger)
			}
			c := Plan([]AccountInput{in}, tc.unmanaged)
			if len(c.Accounts) != 1 || c.Accounts[0].ID != prod {
				t.Fatalf("accounts = %+v", c.Accounts)
			}
			got := c.Accounts[0].Changes
			if tc.want == nil {
				if len(got) != 0 {
					t.Fatalf("changes = %+v, want none", got)
				}
				if c.HasChanges() {
					t.Error("HasChanges with no change")
				}
			} else {
				w := *tc.want
				w.AccountID, w.Email = prod, x
				if len(got) != 1 {
					t.Fatalf("changes = %+v, want one", got)
				}
				g := got[0]
				g.addReason, g.removeReason = "", ""
				if !reflect.DeepEqual(g, w) {
					t.Fatalf("change\n got %+v\nwant %+v", g, w)
				}
				if !c.HasChanges() {
					t.Error("HasChanges false")
				}
			}
			var drift []string
			for _, d := range c.Drift {
				if d.AccountID != prod || d.Email != x {
					t.Errorf("drift entry %+v", d)
				}
				drift = append(drift, d.Key)
			}
			if !reflect.DeepEqual(drift, tc.drift) {
				t.Errorf("drift = %v, want %v", drift, tc.drift)
			}
		})
	}
}

func TestPlanScopeAndOrder(t *testing.T) {
	in := AccountInput{
		ID: prod, Name: "prod",
		Desired: WantedOf(map[string]DesiredMember{"b@example.com": *want("role:a"), "a@example.com": *want("role:a"), "c@example.com": *want("role:a")}),
		Actual:  NewActuals(0),
	}
	c := Plan([]AccountInput{in, {ID: staging, Name: "staging"}}, false)
	var got []string
	for _, ch := range c.Accounts[0].Changes {
		got = append(got, ch.Email)
	}
	if len(c.Accounts) != 2 || c.Accounts[1].ID != staging || len(c.Accounts[1].Changes) != 0 {
		t.Errorf("accounts = %+v, want both in input order", c.Accounts)
	}
	if !reflect.DeepEqual(got, []string{"x@example.com", "x@example.com", "x@example.com"}) || c.Accounts[0].Changes[0].Kind != AddMember {
		t.Fatalf("changes = %+v", c.Accounts[0].Changes)
	}

	// Emails are displayed from the desired member; order is by lower-case email.
	for k, m := range wantedMap(in.Desired) {
		m.Email = k
		in.Desired.Set(k, m)
	}
	c = Plan([]AccountInput{in}, false)
	got = nil
	for _, ch := range c.Accounts[0].Changes {
		got = append(got, ch.Email)
	}
	if !reflect.DeepEqual(got, []string{"a@example.com", "b@example.com", "c@example.com"}) {
		t.Errorf("order = %v", got)
	}

	in.Scope = map[string]bool{"b@example.com": true}
	c = Plan([]AccountInput{in}, false)
	if len(c.Accounts[0].Changes) != 1 || c.Accounts[0].Changes[0].Email != "b@example.com" {
		t.Errorf("scoped plan = %+v, want only b", c.Accounts[0].Changes)
	}
}

// Records: a ledger Cloudflare needs no change to match is rewritten; an
// entry already right, or a member never granted anything, is not.
func TestPlanRecordsLedgerOnlyDifferences(t *testing.T) {
	const x = "x@example.com"
	tests := []struct {
		name    string
		desired *DesiredMember
		actual  Actual
		ledger  *LedgerEntry
		want    *LedgerEntry // nil: no record
	}{
		{name: "already right", desired: want("role:a"), actual: actual("accepted", "role:a"),
			ledger: &LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a"}}},
		{name: "managed key gone by hand and no longer wanted", desired: want("role:a"), actual: actual("accepted", "role:a"),
			ledger: &LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a", "role:b"}},
			want:   &LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a"}}},
		{name: "hand-added key that becomes desired is claimed", desired: want("role:a", "role:z"), actual: actual("accepted", "role:a", "role:z"),
			ledger: &LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a"}},
			want:   &LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a", "role:z"}}},
		{name: "found key removed by hand", desired: want("role:a"), actual: actual("accepted", "role:a"),
			ledger: &LedgerEntry{MemberID: "m1", Managed: []string{"role:a"}, Found: []string{"role:b"}},
			want:   &LedgerEntry{MemberID: "m1", Managed: []string{"role:a"}}},
		{name: "unconfirmed entry gets the member id", desired: want("role:a"), actual: actual("accepted", "role:a"),
			ledger: &LedgerEntry{Created: true, Managed: []string{"role:a"}},
			want:   &LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a"}}},
		{name: "adoption that grants nothing", desired: want("role:a"), actual: actual("accepted", "role:a")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := AccountInput{ID: prod, Name: "prod",
				Desired: WantedOf(map[string]DesiredMember{x: *tc.desired}),
				Actual:  ActualsOf(map[string]Actual{x: tc.actual}),
				Ledger:  NewLedger(0)}
			if tc.ledger != nil {
				in.Ledger.Set(x, *tc.ledger)
			}
			c := Plan([]AccountInput{in}, false)
			if c.HasChanges() {
				t.Fatalf("Cloudflare changes %+v", c.Accounts[0].Changes)
			}
			c = ApplyPolicies(c, ProtectedPolicy(nil))
			switch {
			case tc.want == nil && len(c.Records) != 0:
				t.Errorf("records %+v, want none", c.Records)
			case tc.want != nil && (len(c.Records) != 1 || !reflect.DeepEqual(c.Records[0], Record{AccountID: prod, Email: x, Entry: *tc.want})):
				t.Errorf("records %+v\nwant %+v", c.Records, *tc.want)
			}
		})
	}
}
