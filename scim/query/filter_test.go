package query

import (
	"bytes"
	"encoding/json"
	stderrors "errors"
	"testing"

	"github.com/elimity-com/scim/errors"
)

func decode(t testing.TB, s string, useNumber bool) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	if useNumber {
		dec.UseNumber()
	}
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("decode %s: %v", s, err)
	}
	return m
}

const userDoc = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
  "id": "2819c223-7f76-453a-919d-413861904646",
  "externalId": "Ext-42",
  "userName": "Bjensen@Example.com",
  "displayName": "Babs Jensen",
  "active": true,
  "name": {"givenName": "Barbara", "familyName": "Jensen"},
  "emails": [
    {"value": "bjensen@example.com", "type": "work", "primary": true},
    {"value": "babs@jensen.org", "type": "home"}
  ],
  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
    "employeeNumber": "701984", "department": "Tour Operations", "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}
  },
  "meta": {"resourceType": "User", "created": "2024-01-23T04:56:22Z", "lastModified": "2024-05-13T04:42:34.123+02:00", "version": "W/\"3694e05e9dff591\""}
}`

const groupDoc = `{
  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
  "id": "e9e30dba-f08f-4109-8486-d5c6a331660a",
  "displayName": "CF-Workers-Deployers",
  "members": [{"value": "2819c223-7f76-453a-919d-413861904646", "type": "User"}, {"value": "902c246b-6245-4190-8e05-00816be7344a", "type": "User"}],
  "meta": {"resourceType": "Group", "created": "2024-01-23T04:56:22Z", "lastModified": "2024-01-23T04:56:22Z"}
}`

func TestCompileMatch(t *testing.T) {
	tests := []struct {
		filter string
		want   bool
	}{
		// userName is caseExact=false (RFC 7643 §4.1.1): any letter case matches.
		{`userName eq "bjensen@example.com"`, true},
		{`USERNAME Eq "BJENSEN@EXAMPLE.COM"`, true},
		{`userName ne "bjensen@example.com"`, false},
		{`userName co "JENSEN"`, true},
		{`userName sw "bj"`, true},
		{`userName ew "@EXAMPLE.com"`, true},
		{`userName gt "a"`, true},
		{`userName lt "a"`, false},
		{`userName pr`, true},
		{`nickName pr`, false},
		{`nickName eq null`, true},
		{`userName ne null`, true},
		// externalId and id are caseExact.
		{`externalId eq "Ext-42"`, true},
		{`externalId eq "ext-42"`, false},
		{`id eq "2819c223-7f76-453a-919d-413861904646"`, true},
		{`id eq "2819C223-7F76-453A-919D-413861904646"`, false},
		{`displayName eq "babs jensen"`, true},
		{`active eq true`, true},
		{`active eq false`, false},
		{`active ne false`, true},
		{`active eq "True"`, true},
		{`name.givenName eq "barbara"`, true},
		{`name.familyName sw "Jen" and name.givenName ew "ara"`, true},
		{`emails.value eq "BABS@jensen.org"`, true},
		{`emails co "jensen.org"`, true},
		// RFC 7644 §3.4.2.2 "any value": bjensen@example.com is not babs@jensen.org.
		{`emails.value ne "babs@jensen.org"`, true},
		{`emails[value ne "babs@jensen.org"]`, true},
		{`not (emails.value eq "babs@jensen.org")`, false},
		{`emails.value ne "nobody@x"`, true},
		{`emails[type eq "work" and value co "@example.com"]`, true},
		{`emails[type eq "home" and value co "@example.com"]`, false},
		{`emails[type eq "home" or (primary eq true and value ew ".org")]`, true},
		{`emails[not (type eq "work")]`, true},
		{`emails[not (type eq "work" or type eq "home")]`, false},
		{`emails[primary eq true]`, true},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984"`, true},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "26118915-6090-4610-87e4-49d8ca9f808d"`, true},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "BJENSEN@example.com"`, true},
		// OneLogin legacy URIs stand for the 2.0 schemas.
		{`urn:scim:schemas:extension:enterprise:1.0:department eq "tour operations"`, true},
		{`urn:scim:schemas:core:1.0:userName pr`, true},
		{`department eq "Tour Operations"`, true},
		// meta dates compare as instants, whatever the offset or fraction.
		{`meta.lastModified gt "2024-05-13T02:42:34Z"`, true},
		{`meta.lastModified gt "2024-05-13T02:42:34.124Z"`, false},
		{`meta.lastModified eq "2024-05-13T02:42:34.123Z"`, true},
		{`meta.lastModified ge "2024-05-13T04:42:34.123+02:00"`, true},
		{`meta.lastModified lt "2024-05-13T03:00:00+00:00"`, true},
		{`meta.created gt "2015-10-10T14:38:21.8617979-07:00"`, true},
		{`meta.created lt "2024-01-23"`, false},
		{`meta.version eq "W/\"3694e05e9dff591\""`, true},
		{`meta.resourceType eq "user"`, false},
		{`userName eq "x" or active eq true`, true},
		{`userName eq "x" or active eq false and userName pr`, false},
		{`not (userName eq "x")`, true},
		{`not(userName eq "bjensen@example.com") or (displayName co "babs")`, true},
		{`((userName pr) and not (nickName pr))`, true},
		{`title pr or not (emails pr)`, false},
		{"userName eq \"bj\\u0065nsen@example.com\"", true},
		{`name.familyName eq "Employee" and (emails.value co "example.com" or emails.Value co "example.org")`, false},
	}
	r := UserResource()
	for _, useNumber := range []bool{false, true} {
		doc := decode(t, userDoc, useNumber)
		for _, tt := range tests {
			f, err := Compile(tt.filter, r)
			if err != nil {
				t.Errorf("Compile(%s): %v", tt.filter, err)
				continue
			}
			if got := f.Match(doc); got != tt.want {
				t.Errorf("Match(%s) = %v, want %v (useNumber=%v)", tt.filter, got, tt.want, useNumber)
			}
		}
	}
}

func TestCompileMatchGroup(t *testing.T) {
	doc := decode(t, groupDoc, true)
	tests := []struct {
		filter string
		want   bool
	}{
		{`displayName eq "cf-workers-deployers"`, true},
		{`members.value eq "902c246b-6245-4190-8e05-00816be7344a"`, true},
		{`members[value eq "902c246b-6245-4190-8e05-00816be7344a"]`, true},
		{`members[value eq "nope"]`, false},
		{`members pr`, true},
		{`members.type eq "Group"`, false},
	}
	for _, tt := range tests {
		f, err := Compile(tt.filter, GroupResource())
		if err != nil {
			t.Fatalf("Compile(%s): %v", tt.filter, err)
		}
		if got := f.Match(doc); got != tt.want {
			t.Errorf("Match(%s) = %v, want %v", tt.filter, got, tt.want)
		}
	}
}

// A string comparison would say "2023…" < "2024…"; as instants it is later.
func TestMatchTimeValues(t *testing.T) {
	f, err := Compile(`meta.lastModified gt "2024-01-01T00:00:00Z"`, UserResource())
	if err != nil {
		t.Fatal(err)
	}
	doc := map[string]any{"meta": map[string]any{"lastModified": "2023-12-31T23:59:59-01:00"}}
	if !f.Match(doc) {
		t.Error("2023-12-31T23:59:59-01:00 is after 2024-01-01T00:00:00Z and must match")
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []string{
		``,
		`   `,
		`userName`,
		`userName eq`,
		`userName eq bjensen`, // unquoted string
		`userName xx "a"`,
		`nope eq "a"`,
		`name.nope eq "a"`,
		`userName.x eq "a"`,
		`userName eq "a" and`,
		`(userName eq "a"`,
		`userName eq "a")`,
		`userName eq "unterminated`,
		`emails[type eq "work"`,
		`emails[nope eq "x"]`,
		`emails[type eq "work"].value eq "x"`,
		`userName[value eq "x"]`,
		`emails[emails[type eq "x"]]`,
		`active gt true`,
		`active eq "maybe"`,
		`active co "t"`,
		`userName eq 42`,
		`userName gt null`,
		`meta.lastModified gt "yesterday"`,
		`meta.lastModified gt 5`,
		`password eq "secret"`,
		`name eq "x"`,
		`urn:example:unknown:attr eq "x"`,
		`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User eq "x"`,
		`userName eq "a" bogus`,
		`not userName eq "a"`,
		`meta.created gt 2015-10-10T14:38:21.8617979-07:00`,
	}
	for _, src := range tests {
		_, err := Compile(src, UserResource())
		var se errors.ScimError
		if !stderrors.As(err, &se) {
			t.Errorf("Compile(%q) error = %v, want a ScimError", src, err)
			continue
		}
		if se.Status != 400 || se.ScimType != errors.ScimTypeInvalidFilter || se.Detail == "" {
			t.Errorf("Compile(%q) = %+v, want 400 invalidFilter with detail", src, se)
		}
	}
}

func TestCompileDepthLimit(t *testing.T) {
	deep := ""
	for range 1000 {
		deep += "("
	}
	deep += `userName pr`
	for range 1000 {
		deep += ")"
	}
	if _, err := Compile(deep, UserResource()); err == nil {
		t.Fatal("a filter nested 1000 deep must be refused")
	}
	ok := `((((userName pr))))`
	if _, err := Compile(ok, UserResource()); err != nil {
		t.Fatalf("Compile(%s): %v", ok, err)
	}
}

func TestEqualityHint(t *testing.T) {
	tests := []struct {
		filter, attr, value string
		ok                  bool
	}{
		{`userName eq "BJensen"`, "userName", "BJensen", true},
		{`UserName EQ "BJensen"`, "userName", "BJensen", true},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a"`, "userName", "a", true},
		{`active eq true and externalId eq "e1"`, "externalId", "e1", true},
		{`(externalId eq "e1" and active eq true) and userName sw "x"`, "externalId", "e1", true},
		{`userName eq "a" or userName eq "b"`, "", "", false},
		{`not (userName eq "a")`, "", "", false},
		{`userName co "a"`, "", "", false},
		{`userName ne "a"`, "", "", false},
		{`title eq "a"`, "", "", false},
		{`emails[type eq "work" and value eq "a@b"]`, "emails.value", "a@b", true},
		{`emails.value eq "a@b"`, "emails.value", "a@b", true},
	}
	for _, tt := range tests {
		f, err := Compile(tt.filter, UserResource())
		if err != nil {
			t.Fatalf("Compile(%s): %v", tt.filter, err)
		}
		attr, value, ok := f.EqualityHint("userName", "externalId", "displayName", "emails.value")
		if attr != tt.attr || value != tt.value || ok != tt.ok {
			t.Errorf("EqualityHint(%s) = %q, %q, %v; want %q, %q, %v", tt.filter, attr, value, ok, tt.attr, tt.value, tt.ok)
		}
	}
	f, err := Compile(`members[value eq "u1"] and displayName pr`, GroupResource())
	if err != nil {
		t.Fatal(err)
	}
	if attr, value, ok := f.EqualityHint("displayName", "members.value"); attr != "members.value" || value != "u1" || !ok {
		t.Errorf("members[value eq] hint = %q, %q, %v", attr, value, ok)
	}
	f, _ = Compile(`members.value eq "u2"`, GroupResource())
	if attr, value, ok := f.EqualityHint("MEMBERS.VALUE"); attr != "MEMBERS.VALUE" || value != "u2" || !ok {
		t.Errorf("members.value hint = %q, %q, %v", attr, value, ok)
	}
}

// TestOnlyCore: a filter counts as reading only the named core attributes
// exactly when every comparison in it is on one of them (sub-attributes
// included), so a caller may match it against those attributes alone.
func TestOnlyCore(t *testing.T) {
	fields := []string{"active", "externalId", "id", "meta", "schemas", "userName"}
	tests := []struct {
		filter string
		want   bool
	}{
		{`userName eq "a"`, true},
		{`USERNAME eq "a"`, true},
		{`urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a"`, true},
		{`userName eq "a" and (active eq true or not (externalId pr))`, true},
		{`meta.lastModified gt "2026-01-01T00:00:00Z"`, true},
		{`id eq "x" or userName sw "a"`, true},
		{`userName eq "a" and displayName eq "b"`, false},
		{`not (title pr)`, false},
		{`emails.value eq "a@b"`, false},
		{`emails[value eq "a@b"]`, false},
		{`urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "x"`, false},
	}
	for _, tt := range tests {
		f, err := Compile(tt.filter, UserResource())
		if err != nil {
			t.Fatalf("Compile(%s): %v", tt.filter, err)
		}
		if got := f.OnlyCore(fields...); got != tt.want {
			t.Errorf("OnlyCore(%s) = %v, want %v", tt.filter, got, tt.want)
		}
	}
	f, err := Compile(`userName eq "a" and meta.created pr`, UserResource())
	if err != nil {
		t.Fatal(err)
	}
	if f.OnlyCore("userName", "id") {
		t.Error("a filter on meta counts as reading only userName and id")
	}
}

func TestParsePath(t *testing.T) {
	r := UserResource()
	tests := []struct {
		path, name, schema string
		filter             bool
	}{
		{"userName", "userName", "", false},
		{"USERNAME", "userName", "", false},
		{"name.givenName", "name.givenName", "", false},
		{`emails[type eq "work"]`, "emails", "", true},
		{`emails[type eq "work"].value`, "emails.value", "", true},
		{`emails[type eq "work" and primary eq true].Value`, "emails.value", "", true},
		{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", EnterpriseUserURN + ":employeeNumber", "", false},
		{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", EnterpriseUserURN + ":manager.value", "", false},
		{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "", EnterpriseUserURN, false},
		{"urn:scim:schemas:extension:enterprise:1.0:department", EnterpriseUserURN + ":department", "", false},
		{"urn:scim:schemas:extension:enterprise:1.0", "", EnterpriseUserURN, false},
		{"urn:ietf:params:scim:schemas:core:2.0:User:name.familyName", "name.familyName", "", false},
	}
	for _, tt := range tests {
		p, err := ParsePath(tt.path, r)
		if err != nil {
			t.Errorf("ParsePath(%s): %v", tt.path, err)
			continue
		}
		name := ""
		if p.Schema == "" {
			name = p.Attr.Name()
		}
		if name != tt.name || p.Schema != tt.schema || (p.Filter != nil) != tt.filter {
			t.Errorf("ParsePath(%s) = name %q schema %q filter %v", tt.path, name, p.Schema, p.Filter != nil)
		}
	}
	bad := map[string]errors.ScimType{
		"":                             errors.ScimTypeInvalidPath,
		"nope":                         errors.ScimTypeInvalidPath,
		"name.nope":                    errors.ScimTypeInvalidPath,
		"name.givenName.x":             errors.ScimTypeInvalidPath,
		`emails[type eq "work"]value`:  errors.ScimTypeInvalidPath,
		`emails[type eq "work"].nope`:  errors.ScimTypeInvalidPath,
		`emails[type eq "work"`:        errors.ScimTypeInvalidFilter,
		`emails[type eq work]`:         errors.ScimTypeInvalidFilter,
		`emails[nope eq "work"]`:       errors.ScimTypeInvalidFilter,
		`userName[value eq "x"]`:       errors.ScimTypeInvalidPath,
		`emails.value[type eq "work"]`: errors.ScimTypeInvalidPath,
		"urn:nope:x":                   errors.ScimTypeInvalidPath,
		"urn:ietf:params:scim:schemas:core:2.0:User": errors.ScimTypeInvalidPath,
	}
	for path, want := range bad {
		_, err := ParsePath(path, r)
		var se errors.ScimError
		if !stderrors.As(err, &se) || se.ScimType != want || se.Status != 400 {
			t.Errorf("ParsePath(%q) error = %v, want 400 %s", path, err, want)
		}
	}
}

func TestPathFilterHelpers(t *testing.T) {
	p, err := ParsePath(`emails[type eq "Work" and primary eq true].value`, UserResource())
	if err != nil {
		t.Fatal(err)
	}
	eq, ok := p.Filter.Equalities()
	if !ok || eq["type"] != "Work" || eq["primary"] != true || len(eq) != 2 {
		t.Errorf("Equalities = %v, %v", eq, ok)
	}
	p, _ = ParsePath(`emails[type co "w"]`, UserResource())
	if _, ok := p.Filter.Equalities(); ok {
		t.Error("a co filter pins nothing down")
	}
	p, err = ParsePath(`members[value eq "A" or value eq "b" or Value eq "c"]`, GroupResource())
	if err != nil {
		t.Fatal(err)
	}
	ids, ok := p.Filter.OrEqualities("value")
	if !ok || len(ids) != 3 || ids[0] != "A" || ids[2] != "c" {
		t.Errorf("OrEqualities = %v, %v", ids, ok)
	}
	p, _ = ParsePath(`members[display eq "A" or value eq "b"]`, GroupResource())
	if _, ok := p.Filter.OrEqualities("value"); ok {
		t.Error("a display term is not a value equality")
	}
}

// TestLexStringIsJSON: a filter's string value is what json.Unmarshal reads
// from it, whether the lexer decodes it itself (plain content) or not, and
// a string json.Unmarshal refuses is refused.
func TestLexStringIsJSON(t *testing.T) {
	for _, lit := range []string{`"plain"`, `""`, `"Zoë 日本"`, `"a\"b"`, `"tab\there"`, `"\u00e9"`, "\"bad\xffutf8\"", "\"raw\ttab\"", `"a\qb"`} {
		var want string
		werr := json.Unmarshal([]byte(lit), &want)
		toks, err := lex(`userName eq ` + lit)
		if (err != nil) != (werr != nil) {
			t.Errorf("lex(%q): error %v, json.Unmarshal error %v", lit, err, werr)
			continue
		}
		if err == nil && toks[2].str != want {
			t.Errorf("lex(%q) = %q, json.Unmarshal = %q", lit, toks[2].str, want)
		}
	}
}
