package sync

import (
	"context"
	"runtime"
	"runtime/metrics"
	"testing"

	"github.com/scimflare/scimflare/sync/cloudflare"
)

// BenchmarkListingMemory: a full run's listing of one account of 10,000
// members, each holding a role (so Cloudflare also shows the policy it
// derives from it), through the real client and the fake over HTTP, as the
// run's read takes it (registry.listMembers): the member map it plans
// with and the list it writes to the member cache. Reported per member,
// as live heap after a collection above what was live before: the most
// held while listing (sampled every 20 pages) and what the run keeps
// through planning. At a million members a byte here is a megabyte of a
// full run's heap.
func BenchmarkListingMemory(b *testing.B) {
	e := newEnv(b)
	const n = 10_000
	e.handMade(n)
	reg := &registry{cf: e.cf}
	var peak, kept int64
	for b.Loop() {
		base := liveHeap()
		pages := 0
		l, err := reg.listMembers(context.Background(), prodID, func(string, ...cloudflare.Member) bool {
			if pages++; pages%20 == 0 {
				peak = max(peak, liveHeap()-base)
			}
			return false
		})
		if err != nil {
			b.Fatal(err)
		}
		if l.actual.Len() != n || len(l.order) != n {
			b.Fatalf("listed %d members (%d in order), want %d", l.actual.Len(), len(l.order), n)
		}
		kept = max(kept, liveHeap()-base)
		peak = max(peak, kept)
		runtime.KeepAlive(l)
	}
	b.ReportMetric(float64(peak)/n, "peak-B/member")
	b.ReportMetric(float64(kept)/n, "kept-B/member")
	ceiling(b, "bytes a run keeps per listed member", float64(kept)/n, ceilingKeptPerMember)
	ceiling(b, "bytes a run holds per member while listing", float64(peak)/n, ceilingPeakPerMember)
}

// liveHeap is the heap's object bytes after a collection.
func liveHeap() int64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}
