// Package terminal makes values from outside (SCIM, Cloudflare) safe to
// print in text meant for a terminal or a log read in one. It must never be
// used on JSON or CSV output, which carry values exactly.
package terminal

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Escape returns s with every rune that does not print as itself written
// as a Go escape: line breaks (\n, \r, U+2028), tabs, other control
// characters (ESC of a colour sequence is \x1b), format characters such as
// bidi overrides (U+202E) and zero-width spaces, and bytes that are not
// UTF-8. A userName with a newline can then not start a forged line, nor a
// right-to-left override reorder what follows it. Printable text,
// including the ASCII space and non-Latin letters, is unchanged, and so is
// a backslash: Windows "DOMAIN\user" names stay readable, at the price that
// a literal `\n` and an escaped line break look alike.
func Escape(s string) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !printable(r, size) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case printable(r, size):
			b.WriteString(s[i : i+size])
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < utf8.RuneSelf:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xFFFF:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += size
	}
	return b.String()
}

func printable(r rune, size int) bool {
	if r == utf8.RuneError && size == 1 {
		return false
	}
	return unicode.IsPrint(r)
}

// EscapeAll escapes each of ss.
func EscapeAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = Escape(s)
	}
	return out
}

// EscapeLines escapes s line by line: its own line breaks stay, for
// messages such as a config error that lists one problem per line.
func EscapeLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = Escape(l)
	}
	return strings.Join(lines, "\n")
}
