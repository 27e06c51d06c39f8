package sync

import (
	"fmt"
	"runtime"
	"testing"
	"time"
	"unsafe"
	"weak"

	"github.com/scimflare/scimflare/mapping"
	"github.com/scimflare/scimflare/sync/plan"
)

// The pending expiries outlive the run (the reconciler keeps the index in
// memory until the next run replaces it, and a targeted run carries the
// entries of the full run before it). A desired member's email points into
// its run's member table, whose arena holds every email the build read:
// an expiry that keeps that string keeps the whole table live between
// runs, tens of megabytes at a million users. The index must hold its
// own copies.
func TestPendingExpiriesKeepNoDesiredTableAlive(t *testing.T) {
	const acct = "0123456789abcdef0123456789abcdef"
	cfg := &Settings{Accounts: []mapping.Account{{ID: acct, Name: "prod"}}}
	ends := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)

	// In a function of its own, so that nothing on this frame holds the
	// table once it returns.
	expiries, arena := func() ([]Expiry, weak.Pointer[byte]) {
		members := map[string]plan.DesiredMember{}
		for i := range 5000 {
			email := fmt.Sprintf("member%04d@example.com", i)
			var keys plan.Wants
			keys.Add("role:a", plan.Reason{Kind: plan.ReasonGrant, GrantID: fmt.Sprintf("g%d", i), Expires: ends, MappingIndex: -1})
			members[email] = plan.DesiredMember{Email: email, Keys: keys}
		}
		d := &plan.Desired{Accounts: map[string]*plan.Wanted{acct: plan.WantedOf(members)}}
		dm, ok := d.Accounts[acct].Get("member0000@example.com")
		if !ok {
			t.Fatal("the table lost a member")
		}
		return expiriesOf(d, cfg, nil), weak.Make(unsafe.StringData(dm.Email))
	}()
	if len(expiries) != 5000 {
		t.Fatalf("%d pending expiries; want 5000", len(expiries))
	}
	runtime.GC()
	runtime.GC()
	if arena.Value() != nil {
		t.Error("the pending expiries keep the run's desired member table alive: an expiry's email points into it")
	}
	runtime.KeepAlive(expiries)
}
