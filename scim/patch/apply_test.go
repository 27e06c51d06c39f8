package patch

import (
	"encoding/json"
	"testing"

	"github.com/elimity-com/scim/errors"
	"github.com/scimflare/scimflare/scim/query"
)

func obj(kv ...any) map[string]any {
	m := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	return m
}

func list(v ...any) []any { return v }

var (
	workEmail = obj("value", "bjensen@example.com", "type", "work", "primary", true)
	entSchema = list("urn:ietf:params:scim:schemas:core:2.0:User", ent)
)

// TestApplyRFC covers every RFC 7644 §3.5.2 form.
func TestApplyRFC(t *testing.T) {
	u := func(set map[string]any) string { return edit(t, baseUser, set) }
	tests := []applyCase{
		{name: "add without path sets attributes",
			ops:  `[{"op":"add","value":{"displayName":"Babs","nickName":"B"}}]`,
			want: u(obj("displayName", "Babs", "nickName", "B"))},
		{name: "add simple attribute",
			ops:  `[{"op":"add","path":"title","value":"Tour Guide"}]`,
			want: u(obj("title", "Tour Guide"))},
		{name: "add appends to multi-valued",
			ops:  `[{"op":"add","path":"emails","value":[{"value":"babs@home.org","type":"home"}]}]`,
			want: u(obj("emails", list(workEmail, obj("value", "babs@home.org", "type", "home"))))},
		{name: "add does not duplicate an equal value",
			ops:  `[{"op":"add","path":"emails","value":[{"value":"bjensen@example.com","type":"work"}]}]`,
			want: baseUser},
		{name: "add primary clears primary elsewhere",
			ops:  `[{"op":"add","path":"emails","value":[{"value":"babs@home.org","type":"home","primary":true}]}]`,
			want: u(obj("emails", list(obj("value", "bjensen@example.com", "type", "work", "primary", false), obj("value", "babs@home.org", "type", "home", "primary", true))))},
		{name: "add to complex merges sub-attributes",
			ops:  `[{"op":"add","path":"name","value":{"middleName":"J"}}]`,
			want: u(obj("name", obj("givenName", "Barbara", "familyName", "Jensen", "middleName", "J")))},
		{name: "add sub-attribute",
			ops:  `[{"op":"add","path":"name.honorificPrefix","value":"Ms."}]`,
			want: u(obj("name", obj("givenName", "Barbara", "familyName", "Jensen", "honorificPrefix", "Ms.")))},
		{name: "replace simple attribute",
			ops:  `[{"op":"replace","path":"userName","value":"babs"}]`,
			want: u(obj("userName", "babs"))},
		{name: "replace missing single-valued attribute sets it",
			ops:  `[{"op":"replace","path":"title","value":"Boss"}]`,
			want: u(obj("title", "Boss"))},
		{name: "replace multi-valued replaces all values",
			ops:  `[{"op":"replace","path":"emails","value":[{"value":"a@x.org","type":"other"}]}]`,
			want: u(obj("emails", list(obj("value", "a@x.org", "type", "other"))))},
		{name: "replace without path merges complex and replaces multi-valued",
			ops:  `[{"op":"replace","value":{"name":{"givenName":"Babs"},"emails":[{"value":"a@x.org"}]}}]`,
			want: u(obj("name", obj("givenName", "Babs", "familyName", "Jensen"), "emails", list(obj("value", "a@x.org"))))},
		{name: "replace filtered sub-attribute",
			ops:  `[{"op":"replace","path":"emails[type eq \"work\"].value","value":"new@example.com"}]`,
			want: u(obj("emails", list(obj("value", "new@example.com", "type", "work", "primary", true))))},
		{name: "replace filtered element",
			ops:  `[{"op":"replace","path":"emails[type eq \"work\"]","value":{"value":"new@example.com","type":"work"}}]`,
			want: u(obj("emails", list(obj("value", "new@example.com", "type", "work"))))},
		{name: "add filtered element merges",
			ops:  `[{"op":"add","path":"emails[type eq \"work\"]","value":{"display":"Work"}}]`,
			want: u(obj("emails", list(obj("value", "bjensen@example.com", "type", "work", "primary", true, "display", "Work"))))},
		{name: "replace filtered primary clears the others",
			doc:  u(obj("emails", list(workEmail, obj("value", "h@x.org", "type", "home")))),
			ops:  `[{"op":"replace","path":"emails[type eq \"home\"].primary","value":true}]`,
			want: u(obj("emails", list(obj("value", "bjensen@example.com", "type", "work", "primary", false), obj("value", "h@x.org", "type", "home", "primary", true))))},
		{name: "replace filter matching nothing with a non-eq filter",
			ops: `[{"op":"replace","path":"emails[value co \"nobody\"].type","value":"home"}]`,
			err: errors.ScimTypeNoTarget},
		{name: "remove simple sub-attribute",
			ops:  `[{"op":"remove","path":"name.familyName"}]`,
			want: u(obj("name", obj("givenName", "Barbara")))},
		{name: "remove complex attribute",
			ops:  `[{"op":"remove","path":"name"}]`,
			want: u(obj("name", nil))},
		{name: "remove filtered last element unassigns the attribute",
			ops:  `[{"op":"remove","path":"emails[type eq \"work\"]"}]`,
			want: u(obj("emails", nil))},
		{name: "remove filtered sub-attribute",
			ops:  `[{"op":"remove","path":"emails[type eq \"work\"].primary"}]`,
			want: u(obj("emails", list(obj("value", "bjensen@example.com", "type", "work"))))},
		{name: "remove with a filter matching nothing is a no-op",
			ops:  `[{"op":"remove","path":"emails[type eq \"home\"]"}]`,
			want: baseUser},
		{name: "remove an absent attribute is a no-op",
			ops:  `[{"op":"remove","path":"title"},{"op":"remove","path":"` + ent + `:department"}]`,
			want: baseUser},
		{name: "replace with null unassigns",
			ops:  `[{"op":"replace","path":"name","value":null}]`,
			want: u(obj("name", nil))},
		{name: "attribute names are case-insensitive",
			ops:  `[{"op":"replace","path":"NAME.GIVENNAME","value":"B"},{"op":"replace","path":"Emails[Type EQ \"work\"].Value","value":"c@x.org"},{"op":"add","value":{"DISPLAYNAME":"Babs"}}]`,
			want: u(obj("name", obj("givenName", "B", "familyName", "Jensen"), "emails", list(obj("value", "c@x.org", "type", "work", "primary", true)), "displayName", "Babs"))},
		{name: "URN-qualified extension attribute",
			ops:  `[{"op":"add","path":"` + ent + `:employeeNumber","value":"701984"},{"op":"add","path":"` + ent + `:manager.value","value":"m1"}]`,
			want: u(obj("schemas", entSchema, ent, obj("employeeNumber", "701984", "manager", obj("value", "m1"))))},
		{name: "URN-qualified core attribute",
			ops:  `[{"op":"replace","path":"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName","value":"B"}]`,
			want: u(obj("name", obj("givenName", "B", "familyName", "Jensen")))},
		{name: "path naming the whole extension",
			ops:  `[{"op":"add","path":"` + ent + `","value":{"department":"Ops","costCenter":"42"}}]`,
			want: u(obj("schemas", entSchema, ent, obj("department", "Ops", "costCenter", "42")))},
		{name: "removing the last extension attribute drops the extension schema",
			doc:  u(obj("schemas", entSchema, ent, obj("department", "Ops"))),
			ops:  `[{"op":"remove","path":"` + ent + `:department"}]`,
			want: baseUser},
		{name: "password is accepted and never stored",
			doc:  u(obj("password", "old")),
			ops:  `[{"op":"replace","path":"password","value":"s3cret"}]`,
			want: baseUser},

		{name: "id is read-only", ops: `[{"op":"replace","path":"id","value":"u2"}]`, err: errors.ScimTypeMutability},
		{name: "meta is read-only", ops: `[{"op":"replace","path":"meta.lastModified","value":"2025-01-01T00:00:00Z"}]`, err: errors.ScimTypeMutability},
		{name: "groups is read-only", ops: `[{"op":"add","path":"groups","value":[{"value":"g1"}]}]`, err: errors.ScimTypeMutability},
		{name: "id in a no-path value must not change", ops: `[{"op":"replace","value":{"id":"u2"}}]`, err: errors.ScimTypeMutability},
		{name: "schemas is immutable", ops: `[{"op":"replace","path":"schemas","value":["x"]}]`, err: errors.ScimTypeMutability},
		{name: "manager.displayName is read-only", ops: `[{"op":"add","path":"` + ent + `:manager.displayName","value":"x"}]`, err: errors.ScimTypeMutability},
		{name: "unknown attribute", ops: `[{"op":"add","path":"favoriteColor","value":"red"}]`, err: errors.ScimTypeInvalidPath},
		{name: "unknown attribute without path", ops: `[{"op":"add","value":{"favoriteColor":"red"}}]`, err: errors.ScimTypeInvalidPath},
		{name: "unknown sub-attribute", ops: `[{"op":"add","path":"name.nick","value":"x"}]`, err: errors.ScimTypeInvalidPath},
		{name: "unknown schema", ops: `[{"op":"add","path":"urn:example:x:attr","value":"x"}]`, err: errors.ScimTypeInvalidPath},
		{name: "malformed path", ops: `[{"op":"add","path":"name..givenName","value":"x"}]`, err: errors.ScimTypeInvalidPath},
		{name: "malformed filter", ops: `[{"op":"remove","path":"emails[type eq work]"}]`, err: errors.ScimTypeInvalidFilter},
		{name: "filter on unknown sub-attribute", ops: `[{"op":"remove","path":"emails[kind eq \"work\"]"}]`, err: errors.ScimTypeInvalidFilter},
		{name: "boolean of the wrong type", ops: `[{"op":"replace","path":"active","value":"maybe"}]`, err: errors.ScimTypeInvalidValue},
		{name: "string of the wrong type", ops: `[{"op":"replace","path":"userName","value":5}]`, err: errors.ScimTypeInvalidValue},
		{name: "complex given a string", ops: `[{"op":"replace","path":"name","value":"Barbara"}]`, err: errors.ScimTypeInvalidValue},
		{name: "sub-attribute of the wrong type", ops: `[{"op":"add","path":"emails","value":[{"value":"a@x","primary":"yes"}]}]`, err: errors.ScimTypeInvalidValue},
		{name: "no-path value not an object", ops: `[{"op":"replace","value":"x"}]`, err: errors.ScimTypeInvalidValue},
		{name: "password of the wrong type", ops: `[{"op":"replace","path":"password","value":5}]`, err: errors.ScimTypeInvalidValue},
		// RFC 7644 §3.5.2.2: removing a required attribute is a mutability error.
		{name: "required attribute cannot be removed", ops: `[{"op":"remove","path":"userName"}]`, err: errors.ScimTypeMutability},
		{name: "required attribute cannot be replaced with null", ops: `[{"op":"replace","path":"userName","value":null}]`, err: errors.ScimTypeMutability},
		{name: "required attribute cannot be emptied", ops: `[{"op":"replace","value":{"userName":""}}]`, err: errors.ScimTypeInvalidValue},
		{name: "atomic: op 3 of 3 invalid",
			ops: `[{"op":"replace","path":"userName","value":"babs"},{"op":"remove","path":"emails"},{"op":"replace","path":"active","value":"perhaps"}]`,
			err: errors.ScimTypeInvalidValue},
	}
	runApply(t, query.UserResource(), tests)
}

// TestApplyIdPShapes covers request shapes real identity providers send.
func TestApplyIdPShapes(t *testing.T) {
	u := func(set map[string]any) string { return edit(t, baseUser, set) }
	tests := []applyCase{
		// Microsoft Entra ID, "Known issues and resolutions with SCIM 2.0 compliance":
		// capitalised ops and booleans sent as "True"/"False" strings.
		{name: "Entra Replace with False string",
			ops:  `[{"op":"Replace","path":"active","value":"False"}]`,
			want: u(obj("active", false))},
		{name: "Entra Add with True/False strings and a filtered key in a no-path value",
			doc:  u(obj("active", false)),
			ops:  `[{"op":"Add","value":{"active":"True","emails[type eq \"work\"].primary":"False"}}]`,
			want: u(obj("emails", list(obj("value", "bjensen@example.com", "type", "work", "primary", false))))},
		// Entra as reported on Microsoft Q&A ("SCIM PATCH of Complex Multi-Valued Attribute Includes
		// Filter and Sub Attribute in Path"): Add with a filtered path updates the matching element.
		{name: "Entra Add emails[type eq work].value on an existing work email",
			ops:  `[{"op":"Add","path":"emails[type eq \"work\"].value","value":"new@example.com"}]`,
			want: u(obj("emails", list(obj("value", "new@example.com", "type", "work", "primary", true))))},
		{name: "Entra no-path dotted keys",
			ops:  `[{"op":"Replace","value":{"name.givenName":"Babs","name.familyName":"J"}}]`,
			want: u(obj("name", obj("givenName", "Babs", "familyName", "J")))},
		{name: "Entra no-path URN keys and manager as a string",
			ops:  `[{"op":"Add","value":{"` + ent + `:department":"Ops","` + ent + `:manager":"m1"}}]`,
			want: u(obj("schemas", entSchema, ent, obj("department", "Ops", "manager", obj("value", "m1"))))},
		{name: "Entra manager as a string with a path",
			ops:  `[{"op":"Replace","path":"` + ent + `:manager","value":"m2"}]`,
			want: u(obj("schemas", entSchema, ent, obj("manager", obj("value", "m2"))))},
		// Entra update_user shape (elimity-com/scim internal/idp_test/testdata/azuread/update_user.json),
		// here against a user with no work email: the element is created.
		{name: "Entra replace emails[type eq work].value creates the element",
			doc:  u(obj("emails", nil)),
			ops:  `[{"op":"Replace","path":"emails[type eq \"work\"].value","value":"updatedEmail@microsoft.com"},{"op":"Replace","path":"name.familyName","value":"updatedFamilyName"},{"op":"Replace","path":"userName","value":"x@testuser.com"},{"op":"Replace","path":"active","value":false}]`,
			want: u(obj("emails", list(obj("type", "work", "value", "updatedEmail@microsoft.com")), "name", obj("givenName", "Barbara", "familyName", "updatedFamilyName"), "userName", "x@testuser.com", "active", false))},
		// Okta "SCIM 2.0 protocol reference": deactivation is a no-path replace.
		{name: "Okta replace active false",
			ops:  `[{"op":"replace","value":{"active":false}}]`,
			want: u(obj("active", false))},
		// authentik SCIM provider: the no-path value carries "schemas".
		{name: "authentik no-path value with schemas",
			ops:  `[{"op":"replace","value":{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"displayName":"Babs","id":"u1","meta":{"resourceType":"User"}}}]`,
			want: u(obj("displayName", "Babs"))},
		// OneLogin SCIM: legacy 1.0 schema URIs as prefixes and keys.
		{name: "OneLogin legacy URIs",
			ops:  `[{"op":"replace","path":"urn:scim:schemas:extension:enterprise:1.0:department","value":"Ops"},{"op":"replace","value":{"urn:scim:schemas:extension:enterprise:1.0":{"costCenter":"7"},"urn:scim:schemas:core:1.0:displayName":"Babs"}}]`,
			want: u(obj("schemas", entSchema, ent, obj("department", "Ops", "costCenter", "7"), "displayName", "Babs"))},
	}
	runApply(t, query.UserResource(), tests)

	g := func(set map[string]any) string { return edit(t, baseGroup, set) }
	groupTests := []applyCase{
		// Entra (elimity-com/scim testdata/azuread/update_group.json): remove members by value list.
		{name: "Entra Remove members by value list", doc: baseGroup,
			ops:  `[{"op":"Remove","path":"members","value":[{"$ref":null,"value":"u1"}]}]`,
			want: g(obj("members", list(obj("value", "u2", "type", "User"))))},
		{name: "Entra Replace displayName, Add then Remove the same member", doc: baseGroup,
			ops:  `[{"op":"Replace","path":"displayName","value":"renamed"},{"op":"Add","path":"members","value":[{"$ref":null,"value":"u3"}]},{"op":"Remove","path":"members","value":[{"$ref":null,"value":"u3"}]}]`,
			want: g(obj("displayName", "renamed"))},
		// Okta "SCIM 2.0 protocol reference" (elimity testdata/okta/update_group_membership.json).
		{name: "Okta remove members[value eq] then add", doc: baseGroup,
			ops:  `[{"op":"remove","path":"members[value eq \"u1\"]"},{"op":"add","path":"members","value":[{"value":"u3","display":"test.user@okta.local"},{"value":"u2"}]}]`,
			want: g(obj("members", list(obj("value", "u2", "type", "User"), obj("value", "u3", "display", "test.user@okta.local"))))},
		{name: "Okta replace members []", doc: baseGroup,
			ops:  `[{"op":"replace","path":"members","value":[]}]`,
			want: g(obj("members", nil))},
		// Okta (elimity testdata/okta/update_group_name.json): no-path replace echoing the group id.
		{name: "Okta rename with id in value", doc: baseGroup,
			ops:  `[{"op":"replace","value":{"id":"g1","displayName":"Test SCIMv2"}}]`,
			want: g(obj("displayName", "Test SCIMv2"))},
		{name: "remove members[value eq a or value eq b]", doc: baseGroup,
			ops:  `[{"op":"remove","path":"members[value eq \"u1\" or value eq \"u2\"]"}]`,
			want: g(obj("members", nil))},
		{name: "member sub-attributes are immutable", doc: baseGroup,
			ops: `[{"op":"replace","path":"members[value eq \"u1\"].display","value":"x"}]`,
			err: errors.ScimTypeMutability},
		{name: "group displayName is required", doc: baseGroup,
			ops: `[{"op":"remove","path":"displayName"}]`,
			err: errors.ScimTypeMutability},
	}
	runApply(t, query.GroupResource(), groupTests)
}

func TestApplyAtomic(t *testing.T) {
	doc := decode(t, baseUser)
	snapshot := decode(t, baseUser)
	ops := []Operation{
		{Op: "replace", Path: "userName", Value: "babs"},
		{Op: "add", Path: "emails", Value: []any{map[string]any{"value": "x@y", "primary": true}}},
		{Op: "replace", Path: "id", Value: "other"},
	}
	got, err := Apply(doc, ops, query.UserResource())
	if err == nil || got != nil {
		t.Fatalf("Apply = %v, %v; want nil and an error", got, err)
	}
	if !equalJSON(t, doc, snapshot) {
		t.Fatal("a failed Apply changed the input document")
	}
	if want := `Operations[2] (replace "id"): id is read-only.`; err.(errors.ScimError).Detail != want {
		t.Errorf("detail = %q, want %q", err.(errors.ScimError).Detail, want)
	}
	// The same operations minus the bad one succeed, and the input is still untouched.
	got, err = Apply(doc, ops[:2], query.UserResource())
	if err != nil {
		t.Fatal(err)
	}
	if got["userName"] != "babs" || !equalJSON(t, doc, snapshot) {
		t.Fatalf("Apply = %v; input changed: %v", got, !equalJSON(t, doc, snapshot))
	}
	// Mutating the result must not reach the operations' values.
	got["emails"].([]any)[1].(map[string]any)["value"] = "changed"
	if ops[1].Value.([]any)[0].(map[string]any)["value"] != "x@y" {
		t.Fatal("the result shares maps with the operation values")
	}
}

func TestApplyAcceptsFloatDocuments(t *testing.T) {
	// Documents decoded without UseNumber carry float64; nothing in the
	// core schemas is numeric, but a filter on a boolean must still work.
	doc := map[string]any{
		"schemas": []any{"urn:ietf:params:scim:schemas:core:2.0:User"}, "id": "u1", "userName": "a",
		"emails": []any{map[string]any{"value": "a@x", "primary": true}, map[string]any{"value": "b@x", "primary": false}},
	}
	got, err := Apply(doc, []Operation{{Op: "remove", Path: "emails[primary eq false]"}}, query.UserResource())
	if err != nil {
		t.Fatal(err)
	}
	if n := len(got["emails"].([]any)); n != 1 {
		t.Fatalf("emails = %v, want only the primary one", got["emails"])
	}
}

func equalJSON(t *testing.T, a, b map[string]any) bool {
	return jsonString(t, a) == jsonString(t, b)
}

func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
