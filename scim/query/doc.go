// Package query answers SCIM filters, resolves SCIM attribute paths and
// projects resources for the attributes / excludedAttributes parameters.
//
// Everything here is a pure function over JSON documents (map[string]any as
// produced by encoding/json, with or without UseNumber), schema-aware through
// the elimity-com/scim schema types: attribute names are case-insensitive,
// caseExact=false attributes (userName, displayName, emails.value …) compare
// case-insensitively, dateTime attributes compare as instants.
//
// The package owns its own filter parser rather than reusing
// scim2/filter-parser: that parser keeps JSON escapes undecoded in string
// values and only accepts two terms inside a value filter, and both matter
// for real IdP requests.
//
// It must never do I/O, read the clock, or mutate a document it is given.
// Errors are github.com/elimity-com/scim/errors.ScimError values
// (400 invalidFilter or invalidPath) whose Detail is one sentence that the
// HTTP layer can send as is.
package query
