package patch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/elimity-com/scim/errors"
	"github.com/scimflare/scimflare/scim/query"
)

// PatchOpURN is the schema a PATCH body must declare.
const PatchOpURN = "urn:ietf:params:scim:api:messages:2.0:PatchOp"

// Operation is one PATCH operation.
type Operation struct {
	Op    string // "add", "remove" or "replace", lower-case
	Path  string // as sent, trimmed; "" when absent
	Value any    // decoded with json.Number; nil when absent or null
}

// MaxOperations bounds the operations of one PATCH request. Entra ID and
// Okta send one to a few hundred (AWS IAM Identity Center, which both
// provision, refuses more than 100), so a request over the limit is not an
// IdP's.
const MaxOperations = 1000

// Resource describes what is being patched; see query.UserResource and
// query.GroupResource.
type Resource = query.Resource

// Parse decodes a PatchOp body. It accepts the op in any case ("Replace")
// and "Operations" in any case, and ignores members it does not know (the
// Microsoft reference tests send "name" on operations). Malformed JSON or
// structure is 400 invalidSyntax, an unknown op 400 invalidValue, a remove
// without path 400 noTarget (RFC 7644 §3.5.2.2), a non-string path 400
// invalidPath, an add without value 400 invalidValue.
func Parse(body []byte) ([]Operation, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, badRequest(errors.ScimTypeInvalidSyntax, "The PATCH body is not valid JSON: %v.", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest(errors.ScimTypeInvalidSyntax, "The PATCH body has data after its JSON object.")
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return nil, badRequest(errors.ScimTypeInvalidSyntax, "The PATCH body must be a JSON object.")
	}
	if !hasSchema(m) {
		return nil, badRequest(errors.ScimTypeInvalidSyntax, "The PATCH body's schemas must contain %q.", PatchOpURN)
	}
	_, rawOps, _ := getKey(m, "Operations")
	list, ok := rawOps.([]any)
	if !ok || len(list) == 0 {
		return nil, badRequest(errors.ScimTypeInvalidSyntax, "The PATCH body must have a non-empty Operations array.")
	}
	if len(list) > MaxOperations {
		return nil, badRequest(errors.ScimTypeInvalidValue, "The PATCH has %d operations, over the limit of %d per request; send them in several requests.", len(list), MaxOperations)
	}
	ops := make([]Operation, 0, len(list))
	for i, el := range list {
		om, ok := el.(map[string]any)
		if !ok {
			return nil, badRequest(errors.ScimTypeInvalidSyntax, "Operations[%d] must be a JSON object.", i)
		}
		_, rawOp, _ := getKey(om, "op")
		opName, _ := rawOp.(string)
		op := Operation{Op: strings.ToLower(strings.TrimSpace(opName))}
		if op.Op != "add" && op.Op != "remove" && op.Op != "replace" {
			shown := describe(rawOp)
			if s, ok := rawOp.(string); ok {
				shown = fmt.Sprintf("%q", s)
			}
			return nil, badRequest(errors.ScimTypeInvalidValue, "Operations[%d]: op %s is not add, remove or replace.", i, shown)
		}
		switch p := mustGet(om, "path").(type) {
		case nil:
		case string:
			op.Path = strings.TrimSpace(p)
		default:
			return nil, badRequest(errors.ScimTypeInvalidPath, "Operations[%d] (%s): path must be a string, not %s.", i, op.Op, describe(p))
		}
		op.Value = mustGet(om, "value")
		switch {
		case op.Op == "remove" && op.Path == "":
			return nil, badRequest(errors.ScimTypeNoTarget, "Operations[%d] (remove): remove needs a path.", i)
		case op.Op == "add" && op.Value == nil:
			return nil, badRequest(errors.ScimTypeInvalidValue, "Operations[%d] (add%s): add needs a value.", i, quotedPath(op.Path))
		case op.Op == "replace" && op.Path == "" && op.Value == nil:
			return nil, badRequest(errors.ScimTypeInvalidValue, "Operations[%d] (replace): replace without a path needs an object value.", i)
		}
		ops = append(ops, op)
	}
	return ops, nil
}

func hasSchema(m map[string]any) bool {
	_, v, _ := getKey(m, "schemas")
	list, _ := v.([]any)
	for _, s := range list {
		if s, ok := s.(string); ok && strings.EqualFold(s, PatchOpURN) {
			return true
		}
	}
	return false
}

func badRequest(t errors.ScimType, format string, args ...any) error {
	return errors.ScimError{ScimType: t, Status: 400, Detail: fmt.Sprintf(format, args...)}
}

func quotedPath(p string) string {
	if p == "" {
		return ""
	}
	return fmt.Sprintf(" %q", p)
}

// describe names a JSON value for an error message without echoing large input.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		if len(v) > 64 {
			v = v[:64] + "…"
		}
		return fmt.Sprintf("the string %q", v)
	case bool:
		return fmt.Sprintf("the boolean %t", v)
	case json.Number, float64, int:
		return fmt.Sprintf("the number %v", v)
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("a %T", v)
}

// getKey finds key in m case-insensitively, preferring an exact match, and
// returns the key as spelled in m.
func getKey(m map[string]any, key string) (string, any, bool) {
	if v, ok := m[key]; ok {
		return key, v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return k, v, true
		}
	}
	return "", nil, false
}

func mustGet(m map[string]any, key string) any {
	_, v, _ := getKey(m, key)
	return v
}

// setKey stores v under the canonical name, dropping other spellings of it.
func setKey(m map[string]any, name string, v any) {
	delKey(m, name)
	m[name] = v
}

func delKey(m map[string]any, name string) {
	for k := range m {
		if strings.EqualFold(k, name) {
			delete(m, k)
		}
	}
}
