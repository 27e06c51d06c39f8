package plan

import (
	"fmt"
	"runtime"
	"testing"
)

// A build's memo of steps knows a reason slice by the address of its first
// element. That is sound only while the memo itself keeps every slice it
// names alive. When a member already wants a key, a further reason for it
// is copied into the member's new list, so nothing else holds the slice
// the caller passed: were the memo to hold only its address, the collector
// would free the slice and hand its address to the next one allocated,
// and the next member in the same list given a new reason for that key
// would take the old step: another member's reason, another end (a TTL
// mapping on a group whose members hold its key already, every member with
// its own expiry, is such a build).
func TestWantsMemoNeverTakesAFreedReasonsStep(t *testing.T) {
	p, ws := newPool(0), &wantsPool{}
	tab := newWantedIn(p, ws, 0)
	const n = 2000
	standing := []Reason{{Kind: ReasonMapping, Group: "Everyone", Path: []string{"Everyone"}}}
	for i := range n {
		tab.want(fmt.Sprintf("u%d@example.com", i), span{}, "role:a", standing)
	}
	for i := range n {
		// Its own slice, dropped at once, as the build's shared reason is
		// replaced when the next member's end differs.
		rs := []Reason{{Kind: ReasonGrant, GrantID: fmt.Sprintf("g%d", i), MappingIndex: -1}}
		tab.want(fmt.Sprintf("u%d@example.com", i), span{}, "role:a", rs)
		if i%10 == 0 {
			runtime.GC()
		}
	}
	for i := range n {
		dm, _ := tab.Get(fmt.Sprintf("u%d@example.com", i))
		rs := dm.Keys.Reasons("role:a")
		if len(rs) != 2 || rs[0].Group != "Everyone" || rs[1].GrantID != fmt.Sprintf("g%d", i) {
			t.Fatalf("u%d wants role:a for %+v; want the standing mapping and grant g%d: a step was taken for a slice freed before", i, rs, i)
		}
	}
}
