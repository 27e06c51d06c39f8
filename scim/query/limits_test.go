package query

import (
	stderrors "errors"
	"strings"
	"testing"

	"github.com/elimity-com/scim/errors"
)

func hostile() map[string]string {
	return map[string]string{
		"depth":        strings.Repeat("(", 30000) + `userName eq "a"` + strings.Repeat(")", 30000),
		"not depth":    strings.Repeat("not (", 5000) + `userName eq "a"` + strings.Repeat(")", 5000),
		"value depth":  "emails[" + strings.Repeat("(", 2000) + `value eq "a"` + strings.Repeat(")", 2000) + "]",
		"terms":        strings.TrimSuffix(strings.Repeat(`userName eq "a" OR `, MaxFilterTerms+1), " OR "),
		"length":       `userName eq "` + strings.Repeat("a", MaxFilterLength) + `"`,
		"path length":  `emails[value eq "` + strings.Repeat("a", MaxFilterLength) + `"]`,
		"and in value": `userName eq "` + strings.Repeat(" and ", MaxFilterTerms+1) + `"`,
	}
}

// TestFilterLimits: a filter over a limit is 400 invalidFilter naming the
// limit, decided by one scan that allocates only the error; within the
// limits, terms inside quoted strings do not count.
func TestFilterLimits(t *testing.T) {
	r := UserResource()
	for name, f := range hostile() {
		_, err := Compile(f, r)
		if name == "and in value" {
			if err != nil {
				t.Errorf("%s: %v", name, err)
			}
			continue
		}
		var se errors.ScimError
		if !stderrors.As(err, &se) || se.Status != 400 || se.ScimType != errors.ScimTypeInvalidFilter || !strings.Contains(se.Detail, "limit") {
			t.Errorf("%s: err %v, want 400 invalidFilter naming the limit", name, err)
			continue
		}
		if len(se.Detail) > 400 {
			t.Errorf("%s: the error detail echoes %d bytes of the filter", name, len(se.Detail))
		}
		if _, err := ParsePath(f, r); err == nil || !strings.Contains(err.Error(), "limit") {
			t.Errorf("%s as a PATCH path: err %v, want the limit named", name, err)
		}
		// One scan and one error: a handful of allocations whatever the size
		// (the parser allocated per token: tens of thousands here).
		if n := testing.AllocsPerRun(5, func() { _, _ = Compile(f, r) }); n > 20 {
			t.Errorf("%s: refusing it took %v allocations", name, n)
		}
	}
	// At the limits, filters parse.
	atLimit := strings.TrimSuffix(strings.Repeat(`userName eq "a" or `, MaxFilterTerms), " or ")
	if _, err := Compile(atLimit, r); err != nil {
		t.Errorf("%d terms: %v", MaxFilterTerms, err)
	}
	deep := strings.Repeat("(", MaxFilterDepth-1) + `userName eq "a"` + strings.Repeat(")", MaxFilterDepth-1)
	if _, err := Compile(deep, r); err != nil {
		t.Errorf("depth %d: %v", MaxFilterDepth-1, err)
	}
}

func BenchmarkFilterLimits(b *testing.B) {
	r := UserResource()
	for name, f := range hostile() {
		b.Run(strings.ReplaceAll(name, " ", "_"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = Compile(f, r)
			}
		})
	}
}
