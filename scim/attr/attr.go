// Package attr holds the one rule for when a SCIM attribute value counts as
// assigned, shared by the PATCH engine, the filter engine and the stored
// form of a resource, so that `pr`, a PATCH that empties an attribute and
// what is kept can never disagree.
package attr

// Assigned follows RFC 7643 §2.5: null, "", an empty array and an empty
// complex value are unassigned, and so is an array or complex value
// holding nothing assigned ("emails": [{}] has no email).
func Assigned(v any) bool {
	switch v := v.(type) {
	case nil:
		return false
	case string:
		return v != ""
	case []any:
		for _, e := range v {
			if Assigned(e) {
				return true
			}
		}
		return false
	case map[string]any:
		for _, e := range v {
			if Assigned(e) {
				return true
			}
		}
		return false
	}
	return true
}
