package store

import (
	"strings"
	"testing"
)

// Fold must agree with strings.EqualFold, which the SCIM filter code uses:
// an index lookup and a filter over the same names give the same answer.
func TestFoldMatchesEqualFold(t *testing.T) {
	words := []string{
		"alice", "ALICE", "Alice", "alicE", "bob",
		"kelvin", "\u212Aelvin", "KELVIN", // Kelvin sign folds with k
		"ſtraße", "STRASSE", "strasse", "straße", "STRAßE", // long s folds with s; ß does not fold to ss
		"σοφία", "ΣΟΦΊΑ", "ςοφία", // final sigma is in the sigma orbit
		"İstanbul", "istanbul", "Istanbul", // dotted capital I is its own orbit
		"élodie", "ÉLODIE", "e\u0301lodie", // decomposed é is a different string (no NFC)
		"", "123", "a@b.c", "A@B.C",
	}
	for _, a := range words {
		for _, b := range words {
			if got, want := Fold(a) == Fold(b), strings.EqualFold(a, b); got != want {
				t.Errorf("Fold(%q)==Fold(%q) is %v, EqualFold says %v", a, b, got, want)
			}
		}
	}
}

func TestPairKeysDoNotCollide(t *testing.T) {
	// Without the length prefix, ("ab", "c") and ("a", "bc") would share a key.
	if string(pairKey("ab", "c")) == string(pairKey("a", "bc")) {
		t.Fatal("pair keys collide")
	}
	if strings.HasPrefix(string(pairKey("a\x00b", "id")), string(pairPrefix("a"))) {
		t.Fatal("a longer first part matches a shorter prefix")
	}
}
