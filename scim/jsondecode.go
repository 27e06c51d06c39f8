package scim

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// decodeBody decodes the first JSON value of body into a map as a
// json.Decoder with UseNumber does (the library decodes a resource body
// so): objects as map[string]any, arrays as []any, numbers as json.Number.
// Every POST and PUT body is decoded, and encoding/json's reflection was
// the largest part of a create's own CPU. Bodies written plainly — an
// object, strings without escapes in valid UTF-8, at most maxPlainDepth
// deep — are decoded here; any other body (and any error) through
// encoding/json, so the result is always encoding/json's.
func decodeBody(body []byte) (map[string]any, error) {
	d := plainDecoder{b: body}
	d.space()
	if d.i < len(d.b) && d.b[d.i] == '{' {
		if m, ok := d.object(0); ok {
			return m, nil
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var doc map[string]any
	err := dec.Decode(&doc)
	return doc, err
}

// maxPlainDepth bounds the nesting plainDecoder follows.
const maxPlainDepth = 64

// plainDecoder reads plainly written JSON; every method returns ok=false
// on anything it does not take, and the caller starts over with
// encoding/json.
type plainDecoder struct {
	b []byte
	i int
}

func (d *plainDecoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *plainDecoder) value(depth int) (any, bool) {
	if d.i >= len(d.b) {
		return nil, false
	}
	switch c := d.b[d.i]; {
	case c == '{':
		m, ok := d.object(depth + 1)
		return m, ok
	case c == '[':
		return d.array(depth + 1)
	case c == '"':
		return d.str()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	}
	return nil, false
}

func (d *plainDecoder) object(depth int) (map[string]any, bool) {
	if depth > maxPlainDepth {
		return nil, false
	}
	d.i++ // '{'
	m := make(map[string]any)
	d.space()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return m, true
	}
	for {
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return nil, false
		}
		k, ok := d.str()
		if !ok {
			return nil, false
		}
		d.space()
		if d.i >= len(d.b) || d.b[d.i] != ':' {
			return nil, false
		}
		d.i++
		d.space()
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		m[k] = v // a repeated name: the last value, as encoding/json
		if end, ok := d.separator('}'); !ok {
			return nil, false
		} else if end {
			return m, true
		}
	}
}

// separator reads what follows a member or an element: ',' (more to come)
// or close (the end); anything else is not plain JSON.
func (d *plainDecoder) separator(close byte) (end, ok bool) {
	d.space()
	if d.i >= len(d.b) {
		return false, false
	}
	switch d.b[d.i] {
	case ',':
		d.i++
		return false, true
	case close:
		d.i++
		return true, true
	}
	return false, false
}

func (d *plainDecoder) array(depth int) (any, bool) {
	if depth > maxPlainDepth {
		return nil, false
	}
	d.i++ // '['
	a := make([]any, 0)
	d.space()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return a, true
	}
	for {
		d.space()
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		a = append(a, v)
		if end, ok := d.separator(']'); !ok {
			return nil, false
		} else if end {
			return a, true
		}
	}
}

// str reads a string that needs no unescaping.
func (d *plainDecoder) str() (string, bool) {
	b := d.b
	ascii := true
	for j := d.i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s := b[d.i+1 : j]
			if !ascii && !utf8.Valid(s) {
				return "", false
			}
			d.i = j + 1
			return string(s), true
		case c == '\\' || c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

func (d *plainDecoder) literal(lit string) bool {
	if !bytes.HasPrefix(d.b[d.i:], []byte(lit)) {
		return false
	}
	d.i += len(lit)
	return true
}

// number reads a JSON number (RFC 8259 §6) as json.Number.
func (d *plainDecoder) number() (any, bool) {
	b, start := d.b, d.i
	j := d.i
	digits := func() int {
		n := 0
		for j < len(b) && b[j] >= '0' && b[j] <= '9' {
			j++
			n++
		}
		return n
	}
	if j < len(b) && b[j] == '-' {
		j++
	}
	if j < len(b) && b[j] == '0' {
		j++
	} else if digits() == 0 {
		return nil, false
	}
	if j < len(b) && b[j] == '.' {
		j++
		if digits() == 0 {
			return nil, false
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if digits() == 0 {
			return nil, false
		}
	}
	d.i = j
	return json.Number(b[start:j]), true
}
