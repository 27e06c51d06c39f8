package query

import (
	"fmt"
	"testing"
	"unicode"

	"github.com/scimflare/scimflare/store"
)

// TestEqIsStoreFold: a case-insensitive `eq` matches exactly the values
// store.Fold takes for the same one, so a filter and the userName index
// (and its uniqueness) never disagree, for every rune that has a case
// folding orbit in the Basic Multilingual Plane; `sw` folds the same way.
func TestEqIsStoreFold(t *testing.T) {
	var runes []rune
	for r := rune(0x20); r < 0x10000; r++ {
		if r != '"' && r != '\\' && unicode.SimpleFold(r) != r {
			runes = append(runes, r)
		}
	}
	checked := 0
	for _, a := range runes {
		f, err := Compile(fmt.Sprintf(`userName eq "x%cy"`, a), UserResource())
		if err != nil {
			t.Fatalf("%U: %v", a, err)
		}
		sw, err := Compile(fmt.Sprintf(`userName sw "x%c"`, a), UserResource())
		if err != nil {
			t.Fatalf("%U: %v", a, err)
		}
		// a against its orbit and its lower and upper case.
		cands := []rune{unicode.ToLower(a), unicode.ToUpper(a)}
		for o := unicode.SimpleFold(a); o != a; o = unicode.SimpleFold(o) {
			cands = append(cands, o)
		}
		for _, b := range cands {
			v := fmt.Sprintf("X%cY", b)
			want := store.Fold(fmt.Sprintf("x%cy", a)) == store.Fold(v)
			if got := f.Match(map[string]any{"userName": v}); got != want {
				t.Errorf("userName eq %q on %q = %v, store.Fold equal = %v", fmt.Sprintf("x%cy", a), v, got, want)
			}
			if got := sw.Match(map[string]any{"userName": v}); got != want {
				t.Errorf("userName sw %q on %q = %v, store.Fold equal = %v", fmt.Sprintf("x%c", a), v, got, want)
			}
			checked++
		}
	}
	if checked < 2000 {
		t.Fatalf("only %d pairs checked", checked)
	}
}
