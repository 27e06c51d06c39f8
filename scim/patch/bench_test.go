package patch

import (
	"strconv"
	"testing"

	"github.com/scimflare/scimflare/scim/query"
)

func BenchmarkParseApplyEntraUser(b *testing.B) {
	raw := body(`[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"new@example.com"},{"op":"Replace","path":"name.familyName","value":"J"},{"op":"Replace","path":"active","value":"False"},{"op":"Add","value":{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager":"m1"}}]`)
	doc := decode(b, baseUser)
	r := query.UserResource()
	for b.Loop() {
		ops, err := Parse(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Apply(doc, ops, r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSplitMembers20k(b *testing.B) {
	vals := make([]any, 20000)
	for i := range vals {
		vals[i] = map[string]any{"value": "u" + strconv.Itoa(i), "type": "User"}
	}
	ops := []Operation{{Op: "add", Path: "members", Value: vals}}
	for b.Loop() {
		if _, _, err := SplitMembers(ops); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkApplyAdd20kEmails(b *testing.B) {
	vals := make([]any, 20000)
	for i := range vals {
		vals[i] = map[string]any{"value": "u" + strconv.Itoa(i) + "@x.org"}
	}
	ops := []Operation{{Op: "add", Path: "emails", Value: vals}}
	doc := decode(b, baseUser)
	r := query.UserResource()
	for b.Loop() {
		if _, err := Apply(doc, ops, r); err != nil {
			b.Fatal(err)
		}
	}
}
