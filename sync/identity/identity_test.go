package identity

import (
	"errors"
	"strings"
	"testing"
)

func TestEmail(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want "" = refused
	}{
		{"alice@example.com", "alice@example.com"},
		{"Alice.Smith@Example.COM", "alice.smith@example.com"},
		{"a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk"},
		{"o'brien@example.com", "o'brien@example.com"},
		{"x@a-b.example", "x@a-b.example"},
		{"", ""},
		{"alice@example.com ", ""},
		{" alice@example.com", ""},
		{"alice @example.com", ""},
		{"alice\t@example.com", ""},
		{"alice@example.com\n", ""},
		{"al\x00ice@example.com", ""},
		{"al\x7fice@example.com", ""},
		{"alice\u200b@example.com", ""}, // zero-width space
		{"\u202ealice@example.com", ""}, // bidi override
		{"İnfo@example.com", ""},        // U+0130: must not fold to info@
		{"info@exаmple.com", ""},        // Cyrillic а
		{"bad\xffutf8@example.com", ""}, // invalid UTF-8
		{"aliceexample.com", ""},        // no @
		{"a@b@example.com", ""},         // two @
		{"@example.com", ""},            // empty local part
		{"alice@", ""},                  // empty domain
		{"alice@localhost", ""},         // no dot
		{"alice@example..com", ""},      // empty label
		{"alice@-example.com", ""},      // hyphen at label start
		{".alice@example.com", ""},      // leading dot
		{"al..ice@example.com", ""},     // double dot
		{`"al ice"@example.com`, ""},    // quoted local part
		{"alice@[127.0.0.1]", ""},       // address literal
		{strings.Repeat("a", 65) + "@example.com", ""},
	} {
		got, err := Email(tc.in)
		if tc.want == "" {
			if err == nil || !errors.Is(err, ErrNotPlain) {
				t.Errorf("Email(%q) = %q, %v; want refused", tc.in, got, err)
			}
			if Valid(tc.in) {
				t.Errorf("Valid(%q) = true", tc.in)
			}
			if Key(tc.in) == Key(strings.ToLower(strings.TrimSpace(tc.in))) && Valid(strings.ToLower(strings.TrimSpace(tc.in))) {
				t.Errorf("Key(%q) equals the key of a plain address", tc.in)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Email(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
		if Key(tc.in) != tc.want {
			t.Errorf("Key(%q) = %q; want %q", tc.in, Key(tc.in), tc.want)
		}
	}
}

// The two addresses of the report: one plain, one with U+0130. They must
// never share a key, so deactivating one can never be hidden by the other.
func TestKeyNeverFoldsUnicode(t *testing.T) {
	if Key("info@example.com") == Key("İnfo@example.com") {
		t.Fatal("info@ and İnfo@ share a key")
	}
	if Key("INFO@example.com") != Key("info@example.com") {
		t.Fatal("ASCII case must not matter")
	}
}

func FuzzEmail(f *testing.F) {
	for _, s := range []string{"alice@example.com", "İnfo@example.com", " a@b.c", "a@b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if k := Key(s); Key(Addr(k)) != k {
			t.Fatalf("Key(Addr(%q)) = %q: Addr does not give back an address of the key", k, Key(Addr(k)))
		}
		e, err := Email(s)
		if err != nil {
			if !strings.HasPrefix(Key(s), "\x00") {
				t.Fatalf("refused %q but its key %q looks plain", s, Key(s))
			}
			return
		}
		if again, err := Email(e); err != nil || again != e {
			t.Fatalf("Email(%q) = %q, not a fixed point (%q, %v)", s, e, again, err)
		}
		if strings.ContainsFunc(e, func(r rune) bool { return r >= 0x80 || r <= ' ' }) {
			t.Fatalf("Email(%q) = %q holds a non-printable or non-ASCII rune", s, e)
		}
	})
}
