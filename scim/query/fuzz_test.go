package query

import (
	"reflect"
	"testing"
	"time"
)

// FuzzCompileMatch checks that no filter or path, however malformed, panics
// or hangs the parser, and that evaluating and projecting never modify the
// document. Seeds live in testdata/fuzz/FuzzCompileMatch.
func FuzzCompileMatch(f *testing.F) {
	f.Add(`userName eq "bjensen"`)
	f.Add(`emails[type eq "work" and value co "@x"].value`)
	user := decode(f, userDoc, true)
	group := decode(f, groupDoc, false)
	users, groups := UserResource(), GroupResource()
	f.Fuzz(func(t *testing.T, src string) {
		start := time.Now()
		beforeUser, beforeGroup := DeepCopy(user), DeepCopy(group)
		for _, r := range []Resource{users, groups} {
			if flt, err := Compile(src, r); err == nil {
				flt.Match(user)
				flt.Match(group)
				flt.EqualityHint("userName", "members.value", "emails.value")
			}
			if p, err := ParsePath(src, r); err == nil && p.Filter != nil {
				p.Filter.Equalities()
				p.Filter.OrEqualities("value")
			}
		}
		Project(user, []string{src}, nil)
		Project(group, nil, []string{src})
		if !reflect.DeepEqual(user, beforeUser) || !reflect.DeepEqual(group, beforeGroup) {
			t.Fatalf("input %q modified a document", src)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("input %q took %v", src, d)
		}
	})
}
