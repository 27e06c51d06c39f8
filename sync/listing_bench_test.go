package sync

import (
	"context"
	"runtime"
	"runtime/metrics"
	"testing"
)

// BenchmarkListingMemory: a full run's listing of one account of 10,000
// members, each holding a role (so Cloudflare also shows the policy it
// derives from it), through the real client and the fake over HTTP, turned
// into what the run plans with and what it writes to the member cache.
// Reported per member, as live heap after a collection above what was
// live before: the listing as the client returns it (what a run holds at
// once while it converts it), and what the run keeps through planning once
// it is converted. At a million members a byte here is a megabyte of a
// full run's heap.
func BenchmarkListingMemory(b *testing.B) {
	e := newEnv(b)
	const n = 10_000
	e.handMade(n)
	var listed, kept uint64
	for b.Loop() {
		base := liveHeap()
		ms, err := e.cf.ListMembers(context.Background(), prodID)
		if err != nil {
			b.Fatal(err)
		}
		listed = max(listed, liveHeap()-base)
		actual, cache := fromListing(prodID, ms, interner{})
		ms = nil
		if len(actual) != n || len(cache) != n {
			b.Fatalf("listed %d members (%d cached), want %d", len(actual), len(cache), n)
		}
		kept = max(kept, liveHeap()-base)
		runtime.KeepAlive(actual)
		runtime.KeepAlive(cache)
	}
	b.ReportMetric(float64(listed)/n, "listed-B/member")
	b.ReportMetric(float64(kept)/n, "kept-B/member")
	ceiling(b, "bytes a run keeps per listed member", float64(kept)/n, ceilingKeptPerMember)
}

// liveHeap is the heap's object bytes after a collection.
func liveHeap() uint64 {
	runtime.GC()
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
