package store

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// A one-member PATCH decodes its group's record and encodes it again with
// the next version inside the write transaction, where every other writer
// waits for it; through json.Unmarshal and json.Marshal that was about a
// third of the transaction's own work. scanGroup and appendGroupRecord do
// the same without reflection for the records encodeGroup writes for
// ordinary values, and hand anything else to encoding/json, so the bytes
// and the values are always encoding/json's (FuzzScanGroup,
// FuzzAppendGroupRecord).

// groupRecordKeys are groupRecord's JSON keys in declaration order, the
// order json.Marshal writes them in.
var groupRecordKeys = [...]string{"id", "dn", "ext", "doc", "c", "m", "v"}

// scanGroup reads a group record the way json.Unmarshal does, under the
// same rules as scanUser: groupRecord's keys in their order, each at most
// once; strings without escapes, in valid UTF-8; the document an object.
// ok is false for anything else. Strings and the document are copied.
func scanGroup(v []byte) (g Group, ok bool) {
	ok = scanRecord(v, groupRecordKeys[:], func(key string, i int) (int, bool) {
		switch key {
		case "id", "dn", "ext":
			s, j, ok := scanPlainString(v, i)
			if !ok {
				return 0, false
			}
			switch key {
			case "id":
				g.ID = string(s)
			case "dn":
				g.DisplayName = string(s)
			case "ext":
				g.ExternalID = string(s)
			}
			return j, true
		case "c":
			return scanTime(v, i, &g.Meta.Created)
		case "m":
			return scanTime(v, i, &g.Meta.LastModified)
		case "doc":
			return scanDocument(v, i, &g.Doc)
		case "v":
			return scanVersion(v, i, &g.Meta.Version)
		}
		return 0, false
	})
	if !ok {
		return Group{}, false
	}
	return g, true
}

// appendGroupRecord appends what json.Marshal writes for g's groupRecord,
// when every string is printable ASCII that json.Marshal writes as it is
// (no quote, backslash or <>&), the times are UTC, and the document is
// already compact JSON with nothing json.Marshal would escape. ok is false
// otherwise, and encodeGroup asks json.Marshal.
func appendGroupRecord(b []byte, g Group) ([]byte, bool) {
	if !plainJSONString(g.ID) || !plainJSONString(g.DisplayName) || !plainJSONString(g.ExternalID) {
		return nil, false
	}
	if len(g.Doc) > 0 && !compactUnescaped(g.Doc) {
		return nil, false
	}
	b = append(b, `{"id":"`...)
	b = append(b, g.ID...)
	b = append(b, `","dn":"`...)
	b = append(b, g.DisplayName...)
	b = append(b, '"')
	if g.ExternalID != "" {
		b = append(b, `,"ext":"`...)
		b = append(b, g.ExternalID...)
		b = append(b, '"')
	}
	if len(g.Doc) > 0 {
		b = append(b, `,"doc":`...)
		b = append(b, g.Doc...)
	}
	var ok bool
	b = append(b, `,"c":`...)
	if b, ok = appendUTCTime(b, g.Meta.Created); !ok {
		return nil, false
	}
	b = append(b, `,"m":`...)
	if b, ok = appendUTCTime(b, g.Meta.LastModified); !ok {
		return nil, false
	}
	b = append(b, `,"v":`...)
	b = strconv.AppendUint(b, g.Meta.Version, 10)
	return append(b, '}'), true
}

func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// appendUTCTime is time.Time's MarshalJSON for a UTC time.
func appendUTCTime(b []byte, t time.Time) ([]byte, bool) {
	if t.Location() != time.UTC {
		return nil, false
	}
	b = append(b, '"')
	b, err := t.AppendText(b)
	if err != nil {
		return nil, false
	}
	return append(b, '"'), true
}

// compactUnescaped reports whether doc is valid JSON that json.Marshal
// writes as it is: no whitespace outside strings, and none of the bytes it
// escapes (<, >, & and the lead byte of U+2028 and U+2029).
func compactUnescaped(doc []byte) bool {
	in := false
	for i := 0; i < len(doc); i++ {
		c := doc[i]
		switch {
		case c == '<' || c == '>' || c == '&' || c == 0xe2:
			return false
		case in && c == '\\':
			i++
			if i < len(doc) && doc[i] >= utf8.RuneSelf {
				return false
			}
		case c == '"':
			in = !in
		case !in && (c == ' ' || c == '\t' || c == '\n' || c == '\r'):
			return false
		}
	}
	return json.Valid(doc)
}
