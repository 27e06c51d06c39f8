package query

import "strings"

// coreSchemaURNs are the prefixes under which core attributes may be named
// in attributes / excludedAttributes (current and legacy forms).
var coreSchemaURNs = []string{
	"urn:ietf:params:scim:schemas:core:2.0:User",
	"urn:ietf:params:scim:schemas:core:2.0:Group",
	legacyCoreURN,
}

// Project applies the attributes / excludedAttributes request parameters
// (RFC 7644 §3.9; lists already split on commas) to doc and returns a new
// document; doc is not modified. Names are case-insensitive and may be
// dotted (name.givenName, emails.value) or URN-qualified, or a whole
// extension URN. id and schemas are always returned; meta is kept when
// attributes is given and dropped only when excluded explicitly. password is
// never returned. Names that match nothing are ignored, as RFC 7644 asks.
func Project(doc map[string]any, attributes, excluded []string) map[string]any {
	out := deepCopyMap(doc)
	for k := range out {
		if strings.EqualFold(k, "password") {
			delete(out, k)
		}
	}
	if sel := buildTree(out, attributes); sel != nil {
		for _, always := range []string{"id", "schemas", "meta"} {
			sel.children[always] = &tree{all: true}
		}
		out = keep(out, sel)
	}
	for _, name := range excluded {
		segs := segments(out, name)
		if len(segs) == 0 {
			continue
		}
		if len(segs) == 1 && (strings.EqualFold(segs[0], "id") || strings.EqualFold(segs[0], "schemas")) {
			continue
		}
		drop(out, segs)
	}
	return out
}

type tree struct {
	all      bool
	children map[string]*tree // lower-cased key
}

func buildTree(doc map[string]any, names []string) *tree {
	var root *tree
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if root == nil {
			root = &tree{children: map[string]*tree{}}
		}
		t := root
		for _, s := range segments(doc, n) {
			if t.all {
				break
			}
			if t.children == nil {
				t.children = map[string]*tree{}
			}
			c := t.children[strings.ToLower(s)]
			if c == nil {
				c = &tree{}
				t.children[strings.ToLower(s)] = c
			}
			t = c
		}
		if t != root {
			t.all, t.children = true, nil
		}
	}
	return root
}

// segments splits a requested name into the keys that lead to it in doc:
// "urn:…:enterprise:2.0:User:manager.value" -> [urn…User, manager, value].
func segments(doc map[string]any, name string) []string {
	name = strings.TrimSpace(name)
	if _, ok := lookup(doc, name); ok {
		return []string{name}
	}
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		prefix, rest := name[:i], name[i+1:]
		if strings.EqualFold(prefix, legacyEnterpriseURN) {
			prefix = EnterpriseUserURN
		}
		if v, ok := lookup(doc, prefix); ok {
			if _, isMap := v.(map[string]any); isMap {
				return append([]string{prefix}, strings.Split(rest, ".")...)
			}
		}
		for _, c := range coreSchemaURNs {
			if strings.EqualFold(prefix, c) {
				return strings.Split(rest, ".")
			}
		}
		if strings.EqualFold(name, legacyEnterpriseURN) {
			return []string{EnterpriseUserURN}
		}
		return nil
	}
	return strings.Split(name, ".")
}

func keep(v map[string]any, t *tree) map[string]any {
	out := map[string]any{}
	for k, val := range v {
		c := t.children[strings.ToLower(k)]
		if c == nil {
			continue
		}
		if c.all {
			out[k] = val
			continue
		}
		switch val := val.(type) {
		case map[string]any:
			if m := keep(val, c); len(m) > 0 {
				out[k] = m
			}
		case []any:
			var list []any
			for _, el := range val {
				if m, ok := el.(map[string]any); ok {
					if m = keep(m, c); len(m) > 0 {
						list = append(list, m)
					}
				}
			}
			if len(list) > 0 {
				out[k] = list
			}
		}
	}
	return out
}

func drop(v map[string]any, segs []string) {
	for k, val := range v {
		if !strings.EqualFold(k, segs[0]) {
			continue
		}
		if len(segs) == 1 {
			delete(v, k)
			continue
		}
		switch val := val.(type) {
		case map[string]any:
			drop(val, segs[1:])
			if len(val) == 0 {
				delete(v, k)
			}
		case []any:
			for _, el := range val {
				if m, ok := el.(map[string]any); ok {
					drop(m, segs[1:])
				}
			}
		}
	}
}

// DeepCopy copies a JSON document so that the copy shares no map or slice with v.
func DeepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return deepCopyMap(v)
	case []any:
		out := make([]any, len(v))
		for i, el := range v {
			out[i] = DeepCopy(el)
		}
		return out
	}
	return v
}

func deepCopyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = DeepCopy(v)
	}
	return out
}
