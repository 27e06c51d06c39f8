package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

type client struct {
	t    *testing.T
	base string
	tok  string
}

func newClient(t *testing.T) *client {
	t.Helper()
	h, err := New(Token)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &client{t: t, base: srv.URL + BasePath, tok: Token}
}

func (c *client) do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.tok)
	req.Header.Set("Content-Type", "application/scim+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &doc); err != nil {
			c.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, doc
}

func patchOp(ops ...map[string]any) map[string]any {
	return map[string]any{"schemas": []string{"urn:ietf:params:scim:api:messages:2.0:PatchOp"}, "Operations": ops}
}

func (c *client) createUser(name string) string {
	c.t.Helper()
	code, doc := c.do("POST", "/Users", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": name, "active": true,
		"name": map[string]any{"givenName": "A", "familyName": "B"},
	})
	if code != http.StatusCreated {
		c.t.Fatalf("create user %s: %d %v", name, code, doc)
	}
	return doc["id"].(string)
}

func memberIDs(doc map[string]any) []string {
	list, _ := doc["members"].([]any)
	var ids []string
	for _, m := range list {
		ids = append(ids, m.(map[string]any)["value"].(string))
	}
	slices.Sort(ids)
	return ids
}

func TestCeilingServesTheLoadShapes(t *testing.T) {
	c := newClient(t)
	alice, bob := c.createUser("Alice@example.com"), c.createUser("bob@example.com")
	if code, _ := c.do("POST", "/Users", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:User"}, "userName": "ALICE@example.com",
	}); code != http.StatusConflict {
		t.Errorf("duplicate userName in another case: %d, want 409", code)
	}
	code, list := c.do("GET", "/Users?filter="+url.QueryEscape(`userName eq "alice@EXAMPLE.com"`), nil)
	if code != http.StatusOK || list["totalResults"].(float64) != 1 || list["Resources"].([]any)[0].(map[string]any)["id"] != alice {
		t.Fatalf("userName eq: %d %v", code, list)
	}

	code, g := c.do("POST", "/Groups", map[string]any{
		"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": "Ops", "members": []any{},
	})
	if code != http.StatusCreated {
		t.Fatalf("create group: %d %v", code, g)
	}
	gid := g["id"].(string)
	add := patchOp(map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": alice}, map[string]any{"value": bob}}})
	if code, doc := c.do("PATCH", "/Groups/"+gid, add); code != http.StatusNoContent {
		t.Fatalf("add members: %d %v", code, doc)
	}
	bad := patchOp(
		map[string]any{"op": "remove", "path": `members[value eq "` + alice + `"]`},
		map[string]any{"op": "add", "path": "members", "value": []any{map[string]any{"value": "nobody"}}},
	)
	if code, _ := c.do("PATCH", "/Groups/"+gid, bad); code != http.StatusBadRequest {
		t.Errorf("unknown member: %d, want 400", code)
	}
	if _, doc := c.do("GET", "/Groups/"+gid, nil); !slices.Equal(memberIDs(doc), sorted(alice, bob)) {
		t.Errorf("members after a rejected PATCH: %v", memberIDs(doc))
	}
	if _, doc := c.do("GET", "/Groups/"+gid+"?excludedAttributes=members", nil); doc["members"] != nil || doc["displayName"] != "Ops" {
		t.Errorf("excludedAttributes=members: %v", doc)
	}
	rm := patchOp(map[string]any{"op": "remove", "path": `members[value eq "` + alice + `"]`})
	if code, _ := c.do("PATCH", "/Groups/"+gid, rm); code != http.StatusNoContent {
		t.Errorf("remove member: %d", code)
	}
	if _, doc := c.do("GET", "/Groups/"+gid, nil); !slices.Equal(memberIDs(doc), []string{bob}) {
		t.Errorf("members after remove: %v", memberIDs(doc))
	}

	deactivate := patchOp(map[string]any{"op": "replace", "value": map[string]any{"active": false}})
	rename := patchOp(map[string]any{"op": "replace", "path": "name.familyName", "value": "C"})
	for _, p := range []map[string]any{deactivate, rename} {
		if code, doc := c.do("PATCH", "/Users/"+bob, p); code != http.StatusNoContent {
			t.Fatalf("user patch: %d %v", code, doc)
		}
	}
	_, u := c.do("GET", "/Users/"+bob, nil)
	if u["active"] != false || u["name"].(map[string]any)["familyName"] != "C" || u["name"].(map[string]any)["givenName"] != "A" {
		t.Errorf("user after patches: %v", u)
	}
	if code, _ := c.do("DELETE", "/Users/"+bob, nil); code != http.StatusNoContent {
		t.Errorf("delete user: %d", code)
	}
	if _, doc := c.do("GET", "/Groups/"+gid, nil); len(memberIDs(doc)) != 0 {
		t.Errorf("a deleted user stays a member: %v", memberIDs(doc))
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

func TestCeilingRejectsOtherTokens(t *testing.T) {
	c := newClient(t)
	c.tok = "not-ceiling"
	if code, doc := c.do("GET", "/Users", nil); code != http.StatusUnauthorized || !strings.Contains(doc["detail"].(string), "token") {
		t.Errorf("wrong token: %d %v", code, doc)
	}
}

func TestCeilingRefusesABadListenAddress(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-listen", "256.0.0.1:x"}, &out, &errOut); code != 1 || out.Len() != 0 {
		t.Errorf("exit %d, stdout %q", code, out.String())
	}
}
