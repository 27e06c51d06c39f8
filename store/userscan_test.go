package store

import (
	"bytes"
	"math"
	"reflect"
	"testing"
	"time"
)

// userScanRecords are user records as encodeUser writes them and as a
// damaged or hand-edited file may hold them.
func userScanRecords(t testing.TB) (plain, other [][]byte) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	zone := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("", 2*3600))
	for _, u := range []User{
		{ID: "u1", UserName: "a@example.com", Email: "a@example.com", Active: true, ActiveSince: since,
			Doc:  []byte(`{"displayName":"A","emails":[{"primary":true,"value":"a@example.com"}],"name":{"familyName":"x}\"]{","givenName":"A"},"n":[1,2.5]}`),
			Meta: Meta{Created: since, LastModified: zone, Version: 7}},
		{},
		{ID: "u2", UserName: "b", ExternalID: "ext-b", Meta: Meta{Version: math.MaxUint64}},
		{ID: "u3", UserName: "Zoë 日本", Email: "zoë@example.com", Doc: []byte(`{}`)},
	} {
		v, err := encodeUser(u)
		if err != nil {
			t.Fatal(err)
		}
		plain = append(plain, v)
	}
	for _, u := range []User{
		{ID: "u4", UserName: `q"uote`},
		{ID: "u5", UserName: "<&>"},
		{ID: "u6", UserName: "bad\xffutf8"},
		{ID: "u7", UserName: "line\nbreak"},
	} {
		v, err := encodeUser(u)
		if err != nil {
			t.Fatal(err)
		}
		other = append(other, v)
	}
	for _, s := range []string{
		`{"un":"b","id":"a","as":"0001-01-01T00:00:00Z","c":"0001-01-01T00:00:00Z","m":"0001-01-01T00:00:00Z","v":1}`,
		`{"id":"a","id":"b","as":"0001-01-01T00:00:00Z","c":"0001-01-01T00:00:00Z","m":"0001-01-01T00:00:00Z","v":1}`,
		`{"ID":"a","as":"0001-01-01T00:00:00Z","c":"0001-01-01T00:00:00Z","m":"0001-01-01T00:00:00Z","v":1}`,
		`{"id":"a","extra":1,"v":1}`,
		`{"id":"a","doc":null,"v":1}`,
		`{"id":"a","doc":{"x":tru},"v":1}`,
		`{"id":"a","doc":{"x":"}"},"v":1}`,
		`{"id":"a","doc":{"x":1}}} `,
		`{"id":"a","v":01}`,
		`{"id":"a","v":-1}`,
		`{"id":"a","v":18446744073709551616}`,
		`{"id":"a","v":1.5}`,
		`{"id":"a","act":null}`,
		`{"id":"a","act":true }`,
		`{ "id":"a"}`,
		`{"id":"a","as":"yesterday"}`,
		`{"id":"a","c":"2026-01-02T03:04:05+02:00"}`,
		`{"id":"a"`,
		`{"id":"a"}x`,
		`{}`,
		`[]`,
		`null`,
	} {
		other = append(other, []byte(s))
	}
	return plain, other
}

// TestScanUserIsUnmarshal: the reflection-free user decoder returns what
// json.Unmarshal returns for every record it accepts, accepts the records
// encodeUser writes for ordinary values, and refuses every record
// json.Unmarshal refuses (decodeUser then returns json.Unmarshal's error).
func TestScanUserIsUnmarshal(t *testing.T) {
	t.Parallel()
	plain, other := userScanRecords(t)
	check := func(v []byte) bool {
		t.Helper()
		want, werr := decodeUserJSON(v)
		got, ok := scanUser(bytes.Clone(v))
		if ok && werr != nil {
			t.Errorf("%s: scanUser accepts what json.Unmarshal refuses (%v)", v, werr)
		}
		if ok && !reflect.DeepEqual(got, want) {
			t.Errorf("%s: scanUser = %+v, json.Unmarshal = %+v", v, got, want)
		}
		dg, derr := decodeUser(v)
		if (derr != nil) != (werr != nil) || !reflect.DeepEqual(dg, want) {
			t.Errorf("%s: decodeUser = %+v, %v; json.Unmarshal = %+v, %v", v, dg, derr, want, werr)
		}
		return ok
	}
	for _, v := range plain {
		if !check(v) {
			t.Errorf("%s: an ordinary record takes the slow path", v)
		}
	}
	for _, v := range other {
		check(v)
	}
}

// TestScanUserCopies: the decoded user shares no memory with the record,
// which bbolt owns only for the transaction.
func TestScanUserCopies(t *testing.T) {
	t.Parallel()
	v, err := encodeUser(User{ID: "u1", UserName: "a", Email: "a@example.com", ExternalID: "e", Doc: []byte(`{"displayName":"A"}`)})
	if err != nil {
		t.Fatal(err)
	}
	u, ok := scanUser(v)
	if !ok {
		t.Fatalf("%s: not scanned", v)
	}
	for i := range v {
		v[i] = 'X'
	}
	if u.ID != "u1" || u.UserName != "a" || u.Email != "a@example.com" || u.ExternalID != "e" || string(u.Doc) != `{"displayName":"A"}` {
		t.Errorf("the user changed with the record: %+v", u)
	}
}

func FuzzScanUser(f *testing.F) {
	plain, other := userScanRecords(f)
	for _, v := range append(plain, other...) {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		got, ok := scanUser(bytes.Clone(v))
		if !ok {
			return
		}
		want, err := decodeUserJSON(v)
		if err != nil {
			t.Fatalf("%q: scanUser accepts what json.Unmarshal refuses (%v)", v, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: scanUser = %+v, json.Unmarshal = %+v", v, got, want)
		}
	})
}

// benchUser is a SCIM-sized user, as the record benchmarks read and write it.
func benchUser() User {
	since := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	return User{ID: "0193e9a1-7c1e-7b8e-9f00-000000000001", UserName: "user1@example.com", Email: "user1@example.com",
		ExternalID: "ext-1", Active: true, ActiveSince: since,
		Doc:  []byte(`{"displayName":"Given Family","name":{"familyName":"Family","givenName":"Given"}}`),
		Meta: Meta{Created: since, LastModified: since, Version: 3}}
}

// BenchmarkDecodeUser: a SCIM-sized user record, as decodeUser reads it
// (scan) and as json.Unmarshal did.
func BenchmarkDecodeUser(b *testing.B) {
	v, err := encodeUser(benchUser())
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		dec  func([]byte) (User, error)
	}{{"scan", decodeUser}, {"unmarshal", decodeUserJSON}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.dec(v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// FuzzAppendUserRecord: whenever appendUserRecord takes a user, it writes
// the bytes json.Marshal writes, so a record is the same whichever path
// encoded it (and scanUser, or any reader of older files, reads it).
func FuzzAppendUserRecord(f *testing.F) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	f.Add("0193e9a1-7c1e-7b8e-9f00-000000000001", "user1@example.com", "ext-1", "user1@example.com", true, []byte(`{"displayName":"Given Family","name":{"familyName":"Family","givenName":"Given"}}`), since.UnixNano(), since.UnixNano(), int64(0), uint64(3))
	f.Add("id", "u", "", "", false, []byte(nil), int64(0), int64(-1), int64(253402300800), uint64(1))
	f.Add("id", "Ünïcode", "a\"b", "x<y>&z", true, []byte(`{"a":"\u2028 <"}`), int64(1), int64(2), int64(3), uint64(0))
	f.Add("id", "u", "e", "m", true, []byte(`{ "spaced" : 1 }`), int64(1), int64(2), int64(3), uint64(1<<63))
	f.Fuzz(func(t *testing.T, id, userName, ext, email string, active bool, doc []byte, activeSince, created, modified int64, version uint64) {
		u := User{ID: id, UserName: userName, ExternalID: ext, Email: email, Active: active, Doc: doc,
			ActiveSince: time.Unix(0, activeSince).UTC(),
			Meta:        Meta{Created: time.Unix(0, created).UTC(), LastModified: time.Unix(modified, 0).UTC(), Version: version}}
		got, ok := appendUserRecord(nil, u)
		if !ok {
			return
		}
		want, err := encodeUserJSON(u)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%+v:\n appendUserRecord: %s\n json.Marshal:     %s %v", u, got, want, err)
		}
	})
}

// BenchmarkEncodeUser: a SCIM-sized user record as a create writes it
// inside its write transaction, and as json.Marshal wrote it.
func BenchmarkEncodeUser(b *testing.B) {
	u := benchUser()
	for _, c := range []struct {
		name string
		enc  func(User) ([]byte, error)
	}{{"append", encodeUser}, {"marshal", encodeUserJSON}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.enc(u); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
