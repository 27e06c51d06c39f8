package query

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/scimflare/scimflare/scim/attr"
	"github.com/scimflare/scimflare/store"
)

// Filter is a compiled SCIM filter. It is immutable and safe for concurrent use.
type Filter struct {
	root expr
	src  string
}

// String returns the filter as written.
func (f *Filter) String() string { return f.src }

// Compile parses a SCIM filter (RFC 7644 §3.4.2.2) for resource r. Bad
// syntax, an unknown attribute, or an operator or value that does not suit
// the attribute's type is 400 invalidFilter.
func Compile(expr string, r Resource) (*Filter, error) {
	if err := CheckLimits(expr); err != nil {
		return nil, err
	}
	toks, err := lex(expr)
	if err != nil {
		return nil, filterErr(expr, err.Error())
	}
	if toks[0].kind == tEOF {
		return nil, filterErr(expr, "the filter is empty")
	}
	p := &parser{toks: toks, src: expr, r: r}
	e, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, filterErr(expr, "unexpected "+strconv.Quote(t.text)+" at position "+strconv.Itoa(t.pos))
	}
	return &Filter{root: e, src: expr}, nil
}

// Match reports whether doc passes the filter. For a filter compiled with
// Compile, doc is the full resource; for a Path.Filter it is one element of
// the path's multi-valued attribute.
func (f *Filter) Match(doc map[string]any) bool {
	return f.root.eval(doc)
}

type expr interface {
	eval(scope map[string]any) bool
}

type andExpr struct{ l, r expr }
type orExpr struct{ l, r expr }
type notExpr struct{ x expr }

func (e *andExpr) eval(s map[string]any) bool { return e.l.eval(s) && e.r.eval(s) }
func (e *orExpr) eval(s map[string]any) bool  { return e.l.eval(s) || e.r.eval(s) }
func (e *notExpr) eval(s map[string]any) bool { return !e.x.eval(s) }

// valuePathExpr is attr[filter]: true when some element passes the filter.
type valuePathExpr struct {
	ext   string
	name  string
	multi bool
	inner expr
}

func (e *valuePathExpr) eval(s map[string]any) bool {
	v, ok := lookup(container(s, e.ext), e.name)
	if !ok {
		return false
	}
	switch v := v.(type) {
	case map[string]any:
		return e.inner.eval(v)
	case []any:
		for _, el := range v {
			if m, ok := el.(map[string]any); ok && e.inner.eval(m) {
				return true
			}
		}
	}
	return false
}

type compareExpr struct {
	ext       string // extension URN holding the attribute, "" for core
	name      string // attribute name, canonical
	sub       string // sub-attribute name, "" when none
	multi     bool
	op        string
	typ       string
	caseExact bool
	val       any    // nil, bool, float64, time.Time, or string (lower-cased unless caseExact)
	raw       string // string comparison value as written
	// fold is the string value as store.Fold folds it, when the
	// comparison ignores case: equality and substrings compare folded
	// values, so that a filter matches exactly the names the store's
	// indexes and uniqueness (store.Fold) take for the same one.
	fold string
}

func (c *compareExpr) eval(s map[string]any) bool {
	vals := c.values(s)
	switch c.op {
	case "pr":
		return attr.Assigned(vals)
	case "eq":
		if c.val == nil {
			return !attr.Assigned(vals)
		}
	case "ne":
		if c.val == nil {
			return attr.Assigned(vals)
		}
		// RFC 7644 §3.4.2.2: a comparison on a multi-valued attribute
		// matches when any value satisfies it, so `emails.value ne "x"`
		// matches a user with some email other than x, exactly as
		// `emails[value ne "x"]` does. A single-valued attribute without a
		// value is not equal to x.
		for _, v := range vals {
			if c.match(v, "eq") != c.multi {
				return c.multi
			}
		}
		return !c.multi
	}
	for _, v := range vals {
		if c.match(v, c.op) {
			return true
		}
	}
	return false
}

// values collects the attribute's values at the leaf, flattening multi-valued attributes.
func (c *compareExpr) values(s map[string]any) []any {
	v, ok := lookup(container(s, c.ext), c.name)
	if !ok {
		return nil
	}
	var out []any
	add := func(v any) {
		if c.sub == "" {
			out = append(out, v)
			return
		}
		if m, ok := v.(map[string]any); ok {
			if sv, ok := lookup(m, c.sub); ok {
				out = append(out, sv)
			}
		}
	}
	if list, ok := v.([]any); ok {
		for _, el := range list {
			add(el)
		}
	} else {
		add(v)
	}
	return out
}

func (c *compareExpr) match(v any, op string) bool {
	switch want := c.val.(type) {
	case bool:
		got, ok := v.(bool)
		if s, isStr := v.(string); isStr {
			got, ok = parseBool(s)
		}
		return ok && got == want
	case float64:
		got, ok := toFloat(v)
		return ok && ordered(cmpFloat(got, want), op)
	case time.Time:
		got, ok := toTime(v)
		return ok && ordered(got.Compare(want), op)
	case string:
		var got string
		switch v := v.(type) {
		case string:
			got = v
		case time.Time:
			got = v.Format(time.RFC3339Nano)
		default:
			return false
		}
		if !c.caseExact {
			switch op {
			case "eq", "co", "sw", "ew":
				got, want = store.Fold(got), c.fold
			default:
				// Ordering keeps lower-case order: store.Fold folds
				// ASCII to upper case.
				got = strings.ToLower(got)
			}
		}
		switch op {
		case "co":
			return strings.Contains(got, want)
		case "sw":
			return strings.HasPrefix(got, want)
		case "ew":
			return strings.HasSuffix(got, want)
		}
		return ordered(strings.Compare(got, want), op)
	}
	return false
}

func ordered(cmp int, op string) bool {
	switch op {
	case "eq":
		return cmp == 0
	case "gt":
		return cmp > 0
	case "ge":
		return cmp >= 0
	case "lt":
		return cmp < 0
	case "le":
		return cmp <= 0
	}
	return false
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func toFloat(v any) (float64, bool) {
	switch v := v.(type) {
	case float64:
		return v, true
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	}
	return 0, false
}

func toTime(v any) (time.Time, bool) {
	switch v := v.(type) {
	case time.Time:
		return v, true
	case string:
		return parseTime(v)
	}
	return time.Time{}, false
}

// container is where an attribute of schema ext lives in doc.
func container(doc map[string]any, ext string) map[string]any {
	if ext == "" {
		return doc
	}
	v, _ := lookup(doc, ext)
	m, _ := v.(map[string]any)
	return m
}

// lookup finds key case-insensitively, preferring an exact match.
func lookup(m map[string]any, key string) (any, bool) {
	if m == nil {
		return nil, false
	}
	if v, ok := m[key]; ok {
		return v, true
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// Equalities returns the sub-attribute values pinned down by a value filter
// made only of `eq` terms joined by `and` (e.g. `type eq "work"`), keyed by
// canonical sub-attribute name. ok is false for any other shape. PATCH uses
// it to create the element a filter names when none exists.
func (f *Filter) Equalities() (values map[string]any, ok bool) {
	values = map[string]any{}
	return values, equalities(f.root, values)
}

func equalities(e expr, out map[string]any) bool {
	switch e := e.(type) {
	case *andExpr:
		return equalities(e.l, out) && equalities(e.r, out)
	case *compareExpr:
		if e.op != "eq" || e.sub != "" || e.ext != "" {
			return false
		}
		switch v := e.val.(type) {
		case string:
			if e.typ == "dateTime" {
				return false
			}
			out[e.name] = e.raw
		case bool:
			out[e.name] = v
		default:
			return false
		}
		return true
	}
	return false
}

// OrEqualities returns the values of a filter made only of `name eq "x"`
// terms joined by `or`, e.g. members[value eq "a" or value eq "b"], in the
// order written. ok is false for any other shape.
func (f *Filter) OrEqualities(name string) (values []string, ok bool) {
	return orEqualities(f.root, name, nil)
}

func orEqualities(e expr, name string, acc []string) ([]string, bool) {
	switch e := e.(type) {
	case *orExpr:
		acc, ok := orEqualities(e.l, name, acc)
		if !ok {
			return nil, false
		}
		return orEqualities(e.r, name, acc)
	case *compareExpr:
		if _, isStr := e.val.(string); e.op == "eq" && isStr && e.sub == "" && e.ext == "" && strings.EqualFold(e.name, name) {
			return append(acc, e.raw), true
		}
	}
	return nil, false
}
