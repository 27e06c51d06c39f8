package scim_test

import (
	"net/http"
	"strings"
	"testing"
)

// Every rejected request must answer with an RFC 7644 §3.12 error body
// and leave the store exactly as it was, with nobody notified.

// seeded returns an env with two users and a group holding the first.
func seeded(t *testing.T, opts ...envOption) (e *env, u1, u2, g string) {
	e = newEnv(t, opts...)
	u1 = e.createUser("alice@example.com")
	u2 = e.createUser("bob@example.com")
	g = e.createGroup("cf-oncall", u1)
	e.rec.take()
	return e, u1, u2, g
}

func TestBadMalformedJSON(t *testing.T) {
	e, u1, _, g := seeded(t)
	before := snapshot(t, e.st)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/Users", `{"schemas":["` + userURN + `"],"userName":"x"`},
		{"POST", "/Groups", `{"displayName": }`},
		{"PUT", "/Users/" + u1, `not json`},
		{"PUT", "/Groups/" + g, `[1,2]`},
		{"PATCH", "/Users/" + u1, `{"schemas":["` + patchURN + `"],"Operations":[{"op":"add",`},
		{"PATCH", "/Groups/" + g, `{"schemas":["` + patchURN + `"],"Operations":[]}`},
	} {
		t.Run(c.method+c.path[:6], func(t *testing.T) {
			wantSCIMError(t, e.req(c.method, c.path, c.body), 400, "invalidSyntax")
		})
	}
	unchanged(t, e.st, before)
	e.wantNoChange()
}

func TestBadMissingUserName(t *testing.T) {
	e, u1, _, _ := seeded(t)
	before := snapshot(t, e.st)
	wantSCIMError(t, e.req("POST", "/Users", `{"schemas":["`+userURN+`"],"name":{"givenName":"x"}}`), 400, "invalidValue")
	wantSCIMError(t, e.req("POST", "/Users", `{"schemas":["`+userURN+`"],"userName":"  "}`), 400, "invalidValue")
	wantSCIMError(t, e.req("PUT", "/Users/"+u1, `{"schemas":["`+userURN+`"],"active":false}`), 400, "invalidValue")
	// RFC 7644 §3.5.2.2: removing a required attribute is a mutability error.
	wantSCIMError(t, e.req("PATCH", "/Users/"+u1, patchBody(`[{"op":"remove","path":"userName"}]`)), 400, "mutability")
	unchanged(t, e.st, before)
	e.wantNoChange()
}

func TestBadDuplicateUserName(t *testing.T) {
	e, _, u2, _ := seeded(t)
	before := snapshot(t, e.st)
	wantSCIMError(t, e.req("POST", "/Users", `{"schemas":["`+userURN+`"],"userName":"ALICE@Example.COM"}`), 409, "uniqueness")
	wantSCIMError(t, e.req("PUT", "/Users/"+u2, `{"schemas":["`+userURN+`"],"userName":"Alice@example.com"}`), 409, "uniqueness")
	wantSCIMError(t, e.req("PATCH", "/Users/"+u2, patchBody(`[{"op":"replace","path":"userName","value":"aLiCe@example.com"}]`)), 409, "uniqueness")
	unchanged(t, e.st, before)
	e.wantNoChange()
}

func TestBadDuplicateDisplayName(t *testing.T) {
	e, _, _, _ := seeded(t)
	other := e.createGroup("cf-readers")
	e.rec.take()
	before := snapshot(t, e.st)
	wantSCIMError(t, e.req("POST", "/Groups", `{"schemas":["`+groupURN+`"],"displayName":"CF-ONCALL"}`), 409, "uniqueness")
	wantSCIMError(t, e.req("PUT", "/Groups/"+other, `{"schemas":["`+groupURN+`"],"displayName":"Cf-OnCall"}`), 409, "uniqueness")
	wantSCIMError(t, e.req("PATCH", "/Groups/"+other, patchBody(`[{"op":"replace","path":"displayName","value":"CF-oncall"}]`)), 409, "uniqueness")
	unchanged(t, e.st, before)
	e.wantNoChange()
}

func TestBadUnknownID(t *testing.T) {
	e, _, _, _ := seeded(t)
	before := snapshot(t, e.st)
	const id = "0123456789abcdef0123456789abcdef"
	for _, res := range []string{"Users", "Groups"} {
		body := `{"schemas":["` + userURN + `"],"userName":"ghost"}`
		if res == "Groups" {
			body = `{"schemas":["` + groupURN + `"],"displayName":"ghost"}`
		}
		wantSCIMError(t, e.req("GET", "/"+res+"/"+id, ""), 404, "")
		wantSCIMError(t, e.req("PUT", "/"+res+"/"+id, body), 404, "")
		wantSCIMError(t, e.req("PATCH", "/"+res+"/"+id, patchBody(`[{"op":"replace","path":"displayName","value":"x"}]`)), 404, "")
		wantSCIMError(t, e.req("DELETE", "/"+res+"/"+id, ""), 404, "")
	}
	unchanged(t, e.st, before)
	e.wantNoChange()
}

func TestBadFilter(t *testing.T) {
	e, _, _, _ := seeded(t)
	for _, f := range []string{
		`userName xx "a"`,             // no such operator
		`noSuchAttribute eq "a"`,      // no such attribute
		`userName eq "a" and (`,       // unbalanced
		`members[value eq "a"]`,       // a Group attribute on /Users
		`emails[type eq "work"`,       // unterminated value path
		`name.givenName.extra eq "a"`, // too deep
	} {
		wantSCIMError(t, e.req("GET", "/Users?"+filterQuery(f), ""), 400, "invalidFilter")
	}
	wantSCIMError(t, e.req("GET", "/Groups?"+filterQuery(`userName eq "a"`), ""), 400, "invalidFilter")
	e.wantNoChange()
}

func TestBadBodyTooLarge(t *testing.T) {
	e, u1, _, g := seeded(t, withMaxBody(4096))
	before := snapshot(t, e.st)
	big := strings.Repeat("x", 5000)
	wantSCIMError(t, e.req("POST", "/Users", `{"schemas":["`+userURN+`"],"userName":"big","nickName":"`+big+`"}`), 413, "")
	wantSCIMError(t, e.req("PUT", "/Users/"+u1, `{"schemas":["`+userURN+`"],"userName":"alice@example.com","nickName":"`+big+`"}`), 413, "")
	wantSCIMError(t, e.req("PATCH", "/Groups/"+g, patchBody(`[{"op":"replace","path":"displayName","value":"`+big+`"}]`)), 413, "")

	// Without Content-Length (chunked), the limit still holds.
	r, err := http.NewRequest("POST", e.base+"/Users", struct{ *strings.Reader }{strings.NewReader(`{"schemas":["` + userURN + `"],"userName":"big","nickName":"` + big + `"}`)})
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+testToken)
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 413 {
		t.Errorf("chunked oversized body: status %d", res.StatusCode)
	}
	unchanged(t, e.st, before)
	e.wantNoChange()
}

// A member value that names no user or group fails the whole request,
// including every other operation of the same PATCH.
func TestBadUnknownMember(t *testing.T) {
	e, u1, u2, g := seeded(t)
	before := snapshot(t, e.st)
	const ghost = "ffffffffffffffffffffffffffffffff"
	wantSCIMError(t, e.req("POST", "/Groups", `{"schemas":["`+groupURN+`"],"displayName":"new","members":[{"value":"`+u2+`"},{"value":"`+ghost+`"}]}`), 400, "invalidValue")
	wantSCIMError(t, e.req("PUT", "/Groups/"+g, `{"schemas":["`+groupURN+`"],"displayName":"renamed","members":[{"value":"`+u2+`"},{"value":"`+ghost+`"}]}`), 400, "invalidValue")
	wantSCIMError(t, e.req("PATCH", "/Groups/"+g, patchBody(`[
	  {"op":"replace","path":"displayName","value":"renamed"},
	  {"op":"remove","path":"members[value eq \"`+u1+`\"]"},
	  {"op":"add","path":"members","value":[{"value":"`+u2+`"},{"value":"`+ghost+`"}]}]`)), 400, "invalidValue")
	// A typed reference to the wrong kind of resource names nothing either.
	wantSCIMError(t, e.req("PATCH", "/Groups/"+g, patchBody(`[{"op":"add","path":"members","value":[{"value":"`+u2+`","type":"Group"}]}]`)), 400, "invalidValue")
	unchanged(t, e.st, before)
	e.wantNoChange()
}

func TestBadToken(t *testing.T) {
	e, u1, _, _ := seeded(t)
	before := snapshot(t, e.st)
	for _, auth := range []string{"", "Bearer", "Bearer wrong-token", "Basic " + testToken, "Bearer " + testToken + "x"} {
		for _, c := range []struct{ method, path, body string }{
			{"GET", "/Users", ""},
			{"POST", "/Users", `{"schemas":["` + userURN + `"],"userName":"intruder"}`},
			{"PATCH", "/Users/" + u1, patchBody(`[{"op":"replace","path":"active","value":false}]`)},
			{"DELETE", "/Users/" + u1, ""},
			{"GET", "/ServiceProviderConfig", ""},
		} {
			hdr := []string{"Authorization", auth}
			if auth == "" {
				hdr = []string{"Authorization", ""}
			}
			r := e.req(c.method, c.path, c.body, hdr...)
			wantSCIMError(t, r, 401, "")
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s with %q: WWW-Authenticate %q", c.method, c.path, auth, r.header.Get("WWW-Authenticate"))
			}
			if strings.Contains(string(r.raw), testToken) {
				t.Errorf("the error body echoes the token: %s", r.raw)
			}
		}
	}
	unchanged(t, e.st, before)
	e.wantNoChange()
}

// PATCH atomicity: operations 1 and 2 are valid, operation 3 is not;
// nothing of the request is applied.
func TestBadPatchAtomic(t *testing.T) {
	e, u1, u2, g := seeded(t)
	before := snapshot(t, e.st)
	wantSCIMError(t, e.req("PATCH", "/Users/"+u1, patchBody(`[
	  {"op":"replace","path":"active","value":false},
	  {"op":"add","path":"emails","value":[{"value":"alice@other.example","type":"home"}]},
	  {"op":"replace","path":"active","value":"not-a-boolean"}]`)), 400, "invalidValue")
	wantSCIMError(t, e.req("PATCH", "/Users/"+u1, patchBody(`[
	  {"op":"replace","path":"displayName","value":"A"},
	  {"op":"replace","path":"name.givenName","value":"A"},
	  {"op":"frobnicate","path":"title","value":"x"}]`)), 400, "invalidValue")
	wantSCIMError(t, e.req("PATCH", "/Groups/"+g, patchBody(`[
	  {"op":"add","path":"members","value":[{"value":"`+u2+`"}]},
	  {"op":"replace","path":"displayName","value":"renamed"},
	  {"op":"replace","path":"members[value eq \"`+u1+`\"].display","value":"x"}]`)), 400, "invalidPath")
	wantSCIMError(t, e.req("PATCH", "/Groups/"+g, patchBody(`[
	  {"op":"remove","path":"members"},
	  {"op":"replace","path":"displayName","value":"renamed"},
	  {"op":"remove","path":"displayName"}]`)), 400, "mutability")
	unchanged(t, e.st, before)
	e.wantNoChange()
}
