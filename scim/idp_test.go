package scim_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

// These tests replay, over real HTTP against the real bbolt store, the
// request sequences identity providers send, as their public documentation
// describes them. Each test names its source. Bodies keep the vendors'
// shapes (op case, string booleans, extra schema URIs, ids in values …)
// because those shapes are exactly what a strict SCIM library rejects.

func filterQuery(f string) string { return "filter=" + url.QueryEscape(f) }

// listIDs returns the ids in a ListResponse and checks totalResults.
func listIDs(t *testing.T, r resp, wantTotal int) []string {
	t.Helper()
	m := r.obj(t)
	if got, _ := m["totalResults"].(float64); int(got) != wantTotal {
		t.Fatalf("totalResults = %v, want %d: %s", m["totalResults"], wantTotal, r.raw)
	}
	res, ok := m["Resources"].([]any)
	if !ok {
		t.Fatalf("Resources is not an array: %s", r.raw)
	}
	ids := make([]string, 0, len(res))
	for _, x := range res {
		ids = append(ids, str(x.(map[string]any)["id"]))
	}
	return ids
}

func wantIDs(t *testing.T, got []string, want ...string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ids %v, want %v", got, want)
	}
}

// Source: "Tutorial: Develop and plan provisioning for a SCIM endpoint in
// Microsoft Entra ID", section "Request and response examples"
// (https://learn.microsoft.com/en-us/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups),
// and "Known issues and resolutions with SCIM 2.0 protocol compliance of the
// Microsoft Entra user provisioning service"
// (https://learn.microsoft.com/en-us/entra/identity/app-provisioning/application-provisioning-config-problem-scim-compatibility):
// capitalised ops, "False" strings, remove-member by value list, dotted and
// URN keys in no-path values, manager as a bare id, externalId filters.
func TestIdPEntraID(t *testing.T) {
	e := newEnv(t)

	// Entra first asks whether the user exists, by userName and by externalId.
	listIDs(t, e.must(200, "GET", "/Users?"+filterQuery(`userName eq "Test_User_dfeef4c5-5681-4387-b016-bdf221e82081"`), ""), 0)

	// Create User: extension schema listed, meta and an empty roles array sent.
	r := e.must(201, "POST", "/Users", `{
	  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
	  "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
	  "userName": "Test_User_ab6490ee-1e48-479e-a20b-2d77186b5dd1",
	  "active": true,
	  "emails": [{"primary": true, "type": "work", "value": "Test_User_fd0ea19b-0777-472c-9f96-4f70d2226f2e@testuser.com"}],
	  "meta": {"resourceType": "User"},
	  "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
	  "roles": []
	}`)
	created := r.obj(t)
	uid := str(created["id"])
	if loc := r.header.Get("Location"); !strings.HasSuffix(loc, basePath+"/Users/"+uid) {
		t.Errorf("Location %q does not name the new user", loc)
	}
	if _, ok := created["roles"]; ok {
		t.Errorf("an empty roles array came back as an attribute: %s", r.raw)
	}
	e.wantChange([]string{uid}, nil)
	if u := getUser(t, e.st, uid); u.ExternalID != "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef" || !u.Active {
		t.Fatalf("stored user %+v", u)
	}

	// Get User by query, in another letter case, and by externalId.
	wantIDs(t, listIDs(t, e.must(200, "GET", "/Users?"+filterQuery(`userName eq "TEST_USER_AB6490EE-1E48-479E-A20B-2D77186B5DD1"`), ""), 1), uid)
	wantIDs(t, listIDs(t, e.must(200, "GET", "/Users?"+filterQuery(`externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"`), ""), 1), uid)

	// Update User [multi-valued and single-valued properties].
	e.must(204, "PATCH", "/Users/"+uid, patchBody(`[
	  {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
	  {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}]`))
	doc := userDoc(t, e.st, uid)
	if jsonString(doc["emails"]) != `[{"primary":true,"type":"work","value":"updatedEmail@microsoft.com"}]` ||
		doc["name"].(map[string]any)["familyName"] != "updatedFamilyName" {
		t.Fatalf("after Replace: %s", jsonString(doc))
	}
	e.wantChange([]string{uid}, nil)

	// No-path Add with dotted and URN keys; manager as a bare id.
	e.must(204, "PATCH", "/Users/"+uid, patchBody(`[
	  {"op": "Add", "value": {"name.givenName": "Barbara", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Tour Operations"}},
	  {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "`+uid+`"}]`))
	doc = userDoc(t, e.st, uid)
	if got := jsonString(doc[entURN]); got != `{"department":"Tour Operations","manager":{"value":"`+uid+`"}}` {
		t.Fatalf("enterprise extension after Add: %s", got)
	}
	if doc["name"].(map[string]any)["givenName"] != "Barbara" {
		t.Fatalf("name.givenName not applied: %s", jsonString(doc))
	}
	e.wantChange([]string{uid}, nil)

	// Disable User, with the boolean as the string "False".
	e.must(204, "PATCH", "/Users/"+uid, patchBody(`[{"op": "Replace", "path": "active", "value": "False"}]`))
	if getUser(t, e.st, uid).Active {
		t.Fatal(`"False" did not deactivate the user`)
	}
	e.wantChange([]string{uid}, nil)

	// Create Group: Entra lists its own ADSCIM schema URI beside the core one.
	member := e.createUser("member@contoso.com")
	e.rec.take()
	r = e.must(201, "POST", "/Groups", `{
	  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
	  "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
	  "displayName": "displayName",
	  "meta": {"resourceType": "Group"}}`)
	gid := str(r.obj(t)["id"])
	e.wantChange(nil, []string{gid})

	// Get Group by displayName / by id without members.
	wantIDs(t, listIDs(t, e.must(200, "GET", "/Groups?excludedAttributes=members&"+filterQuery(`displayName eq "displayName"`), ""), 1), gid)
	if g := e.must(200, "GET", "/Groups/"+gid+"?excludedAttributes=members", "").obj(t); g["members"] != nil {
		t.Errorf("excludedAttributes=members still returned members")
	}

	// Update Group [Add Members].
	e.must(204, "PATCH", "/Groups/"+gid, patchBody(`[{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "`+uid+`"}, {"$ref": null, "value": "`+member+`"}]}]`))
	wantMembers(t, e.st, gid, uid, member)
	e.wantChange([]string{uid, member}, nil)

	// Update Group [Remove Members]: a value list, not a filter.
	e.must(204, "PATCH", "/Groups/"+gid, patchBody(`[{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": "`+uid+`"}]}]`))
	wantMembers(t, e.st, gid, member)
	e.wantChange([]string{uid}, nil)

	// Update Group [Non-member attributes]: rename.
	e.must(204, "PATCH", "/Groups/"+gid, patchBody(`[{"op": "Replace", "path": "displayName", "value": "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName"}]`))
	if g, _ := e.st.GetGroup(gid); g.DisplayName != "1879db59-3bdf-4490-ad68-ab880a269474updatedDisplayName" {
		t.Fatalf("rename not stored: %q", g.DisplayName)
	}
	e.wantChange(nil, []string{gid})

	// Replace all members (Entra sends replace on members when it resyncs).
	e.must(204, "PATCH", "/Groups/"+gid, patchBody(`[{"op": "Replace", "path": "members", "value": [{"value": "`+uid+`"}]}]`))
	wantMembers(t, e.st, gid, uid)
	e.wantChange([]string{uid, member}, nil)

	// Delete User: it also leaves the group.
	e.must(204, "DELETE", "/Users/"+uid, "")
	if _, err := e.st.GetUser(uid); err == nil {
		t.Fatal("user still stored after DELETE")
	}
	wantMembers(t, e.st, gid)
	e.wantChange([]string{uid}, nil)
	e.must(404, "GET", "/Users/"+uid, "")

	// Delete Group.
	e.must(204, "DELETE", "/Groups/"+gid, "")
	e.must(404, "GET", "/Groups/"+gid, "")
}

// Source: "Okta and SCIM Version 2.0"
// (https://developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20/):
// userName eq lookup with startIndex/count, POST with password and groups,
// PUT for profile updates, PATCH replace {active:false} to deactivate (Okta
// never deletes users), group push with PATCH (rename carrying the group's
// own id, remove members[value eq] + add in one request, replace members []).
func TestIdPOktaOIN(t *testing.T) {
	e := newEnv(t)

	// Okta checks the connection, then looks the user up.
	e.must(200, "GET", "/Users?startIndex=1&count=2", "")
	e.must(200, "GET", "/Groups?startIndex=1&count=100", "")
	listIDs(t, e.must(200, "GET", "/Users?"+filterQuery(`userName eq "test.user@okta.local"`)+"&startIndex=1&count=100", ""), 0)

	r := e.must(201, "POST", "/Users", `{
	  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
	  "userName": "test.user@okta.local",
	  "name": {"givenName": "Test", "familyName": "User"},
	  "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
	  "displayName": "Test User",
	  "locale": "en-US",
	  "externalId": "00ujl29u0le5T6Aj10h7",
	  "groups": [],
	  "password": "1mz050nq",
	  "active": true}`)
	uid := str(r.obj(t)["id"])
	if strings.Contains(string(r.raw), "1mz050nq") {
		t.Fatal("the password came back in the response")
	}
	e.wantChange([]string{uid}, nil)
	wantIDs(t, listIDs(t, e.must(200, "GET", "/Users?"+filterQuery(`userName eq "Test.User@Okta.Local"`)+"&startIndex=1&count=100", ""), 1), uid)
	e.must(200, "GET", "/Users/"+uid, "")

	// Profile update: PUT with the whole user, including its id.
	e.must(200, "PUT", "/Users/"+uid, `{
	  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
	  "id": "`+uid+`",
	  "userName": "test.user@okta.local",
	  "name": {"givenName": "Another", "familyName": "User"},
	  "emails": [{"primary": true, "value": "test.user@okta.local", "type": "work"}],
	  "displayName": "Another User",
	  "active": true}`)
	if doc := userDoc(t, e.st, uid); doc["displayName"] != "Another User" {
		t.Fatalf("PUT not applied: %s", jsonString(doc))
	}
	e.wantChange([]string{uid}, nil)

	// Deactivate: replace without path.
	e.must(204, "PATCH", "/Users/"+uid, patchBody(`[{"op": "replace", "value": {"active": false}}]`))
	if getUser(t, e.st, uid).Active {
		t.Fatal("replace {active:false} did not deactivate")
	}
	e.wantChange([]string{uid}, nil)
	// Reactivate.
	e.must(204, "PATCH", "/Users/"+uid, patchBody(`[{"op": "replace", "value": {"active": true}}]`))
	if !getUser(t, e.st, uid).Active {
		t.Fatal("replace {active:true} did not reactivate")
	}
	e.wantChange([]string{uid}, nil)

	// Group push.
	other := e.createUser("other@okta.local")
	e.rec.take()
	listIDs(t, e.must(200, "GET", "/Groups?"+filterQuery(`displayName eq "Test SCIMv2"`), ""), 0)
	r = e.must(201, "POST", "/Groups", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Test SCIMv2", "members": []}`)
	gid := str(r.obj(t)["id"])
	e.wantChange(nil, []string{gid})

	// Rename: Okta sends the group's own id in the value.
	e.must(204, "PATCH", "/Groups/"+gid, patchBody(`[{"op": "replace", "value": {"id": "`+gid+`", "displayName": "Test SCIMv2 renamed"}}]`))
	if g, _ := e.st.GetGroup(gid); g.DisplayName != "Test SCIMv2 renamed" {
		t.Fatalf("rename not stored: %q", g.DisplayName)
	}
	e.wantChange(nil, []string{gid})

	// Add member.
	e.must(204, "PATCH", "/Groups/"+gid, patchBody(`[{"op": "add", "path": "members", "value": [{"value": "`+uid+`", "display": "test.user@okta.local"}]}]`))
	wantMembers(t, e.st, gid, uid)
	e.wantChange([]string{uid}, nil)

	// Remove one member and add another in one request.
	e.must(204, "PATCH", "/Groups/"+gid, patchBody(`[
	  {"op": "remove", "path": "members[value eq \"`+uid+`\"]"},
	  {"op": "add", "path": "members", "value": [{"value": "`+other+`", "display": "other@okta.local"}]}]`))
	wantMembers(t, e.st, gid, other)
	e.wantChange([]string{uid, other}, nil)

	// Replace all members with none.
	e.must(204, "PATCH", "/Groups/"+gid, patchBody(`[{"op": "replace", "path": "members", "value": []}]`))
	wantMembers(t, e.st, gid)
	e.wantChange([]string{other}, nil)

	e.must(204, "DELETE", "/Groups/"+gid, "")
	e.must(404, "GET", "/Groups/"+gid, "")
}

// Source: "Okta and SCIM Version 2.0", section "Update a specific Group"
// (https://developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20/)
// for integrations built with the App Integration Wizard, which push
// groups with a full PUT /Groups/{id} carrying the whole member list.
func TestIdPOktaAIW(t *testing.T) {
	e := newEnv(t)
	a := e.createUser("a@okta.local")
	b := e.createUser("b@okta.local")
	c := e.createUser("c@okta.local")
	e.rec.take()

	r := e.must(201, "POST", "/Groups", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Engineering",
	  "members": [{"value": "`+a+`", "display": "a@okta.local"}, {"value": "`+b+`", "display": "b@okta.local"}]}`)
	gid := str(r.obj(t)["id"])
	wantMembers(t, e.st, gid, a, b)
	e.wantChange(nil, []string{gid})

	// Add c, keep a and b: the full list.
	put := func(name string, ids ...string) resp {
		ms := make([]string, len(ids))
		for i, id := range ids {
			ms[i] = fmt.Sprintf(`{"value": %q, "display": "x"}`, id)
		}
		return e.must(200, "PUT", "/Groups/"+gid, fmt.Sprintf(`{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "id": %q, "displayName": %q, "members": [%s]}`, gid, name, strings.Join(ms, ",")))
	}
	put("Engineering", a, b, c)
	wantMembers(t, e.st, gid, a, b, c)
	e.wantChange([]string{c}, nil)

	// Remove b.
	put("Engineering", a, c)
	wantMembers(t, e.st, gid, a, c)
	e.wantChange([]string{b}, nil)

	// Rename with the same members: only the group is re-planned.
	r = put("Engineering Team", a, c)
	if g := r.obj(t); g["displayName"] != "Engineering Team" || len(g["members"].([]any)) != 2 {
		t.Fatalf("PUT response: %s", r.raw)
	}
	e.wantChange(nil, []string{gid})

	// Replace all members.
	put("Engineering Team", b)
	wantMembers(t, e.st, gid, b)
	e.wantChange([]string{a, b, c}, nil)
}

// Source: authentik documentation "SCIM Provider"
// (https://docs.goauthentik.io/add-secure-apps/providers/scim/) and its
// provider code: users and groups are created with POST, updated with
// PATCH whose no-path value is the whole object including "schemas"
// (compatibility mode "default"), and memberships are changed with PATCH
// add/remove on members.
func TestIdPAuthentik(t *testing.T) {
	e := newEnv(t)
	r := e.must(201, "POST", "/Users", `{
	  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
	  "userName": "akadmin", "name": {"formatted": "authentik Default Admin", "givenName": "authentik", "familyName": "Default Admin"},
	  "displayName": "authentik Default Admin", "active": true,
	  "emails": [{"value": "admin@example.com", "type": "other", "primary": true}],
	  "externalId": "f7a4d9c5e1b2"}`)
	uid := str(r.obj(t)["id"])
	e.wantChange([]string{uid}, nil)
	wantIDs(t, listIDs(t, e.must(200, "GET", "/Users?"+filterQuery(`userName eq "akadmin"`), ""), 1), uid)

	// Update: no-path replace carrying schemas.
	e.must(204, "PATCH", "/Users/"+uid, patchBody(`[{"op": "replace", "value": {
	  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
	  "userName": "akadmin", "name": {"formatted": "Admin Renamed", "givenName": "Admin", "familyName": "Renamed"},
	  "displayName": "Admin Renamed", "active": true,
	  "emails": [{"value": "admin@example.com", "type": "other", "primary": true}]}}]`))
	if doc := userDoc(t, e.st, uid); doc["displayName"] != "Admin Renamed" || doc["schemas"] != nil {
		t.Fatalf("after no-path replace: %s", jsonString(doc))
	}
	e.wantChange([]string{uid}, nil)

	// Deactivate the same way.
	e.must(204, "PATCH", "/Users/"+uid, patchBody(`[{"op": "replace", "value": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "akadmin", "active": false}}]`))
	if getUser(t, e.st, uid).Active {
		t.Fatal("not deactivated")
	}
	e.wantChange([]string{uid}, nil)

	r = e.must(201, "POST", "/Groups", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "authentik Admins", "externalId": "9d1c"}`)
	gid := str(r.obj(t)["id"])
	e.wantChange(nil, []string{gid})
	e.must(204, "PATCH", "/Groups/"+gid, patchBody(`[{"op": "add", "path": "members", "value": [{"value": "`+uid+`"}]}]`))
	wantMembers(t, e.st, gid, uid)
	e.wantChange([]string{uid}, nil)
	// Rename: no-path replace with schemas.
	e.must(204, "PATCH", "/Groups/"+gid, patchBody(`[{"op": "replace", "value": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "authentik Admins 2", "externalId": "9d1c"}}]`))
	if g, _ := e.st.GetGroup(gid); g.DisplayName != "authentik Admins 2" {
		t.Fatalf("rename: %q", g.DisplayName)
	}
	wantMembers(t, e.st, gid, uid)
	e.wantChange(nil, []string{gid})
	e.must(204, "PATCH", "/Groups/"+gid, patchBody(`[{"op": "remove", "path": "members", "value": [{"value": "`+uid+`"}]}]`))
	wantMembers(t, e.st, gid)
	e.wantChange([]string{uid}, nil)

	e.must(204, "DELETE", "/Users/"+uid, "")
	e.must(204, "DELETE", "/Groups/"+gid, "")
	e.wantChange([]string{uid}, nil)
}

// Source: Captain-P-Goldfish/scim-for-keycloak wiki
// (https://github.com/Captain-P-Goldfish/scim-for-keycloak/wiki) and the
// keycloak-scim plugin: users are updated with a full PUT /Users/{id}, and
// group membership is always sent as a full PUT /Groups/{id} with the whole
// member list (typed "User" members with $ref).
func TestIdPKeycloak(t *testing.T) {
	e := newEnv(t)
	user := func(name, given string, active bool) string {
		return fmt.Sprintf(`{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": %q, "externalId": "kc-%s",
		  "name": {"givenName": %q, "familyName": "Keycloak"}, "active": %t,
		  "emails": [{"value": "%s@kc.example", "primary": true}]}`, name, name, given, active, name)
	}
	r := e.must(201, "POST", "/Users", user("jdoe", "John", true))
	jdoe := str(r.obj(t)["id"])
	r = e.must(201, "POST", "/Users", user("asmith", "Anna", true))
	asmith := str(r.obj(t)["id"])
	e.wantChange([]string{jdoe, asmith}, nil)
	wantIDs(t, listIDs(t, e.must(200, "GET", "/Users?"+filterQuery(`userName eq "JDOE"`), ""), 1), jdoe)

	e.must(200, "PUT", "/Users/"+jdoe, user("jdoe", "Johnny", true))
	if doc := userDoc(t, e.st, jdoe); doc["name"].(map[string]any)["givenName"] != "Johnny" {
		t.Fatalf("PUT user: %s", jsonString(doc))
	}
	e.must(200, "PUT", "/Users/"+jdoe, user("jdoe", "Johnny", false))
	if getUser(t, e.st, jdoe).Active {
		t.Fatal("PUT active:false did not deactivate")
	}
	e.wantChange([]string{jdoe}, nil)

	group := func(name string, ids ...string) string {
		ms := make([]string, len(ids))
		for i, id := range ids {
			ms[i] = fmt.Sprintf(`{"value": %q, "type": "User", "$ref": "%s/Users/%s"}`, id, e.base, id)
		}
		return fmt.Sprintf(`{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": %q, "externalId": "kc-group", "members": [%s]}`, name, strings.Join(ms, ","))
	}
	r = e.must(201, "POST", "/Groups", group("devs"))
	gid := str(r.obj(t)["id"])
	e.wantChange(nil, []string{gid})
	e.must(200, "PUT", "/Groups/"+gid, group("devs", jdoe))
	wantMembers(t, e.st, gid, jdoe)
	e.wantChange([]string{jdoe}, nil)
	e.must(200, "PUT", "/Groups/"+gid, group("devs", jdoe, asmith))
	wantMembers(t, e.st, gid, jdoe, asmith)
	e.wantChange([]string{asmith}, nil)
	e.must(200, "PUT", "/Groups/"+gid, group("devs", asmith))
	wantMembers(t, e.st, gid, asmith)
	e.wantChange([]string{jdoe}, nil)
	e.must(200, "PUT", "/Groups/"+gid, group("developers", asmith))
	e.wantChange(nil, []string{gid})
	e.must(200, "PUT", "/Groups/"+gid, group("developers", jdoe))
	wantMembers(t, e.st, gid, jdoe)
	e.wantChange([]string{jdoe, asmith}, nil)

	e.must(204, "DELETE", "/Users/"+jdoe, "")
	wantMembers(t, e.st, gid)
	e.must(204, "DELETE", "/Groups/"+gid, "")
}

// Source: scim.dev "OneLogin" setup guide
// (https://scim.dev/guide/applications/onelogin) and OneLogin's "SCIM
// Provisioner with SAML (Core Schema)" JSON templates: legacy
// urn:scim:schemas:core:1.0 schema URIs, "id": null and meta in POST
// bodies, a base URL with a trailing slash (so paths like /users/ and
// /Users/{id}/), and lower-case resource names.
func TestIdPOneLogin(t *testing.T) {
	e := newEnv(t)
	listIDs(t, e.must(200, "GET", "/users/?"+filterQuery(`userName eq "jane@onelogin.example"`), ""), 0)
	r := e.must(201, "POST", "/users/", `{
	  "schemas": ["urn:scim:schemas:core:1.0", "urn:scim:schemas:extension:enterprise:1.0"],
	  "userName": "jane@onelogin.example",
	  "name": {"givenName": "Jane", "familyName": "Doe", "formatted": "Jane Doe"},
	  "emails": [{"value": "jane@onelogin.example", "type": "work", "primary": true}],
	  "urn:scim:schemas:extension:enterprise:1.0": {"department": "Sales"},
	  "id": null,
	  "meta": {"resourceType": "User"},
	  "active": true}`)
	uid := str(r.obj(t)["id"])
	if doc := userDoc(t, e.st, uid); jsonString(doc[entURN]) != `{"department":"Sales"}` {
		t.Fatalf("legacy enterprise extension not stored under the 2.0 URN: %s", jsonString(doc))
	}
	e.wantChange([]string{uid}, nil)
	wantIDs(t, listIDs(t, e.must(200, "GET", "/users?"+filterQuery(`userName eq "JANE@onelogin.example"`), ""), 1), uid)
	e.must(200, "GET", "/users/"+uid+"/", "")

	e.must(200, "PUT", "/users/"+uid+"/", `{"schemas": ["urn:scim:schemas:core:1.0"], "userName": "jane@onelogin.example",
	  "name": {"givenName": "Jane", "familyName": "Smith"}, "active": true}`)
	if doc := userDoc(t, e.st, uid); doc["name"].(map[string]any)["familyName"] != "Smith" {
		t.Fatalf("PUT: %s", jsonString(doc))
	}
	e.wantChange([]string{uid}, nil)
	e.must(204, "PATCH", "/users/"+uid+"/", patchBody(`[{"op": "replace", "path": "active", "value": false}]`))
	if getUser(t, e.st, uid).Active {
		t.Fatal("not deactivated")
	}
	e.wantChange([]string{uid}, nil)

	r = e.must(201, "POST", "/groups/", `{"schemas": ["urn:scim:schemas:core:1.0"], "displayName": "OneLogin Role"}`)
	gid := str(r.obj(t)["id"])
	e.wantChange(nil, []string{gid})
	e.must(204, "PATCH", "/groups/"+gid+"/", patchBody(`[{"op": "add", "path": "members", "value": [{"value": "`+uid+`"}]}]`))
	wantMembers(t, e.st, gid, uid)
	e.wantChange([]string{uid}, nil)
	e.must(204, "PATCH", "/groups/"+gid, patchBody(`[{"op": "replace", "path": "displayName", "value": "OneLogin Role 2"}]`))
	e.wantChange(nil, []string{gid})
	e.must(204, "PATCH", "/groups/"+gid+"/", patchBody(`[{"op": "remove", "path": "members[value eq \"`+uid+`\"]"}]`))
	wantMembers(t, e.st, gid)
	e.wantChange([]string{uid}, nil)
	e.must(204, "DELETE", "/users/"+uid+"/", "")
	e.must(204, "DELETE", "/groups/"+gid+"/", "")
	e.must(404, "GET", "/users/"+uid, "")
}
