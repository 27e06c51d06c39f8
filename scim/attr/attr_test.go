package attr

import "testing"

func TestAssigned(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want bool
	}{
		{nil, false}, {"", false}, {[]any{}, false}, {map[string]any{}, false},
		{[]any{nil, "", map[string]any{}}, false},
		{[]any{map[string]any{"value": ""}}, false},
		{map[string]any{"givenName": nil}, false},
		{"x", true}, {false, true}, {0.0, true},
		{[]any{"", "a"}, true},
		{map[string]any{"value": "a@example.com"}, true},
	} {
		if got := Assigned(tc.v); got != tc.want {
			t.Errorf("Assigned(%#v) = %v, want %v", tc.v, got, tc.want)
		}
	}
}
