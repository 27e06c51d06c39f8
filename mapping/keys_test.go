package mapping

import (
	"errors"
	"slices"
	"testing"
)

func TestKeys(t *testing.T) {
	if got := RoleKey("abc"); got != "role:abc" {
		t.Errorf("RoleKey = %q", got)
	}
	a := PolicyKey([]string{"pg2", "pg1", "pg2"}, []string{"rg9", "rg1"})
	b := PolicyKey([]string{"pg1", "pg2"}, []string{"rg1", "rg9"})
	if a != b || a != "policy:pg1,pg2|rg1,rg9" {
		t.Errorf("PolicyKey not canonical: %q vs %q", a, b)
	}
	id, pgs, rgs, isPolicy, err := ParseKey(a)
	if err != nil || !isPolicy || id != "" || !slices.Equal(pgs, []string{"pg1", "pg2"}) || !slices.Equal(rgs, []string{"rg1", "rg9"}) {
		t.Errorf("ParseKey(%q) = %q %v %v %v %v", a, id, pgs, rgs, isPolicy, err)
	}
	id, _, _, isPolicy, err = ParseKey("role:abc")
	if err != nil || isPolicy || id != "abc" {
		t.Errorf("ParseKey(role) = %q %v %v", id, isPolicy, err)
	}
	for _, bad := range []string{"", "abc", "role:", "policy:", "policy:a", "policy:|b", "policy:a|", "policy:a,,b|c", "policy:a|b|c"} {
		if _, _, _, _, err := ParseKey(bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("ParseKey(%q) err = %v, want ErrBadKey", bad, err)
		}
	}
}

func TestKeyName(t *testing.T) {
	names := map[string]string{
		"role:r1":              "Administrator",
		"permission_group:pg1": "DNS Read",
		"permission_group:pg2": "Analytics Read",
		"resource_group:rg1":   "prod-zones",
	}
	for key, want := range map[string]string{
		"role:r1":             "Administrator",
		"role:zz":             "zz", // an unnamed role shows its id
		"deny:policy:pg1|rg1": "deny DNS Read on prod-zones",
		"policy:pg1,pg2|rg1":  "Analytics Read, DNS Read on prod-zones",
		"policy:pg1|rgX":      "DNS Read on rgX",
		"not a key":           "not a key",
	} {
		if got := KeyName(key, names); got != want {
			t.Errorf("KeyName(%q) = %q, want %q", key, got, want)
		}
	}
}
