package patch

import (
	"bytes"
	"encoding/json"
	stderrors "errors"
	"reflect"
	"strings"
	"testing"

	"github.com/elimity-com/scim/errors"
)

func decode(t testing.TB, s string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return m
}

// normalize round-trips through JSON so that expected and actual documents
// compare by content, not Go types.
func normalize(t testing.TB, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, string(b))
}

func body(ops string) []byte {
	return []byte(`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":` + ops + `}`)
}

const baseUser = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
  "id": "u1", "userName": "bjensen", "active": true,
  "name": {"givenName": "Barbara", "familyName": "Jensen"},
  "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
  "meta": {"resourceType": "User", "created": "2024-01-01T00:00:00Z", "lastModified": "2024-01-01T00:00:00Z", "version": "W/\"1\""}
}`

const baseGroup = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
  "id": "g1", "displayName": "cf-oncall",
  "members": [{"value": "u1", "type": "User"}, {"value": "u2", "type": "User"}],
  "meta": {"resourceType": "Group"}
}`

const ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

type applyCase struct {
	name string
	doc  string // baseUser when empty
	ops  string
	want string // expected document; "" when an error is expected
	err  errors.ScimType
}

// edit returns baseUser (or doc) with top-level keys replaced; nil deletes.
func edit(t *testing.T, doc string, set map[string]any) string {
	m := decode(t, doc)
	for k, v := range set {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

func runApply(t *testing.T, r Resource, tests []applyCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docSrc := tt.doc
			if docSrc == "" {
				docSrc = baseUser
			}
			doc := decode(t, docSrc)
			before := decode(t, docSrc)
			ops, err := Parse(body(tt.ops))
			if err == nil {
				var got map[string]any
				got, err = Apply(doc, ops, r)
				if err == nil {
					if tt.want == "" {
						b, _ := json.Marshal(got)
						t.Fatalf("Apply succeeded with %s, want error %s", b, tt.err)
					}
					if g, w := normalize(t, got), decode(t, tt.want); !reflect.DeepEqual(g, w) {
						gb, _ := json.Marshal(g)
						wb, _ := json.Marshal(w)
						t.Errorf("Apply =\n%s\nwant\n%s", gb, wb)
					}
				} else if got != nil {
					t.Error("Apply returned a document with an error")
				}
			}
			if !reflect.DeepEqual(doc, before) {
				t.Error("Apply modified its input document")
			}
			if tt.want != "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			var se errors.ScimError
			if !stderrors.As(err, &se) {
				t.Fatalf("error = %v, want ScimError %s", err, tt.err)
			}
			if se.Status != 400 || se.ScimType != tt.err {
				t.Errorf("error = %v, want 400 %s", se, tt.err)
			}
			if !strings.HasPrefix(se.Detail, "Operations[") || !strings.HasSuffix(se.Detail, ".") {
				t.Errorf("detail %q must name the operation and be a sentence", se.Detail)
			}
		})
	}
}
