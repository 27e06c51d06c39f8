package terminal

import (
	"strings"
	"testing"
	"unicode"
)

func TestEscape(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"alice@example.com", "alice@example.com"},
		{"", ""},
		{"Zoë Łukasz 山田 DOMAIN\\user", "Zoë Łukasz 山田 DOMAIN\\user"},
		{"eve@example.com\n2026-01-01T00:00:00Z  token  token_revoke", `eve@example.com\n2026-01-01T00:00:00Z  token  token_revoke`},
		{"a\r\nb", `a\r\nb`},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"moc.elpmaxe@\u202eevil", `moc.elpmaxe@\u202eevil`},
		{"zero\u200bwidth\ufeff", `zero\u200bwidth\ufeff`},
		{"line\u2028sep\u0085nel", `line\u2028sep\u0085nel`},
		{"tab\there", `tab\there`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"nbsp\u00a0x", `nbsp\u00a0x`},
		{"\U000e0041tag", `\U000e0041tag`},
	} {
		if got := Escape(c.in); got != c.want {
			t.Errorf("Escape(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// Whatever goes in, what comes out prints as itself: one line, no control,
// format or invalid bytes.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{"a\nb", "\x1b[2J", "\u202e", "\xff\xfe", "ok"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Escape(s)
		for _, r := range out {
			if !unicode.IsPrint(r) || r == unicode.ReplacementChar && !strings.ContainsRune(s, unicode.ReplacementChar) {
				t.Fatalf("Escape(%q) = %q holds %U", s, out, r)
			}
		}
		if Escape(out) != out {
			t.Fatalf("Escape is not idempotent on %q", s)
		}
	})
}
