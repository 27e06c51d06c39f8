package patch

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/elimity-com/scim/schema"
)

// coerceMulti turns a value for a multi-valued attribute into its elements.
// A single element not wrapped in an array is accepted (Entra and others
// send one object for emails or members).
func coerceMulti(def schema.CoreAttribute, v any) ([]any, error) {
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	out := make([]any, 0, len(list))
	for _, el := range list {
		if el == nil {
			continue
		}
		c, err := coerceSingle(def, el)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func coerceSingle(def schema.CoreAttribute, v any) (any, error) {
	if def.AttributeType() == "complex" {
		return coerceComplex(def, v)
	}
	return coerceSimple(def, v)
}

// coerceComplex builds a fresh object with canonical sub-attribute names.
// Unknown sub-attributes and nulls are dropped (Entra sends "$ref": null, the
// Microsoft reference tests send members[].displayName); read-only
// sub-attributes are ignored as RFC 7644 §3.5.1 asks. A bare string for an
// attribute with a "value" sub-attribute is that value: Entra sends the
// enterprise manager as a plain id.
func coerceComplex(def schema.CoreAttribute, v any) (map[string]any, error) {
	subs := def.SubAttributes()
	switch v := v.(type) {
	case string:
		vd, ok := subs.ContainsAttribute("value")
		if !ok {
			return nil, fmt.Errorf("%s must be an object, not %s", def.Name(), describe(v))
		}
		sv, err := coerceSimple(vd, v)
		if err != nil {
			return nil, err
		}
		return map[string]any{vd.Name(): sv}, nil
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, sv := range v {
			sd, ok := subs.ContainsAttribute(k)
			if !ok || sv == nil || sd.Mutability() == "readOnly" {
				continue
			}
			c, err := coerceSimple(sd, sv)
			if err != nil {
				return nil, fmt.Errorf("%s.%w", def.Name(), err)
			}
			out[sd.Name()] = c
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s must be an object, not %s", def.Name(), describe(v))
}

// coerceSimple checks v against a simple attribute's type. Strings holding
// booleans or numbers are converted: Entra sends "active": "False".
func coerceSimple(def schema.CoreAttribute, v any) (any, error) {
	bad := func(want string) error {
		return fmt.Errorf("%s must be %s, not %s", def.Name(), want, describe(v))
	}
	switch def.AttributeType() {
	case "boolean":
		switch v := v.(type) {
		case bool:
			return v, nil
		case string:
			if strings.EqualFold(v, "true") {
				return true, nil
			}
			if strings.EqualFold(v, "false") {
				return false, nil
			}
		}
		return nil, bad("a boolean")
	case "integer", "decimal":
		var n json.Number
		switch v := v.(type) {
		case json.Number:
			n = v
		case float64:
			n = json.Number(strconv.FormatFloat(v, 'g', -1, 64))
		case string:
			n = json.Number(strings.TrimSpace(v))
		default:
			return nil, bad("a number")
		}
		if def.AttributeType() == "integer" {
			if _, err := strconv.ParseInt(n.String(), 10, 64); err != nil {
				return nil, bad("an integer")
			}
		} else if _, err := strconv.ParseFloat(n.String(), 64); err != nil {
			return nil, bad("a number")
		}
		return n, nil
	case "dateTime":
		s, ok := v.(string)
		if !ok {
			return nil, bad("a date-time string")
		}
		if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			return nil, bad("an RFC 3339 date-time")
		}
		return s, nil
	case "complex":
		return coerceComplex(def, v)
	}
	s, ok := v.(string)
	if !ok {
		return nil, bad("a string")
	}
	return s, nil
}

// sameElement decides whether two elements of a multi-valued attribute are
// the same value, so that add does not duplicate it and remove-by-value
// finds it. Complex elements with a "value" are the same when their values
// are equal (folding case unless caseExact) and their types, when both are
// given, agree; other elements compare whole.
func sameElement(def schema.CoreAttribute, a, b any) bool {
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		vd, hasValue := def.SubAttributes().ContainsAttribute("value")
		_, av, aHas := getKey(am, "value")
		_, bv, bHas := getKey(bm, "value")
		if !hasValue || !aHas || !bHas {
			return reflect.DeepEqual(am, bm)
		}
		if !equalScalar(av, bv, vd.CaseExact()) {
			return false
		}
		_, at, aHasT := getKey(am, "type")
		_, bt, bHasT := getKey(bm, "type")
		return !aHasT || !bHasT || equalScalar(at, bt, false)
	}
	return equalScalar(a, b, def.CaseExact())
}

func equalScalar(a, b any, caseExact bool) bool {
	as, aok := a.(string)
	bs, bok := b.(string)
	if aok && bok {
		if caseExact {
			return as == bs
		}
		return strings.EqualFold(as, bs)
	}
	return reflect.DeepEqual(a, b)
}
