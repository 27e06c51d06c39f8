package store

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// userRecordKeys are userRecord's JSON keys in declaration order, the order
// json.Marshal writes them in.
var userRecordKeys = [...]string{"id", "un", "ext", "act", "as", "em", "doc", "c", "m", "v"}

// scanUser reads a user record the way decodeUser's json.Unmarshal does,
// without reflection: every SCIM lookup decodes one, and json.Unmarshal
// was most of a `userName eq` lookup's store time. It accepts only what
// encodeUser writes for ordinary values — userRecord's keys in their
// order, each at most once; strings without escapes, in valid UTF-8; the
// document an object — and ok is false for anything else, which
// decodeUser then hands to json.Unmarshal. So the answer is always
// json.Unmarshal's. Strings and the document are copied: the result
// outlives the transaction that read v.
func scanUser(v []byte) (u User, ok bool) {
	n := len(v)
	if n < 2 || v[0] != '{' || v[n-1] != '}' {
		return User{}, false
	}
	if n == 2 {
		return User{}, true
	}
	i := 1
	// str reads a JSON string at v[i] that needs no unescaping.
	str := func() ([]byte, bool) {
		if i >= n || v[i] != '"' {
			return nil, false
		}
		ascii := true
		for j := i + 1; j < n; j++ {
			switch c := v[j]; {
			case c == '"':
				s := v[i+1 : j]
				if !ascii && !utf8.Valid(s) {
					return nil, false
				}
				i = j + 1
				return s, true
			case c == '\\' || c < 0x20:
				return nil, false
			case c >= utf8.RuneSelf:
				ascii = false
			}
		}
		return nil, false
	}
	next := 0 // index in userRecordKeys of the first key still allowed
	for {
		key, ok := str()
		if !ok || i >= n || v[i] != ':' {
			return User{}, false
		}
		i++
		k := next
		for k < len(userRecordKeys) && userRecordKeys[k] != string(key) {
			k++
		}
		if k == len(userRecordKeys) {
			return User{}, false
		}
		next = k + 1
		switch userRecordKeys[k] {
		case "id", "un", "ext", "em":
			s, ok := str()
			if !ok {
				return User{}, false
			}
			switch key[0] {
			case 'i':
				u.ID = string(s)
			case 'u':
				u.UserName = string(s)
			case 'e':
				if key[1] == 'm' {
					u.Email = string(s)
				} else {
					u.ExternalID = string(s)
				}
			}
		case "act":
			switch {
			case bytes.HasPrefix(v[i:], []byte("true")):
				u.Active, i = true, i+4
			case bytes.HasPrefix(v[i:], []byte("false")):
				u.Active, i = false, i+5
			default:
				return User{}, false
			}
		case "as", "c", "m":
			s, ok := str()
			if !ok {
				return User{}, false
			}
			t := &u.ActiveSince
			switch key[0] {
			case 'c':
				t = &u.Meta.Created
			case 'm':
				t = &u.Meta.LastModified
			}
			// time.Time's UnmarshalJSON is UnmarshalText inside quotes.
			if t.UnmarshalText(s) != nil {
				return User{}, false
			}
		case "doc":
			end, ok := objectEnd(v, i)
			if !ok || !json.Valid(v[i:end]) {
				return User{}, false
			}
			u.Doc = append(json.RawMessage(nil), v[i:end]...)
			i = end
		case "v":
			j := i
			for j < n && v[j] >= '0' && v[j] <= '9' {
				j++
			}
			if j == i || (v[i] == '0' && j > i+1) {
				return User{}, false
			}
			ver, err := strconv.ParseUint(string(v[i:j]), 10, 64)
			if err != nil {
				return User{}, false
			}
			u.Meta.Version, i = ver, j
		}
		if i >= n {
			return User{}, false
		}
		switch v[i] {
		case ',':
			i++
		case '}':
			return u, i == n-1
		default:
			return User{}, false
		}
	}
}

// objectEnd finds the end of the JSON object starting at v[i], following
// strings (and their escapes) and nesting; json.Valid checks the rest.
func objectEnd(v []byte, i int) (int, bool) {
	if i >= len(v) || v[i] != '{' {
		return 0, false
	}
	depth := 0
	for j := i; j < len(v); j++ {
		switch v[j] {
		case '"':
			for j++; j < len(v) && v[j] != '"'; j++ {
				if v[j] == '\\' {
					j++
				}
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return j + 1, true
			}
		}
	}
	return 0, false
}
