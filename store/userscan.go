package store

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
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
	ok = scanRecord(v, userRecordKeys[:], func(key string, i int) (int, bool) {
		switch key {
		case "id", "un", "ext", "em":
			s, j, ok := scanPlainString(v, i)
			if !ok {
				return 0, false
			}
			switch key {
			case "id":
				u.ID = string(s)
			case "un":
				u.UserName = string(s)
			case "ext":
				u.ExternalID = string(s)
			case "em":
				u.Email = string(s)
			}
			return j, true
		case "act":
			switch {
			case bytes.HasPrefix(v[i:], []byte("true")):
				u.Active = true
				return i + 4, true
			case bytes.HasPrefix(v[i:], []byte("false")):
				u.Active = false
				return i + 5, true
			}
			return 0, false
		case "as", "c", "m":
			t := &u.ActiveSince
			switch key {
			case "c":
				t = &u.Meta.Created
			case "m":
				t = &u.Meta.LastModified
			}
			return scanTime(v, i, t)
		case "doc":
			return scanDocument(v, i, &u.Doc)
		case "v":
			return scanVersion(v, i, &u.Meta.Version)
		}
		return 0, false
	})
	if !ok {
		return User{}, false
	}
	return u, true
}

// scanRecord walks a record json.Marshal wrote for a struct whose JSON
// keys are keys, in that order: an object of those keys, in their order,
// each at most once, and nothing after it. value reads the value of key
// starting at v[i] and returns the index after it. scanUser and scanGroup
// share it; ok is false for anything it does not read exactly.
func scanRecord(v []byte, keys []string, value func(key string, i int) (int, bool)) bool {
	n := len(v)
	if n < 2 || v[0] != '{' || v[n-1] != '}' {
		return false
	}
	if n == 2 {
		return true
	}
	i, next := 1, 0 // next: index in keys of the first key still allowed
	for {
		key, j, ok := scanPlainString(v, i)
		if !ok || j >= n || v[j] != ':' {
			return false
		}
		k := next
		for k < len(keys) && keys[k] != string(key) {
			k++
		}
		if k == len(keys) {
			return false
		}
		next = k + 1
		if i, ok = value(keys[k], j+1); !ok || i >= n {
			return false
		}
		switch v[i] {
		case ',':
			i++
		case '}':
			return i == n-1
		default:
			return false
		}
	}
}

// scanPlainString reads the JSON string at v[i] when it needs no
// unescaping: its bytes (in v) and the index after it.
func scanPlainString(v []byte, i int) ([]byte, int, bool) {
	if i >= len(v) || v[i] != '"' {
		return nil, 0, false
	}
	ascii := true
	for j := i + 1; j < len(v); j++ {
		switch c := v[j]; {
		case c == '"':
			s := v[i+1 : j]
			if !ascii && !utf8.Valid(s) {
				return nil, 0, false
			}
			return s, j + 1, true
		case c == '\\' || c < 0x20:
			return nil, 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return nil, 0, false
}

// scanTime reads the time string at v[i] into t as time.Time's
// UnmarshalJSON does (UnmarshalText inside quotes).
func scanTime(v []byte, i int, t *time.Time) (int, bool) {
	s, j, ok := scanPlainString(v, i)
	if !ok || t.UnmarshalText(s) != nil {
		return 0, false
	}
	return j, true
}

// scanDocument copies the JSON object at v[i] into doc.
func scanDocument(v []byte, i int, doc *json.RawMessage) (int, bool) {
	end, ok := objectEnd(v, i)
	if !ok || !json.Valid(v[i:end]) {
		return 0, false
	}
	*doc = append(json.RawMessage(nil), v[i:end]...)
	return end, true
}

// scanVersion reads the unsigned integer at v[i] as json.Unmarshal reads
// it into a uint64 (no sign, no leading zero, no fraction).
func scanVersion(v []byte, i int, ver *uint64) (int, bool) {
	j := i
	for j < len(v) && v[j] >= '0' && v[j] <= '9' {
		j++
	}
	if j == i || (v[i] == '0' && j > i+1) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(v[i:j]), 10, 64)
	if err != nil {
		return 0, false
	}
	*ver = n
	return j, true
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

// appendUserRecord appends what json.Marshal writes for u's userRecord,
// under appendGroupRecord's conditions: every string printable ASCII that
// json.Marshal writes as it is, the times UTC, the document compact JSON
// with nothing json.Marshal would escape. ok is false otherwise, and
// encodeUser asks json.Marshal. A create encodes its record inside the
// write transaction, where every other writer of the group commit waits
// for it: json.Marshal was a third of a create's time in there.
func appendUserRecord(b []byte, u User) ([]byte, bool) {
	if !plainJSONString(u.ID) || !plainJSONString(u.UserName) || !plainJSONString(u.ExternalID) || !plainJSONString(u.Email) {
		return nil, false
	}
	if len(u.Doc) > 0 && !compactUnescaped(u.Doc) {
		return nil, false
	}
	b = append(b, `{"id":"`...)
	b = append(b, u.ID...)
	b = append(b, `","un":"`...)
	b = append(b, u.UserName...)
	b = append(b, '"')
	if u.ExternalID != "" {
		b = append(b, `,"ext":"`...)
		b = append(b, u.ExternalID...)
		b = append(b, '"')
	}
	if u.Active {
		b = append(b, `,"act":true`...)
	}
	var ok bool
	b = append(b, `,"as":`...)
	if b, ok = appendUTCTime(b, u.ActiveSince); !ok {
		return nil, false
	}
	if u.Email != "" {
		b = append(b, `,"em":"`...)
		b = append(b, u.Email...)
		b = append(b, '"')
	}
	if len(u.Doc) > 0 {
		b = append(b, `,"doc":`...)
		b = append(b, u.Doc...)
	}
	b = append(b, `,"c":`...)
	if b, ok = appendUTCTime(b, u.Meta.Created); !ok {
		return nil, false
	}
	b = append(b, `,"m":`...)
	if b, ok = appendUTCTime(b, u.Meta.LastModified); !ok {
		return nil, false
	}
	b = append(b, `,"v":`...)
	b = strconv.AppendUint(b, u.Meta.Version, 10)
	return append(b, '}'), true
}
