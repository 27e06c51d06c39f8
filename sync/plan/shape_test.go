package plan

import (
	"slices"
	"strings"
	"testing"
)

// shapeInput is a policies account where role:X converts to policy:X.
func shapeInput() AccountInput {
	return AccountInput{
		ID: prod, Name: "prod",
		Desired: NewWanted(0), Actual: NewActuals(0), Ledger: NewLedger(0),
		Equivalent: map[string]string{
			"role:wpa": "policy:pg-wpa|rg-acct", "role:admin": "policy:pg-admin|rg-acct",
			"role:billing": "policy:pg-billing|rg-acct", "role:super": "policy:pg-super|rg-acct",
		},
		SuperAdmin: func(k string) bool { return k == "policy:pg-super|rg-acct" },
	}
}

func (a AccountInput) with(email string, keys []string, led *LedgerEntry, desired ...string) AccountInput {
	a.Actual.Set(email, Actual{MemberID: "m-" + email, Email: email, Status: "accepted", Keys: keys})
	if led != nil {
		l := *led
		l.MemberID = "m-" + email
		a.Ledger.Set(email, l)
	}
	if len(desired) > 0 {
		d := DesiredMember{Email: email}
		for _, k := range desired {
			d.Keys.Add(k, Reason{Kind: ReasonMapping, Group: "g", Path: []string{"g"}})
		}
		a.Desired.Set(email, d)
	}
	return a
}

func TestPlanMigratesLegacyRoles(t *testing.T) {
	wpa, admin, billing := "policy:pg-wpa|rg-acct", "policy:pg-admin|rg-acct", "policy:pg-billing|rg-acct"
	tests := []struct {
		name        string
		in          AccountInput
		kind        Kind
		after       []string
		removed     []string
		managed     []string
		found       []string
		unconverted bool
	}{
		{"managed role", shapeInput().with("a@x.io", []string{"role:wpa"}, &LedgerEntry{Created: true, Managed: []string{"role:wpa"}}, wpa),
			MigrateShape, []string{wpa}, nil, []string{wpa}, nil, false},
		{"adopted role converted and still found", shapeInput().with("a@x.io", []string{"role:billing", "role:wpa"}, &LedgerEntry{Managed: []string{"role:wpa"}, Found: []string{"role:billing"}}, wpa),
			MigrateShape, []string{billing, wpa}, nil, []string{wpa}, []string{billing}, false},
		{"adoption converts what was found", shapeInput().with("a@x.io", []string{"role:billing"}, nil, wpa),
			UpdateRoles, []string{billing, wpa}, nil, []string{wpa}, []string{billing}, false},
		{"conversion with a removal", shapeInput().with("a@x.io", []string{"role:admin", "role:wpa"}, &LedgerEntry{Created: true, Managed: []string{"role:admin", "role:wpa"}}, wpa),
			UpdateRoles, []string{wpa}, []string{admin}, []string{wpa}, nil, false},
		{"leaver is removed, not converted", shapeInput().with("a@x.io", []string{"role:wpa"}, &LedgerEntry{Created: true, Managed: []string{"role:wpa"}}),
			RemoveMember, nil, []string{wpa}, nil, nil, false},
		// A role with no permission group blocks the conversion: the plan
		// stays in roles, and its mixed target is refused before any call
		// (ErrMixedShapes, a failed change), so nothing is lost.
		{"a role without a permission group blocks the conversion", shapeInput().with("a@x.io", []string{"role:retired", "role:wpa"}, &LedgerEntry{Created: true, Managed: []string{"role:wpa"}, Found: []string{"role:retired"}}, wpa),
			UpdateRoles, []string{wpa, "role:retired"}, []string{"role:wpa"}, []string{wpa}, []string{"role:retired"}, false},
		{"a role without a permission group is planned as it is", shapeInput().with("a@x.io", []string{"role:retired"}, &LedgerEntry{Created: true, Managed: []string{"role:retired"}}, "role:retired"),
			"", nil, nil, nil, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Plan([]AccountInput{tc.in}, false)
			chs := c.Accounts[0].Changes
			if tc.unconverted {
				if len(chs) != 0 {
					t.Fatalf("changes %+v, want none", chs)
				}
				return
			}
			if len(chs) != 1 {
				t.Fatalf("changes %+v", chs)
			}
			ch := chs[0]
			if ch.Kind != tc.kind || !slices.Equal(ch.After, tc.after) || !slices.Equal(ch.Removed, tc.removed) {
				t.Fatalf("change %s after %v removed %v; want %s after %v removed %v", ch.Kind, ch.After, ch.Removed, tc.kind, tc.after, tc.removed)
			}
			held, _ := tc.in.Actual.Get("a@x.io")
			if !slices.Equal(ch.Before, held.Keys) {
				t.Errorf("before %v, want what the member holds", ch.Before)
			}
			if ch.Kind != RemoveMember && (!slices.Equal(ch.NewLedger.Managed, tc.managed) || !slices.Equal(ch.NewLedger.Found, tc.found)) {
				t.Errorf("ledger managed %v found %v; want %v %v", ch.NewLedger.Managed, ch.NewLedger.Found, tc.managed, tc.found)
			}
			if ch.Kind == MigrateShape && (ch.Removals() != 0 || ch.Privileged || !strings.Contains(ch.Reason, "legacy roles replaced")) {
				t.Errorf("conversion: removals %d privileged %v reason %q", ch.Removals(), ch.Privileged, ch.Reason)
			}
		})
	}
}

// A guard that holds a converting change's removal lets the conversion
// through: the roles become their policies, the removed one included,
// until the removal is allowed.
func TestGuardSplitKeepsTheConversion(t *testing.T) {
	wpa, admin := "policy:pg-wpa|rg-acct", "policy:pg-admin|rg-acct"
	in := shapeInput().with("a@x.io", []string{"role:admin", "role:wpa"}, &LedgerEntry{Created: true, Managed: []string{"role:admin", "role:wpa"}}, wpa)
	c := GuardPolicy{MaxRemovals: 0, MaxRemovalPercent: -1}.Apply(Plan([]AccountInput{in}, false))
	chs := c.Accounts[0].Changes
	if len(chs) != 1 || chs[0].Kind != MigrateShape || !slices.Equal(chs[0].After, []string{admin, wpa}) || chs[0].Removals() != 0 {
		t.Fatalf("let through %+v, want the conversion to [%s %s]", chs, admin, wpa)
	}
	if !slices.Equal(chs[0].NewLedger.Managed, []string{admin, wpa}) {
		t.Errorf("ledger after the conversion %v", chs[0].NewLedger.Managed)
	}
	if len(c.Withheld) != 1 || !slices.Equal(c.Withheld[0].Change.Before, []string{admin, wpa}) || !slices.Equal(c.Withheld[0].Change.Removed, []string{admin}) {
		t.Fatalf("withheld %+v", c.Withheld)
	}
}

// A legacy Super Administrator role converts to its policy without
// counting as a removal, and its removal is still held when it is the
// last one, whichever shape the other holders have.
func TestLastSuperAdminAcrossShapes(t *testing.T) {
	super := "policy:pg-super|rg-acct"
	keep := shapeInput().with("a@x.io", []string{"role:super"}, &LedgerEntry{Created: true, Managed: []string{"role:super"}}, super)
	c := ApplyPolicies(Plan([]AccountInput{keep}, false), LastSuperAdminPolicy([]AccountInput{keep}))
	if len(c.Accounts[0].Changes) != 1 || c.Accounts[0].Changes[0].Kind != MigrateShape || len(c.Withheld) != 0 {
		t.Fatalf("conversion of the only super admin: %+v withheld %+v", c.Accounts[0].Changes, c.Withheld)
	}
	gone := shapeInput().with("a@x.io", []string{"role:super"}, &LedgerEntry{Created: true, Managed: []string{"role:super"}})
	c = ApplyPolicies(Plan([]AccountInput{gone}, false), LastSuperAdminPolicy([]AccountInput{gone}))
	if len(c.Accounts[0].Changes) != 0 || len(c.Withheld) != 1 || c.Withheld[0].By != WithheldByLastSuperAdmin {
		t.Fatalf("removal of the last super admin (legacy role): %+v withheld %+v", c.Accounts[0].Changes, c.Withheld)
	}
	other := gone.with("b@x.io", []string{super}, nil)
	c = ApplyPolicies(Plan([]AccountInput{other}, false), LastSuperAdminPolicy([]AccountInput{other}))
	if len(c.Accounts[0].Changes) != 1 || c.Accounts[0].Changes[0].Kind != RemoveMember {
		t.Fatalf("with another holder through a policy the removal goes: %+v withheld %+v", c.Accounts[0].Changes, c.Withheld)
	}
}

// A ledger still naming legacy roles that the member holds as policies is
// rewritten: nothing could translate it once the roles are gone.
func TestLedgerOfConvertedMemberIsRewritten(t *testing.T) {
	wpa := "policy:pg-wpa|rg-acct"
	in := shapeInput().with("a@x.io", []string{wpa}, &LedgerEntry{Created: true, Managed: []string{"role:wpa"}}, wpa)
	c := Plan([]AccountInput{in}, false)
	if len(c.Accounts[0].Changes) != 0 || len(c.Records) != 1 || !slices.Equal(c.Records[0].Entry.Managed, []string{wpa}) {
		t.Fatalf("changes %+v records %+v", c.Accounts[0].Changes, c.Records)
	}
}
