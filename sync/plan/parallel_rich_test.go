package plan

import (
	"fmt"
	"reflect"
	"runtime"
	"testing"
)

// TestLargeAccountPlansAsOneGoroutineWouldWithEveryInput: the parallel walk
// of a large account reads every input a run gives the plan — legacy-role
// equivalents (grant_shape: policies), user groups and the members they
// keep, ended grants, a Super Administrator predicate, a desired member
// shared by many emails — and must plan what one goroutine plans, without
// a data race (run with -race), every leaver removed.
func TestLargeAccountPlansAsOneGoroutineWouldWithEveryInput(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	const n = 2 * parallelPlanMin
	shared := want("pol-a") // one desired member behind many emails
	a := AccountInput{ID: "acct", Name: "Acct", Desired: NewWanted(n),
		Actual: NewActuals(0), Ledger: NewLedger(0),
		Equivalent: map[string]string{"role:admin": "pol-a", "role:ro": "pol-r"},
		SuperAdmin: func(k string) bool { return k == "pol-a" },
		KeepMember: map[string]string{}, UserGroups: map[string]HeldGroup{}}
	var grouped []string
	leavers := map[string]bool{}
	for i := range n {
		email := fmt.Sprintf("u%06d@example.com", i)
		id := fmt.Sprintf("m%06d", i)
		switch i % 8 {
		case 0:
			a.Desired.Set(email, *shared)
			a.Actual.Set(email, Actual{MemberID: id, Email: email, Status: "accepted", Keys: []string{"pol-a"}})
			a.Ledger.Set(email, LedgerEntry{MemberID: id, Created: true, Managed: []string{"pol-a"}})
		case 1: // a legacy role to convert
			a.Desired.Set(email, *want("pol-a"))
			a.Actual.Set(email, Actual{MemberID: id, Email: email, Status: "accepted", Keys: []string{"role:admin"}})
			a.Ledger.Set(email, LedgerEntry{MemberID: id, Created: true, Managed: []string{"role:admin"}})
		case 2: // a leaver on a legacy role
			a.Actual.Set(email, Actual{MemberID: id, Email: email, Status: "accepted", Keys: []string{"role:ro"}})
			a.Ledger.Set(email, LedgerEntry{MemberID: id, Created: true, Managed: []string{"role:ro"}})
			leavers[email] = true
		case 3: // kept by a user group, holding its own key no longer wanted
			a.KeepMember[email] = "user group g1"
			a.Actual.Set(email, Actual{MemberID: id, Email: email, Status: "accepted", Keys: []string{"pol-b"}})
			a.Ledger.Set(email, LedgerEntry{MemberID: id, Created: true, Managed: []string{"pol-b"}})
			grouped = append(grouped, email)
		case 4: // an ended grant
			a.Desired.Set(email, *want("pol-a"))
			a.Actual.Set(email, Actual{MemberID: id, Email: email, Status: "accepted", Keys: []string{"pol-a", "pol-t"}})
			a.Ledger.Set(email, LedgerEntry{MemberID: id, Created: true, Managed: []string{"pol-a", "pol-t"}})
			a.Expired = append(a.Expired, Expired{AccountID: "acct", Email: email, Key: "pol-t", Reason: Reason{Kind: ReasonGrant, GrantID: "g" + id}})
		case 5: // a leaver also in a user group that grants the same key
			a.Actual.Set(email, Actual{MemberID: id, Email: email, Status: "accepted", Keys: []string{"pol-b", "pol-x"}})
			a.Ledger.Set(email, LedgerEntry{MemberID: id, Created: true, Managed: []string{"pol-b"}, Found: []string{"pol-x"}})
			grouped = append(grouped, email)
		case 6: // adopted: found keys stay
			a.Desired.Set(email, *want("pol-a"))
			a.Actual.Set(email, Actual{MemberID: id, Email: email, Status: "pending", Keys: []string{"pol-x"}})
		case 7: // invited
			a.Desired.Set(email, *shared)
		}
	}
	a.UserGroups["g1"] = NewHeldGroup([]string{"pol-b"}, grouped)
	got := Plan([]AccountInput{a}, false)
	if planWorkers(a) < 2 {
		t.Fatalf("planned by %d goroutine(s)", planWorkers(a))
	}
	p := planAccountWith(a, false, 1)
	want := &Changes{Accounts: []AccountChanges{p.changes}, Drift: p.drift, Records: p.records}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the plan on several goroutines differs from the plan on one")
	}
	removed := 0
	for _, ch := range got.Accounts[0].Changes {
		if leavers[ch.Email] {
			if ch.Kind != RemoveMember {
				t.Fatalf("leaver %s is planned %s, not removed", ch.Email, ch.Kind)
			}
			removed++
		}
	}
	if removed != len(leavers) {
		t.Fatalf("%d of %d leavers planned", removed, len(leavers))
	}
}
