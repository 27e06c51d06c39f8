package patch

import (
	"fmt"
	"testing"

	"github.com/scimflare/scimflare/scim/query"
)

func addEmailOps(n int) []Operation {
	ops := make([]Operation, n)
	for i := range ops {
		ops[i] = Operation{Op: "add", Path: "emails", Value: []any{map[string]any{"value": fmt.Sprintf("a%d@example.com", i), "type": "other"}}}
	}
	return ops
}

// TestApplyCostLinear: n single-value adds to one attribute (the shape of
// the 13,000-operation PATCH that held the store for a minute) cost O(n):
// four times the operations, about four times the allocations, not
// sixteen.
func TestApplyCostLinear(t *testing.T) {
	r := query.UserResource()
	doc := decode(t, baseUser)
	cost := func(n int) float64 {
		ops := addEmailOps(n)
		out, err := Apply(doc, ops, r)
		if err != nil {
			t.Fatal(err)
		}
		if got := len(out["emails"].([]any)); got < n {
			t.Fatalf("%d adds left %d emails", n, got)
		}
		return testing.AllocsPerRun(2, func() { _, _ = Apply(doc, ops, r) })
	}
	small, big := cost(500), cost(2000)
	if ratio := big / small; ratio > 6 {
		t.Fatalf("500 adds: %.0f allocations, 2000 adds: %.0f (×%.1f): the cost grows faster than the PATCH", small, big, ratio)
	}
	// Interleaving another attribute still gives the right result.
	ops := addEmailOps(3)
	ops = append(ops[:2], Operation{Op: "replace", Path: "emails[value eq \"a0@example.com\"].value", Value: "z@example.com"}, ops[2])
	ops = append(ops, Operation{Op: "add", Path: "emails", Value: []any{map[string]any{"value": "z@example.com"}}})
	out, err := Apply(doc, ops, r)
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	for _, e := range out["emails"].([]any) {
		vals = append(vals, e.(map[string]any)["value"].(string))
	}
	if fmt.Sprint(vals) != "[bjensen@example.com z@example.com a1@example.com a2@example.com]" {
		t.Fatalf("emails %v", vals)
	}
}

// BenchmarkApplyMaximalPatch is one PATCH at MaxOperations, each op adding an email.
func BenchmarkApplyMaximalPatch(b *testing.B) {
	r := query.UserResource()
	doc := decode(b, baseUser)
	ops := addEmailOps(MaxOperations)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Apply(doc, ops, r); err != nil {
			b.Fatal(err)
		}
	}
}
