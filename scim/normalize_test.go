package scim

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// TestNormalizeResourceBody: a body that needs no rewriting is handed to
// the library as it came (no decode-and-re-encode on every POST/PUT), and
// each rewrite still happens — the library must see the same document
// either way.
func TestNormalizeResourceBody(t *testing.T) {
	for _, tc := range []struct {
		name, resource, body string
		want                 map[string]any // nil: body unchanged, byte for byte
	}{
		{"conformant user", "Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@x","active":true}`, nil},
		{"conformant user with enterprise", "Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"userName":"a@x","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":{"value":"m"}}}`, nil},
		{"conformant group, trailing data", "Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"eng"} trailing`, nil},
		{"not an object", "Users", `[1,2]`, nil},
		{"schemas missing", "Users", `{"userName":"a@x"}`,
			map[string]any{"schemas": []any{userSchemaURN}, "userName": "a@x"}},
		{"schemas not a list", "Users", `{"schemas":"x","userName":"a@x"}`,
			map[string]any{"schemas": []any{userSchemaURN}, "userName": "a@x"}},
		{"schema entry not a string", "Groups", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group",7],"displayName":"eng"}`,
			map[string]any{"schemas": []any{groupSchemaURN, ""}, "displayName": "eng"}},
		{"legacy core URN", "Users", `{"schemas":["urn:scim:schemas:core:1.0"],"userName":"a@x"}`,
			map[string]any{"schemas": []any{userSchemaURN}, "userName": "a@x"}},
		{"legacy core object", "Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"urn:scim:schemas:core:1.0":{"userName":"a@x"}}`,
			map[string]any{"schemas": []any{userSchemaURN}, "userName": "a@x"}},
		{"legacy enterprise", "Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@x","urn:scim:schemas:extension:enterprise:1.0":{"department":"d"}}`,
			map[string]any{"schemas": []any{userSchemaURN, enterpriseSchemaURN}, "userName": "a@x", enterpriseSchemaURN: map[string]any{"department": "d"}}},
		{"enterprise object without its schema", "Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@x","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"d"}}`,
			map[string]any{"schemas": []any{userSchemaURN, enterpriseSchemaURN}, "userName": "a@x", enterpriseSchemaURN: map[string]any{"department": "d"}}},
		{"active as a string", "Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@x","active":"False"}`,
			map[string]any{"schemas": []any{userSchemaURN}, "userName": "a@x", "active": false}},
		{"manager as an id", "Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"userName":"a@x","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":"m1"}}`,
			map[string]any{"schemas": []any{userSchemaURN, enterpriseSchemaURN}, "userName": "a@x", enterpriseSchemaURN: map[string]any{"manager": map[string]any{"value": "m1"}}}},
		{"empty manager", "Users", `{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],"userName":"a@x","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"manager":""}}`,
			map[string]any{"schemas": []any{userSchemaURN, enterpriseSchemaURN}, "userName": "a@x", enterpriseSchemaURN: map[string]any{}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := normalizeResourceBody([]byte(tc.body), tc.resource)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if !bytes.Equal(got, []byte(tc.body)) {
					t.Fatalf("rewrote a body that needs nothing:\n got %s\nwant %s", got, tc.body)
				}
				return
			}
			var doc map[string]any
			if err := json.Unmarshal(got, &doc); err != nil {
				t.Fatalf("%s: %v", got, err)
			}
			if !reflect.DeepEqual(doc, tc.want) {
				t.Fatalf("normalized to %s, want %v", got, tc.want)
			}
		})
	}
}
