package scim

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
)

const (
	userSchemaURN       = "urn:ietf:params:scim:schemas:core:2.0:User"
	groupSchemaURN      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	enterpriseSchemaURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	legacyCoreURN       = "urn:scim:schemas:core:1.0"
	legacyEnterpriseURN = "urn:scim:schemas:extension:enterprise:1.0"
)

// normalizeResourceBody rewrites the POST/PUT shapes real IdPs send into the
// RFC 7643 form the library validates:
//   - OneLogin's SCIM 1.0 schema URIs become the 2.0 ones;
//   - a missing "schemas" gets the resource's core schema;
//   - "active": "True"/"False" strings (Entra, Microsoft's conformance
//     collection) become booleans;
//   - the enterprise "manager" given as a bare id string (Entra) becomes
//     {"value": id}.
//
// A body that is not a JSON object is returned as is, for the library to
// reject with invalidSyntax.
func normalizeResourceBody(body []byte, resource string) ([]byte, error) {
	nb, _, err := normalizeResourceDoc(body, resource)
	return nb, err
}

// normalizeResourceDoc is normalizeResourceBody that also returns the body
// as the library decodes it (UseNumber, the first JSON value) when it
// returns body itself and body is a JSON object; doc is nil otherwise.
func normalizeResourceDoc(body []byte, resource string) ([]byte, map[string]any, error) {
	doc, err := decodeBody(body)
	if err != nil || doc == nil {
		return body, nil, nil
	}
	core := userSchemaURN
	if resource == "Groups" {
		core = groupSchemaURN
	}
	// changed: whether doc now differs from body. Most IdPs send a body
	// that needs nothing, and the library decodes the same bytes the same
	// way (its decoder also reads the first JSON value, with UseNumber):
	// it then gets body itself rather than a re-encoding of it.
	changed := false
	for k, v := range doc {
		switch {
		case strings.EqualFold(k, legacyEnterpriseURN):
			changed = true
			delete(doc, k)
			doc[enterpriseSchemaURN] = v
		case strings.EqualFold(k, legacyCoreURN):
			changed = true
			delete(doc, k)
			if m, ok := v.(map[string]any); ok {
				for kk, vv := range m {
					doc[kk] = vv
				}
			}
		}
	}
	schemas, _ := doc["schemas"].([]any)
	var out []any
	hasCore := false
	for _, sv := range schemas {
		str, _ := sv.(string)
		switch strings.ToLower(str) {
		case legacyCoreURN:
			str = core
		case legacyEnterpriseURN:
			str = enterpriseSchemaURN
		}
		if strings.EqualFold(str, core) {
			hasCore = true
		}
		out = append(out, str)
	}
	if !hasCore {
		out = append([]any{core}, out...)
	}
	if _, ok := doc[enterpriseSchemaURN]; ok && resource == "Users" && !containsFold(out, enterpriseSchemaURN) {
		out = append(out, enterpriseSchemaURN)
	}
	if !sameSchemas(doc["schemas"], out) {
		changed = true
		doc["schemas"] = out
	}
	for k, v := range doc {
		if strings.EqualFold(k, "active") {
			if str, ok := v.(string); ok {
				if b, err := strconv.ParseBool(strings.ToLower(strings.TrimSpace(str))); err == nil {
					changed = true
					doc[k] = b
				}
			}
		}
	}
	if ext, ok := doc[enterpriseSchemaURN].(map[string]any); ok {
		for k, v := range ext {
			if strings.EqualFold(k, "manager") {
				if str, ok := v.(string); ok {
					changed = true
					if str == "" {
						delete(ext, k)
					} else {
						ext[k] = map[string]any{"value": str}
					}
				}
			}
		}
	}
	if !changed {
		return body, doc, nil
	}
	nb, err := json.Marshal(doc)
	return nb, nil, err
}

// sameSchemas reports whether the "schemas" value v, as decoded, is the
// list of strings out.
func sameSchemas(v any, out []any) bool {
	list, ok := v.([]any)
	if !ok || len(list) != len(out) {
		return false
	}
	for i, sv := range list {
		if str, ok := sv.(string); !ok || str != out[i] {
			return false
		}
	}
	return true
}

func containsFold(list []any, s string) bool {
	for _, v := range list {
		if str, ok := v.(string); ok && strings.EqualFold(str, s) {
			return true
		}
	}
	return false
}

// bareValue finds a comparison whose value is an unquoted word, as in
// Microsoft's conformance collection (`userName sw O`,
// `meta.created gt 2015-10-10T14:38:21-07:00`).
var bareValue = regexp.MustCompile(`(?i)(\s(?:eq|ne|co|sw|ew|gt|ge|lt|le)\s+)([^\s()"\[\]]+)`)

// quoteBareValues quotes bare string values in a filter: ok is false when
// there was nothing to quote.
func quoteBareValues(f string) (string, bool) {
	changed := false
	fixed := bareValue.ReplaceAllStringFunc(f, func(m string) string {
		parts := bareValue.FindStringSubmatch(m)
		v := parts[2]
		switch strings.ToLower(v) {
		case "true", "false", "null":
			return m
		}
		if _, err := strconv.ParseFloat(v, 64); err == nil {
			return m
		}
		changed = true
		return parts[1] + strconv.Quote(v)
	})
	return fixed, changed
}
