package scim

import (
	"context"
	"net/http"
	"sync"

	elimity "github.com/elimity-com/scim"
	"github.com/elimity-com/scim/filter"
	"github.com/elimity-com/scim/schema"
)

// The library validates a list request's filter by parsing it with
// scim2/filter-parser and copying the resource schema, about 2,000
// allocations for `userName eq "…"`, and lenientFilterQuery parses it once
// more before that: three quarters of a single-user lookup's cost. Whether
// the library accepts `<attr> <op> "<value>"` does not depend on the value
// as long as the value holds no quote, backslash or non-printable character
// (the parser's string rule takes every other printable character, and the
// validator never looks at values), so the verdict is computed once per
// resource and prefix and remembered. An accepted filter is then hidden from
// the library and handed to the list handlers in the request context;
// anything else takes the library's path and gets its answers, errors
// included.

// maxFilterShapes bounds the remembered prefixes: a client sending ever new
// attribute names only ever costs the library's own validation.
const maxFilterShapes = 1024

// filterShapes remembers the library's verdict per resource and prefix.
type filterShapes struct {
	mu      sync.RWMutex
	verdict map[string]bool
}

type listFilterKey struct{}

// withListFilter hands a library-accepted filter to the list handlers.
func withListFilter(r *http.Request, raw string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), listFilterKey{}, raw))
}

// listFilterParam is the filter of a list request: the one serveHTTP took
// out of the query after checking it, else the query parameter.
func listFilterParam(r *http.Request) string {
	if raw, ok := r.Context().Value(listFilterKey{}).(string); ok {
		return raw
	}
	return r.URL.Query().Get("filter")
}

// filterPrefix splits `<attr> <op> "<value>"` into its prefix up to the
// opening quote; ok is false for any other shape, for a value the verdict
// could depend on, and for surrounding spaces (which the library and
// lenientFilterQuery treat differently).
func filterPrefix(raw string) (prefix string, ok bool) {
	n := len(raw)
	if n < 2 || raw[n-1] != '"' {
		return "", false
	}
	open := -1
	for i := 0; i < n; i++ {
		if raw[i] == '"' {
			open = i
			break
		}
	}
	if open < 0 || open == n-1 {
		return "", false
	}
	for i := open + 1; i < n-1; i++ {
		if c := raw[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return "", false
		}
	}
	prefix = raw[:open]
	// name SP op SP, the op two letters.
	sp := -1
	for i := 0; i < len(prefix); i++ {
		if prefix[i] == ' ' {
			sp = i
			break
		}
	}
	if sp < 1 || len(prefix)-sp != 4 || prefix[len(prefix)-1] != ' ' ||
		!isLetter(prefix[sp+1]) || !isLetter(prefix[sp+2]) || !isLetter(prefix[0]) {
		return "", false
	}
	for i := 1; i < sp; i++ {
		c := prefix[i]
		if !isLetter(c) && (c < '0' || c > '9') && c != '.' && c != ':' && c != '_' && c != '-' && c != '$' {
			return "", false
		}
	}
	return prefix, true
}

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// libraryAccepts reports whether the library would accept raw as the filter
// of a list request on rt, without asking the library when the verdict for
// raw's shape is known. It answers false whenever it cannot tell.
func (fs *filterShapes) libraryAccepts(rt elimity.ResourceType, raw string) bool {
	prefix, ok := filterPrefix(raw)
	if !ok {
		return false
	}
	key := rt.Endpoint + "\x00" + prefix
	fs.mu.RLock()
	v, known := fs.verdict[key]
	fs.mu.RUnlock()
	if known {
		return v
	}
	v = libraryValidates(rt, prefix+`"x"`)
	fs.mu.Lock()
	if fs.verdict == nil {
		fs.verdict = make(map[string]bool)
	}
	if len(fs.verdict) < maxFilterShapes {
		fs.verdict[key] = v
	}
	fs.mu.Unlock()
	return v
}

// libraryValidates is the library's list-request filter check
// (getFilterValidator in elimity-com/scim's server.go): the resource schema
// with the common attributes, plus its extensions. TestListFilterFastPath
// holds the two in step.
func libraryValidates(rt elimity.ResourceType, raw string) bool {
	withCommon := rt.Schema
	attrs := make([]schema.CoreAttribute, len(rt.Schema.Attributes), len(rt.Schema.Attributes)+len(schema.CommonAttributes()))
	copy(attrs, rt.Schema.Attributes)
	withCommon.Attributes = append(attrs, schema.CommonAttributes()...)
	exts := make([]schema.Schema, 0, len(rt.SchemaExtensions))
	for _, e := range rt.SchemaExtensions {
		exts = append(exts, e.Schema)
	}
	v, err := filter.NewValidator(raw, withCommon, exts...)
	if err != nil {
		return false
	}
	return v.Validate() == nil
}
