package patch

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/scimflare/scimflare/scim/query"
)

// FuzzParseApply feeds arbitrary PATCH bodies and documents through Parse,
// Apply and SplitMembers: nothing may panic or hang, the input document is
// never modified, and a successful result is valid JSON. Seeds live in
// testdata/fuzz/FuzzParseApply.
func FuzzParseApply(f *testing.F) {
	f.Add(body(`[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"a@b"}]`), []byte(baseUser))
	f.Add(body(`[{"op":"remove","path":"members[value eq \"u1\"]"}]`), []byte(baseGroup))
	users, groups := query.UserResource(), query.GroupResource()
	f.Fuzz(func(t *testing.T, patchBody, docJSON []byte) {
		start := time.Now()
		var doc map[string]any
		if json.Unmarshal(docJSON, &doc) != nil || doc == nil {
			doc = decode(t, baseUser)
		}
		before := query.DeepCopy(doc)
		ops, err := Parse(patchBody)
		if err != nil {
			return
		}
		for _, r := range []Resource{users, groups} {
			got, err := Apply(doc, ops, r)
			if err != nil && got != nil {
				t.Fatal("Apply returned a document with an error")
			}
			if err == nil {
				if _, err := json.Marshal(got); err != nil {
					t.Fatalf("result does not marshal: %v", err)
				}
			}
			if !reflect.DeepEqual(doc, before) {
				t.Fatalf("Apply modified its input (err=%v)", err)
			}
		}
		_, _, _ = SplitMembers(ops)
		if d := time.Since(start); d > time.Second {
			t.Fatalf("took %v", d)
		}
	})
}
