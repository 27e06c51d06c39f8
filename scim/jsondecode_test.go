package scim

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

var decodeBodyCorpus = []string{
	`{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"a@example.com","active":true,"name":{"givenName":"A","familyName":"Zoë 日本"},"emails":[{"value":"a@example.com","primary":true}],"roles":[],"x":null}`,
	" \r\n\t{ \"a\" : [ 1 , -0.5e+3 , 0 , 12345678901234567890123 , 1E2 ] , \"b\" : { } } trailing garbage",
	`{"dup":1,"dup":"two"}`,
	`{}`,
	`{"n":-0}`,
	`{"esc":"a\"b"}`,
	`{"k\u00e9y":1}`,
	"{\"bad\":\"\xff\"}",
	"{\"ctl\":\"a\tb\"}",
	`{"n":01}`,
	`{"n":1.}`,
	`{"n":.5}`,
	`{"n":-}`,
	`{"n":1e}`,
	`{"n":+1}`,
	`{"a":[1,]}`,
	`{"a":1,}`,
	`{"a" 1}`,
	`{"a":tru}`,
	`{"a":nul}`,
	`{"a":[}`,
	`{"a":`,
	`{`,
	`[]`,
	`null`,
	`"s"`,
	``,
	`{"deep":` + strings.Repeat(`[`, 70) + strings.Repeat(`]`, 70) + `}`,
	`{"deep":` + strings.Repeat(`{"d":`, 30) + `1` + strings.Repeat(`}`, 30) + `}`,
	"{\"ls\":\"\u2028\"}",
}

// checkDecodeBody fails when decodeBody and a json.Decoder with UseNumber
// disagree on body: a different value, or an error from only one.
func checkDecodeBody(t *testing.T, body []byte) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var want map[string]any
	werr := dec.Decode(&want)
	got, gerr := decodeBody(bytes.Clone(body))
	if (gerr != nil) != (werr != nil) {
		t.Fatalf("%q: decodeBody error %v, json.Decoder error %v", body, gerr, werr)
	}
	if werr == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n decodeBody:   %#v\n json.Decoder: %#v", body, got, want)
	}
}

// TestDecodeBodyIsDecoder: decodeBody returns what the library's decoding
// (json.Decoder, UseNumber) returns, value and error, for plain bodies it
// decodes itself and for every other body it hands on.
func TestDecodeBodyIsDecoder(t *testing.T) {
	for _, b := range decodeBodyCorpus {
		checkDecodeBody(t, []byte(b))
	}
	d := plainDecoder{b: []byte(decodeBodyCorpus[0])}
	if _, ok := d.object(0); !ok {
		t.Error("an ordinary POST body is not decoded by the plain decoder")
	}
}

func FuzzDecodeBody(f *testing.F) {
	for _, b := range decodeBodyCorpus {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecodeBody(t, body)
	})
}
