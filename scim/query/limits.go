package query

import (
	"fmt"
	"strings"
)

// Limits on one filter, checked by a single linear scan before anything
// parses it, so that a hostile filter costs no more than reading it once.
// Real IdP filters are one to a few terms (`userName eq "…"`,
// `externalId eq "…" and …`, `members[value eq "…"]`), far below these.
const (
	// MaxFilterLength is the longest filter accepted, in bytes.
	MaxFilterLength = 8192
	// MaxFilterDepth bounds nesting of parentheses, "not" and value
	// filters ([…]).
	MaxFilterDepth = maxDepth
	// MaxFilterTerms bounds the attribute expressions (comparisons and
	// presence tests) joined by "and" / "or".
	MaxFilterTerms = 100
)

// CheckLimits refuses a filter (or a PATCH path) longer, deeper or with more
// terms than the limits, with 400 invalidFilter naming the limit. It reads
// raw once and allocates nothing unless it refuses.
func CheckLimits(raw string) error {
	if msg := overLimit(raw); msg != "" {
		return filterErr(raw, msg)
	}
	return nil
}

// overLimit says which limit raw exceeds, or "" when none.
func overLimit(raw string) string {
	if len(raw) > MaxFilterLength {
		return fmt.Sprintf("the filter is %d bytes long, over the limit of %d bytes", len(raw), MaxFilterLength)
	}
	depth, terms := 0, 1
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case '"':
			for i++; i < len(raw) && raw[i] != '"'; i++ {
				if raw[i] == '\\' {
					i++
				}
			}
		case '(', '[':
			depth++
			if depth > MaxFilterDepth {
				return fmt.Sprintf("the filter nests more than %d levels deep, over the limit", MaxFilterDepth)
			}
		case ')', ']':
			depth--
		case 'a', 'A', 'o', 'O':
			// "and" / "or" as a whole word.
			if i > 0 && !isBoundary(raw[i-1]) {
				continue
			}
			for _, w := range [...]string{"and", "or"} {
				j := i + len(w)
				if j <= len(raw) && strings.EqualFold(raw[i:j], w) && (j == len(raw) || isBoundary(raw[j])) {
					terms++
					if terms > MaxFilterTerms {
						return fmt.Sprintf("the filter has more than %d terms, over the limit", MaxFilterTerms)
					}
				}
			}
		}
	}
	return ""
}

func isBoundary(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '(', ')', '[', ']', '"':
		return true
	}
	return false
}
