package store

import (
	"bytes"
	"math"
	"reflect"
	"testing"
	"time"
)

// groupCodecCases are groups whose records the fast codec writes, and ones
// it must leave to encoding/json.
func groupCodecCases() []Group {
	since := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	zone := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("", 2*3600))
	return []Group{
		{ID: "019de3055a0010724b8f240d60df45b6", DisplayName: "Engineering", Meta: Meta{Created: since, LastModified: since.Add(time.Hour), Version: 12}},
		{},
		{ID: "g", DisplayName: "d", ExternalID: "ext-1", Doc: []byte(`{"a":[1,2.5,"x y"],"b":{"c":null},"d":"}\"{"}`), Meta: Meta{Version: math.MaxUint64}},
		{ID: "g", DisplayName: "Zoë 日本", Meta: Meta{Created: since}},
		{ID: "g", DisplayName: "<&>", Meta: Meta{Created: since}},
		{ID: "g", DisplayName: `q"uote\`, Meta: Meta{Created: since}},
		{ID: "g", DisplayName: "tab\there"},
		{ID: "g", DisplayName: "d", Doc: []byte(`{"a": 1}`)},
		{ID: "g", DisplayName: "d", Doc: []byte(`{"a":"<b>"}`)},
		{ID: "g", DisplayName: "d", Doc: []byte("{\"a\":\"\u2028\"}")},
		{ID: "g", DisplayName: "d", Doc: []byte("{\"a\":\"bad\xff\"}")},
		{ID: "g", DisplayName: "d", Doc: []byte(`{"a":tru}`)},
		{ID: "g", DisplayName: "d", Meta: Meta{Created: zone, LastModified: since}},
		{ID: "g", DisplayName: "d", Meta: Meta{Created: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{ID: "g", DisplayName: "d", Meta: Meta{Created: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}},
	}
}

// TestGroupRecordIsJSON: encodeGroup writes json.Marshal's bytes (and fails
// where it fails), and decodeGroup reads them back as json.Unmarshal does;
// the ordinary records take the fast codec.
func TestGroupRecordIsJSON(t *testing.T) {
	for i, g := range groupCodecCases() {
		got, gerr := encodeGroup(g)
		want, werr := encodeGroupJSON(g)
		if (gerr != nil) != (werr != nil) || !bytes.Equal(got, want) {
			t.Fatalf("%d %+v:\n encodeGroup: %s %v\n json:        %s %v", i, g, got, gerr, want, werr)
		}
		if werr != nil {
			continue
		}
		dg, derr := decodeGroup(want)
		jg, jerr := decodeGroupJSON(want)
		if (derr != nil) != (jerr != nil) || !reflect.DeepEqual(dg, jg) {
			t.Fatalf("%d %s:\n decodeGroup: %+v %v\n json:        %+v %v", i, want, dg, derr, jg, jerr)
		}
		if i < 3 {
			if _, ok := appendGroupRecord(nil, g); !ok {
				t.Errorf("%d %+v: not written by appendGroupRecord", i, g)
			}
			if _, ok := scanGroup(want); !ok {
				t.Errorf("%d %s: not read by scanGroup", i, want)
			}
		}
	}
}

// FuzzScanGroup: whatever bytes a group record holds, scanGroup either
// leaves them to json.Unmarshal or reads exactly what it reads.
func FuzzScanGroup(f *testing.F) {
	for _, g := range groupCodecCases() {
		if v, err := encodeGroupJSON(g); err == nil {
			f.Add(v)
		}
	}
	for _, s := range []string{
		`{"dn":"b","id":"a","c":"0001-01-01T00:00:00Z","m":"0001-01-01T00:00:00Z","v":1}`,
		`{"id":"a","id":"b","v":1}`,
		`{"id":"a","doc":null,"v":1}`,
		`{"id":"a","doc":{"x":"}"},"v":1}`,
		`{"id":"a","v":01}`,
		`{"id":"a","c":"2026-01-02T03:04:05+02:00"}`,
		`{"id":"a","v":18446744073709551616}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		got, ok := scanGroup(bytes.Clone(v))
		if !ok {
			return
		}
		want, err := decodeGroupJSON(v)
		if err != nil {
			t.Fatalf("%q: scanGroup accepts what json.Unmarshal refuses (%v)", v, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: scanGroup = %+v, json.Unmarshal = %+v", v, got, want)
		}
	})
}

// FuzzAppendGroupRecord: for any group, appendGroupRecord either leaves it
// to json.Marshal or writes exactly its bytes.
func FuzzAppendGroupRecord(f *testing.F) {
	for _, g := range groupCodecCases() {
		f.Add(g.ID, g.DisplayName, g.ExternalID, []byte(g.Doc), g.Meta.Created.UnixNano(), int64(0), g.Meta.Version)
	}
	f.Fuzz(func(t *testing.T, id, dn, ext string, doc []byte, created, modified int64, version uint64) {
		g := Group{ID: id, DisplayName: dn, ExternalID: ext, Doc: doc,
			Meta: Meta{Created: time.Unix(0, created).UTC(), LastModified: time.Unix(modified, 0).UTC(), Version: version}}
		got, ok := appendGroupRecord(nil, g)
		if !ok {
			return
		}
		want, err := encodeGroupJSON(g)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%+v:\n appendGroupRecord: %s\n json.Marshal:      %s %v", g, got, want, err)
		}
	})
}

// BenchmarkGroupRecord: decoding a group record and encoding its next
// version, as a one-member PATCH does inside its write transaction.
func BenchmarkGroupRecord(b *testing.B) {
	g := groupCodecCases()[0]
	v, err := encodeGroup(g)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		dec  func([]byte) (Group, error)
		enc  func(Group) ([]byte, error)
	}{{"scan", decodeGroup, encodeGroup}, {"json", decodeGroupJSON, encodeGroupJSON}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				g, err := c.dec(v)
				if err != nil {
					b.Fatal(err)
				}
				g.Meta.Version++
				if _, err := c.enc(g); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
