package query

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestProject(t *testing.T) {
	withPassword := decode(t, userDoc, true)
	withPassword["password"] = "hunter2"
	tests := []struct {
		name                string
		attributes, exclude []string
		want                string
	}{
		{
			name: "defaults drop only password",
			want: userDoc,
		},
		{
			name:       "attributes keeps id schemas meta",
			attributes: []string{"userName"},
			want: `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
			  "id": "2819c223-7f76-453a-919d-413861904646", "userName": "Bjensen@Example.com",
			  "meta": {"resourceType": "User", "created": "2024-01-23T04:56:22Z", "lastModified": "2024-05-13T04:42:34.123+02:00", "version": "W/\"3694e05e9dff591\""}}`,
		},
		{
			name:       "sub-attributes, case-insensitive, URN-qualified",
			attributes: []string{"NAME.givenName", "emails.value", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", "urn:ietf:params:scim:schemas:core:2.0:User:displayName"},
			exclude:    []string{"meta"},
			want: `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
			  "id": "2819c223-7f76-453a-919d-413861904646", "displayName": "Babs Jensen",
			  "name": {"givenName": "Barbara"},
			  "emails": [{"value": "bjensen@example.com"}, {"value": "babs@jensen.org"}],
			  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}}}`,
		},
		{
			name:       "whole extension by URN",
			attributes: []string{"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User", "password"},
			exclude:    []string{"meta", "id", "schemas"},
			want: `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
			  "id": "2819c223-7f76-453a-919d-413861904646",
			  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984", "department": "Tour Operations", "manager": {"value": "26118915-6090-4610-87e4-49d8ca9f808d"}}}`,
		},
		{
			name:    "excluded wins over defaults",
			exclude: []string{"emails", "Name.familyName", "urn:scim:schemas:extension:enterprise:1.0:department", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "meta", "active", "nope.x"},
			want: `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
			  "id": "2819c223-7f76-453a-919d-413861904646", "externalId": "Ext-42", "userName": "Bjensen@Example.com", "displayName": "Babs Jensen",
			  "name": {"givenName": "Barbara"},
			  "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984"}}`,
		},
		{
			name:    "excluded sub-attribute of every element",
			exclude: []string{"emails.primary", "emails.type", "meta", "name", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"},
			want: `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
			  "id": "2819c223-7f76-453a-919d-413861904646", "externalId": "Ext-42", "userName": "Bjensen@Example.com", "displayName": "Babs Jensen", "active": true,
			  "emails": [{"value": "bjensen@example.com"}, {"value": "babs@jensen.org"}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := decode(t, userDoc, true)
			before["password"] = "hunter2"
			got := Project(withPassword, tt.attributes, tt.exclude)
			want := decode(t, tt.want, true)
			if !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(want)
				t.Errorf("Project =\n%s\nwant\n%s", g, w)
			}
			if !reflect.DeepEqual(withPassword, before) {
				t.Error("Project modified its input")
			}
		})
	}
}

func TestProjectGroupExcludeMembers(t *testing.T) {
	got := Project(decode(t, groupDoc, true), nil, []string{"members"})
	if _, ok := got["members"]; ok {
		t.Error("excludedAttributes=members must drop members")
	}
	if got["displayName"] != "CF-Workers-Deployers" {
		t.Error("displayName must stay")
	}
}
