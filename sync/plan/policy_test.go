package plan

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// ledgerInput is an account where scimflare created n members each holding
// role:a, plus extra members as given.
func removalsInput(removed int, extra ...string) AccountInput {
	in := AccountInput{ID: prod, Name: "prod", Desired: NewWanted(len(extra)), Actual: NewActuals(0), Ledger: NewLedger(0)}
	for i := 0; i < removed; i++ {
		e := string(rune('a'+i)) + "@example.com"
		in.Actual.Set(e, Actual{MemberID: "m-" + e, Email: e, Status: "accepted", Keys: []string{"role:a"}})
		in.Ledger.Set(e, LedgerEntry{MemberID: "m-" + e, Created: true, Managed: []string{"role:a"}})
	}
	for _, e := range extra {
		in.Desired.Set(e, DesiredMember{Email: e, Keys: Wants{{Key: "role:new", Reasons: []Reason{{Kind: ReasonGrant, GrantID: "g1"}}}}})
	}
	return in
}

func emailsOf(cs []Change) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Email)
	}
	return out
}

func TestProtectedPolicy(t *testing.T) {
	in := removalsInput(2, "new@example.com")
	c := Plan([]AccountInput{in}, false)
	before := c.clone()
	got := ProtectedPolicy([]string{"A@example.com", "NEW@example.com"}).Apply(c)
	if e := emailsOf(got.Accounts[0].Changes); !reflect.DeepEqual(e, []string{"b@example.com"}) {
		t.Errorf("kept = %v, want only b", e)
	}
	if len(got.Withheld) != 2 || got.Withheld[0].Why != WhyProtected || got.Withheld[0].Change.Email != "a@example.com" || got.Withheld[1].Change.Kind != AddMember {
		t.Errorf("withheld = %+v", got.Withheld)
	}
	if !reflect.DeepEqual(c, before) {
		t.Error("Apply changed its argument")
	}
}

func TestLastSuperAdminPolicy(t *testing.T) {
	const super = "role:super"
	mk := func(holders map[string]string, ledger []string) AccountInput {
		in := AccountInput{ID: prod, Name: "prod", SuperAdminKey: super, Actual: NewActuals(0), Ledger: NewLedger(0)}
		for e, status := range holders {
			in.Actual.Set(e, Actual{MemberID: "m-" + e, Email: e, Status: status, Keys: []string{super}})
		}
		for _, e := range ledger {
			in.Ledger.Set(e, LedgerEntry{MemberID: "m-" + e, Created: true, Managed: []string{super}})
		}
		return in
	}
	tests := []struct {
		name     string
		in       AccountInput
		kept     []string
		withheld []string
	}{
		{"the only holder stays", mk(map[string]string{"a@x": "accepted"}, []string{"a@x"}), nil, []string{"a@x"}},
		{"one of two may go, not both", mk(map[string]string{"a@x": "accepted", "b@x": "accepted"}, []string{"a@x", "b@x"}), []string{"a@x"}, []string{"b@x"}},
		{"another holder outside the plan", mk(map[string]string{"a@x": "accepted", "b@x": "accepted"}, []string{"a@x"}), []string{"a@x"}, nil},
		{"a pending invite is not a holder", mk(map[string]string{"a@x": "accepted", "p@x": "pending"}, []string{"a@x"}), nil, []string{"a@x"}},
		{"a holder scimflare does not manage counts", func() AccountInput {
			in := mk(map[string]string{"a@x": "accepted"}, []string{"a@x"})
			in.Actual.Set("owner@x", Actual{MemberID: "m-owner", Email: "Owner@x", Status: "accepted", Keys: []string{super}})
			return in
		}(), []string{"a@x"}, nil},
		{"no super admin role in the account", func() AccountInput {
			in := mk(map[string]string{"a@x": "accepted"}, []string{"a@x"})
			in.SuperAdminKey = ""
			return in
		}(), []string{"a@x"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := LastSuperAdminPolicy([]AccountInput{tc.in}).Apply(Plan([]AccountInput{tc.in}, false))
			if got := emailsOf(c.Accounts[0].Changes); !reflect.DeepEqual(got, tc.kept) {
				t.Errorf("kept = %v, want %v", got, tc.kept)
			}
			var held []string
			for _, w := range c.Withheld {
				if w.Why != WhyLastSuperAdmin {
					t.Errorf("why = %q", w.Why)
				}
				held = append(held, w.Change.Email)
			}
			if !reflect.DeepEqual(held, tc.withheld) {
				t.Errorf("withheld = %v, want %v", held, tc.withheld)
			}
		})
	}
}

func TestGuardPolicy(t *testing.T) {
	tests := []struct {
		name     string
		removed  int
		guard    GuardPolicy
		tripped  bool
		withheld int
		why      string
	}{
		{"under both limits", 2, GuardPolicy{MaxRemovals: 2, MaxRemovalPercent: 20, ManagedGrants: map[string]int{prod: 10}}, false, 0, ""},
		{"over max_removals", 3, GuardPolicy{MaxRemovals: 2, MaxRemovalPercent: 100, ManagedGrants: map[string]int{prod: 10}}, true, 3, "guard: 3 removals exceed sync.guards.max_removals 2"},
		{"over max_removal_percent", 3, GuardPolicy{MinRemovals: 1, MaxRemovals: 25, MaxRemovalPercent: 20, ManagedGrants: map[string]int{prod: 10}}, true, 3, "guard: 3 removals exceed sync.guards.max_removal_percent 20% of 10 managed grants"},
		{"percent exactly at the limit", 2, GuardPolicy{MinRemovals: 1, MaxRemovals: 25, MaxRemovalPercent: 20, ManagedGrants: map[string]int{prod: 10}}, false, 0, ""},
		{"no managed grants yet", 2, GuardPolicy{MinRemovals: 1, MaxRemovals: 25, MaxRemovalPercent: 20}, true, 2, "of 0 managed grants"},
		{"a single leaver never trips the percent guard", 1, GuardPolicy{MinRemovals: 1, MaxRemovals: 25, MaxRemovalPercent: 20, ManagedGrants: map[string]int{prod: 1}}, false, 0, ""},
		{"two of two trip the percent guard", 2, GuardPolicy{MinRemovals: 1, MaxRemovals: 25, MaxRemovalPercent: 20, ManagedGrants: map[string]int{prod: 2}}, true, 2, "20% of 2 managed grants"},
		{"zero value allows no removal", 1, GuardPolicy{}, true, 1, "max_removals 0"},
		{"negative limits are off", 9, GuardPolicy{MaxRemovals: -1, MaxRemovalPercent: -1}, false, 0, ""},
		{"latched: one removal under every limit is withheld, no new trip", 1, GuardPolicy{MaxRemovals: 25, MaxRemovalPercent: 20, ManagedGrants: map[string]int{prod: 10}, Latched: []string{prod}}, false, 1, WhyLatched},
		{"latched and forced: removals go through", 1, GuardPolicy{MaxRemovals: 25, MaxRemovalPercent: 20, ManagedGrants: map[string]int{prod: 10}, Latched: []string{prod}, Force: true}, false, 0, ""},
		{"another account latched: removals go through", 1, GuardPolicy{MaxRemovals: 25, MaxRemovalPercent: 20, ManagedGrants: map[string]int{prod: 10}, Latched: []string{"other"}}, false, 0, ""},
		{"force lets removals through, still tripped", 3, GuardPolicy{MaxRemovals: 2, MaxRemovalPercent: 100, ManagedGrants: map[string]int{prod: 10}, Force: true}, true, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := removalsInput(tc.removed, "new@example.com")
			c := tc.guard.Apply(Plan([]AccountInput{in}, false))
			if (len(c.Tripped) == 1 && c.Tripped[0] == prod) != tc.tripped {
				t.Errorf("tripped = %v, want %v", c.Tripped, tc.tripped)
			}
			if len(c.Withheld) != tc.withheld {
				t.Fatalf("withheld = %+v, want %d", c.Withheld, tc.withheld)
			}
			for _, w := range c.Withheld {
				if w.Change.Kind != RemoveMember || !strings.Contains(w.Why, tc.why) {
					t.Errorf("withheld %+v, want a removal because %q", w, tc.why)
				}
			}
			// Additions are never held back by the guard.
			if cs := c.Accounts[0].Changes; len(cs) != tc.removed+1-tc.withheld || cs[len(cs)-1].Kind != AddMember {
				t.Errorf("kept = %+v", cs)
			}
		})
	}
}

// A change that adds and removes keeps its additions when the guard trips.
func TestGuardSplitsMixedChange(t *testing.T) {
	in := AccountInput{
		ID: prod, Name: "prod",
		Desired: WantedOf(map[string]DesiredMember{"x@example.com": {Email: "x@example.com", Keys: Wants{{Key: "role:b", Reasons: []Reason{{Kind: ReasonGrant, GrantID: "g7"}}}}}}),
		Actual:  ActualsOf(map[string]Actual{"x@example.com": {MemberID: "m1", Email: "x@example.com", Keys: []string{"role:a", "role:z"}}}),
		Ledger:  LedgerOf(map[string]LedgerEntry{"x@example.com": {MemberID: "m1", Created: true, Managed: []string{"role:a"}}}),
	}
	c := GuardPolicy{MaxRemovals: 0, MaxRemovalPercent: -1}.Apply(Plan([]AccountInput{in}, true))
	if len(c.Accounts[0].Changes) != 1 || len(c.Withheld) != 1 {
		t.Fatalf("changes %+v withheld %+v", c.Accounts[0].Changes, c.Withheld)
	}
	add, hold := c.Accounts[0].Changes[0], c.Withheld[0].Change
	wantAdd := Change{Kind: UpdateRoles, Op: OpUpdate, AccountID: prod, Email: "x@example.com", MemberID: "m1",
		Before: []string{"role:a", "role:z"}, After: []string{"role:a", "role:b", "role:z"}, Added: []string{"role:b"}, Privileged: true,
		Reason: "temporary grant g7", NewLedger: LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a", "role:b"}}}
	add.addReason, add.removeReason = "", ""
	if !reflect.DeepEqual(add, wantAdd) {
		t.Errorf("applied part\n got %+v\nwant %+v", add, wantAdd)
	}
	if !reflect.DeepEqual(hold.Before, wantAdd.After) || !reflect.DeepEqual(hold.After, []string{"role:b"}) || hold.Added != nil || hold.Privileged ||
		!reflect.DeepEqual(hold.Removed, []string{"role:a"}) || !reflect.DeepEqual(hold.RemovedUnmanaged, []string{"role:z"}) ||
		hold.Reason != "no longer granted by any mapping or grant; "+unmanagedReason {
		t.Errorf("withheld part %+v", hold)
	}
}

// Protected first means the guard does not count removals that cannot
// happen anyway; the other way round, they trip it.
func TestPolicyOrder(t *testing.T) {
	in := removalsInput(3)
	guard := GuardPolicy{MaxRemovals: 2, MaxRemovalPercent: -1}
	protect := ProtectedPolicy([]string{"a@example.com"})

	c := ApplyPolicies(Plan([]AccountInput{in}, false), protect, guard)
	if len(c.Tripped) != 0 || len(c.Accounts[0].Changes) != 2 || len(c.Withheld) != 1 {
		t.Errorf("protected then guard: tripped %v, changes %d, withheld %d", c.Tripped, len(c.Accounts[0].Changes), len(c.Withheld))
	}
	c = ApplyPolicies(Plan([]AccountInput{in}, false), guard, protect)
	if len(c.Tripped) != 1 || len(c.Accounts[0].Changes) != 0 || len(c.Withheld) != 3 {
		t.Errorf("guard then protected: tripped %v, changes %d, withheld %d", c.Tripped, len(c.Accounts[0].Changes), len(c.Withheld))
	}
}

func (c *Changes) clone() *Changes {
	out := &Changes{
		Withheld: slices.Clone(c.Withheld),
		Drift:    slices.Clone(c.Drift),
		Tripped:  slices.Clone(c.Tripped),
		Records:  slices.Clone(c.Records),
		Identity: slices.Clone(c.Identity),

		GroupConflicts: slices.Clone(c.GroupConflicts),
	}
	for _, a := range c.Accounts {
		out.Accounts = append(out.Accounts, AccountChanges{ID: a.ID, Name: a.Name, Changes: slices.Clone(a.Changes)})
	}
	return out
}
