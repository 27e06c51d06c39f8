// Package identity is scimflare's one rule for the Cloudflare email of a
// SCIM user. Every comparison of emails — the planner, the member cache,
// the ownership ledger, the protected list, Cloudflare's answers, explain
// and report — goes through Key, so two spellings can never be one person
// in one place and two in another.
//
// An address that is not a plain addr-spec Cloudflare would take gives its
// user no Cloudflare access at all: granting it would either fail on every
// run or, worse, be compared loosely somewhere and grant the wrong person.
// It must never fold Unicode: "İnfo@example.com" is not "info@example.com".
package identity

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits of RFC 5321 §4.5.3.1 that Cloudflare's member API enforces too.
const (
	maxLocal  = 64
	maxDomain = 253
	maxEmail  = 254
)

// ErrNotPlain is what Email wraps for every address it refuses.
var ErrNotPlain = errors.New("not a plain email address")

// Email is the Cloudflare email of a SCIM identity address: the address
// lower-cased (ASCII only) when it is a plain addr-spec — dot-atom local
// part, one "@", a domain of letters, digits and hyphens with at least one
// dot — else an error that says, in words an operator can act on, why the
// user gets no access. Nothing is trimmed: surrounding whitespace is a
// reason to refuse, not to guess.
func Email(addr string) (string, error) {
	if why := problem(addr); why != "" {
		return "", fmt.Errorf("%w: %s", ErrNotPlain, why)
	}
	return lowerASCII(addr), nil
}

// Valid reports whether Email accepts addr.
func Valid(addr string) bool { return problem(addr) == "" }

// Key is the comparison key of any address, from SCIM, Cloudflare, the
// ledger or the config: Email's answer when addr is plain, else a key no
// plain address has (it keeps addr exactly, behind a NUL), so an address
// scimflare refuses never matches one it grants.
func Key(addr string) string {
	if e, err := Email(addr); err == nil {
		return e
	}
	return "\x00" + addr
}

// Addr is an address whose Key is key, for a key Key returned: the
// address itself, spelled in lower case when it is plain. A store keyed
// by another fold of the address (store.Fold) finds the address's record
// by it.
func Addr(key string) string { return strings.TrimPrefix(key, "\x00") }

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// problem says what is wrong with addr, or "" when nothing is.
func problem(addr string) string {
	switch {
	case addr == "":
		return "the address is empty"
	case !utf8.ValidString(addr):
		return "the address is not valid UTF-8"
	case strings.TrimSpace(addr) != addr:
		return "the address has whitespace around it"
	case len(addr) > maxEmail:
		return fmt.Sprintf("the address is longer than %d characters", maxEmail)
	}
	for _, r := range addr {
		switch {
		case r == ' ' || r == '\t':
			return "the address contains whitespace"
		case r < 0x20 || r == 0x7f:
			return "the address contains a control character"
		case r >= utf8.RuneSelf:
			return fmt.Sprintf("the address contains the non-ASCII character %U, which Cloudflare does not take and which could pass for another letter", r)
		}
	}
	local, domain, ok := strings.Cut(addr, "@")
	switch {
	case !ok:
		return `the address has no "@"`
	case strings.Contains(domain, "@"):
		return `the address has more than one "@"`
	case local == "":
		return `the address has nothing before the "@"`
	case len(local) > maxLocal:
		return fmt.Sprintf("the part before the \"@\" is longer than %d characters", maxLocal)
	case len(domain) > maxDomain:
		return fmt.Sprintf("the domain is longer than %d characters", maxDomain)
	}
	if why := dotAtom(local); why != "" {
		return "the part before the \"@\" " + why
	}
	if !strings.Contains(domain, ".") {
		return "the domain has no dot"
	}
	// Every plan checks every member's address: no slice of labels each.
	for l := range strings.SplitSeq(domain, ".") {
		if l == "" {
			return "the domain has an empty label"
		}
		if len(l) > 63 {
			return "a domain label is longer than 63 characters"
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "a domain label starts or ends with a hyphen"
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(isAlnum(c) || c == '-') {
				return fmt.Sprintf("the domain contains %q", c)
			}
		}
	}
	return ""
}

// dotAtom checks an RFC 5322 dot-atom: atext runs joined by single dots.
// Quoted local parts are legal mail but not a plain address: refused.
func dotAtom(s string) string {
	if s[0] == '.' || s[len(s)-1] == '.' {
		return "starts or ends with a dot"
	}
	if strings.Contains(s, "..") {
		return "has two dots in a row"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || atext[c]) {
			return fmt.Sprintf("contains %q", c)
		}
	}
	return ""
}

// atext are the characters of a dot-atom's runs (RFC 5322 3.2.3).
var atext = func() (t [256]bool) {
	for c := range 256 {
		t[c] = isAlnum(byte(c)) || strings.IndexByte("!#$%&'*+/=?^_`{|}~-", byte(c)) >= 0
	}
	return t
}()

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
