package query

import "strings"

// EqualityHint reports a top-level `attr eq "value"` term, alone or AND-ed
// with other terms, for one of attrs (names compared case-insensitively,
// URN-qualified for extension attributes). members[value eq "x"] and
// emails[value eq "x"] count as members.value and emails.value. The returned
// attr is the entry of attrs that matched, as passed. The caller may answer
// from an index on attr = value and must still Match the full filter on
// the candidates. value is as written; for caseExact=false attributes
// (userName, displayName) the index must fold case.
func (f *Filter) EqualityHint(attrs ...string) (attr, value string, ok bool) {
	return hint(f.root, "", attrs)
}

func hint(e expr, prefix string, attrs []string) (string, string, bool) {
	switch e := e.(type) {
	case *andExpr:
		if a, v, ok := hint(e.l, prefix, attrs); ok {
			return a, v, true
		}
		return hint(e.r, prefix, attrs)
	case *valuePathExpr:
		return hint(e.inner, qualified(e.ext, e.name)+".", attrs)
	case *compareExpr:
		if _, isStr := e.val.(string); e.op != "eq" || !isStr || e.typ == "dateTime" {
			return "", "", false
		}
		name := qualified(e.ext, e.name)
		if e.sub != "" {
			name += "." + e.sub
		}
		name = prefix + name
		for _, a := range attrs {
			if strings.EqualFold(a, name) {
				return a, e.raw, true
			}
		}
	}
	return "", "", false
}

func qualified(ext, name string) string {
	if ext == "" {
		return name
	}
	return ext + ":" + name
}

// OnlyCore reports whether every comparison in the filter is on a core
// attribute whose canonical name is among names (a sub-attribute of one,
// as meta.created, counts as it): no extension attribute, no value path.
// Such a filter reads nothing of a resource but those attributes, so a
// caller may match a document that holds only them.
func (f *Filter) OnlyCore(names ...string) bool {
	return onlyCore(f.root, names)
}

func onlyCore(e expr, names []string) bool {
	switch e := e.(type) {
	case *andExpr:
		return onlyCore(e.l, names) && onlyCore(e.r, names)
	case *orExpr:
		return onlyCore(e.l, names) && onlyCore(e.r, names)
	case *notExpr:
		return onlyCore(e.x, names)
	case *compareExpr:
		if e.ext != "" {
			return false
		}
		for _, n := range names {
			if e.name == n {
				return true
			}
		}
	}
	return false
}
