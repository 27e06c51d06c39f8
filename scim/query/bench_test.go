package query

import "testing"

func BenchmarkCompile(b *testing.B) {
	r := UserResource()
	for b.Loop() {
		if _, err := Compile(`userName eq "bjensen" and (emails[type eq "work" and value co "@example.com"] or meta.lastModified gt "2024-01-01T00:00:00Z")`, r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	f, err := Compile(`userName eq "bjensen@example.com" and (emails[type eq "work" and value co "@example.com"] or meta.lastModified gt "2024-01-01T00:00:00Z")`, UserResource())
	if err != nil {
		b.Fatal(err)
	}
	doc := decode(b, userDoc, true)
	for b.Loop() {
		if !f.Match(doc) {
			b.Fatal("no match")
		}
	}
}

func BenchmarkProject(b *testing.B) {
	doc := decode(b, userDoc, true)
	for b.Loop() {
		Project(doc, []string{"userName", "name.givenName", EnterpriseUserURN + ":manager"}, nil)
	}
}
