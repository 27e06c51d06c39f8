package patch

import (
	"encoding/json"
	stderrors "errors"
	"reflect"
	"testing"

	"github.com/elimity-com/scim/errors"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []Operation
	}{
		{"RFC shape", string(body(`[{"op":"add","path":"emails","value":[{"value":"a@x"}]},{"op":"remove","path":"title"}]`)),
			[]Operation{{Op: "add", Path: "emails", Value: []any{map[string]any{"value": "a@x"}}}, {Op: "remove", Path: "title"}}},
		// Microsoft Entra ID ("Known issues and resolutions with SCIM 2.0 compliance"): capitalised op names.
		{"Entra capitalised ops", string(body(`[{"op":"Replace","path":"active","value":"False"},{"op":"Add","path":"title","value":"x"},{"op":"Remove","path":"title"}]`)),
			[]Operation{{Op: "replace", Path: "active", Value: "False"}, {Op: "add", Path: "title", Value: "x"}, {Op: "remove", Path: "title"}}},
		{"lower-case operations key, unknown members ignored, path trimmed",
			`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"operations":[{"name":"addMember","op":"add","path":" members ","value":"id1"}]}`,
			[]Operation{{Op: "add", Path: "members", Value: "id1"}}},
		{"numbers stay json.Number", string(body(`[{"op":"replace","value":{"x":1.5}}]`)),
			[]Operation{{Op: "replace", Value: map[string]any{"x": json.Number("1.5")}}}},
		{"replace with a path may carry null", string(body(`[{"op":"replace","path":"title","value":null}]`)),
			[]Operation{{Op: "replace", Path: "title"}}},
	}
	for _, tt := range tests {
		got, err := Parse([]byte(tt.body))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: Parse = %#v, want %#v", tt.name, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		body string
		want errors.ScimType
	}{
		{`{`, errors.ScimTypeInvalidSyntax},
		{`[]`, errors.ScimTypeInvalidSyntax},
		{`{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[]} {}`, errors.ScimTypeInvalidSyntax},
		{`{"Operations":[{"op":"add","path":"title","value":"x"}]}`, errors.ScimTypeInvalidSyntax},
		{`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"Operations":[{"op":"add","path":"title","value":"x"}]}`, errors.ScimTypeInvalidSyntax},
		{string(body(`[]`)), errors.ScimTypeInvalidSyntax},
		{string(body(`{"op":"add"}`)), errors.ScimTypeInvalidSyntax},
		{string(body(`["add"]`)), errors.ScimTypeInvalidSyntax},
		{string(body(`[{"op":"copy","path":"title","value":"x"}]`)), errors.ScimTypeInvalidValue},
		{string(body(`[{"path":"title","value":"x"}]`)), errors.ScimTypeInvalidValue},
		{string(body(`[{"op":"remove"}]`)), errors.ScimTypeNoTarget},
		{string(body(`[{"op":"add","path":"title"}]`)), errors.ScimTypeInvalidValue},
		{string(body(`[{"op":"replace"}]`)), errors.ScimTypeInvalidValue},
		{string(body(`[{"op":"add","path":5,"value":"x"}]`)), errors.ScimTypeInvalidPath},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.body))
		var se errors.ScimError
		if !stderrors.As(err, &se) || se.Status != 400 || se.ScimType != tt.want || se.Detail == "" {
			t.Errorf("Parse(%s) error = %v, want 400 %s", tt.body, err, tt.want)
		}
	}
}
