package patch

import (
	stderrors "errors"
	"reflect"
	"strconv"
	"testing"

	"github.com/elimity-com/scim/errors"
)

func TestSplitMembers(t *testing.T) {
	tests := []struct {
		name    string
		ops     string
		attrs   []Operation
		members []MemberOp
	}{
		{name: "RFC add and remove-all",
			ops:     `[{"op":"add","path":"members","value":[{"value":"u1","type":"User"},{"value":"g2","$ref":"https://x/scim/v2/Groups/g2"}]},{"op":"remove","path":"members"}]`,
			members: []MemberOp{{MemberAdd, []MemberValue{{"u1", "User"}, {"g2", "Group"}}}, {Action: MemberRemoveAll}}},
		// Microsoft Entra ID (elimity-com/scim testdata/azuread/update_group.json).
		{name: "Entra Add then Remove by value list",
			ops:     `[{"op":"Replace","path":"displayName","value":"n"},{"op":"Add","path":"members","value":[{"$ref":null,"value":"u1"}]},{"op":"Remove","path":"members","value":[{"$ref":null,"value":"u1"}]}]`,
			attrs:   []Operation{{Op: "replace", Path: "displayName", Value: "n"}},
			members: []MemberOp{{MemberAdd, []MemberValue{{Value: "u1"}}}, {MemberRemove, []MemberValue{{Value: "u1"}}}}},
		// Okta "SCIM 2.0 protocol reference" (elimity testdata/okta/update_group_membership.json).
		{name: "Okta remove filter, add, replace",
			ops:     `[{"op":"remove","path":"members[value eq \"u9\"]"},{"op":"add","path":"members","value":[{"value":"u1","display":"a@okta.local"}]},{"op":"replace","path":"members","value":[{"value":"u1"},{"value":"u9"}]}]`,
			members: []MemberOp{{MemberRemove, []MemberValue{{Value: "u9"}}}, {MemberAdd, []MemberValue{{Value: "u1"}}}, {MemberReplaceAll, []MemberValue{{Value: "u1"}, {Value: "u9"}}}}},
		{name: "Okta replace members []",
			ops:     `[{"op":"replace","path":"members","value":[]}]`,
			members: []MemberOp{{MemberReplaceAll, []MemberValue{}}}},
		{name: "or-ed value filter",
			ops:     `[{"op":"remove","path":"members[value eq \"a\" or value eq \"b\" or value eq \"a\"]"}]`,
			members: []MemberOp{{MemberRemove, []MemberValue{{Value: "a"}, {Value: "b"}}}}},
		{name: "no-path value carrying members keeps the other keys",
			ops:     `[{"op":"replace","value":{"displayName":"n","Members":[{"value":"u1","type":"user"}]}},{"op":"add","value":{"members":[{"value":"u2"}]}}]`,
			attrs:   []Operation{{Op: "replace", Value: map[string]any{"displayName": "n"}}},
			members: []MemberOp{{MemberReplaceAll, []MemberValue{{"u1", "User"}}}, {MemberAdd, []MemberValue{{Value: "u2"}}}}},
		// Microsoft SCIM reference tests ("Group patch add member"): a bare id string.
		{name: "bare string id, URN-qualified path",
			ops:     `[{"op":"add","path":"urn:ietf:params:scim:schemas:core:2.0:Group:members","value":"u7"}]`,
			members: []MemberOp{{MemberAdd, []MemberValue{{Value: "u7"}}}}},
	}
	for _, tt := range tests {
		ops, err := Parse(body(tt.ops))
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		attrs, members, err := SplitMembers(ops)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !reflect.DeepEqual(attrs, tt.attrs) {
			t.Errorf("%s: attribute ops = %#v, want %#v", tt.name, attrs, tt.attrs)
		}
		if !reflect.DeepEqual(members, tt.members) {
			t.Errorf("%s: member ops = %#v, want %#v", tt.name, members, tt.members)
		}
	}
}

func TestSplitMembersErrors(t *testing.T) {
	tests := []struct {
		ops  string
		want errors.ScimType
	}{
		{`[{"op":"remove","path":"members[display eq \"x\"]"}]`, errors.ScimTypeInvalidFilter},
		{`[{"op":"remove","path":"members[value eq \"x\" and type eq \"User\"]"}]`, errors.ScimTypeInvalidFilter},
		{`[{"op":"remove","path":"members[value co \"x\"]"}]`, errors.ScimTypeInvalidFilter},
		{`[{"op":"remove","path":"members[value eq x]"}]`, errors.ScimTypeInvalidFilter},
		{`[{"op":"add","path":"members[value eq \"x\"]","value":[{"value":"x"}]}]`, errors.ScimTypeInvalidPath},
		{`[{"op":"replace","path":"members[value eq \"x\"].display","value":"d"}]`, errors.ScimTypeInvalidPath},
		{`[{"op":"add","path":"members","value":[{"display":"no value"}]}]`, errors.ScimTypeInvalidValue},
		{`[{"op":"add","path":"members","value":[{"value":"u1","type":"Robot"}]}]`, errors.ScimTypeInvalidValue},
		{`[{"op":"add","path":"members","value":[{"value":5}]}]`, errors.ScimTypeInvalidValue},
		{`[{"op":"add","path":"members","value":[""]}]`, errors.ScimTypeInvalidValue},
		{`[{"op":"add","path":"members.value","value":"u1"}]`, errors.ScimTypeMutability},
		{`[{"op":"add","path":"nope","value":"u1"}]`, errors.ScimTypeInvalidPath},
	}
	for _, tt := range tests {
		ops, err := Parse(body(tt.ops))
		if err != nil {
			t.Fatalf("%s: %v", tt.ops, err)
		}
		_, _, err = SplitMembers(ops)
		var se errors.ScimError
		if !stderrors.As(err, &se) || se.Status != 400 || se.ScimType != tt.want {
			t.Errorf("SplitMembers(%s) error = %v, want 400 %s", tt.ops, err, tt.want)
		}
	}
}

// SplitMembers must stay linear: an IdP may push a whole large group in one replace.
func TestSplitMembersLarge(t *testing.T) {
	const n = 50000
	vals := make([]any, n)
	for i := range vals {
		vals[i] = map[string]any{"value": "u" + strconv.Itoa(i)}
	}
	_, members, err := SplitMembers([]Operation{{Op: "replace", Path: "members", Value: vals}})
	if err != nil || len(members) != 1 || len(members[0].Members) != n {
		t.Fatalf("SplitMembers = %v members, %v", len(members), err)
	}
}
