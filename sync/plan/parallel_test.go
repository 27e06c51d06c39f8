package plan

import (
	"fmt"
	"reflect"
	"runtime"
	"testing"
)

// TestLargeAccountPlansAsOneGoroutineWould: an account past
// parallelPlanMin is planned on several goroutines; the plan must be the
// one a single goroutine makes — every change, drift and record, in email
// order — whatever the scheduling. Members are spread over every case the
// walk meets: wanted and held, wanted and new, held but no longer wanted,
// ledger-only, drifted keys, ledger rewrites.
func TestLargeAccountPlansAsOneGoroutineWould(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	}
	const n = 3 * parallelPlanMin
	a := AccountInput{ID: "acct", Name: "Acct", Desired: NewWanted(n),
		Actual: NewActuals(0), Ledger: NewLedger(0)}
	for i := range n {
		email := fmt.Sprintf("u%06d@example.com", i)
		id := fmt.Sprintf("m%06d", i)
		switch i % 6 {
		case 0: // wanted, held, recorded: nothing to do
			a.Desired.Set(email, *want("role-a"))
			a.Actual.Set(email, Actual{MemberID: id, Email: email, Status: "accepted", Keys: []string{"role-a"}})
			a.Ledger.Set(email, LedgerEntry{MemberID: id, Created: true, Managed: []string{"role-a"}})
		case 1: // wanted, not yet a member: invited
			a.Desired.Set(email, *want("role-a", "role-b"))
		case 2: // a leaver: removed
			a.Actual.Set(email, Actual{MemberID: id, Email: email, Status: "accepted", Keys: []string{"role-a"}})
			a.Ledger.Set(email, LedgerEntry{MemberID: id, Created: true, Managed: []string{"role-a"}})
		case 3: // a key granted by hand beside the managed one: drift
			a.Desired.Set(email, *want("role-a"))
			a.Actual.Set(email, Actual{MemberID: id, Email: email, Status: "accepted", Keys: []string{"role-a", "role-x"}})
			a.Ledger.Set(email, LedgerEntry{MemberID: id, Created: true, Managed: []string{"role-a"}})
		case 4: // the ledger names another member id: a record to rewrite
			a.Desired.Set(email, *want("role-a"))
			a.Actual.Set(email, Actual{MemberID: id, Email: email, Status: "accepted", Keys: []string{"role-a"}})
			a.Ledger.Set(email, LedgerEntry{MemberID: "old-" + id, Created: true, Managed: []string{"role-a"}})
		case 5: // gone from Cloudflare by hand, still in the ledger
			a.Ledger.Set(email, LedgerEntry{MemberID: id, Created: true, Managed: []string{"role-b"}})
		}
	}
	if planWorkers(a) < 2 {
		t.Fatalf("the account is planned by %d goroutine(s); the test needs several", planWorkers(a))
	}
	got := Plan([]AccountInput{a, a}, false)

	// The reference: the same walk on one goroutine.
	serial := func(a AccountInput) accountPlan {
		return planAccountWith(a, false, 1)
	}
	want := &Changes{}
	for range 2 {
		p := serial(a)
		want.Accounts = append(want.Accounts, p.changes)
		want.Drift = append(want.Drift, p.drift...)
		want.Records = append(want.Records, p.records...)
	}
	if len(got.Accounts[0].Changes) < n/3 || len(got.Drift) == 0 || len(got.Records) == 0 {
		t.Fatalf("the inputs should give changes, drift and records: %d changes, %d drift, %d records",
			len(got.Accounts[0].Changes), len(got.Drift), len(got.Records))
	}
	if !reflect.DeepEqual(got, want) {
		for i := range got.Accounts[0].Changes {
			if i >= len(want.Accounts[0].Changes) || !reflect.DeepEqual(got.Accounts[0].Changes[i], want.Accounts[0].Changes[i]) {
				t.Fatalf("change %d differs:\n got %+v\nwant %+v", i, got.Accounts[0].Changes[i], want.Accounts[0].Changes[i])
			}
		}
		t.Fatalf("the plan on several goroutines differs from the plan on one (changes %d/%d, drift %d/%d, records %d/%d)",
			len(got.Accounts[0].Changes), len(want.Accounts[0].Changes), len(got.Drift), len(want.Drift), len(got.Records), len(want.Records))
	}
}
