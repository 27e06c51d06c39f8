package plan

import (
	"fmt"
	"testing"
	"time"

	"github.com/scimflare/scimflare/mapping"
)

// BenchmarkBuildAndPlan is a full run at scale: 100k users spread over 200
// mapped groups (a tenth of them reached through a nested group), 3
// accounts, Cloudflare already in step except for 1% new members.
func BenchmarkBuildAndPlan(b *testing.B) {
	const users, groups = 100_000, 200
	accounts := []string{prod, staging, "00000000000000000000000000000003"}
	dir := newDir()
	var ms []mapping.ResolvedMapping
	for g := 0; g < groups; g++ {
		id := fmt.Sprintf("g%d", g)
		dir.group(id, "group-"+id, "")
		m := rm(g, "group-"+id, accounts[g%3], mapping.RoleKey(fmt.Sprintf("r%d", g%7)))
		if g%10 == 0 {
			m.TTL = 24 * time.Hour
		}
		ms = append(ms, m)
	}
	for g := 0; g < groups; g += 10 {
		nested := fmt.Sprintf("n%d", g)
		dir.group(nested, "nested-"+nested, "")
		dir.member(fmt.Sprintf("g%d", g), nested, at(-50))
	}
	for u := 0; u < users; u++ {
		id := fmt.Sprintf("u%06d", u)
		dir.user(id, id+"@example.com", u%50 != 0, at(-100))
		g := u % groups
		parent := fmt.Sprintf("g%d", g)
		if g%10 == 0 && u%2 == 0 {
			parent = fmt.Sprintf("n%d", g)
		}
		dir.member(parent, id, at(-10))
	}
	res := resolved(ms...)
	now := at(1)

	d, err := Build(dir, res, nil, nil, now)
	if err != nil {
		b.Fatal(err)
	}
	var in []AccountInput
	for _, acct := range accounts {
		ai := AccountInput{ID: acct, Name: acct, Actual: NewActuals(0), Ledger: NewLedger(0)}
		n := 0
		for email, m := range d.Accounts[acct].All() {
			n++
			if n%100 == 0 {
				continue // not yet in Cloudflare
			}
			keys := m.Keys.KeyList()
			ai.Actual.Set(email, Actual{MemberID: "m-" + email, Email: email, Status: "accepted", Keys: keys})
			ai.Ledger.Set(email, LedgerEntry{MemberID: "m-" + email, Created: true, Managed: keys})
			ai.ManagedGrants += len(keys)
		}
		in = append(in, ai)
	}

	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d, err := Build(dir, res, nil, nil, now)
		if err != nil {
			b.Fatal(err)
		}
		for i := range in {
			in[i].Desired = d.Accounts[in[i].ID]
			in[i].Expired = d.Expired
		}
		c := Plan(in, false)
		if !c.HasChanges() {
			b.Fatal("expected the 1% of new members to be added")
		}
	}
}

// BenchmarkPoliciesOverAUserGroup: Plan and the policies the reconciler
// applies for a user-groups account of n members, every one in one owned
// group that grants Super Administrator, nothing to change. The
// last-Super-Administrator policy asks, for every member, which groups
// hold it: "list" is the group as a plain HeldGroup literal (a walk of its
// members per question, as before NewHeldGroup), "set" is NewHeldGroup.
func BenchmarkPoliciesOverAUserGroup(b *testing.B) {
	const super = "policy:super"
	for _, n := range []int{10_000, 100_000} {
		emails := make([]string, n)
		in := AccountInput{ID: "acct", Name: "acct", SuperAdminKey: super,
			Desired: NewWanted(n), Actual: NewActuals(0), Ledger: NewLedger(0), KeepMember: map[string]string{}}
		for i := range emails {
			e := fmt.Sprintf("user%06d@example.com", i)
			emails[i] = e
			in.Desired.Set(e, DesiredMember{Email: e})
			in.Actual.Set(e, Actual{MemberID: "m-" + e, Email: e, Status: "accepted"})
			in.Ledger.Set(e, LedgerEntry{MemberID: "m-" + e, Created: true})
			in.KeepMember[e] = "to join user group g"
		}
		for _, shape := range []string{"list", "set"} {
			if shape == "list" && n > 10_000 {
				continue // quadratic: minutes
			}
			b.Run(fmt.Sprintf("members=%d/%s", n, shape), func(b *testing.B) {
				in := in
				in.UserGroups = map[string]HeldGroup{"g": NewHeldGroup([]string{super}, emails)}
				if shape == "list" {
					in.UserGroups = map[string]HeldGroup{"g": {Keys: []string{super}, Members: emails}}
				}
				for b.Loop() {
					c := ApplyPolicies(Plan([]AccountInput{in}, false),
						ProtectedPolicy([]string{"breakglass@example.com"}),
						LastSuperAdminPolicy([]AccountInput{in}),
						GuardPolicy{MaxRemovals: 25, MaxRemovalPercent: 20, MinRemovals: 5, ManagedGrants: map[string]int{"acct": n}})
					if c.HasChanges() {
						b.Fatalf("nothing should change: %+v", c.Accounts)
					}
				}
			})
		}
	}
}
