package query

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/schema"
)

// EnterpriseUserURN is the RFC 7643 enterprise user extension schema.
const EnterpriseUserURN = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

// Legacy SCIM 1.x schema URIs that OneLogin (and other older clients) still
// send as attribute prefixes; they are read as their 2.0 equivalents.
const (
	legacyCoreURN       = "urn:scim:schemas:core:1.0"
	legacyEnterpriseURN = "urn:scim:schemas:extension:enterprise:1.0"
)

// commonAttributes are shared by every resource (schemas, id, externalId, meta).
// The schema package builds them afresh on each call; they are only read.
var commonAttributes = schema.Attributes(schema.CommonAttributes())

// Resource describes the resource type a filter or path is resolved against.
type Resource struct {
	Schema     schema.Schema
	Extensions []schema.Schema
}

// UserResource is the core User schema with the enterprise extension.
func UserResource() Resource {
	return Resource{Schema: schema.CoreUserSchema(), Extensions: []schema.Schema{schema.ExtensionEnterpriseUser()}}
}

// GroupResource is the core Group schema.
func GroupResource() Resource {
	return Resource{Schema: schema.CoreGroupSchema()}
}

// Attr is an attribute, or one sub-attribute of it, resolved against a Resource.
type Attr struct {
	// Extension is the URN of the extension schema defining the attribute;
	// "" for the core schema and the common attributes. Extension attributes
	// live in the document under their schema URN.
	Extension string
	// Def is the top-level attribute.
	Def schema.CoreAttribute
	// Sub is the sub-attribute named after a dot, nil when there is none.
	Sub *schema.CoreAttribute
}

// Name is the canonical attribute name: "userName", "name.givenName",
// "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value".
func (a Attr) Name() string {
	n := a.Def.Name()
	if a.Sub != nil {
		n += "." + a.Sub.Name()
	}
	if a.Extension != "" {
		n = a.Extension + ":" + n
	}
	return n
}

// Leaf is the sub-attribute when there is one, else the attribute itself.
func (a Attr) Leaf() schema.CoreAttribute {
	if a.Sub != nil {
		return *a.Sub
	}
	return a.Def
}

// schemaFor maps a schema URI (current or legacy, any case) to the schema it
// names for this resource.
func (r Resource) schemaFor(uri string) (id string, ext bool, ok bool) {
	if strings.EqualFold(uri, r.Schema.ID) || strings.EqualFold(uri, legacyCoreURN) {
		return r.Schema.ID, false, true
	}
	if strings.EqualFold(uri, legacyEnterpriseURN) {
		uri = EnterpriseUserURN
	}
	for _, e := range r.Extensions {
		if strings.EqualFold(uri, e.ID) {
			return e.ID, true, true
		}
	}
	return "", false, false
}

// SchemaURN reports whether s names one of the resource's extension schemas
// (current or legacy URI) and returns its canonical URN.
func (r Resource) SchemaURN(s string) (string, bool) {
	id, ext, ok := r.schemaFor(s)
	return id, ok && ext
}

func (r Resource) extension(id string) schema.Schema {
	for _, e := range r.Extensions {
		if e.ID == id {
			return e
		}
	}
	return schema.Schema{}
}

// resolve turns a dotted, optionally URN-qualified attribute name into an
// Attr. wholeSchema is set instead when the name is an extension schema URN.
func (r Resource) resolve(name string) (a Attr, wholeSchema string, err error) {
	if id, ext, ok := r.schemaFor(name); ok {
		if !ext {
			return Attr{}, "", fmt.Errorf("%q names the core schema, not an attribute", name)
		}
		return Attr{}, id, nil
	}
	rest := name
	prefix := ""
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		prefix, rest = name[:i], name[i+1:]
	}
	top, sub, dotted := strings.Cut(rest, ".")
	if top == "" || (dotted && (sub == "" || strings.Contains(sub, "."))) {
		return Attr{}, "", fmt.Errorf("%q is not an attribute name", name)
	}
	if prefix != "" {
		id, ext, ok := r.schemaFor(prefix)
		if !ok {
			return Attr{}, "", fmt.Errorf("unknown schema %q", prefix)
		}
		var def schema.CoreAttribute
		if ext {
			def, ok = r.extension(id).Attributes.ContainsAttribute(top)
			a.Extension = id
		} else {
			def, ok = r.coreAttr(top)
		}
		if !ok {
			return Attr{}, "", fmt.Errorf("unknown attribute %q in schema %s", top, id)
		}
		a.Def = def
	} else if def, ok := r.coreAttr(top); ok {
		a.Def = def
	} else {
		// Some clients leave extension attributes unqualified; accept that
		// when exactly one extension defines the name.
		found := 0
		for _, e := range r.Extensions {
			if d, ok := e.Attributes.ContainsAttribute(top); ok {
				a.Def, a.Extension = d, e.ID
				found++
			}
		}
		if found != 1 {
			return Attr{}, "", fmt.Errorf("unknown attribute %q", top)
		}
	}
	if dotted {
		s, ok := a.Def.SubAttributes().ContainsAttribute(sub)
		if !ok {
			return Attr{}, "", fmt.Errorf("unknown sub-attribute %q of %q", sub, a.Def.Name())
		}
		a.Sub = &s
	}
	return a, "", nil
}

func (r Resource) coreAttr(name string) (schema.CoreAttribute, bool) {
	if d, ok := r.Schema.Attributes.ContainsAttribute(name); ok {
		return d, true
	}
	return commonAttributes.ContainsAttribute(name)
}

// Path is the target of a PATCH operation (RFC 7644 §3.5.2):
// attr, attr.sub, attr[filter], attr[filter].sub, each optionally URN-qualified,
// or a whole extension schema URN.
type Path struct {
	// Attr is the attribute; Attr.Sub is the sub-attribute, whether written
	// "attr.sub" or "attr[filter].sub".
	Attr Attr
	// Filter selects elements of Attr.Def; nil when the path has none.
	// Its Match takes one element.
	Filter *Filter
	// Schema is set, and Attr zero, when the path is an extension schema URN.
	Schema string
}

// ParsePath parses a PATCH path. Syntax errors and unknown attributes are
// 400 invalidPath; a malformed value filter is 400 invalidFilter.
func ParsePath(raw string, r Resource) (Path, error) {
	if msg := overLimit(raw); msg != "" {
		return Path{}, pathErr(raw, msg)
	}
	toks, err := lex(raw)
	if err != nil {
		return Path{}, pathErr(raw, err.Error())
	}
	if len(toks) == 1 || toks[0].kind != tWord {
		return Path{}, pathErr(raw, "a path must start with an attribute name")
	}
	a, whole, err := r.resolve(toks[0].text)
	if err != nil {
		return Path{}, pathErr(raw, err.Error())
	}
	if whole != "" {
		if toks[1].kind != tEOF {
			return Path{}, pathErr(raw, "nothing may follow a schema URN")
		}
		return Path{Schema: whole}, nil
	}
	p := Path{Attr: a}
	switch toks[1].kind {
	case tEOF:
		return p, nil
	case tLBrack:
	default:
		return Path{}, pathErr(raw, fmt.Sprintf("unexpected %q at position %d", toks[1].text, toks[1].pos))
	}
	if a.Sub != nil || a.Def.AttributeType() != "complex" {
		return Path{}, pathErr(raw, fmt.Sprintf("a value filter needs a complex attribute, and %q is not one", toks[0].text))
	}
	ps := &parser{toks: toks, i: 2, src: raw, r: r, scope: &a}
	e, err := ps.parseOr()
	if err != nil {
		return Path{}, err
	}
	if t := ps.next(); t.kind != tRBrack {
		return Path{}, filterErr(raw, fmt.Sprintf("expected \"]\" at position %d", t.pos))
	}
	p.Filter = &Filter{root: e, src: raw}
	t := ps.next()
	if t.kind == tWord && strings.HasPrefix(t.text, ".") {
		s, ok := a.Def.SubAttributes().ContainsAttribute(t.text[1:])
		if !ok {
			return Path{}, pathErr(raw, fmt.Sprintf("unknown sub-attribute %q of %q", t.text[1:], a.Def.Name()))
		}
		p.Attr.Sub = &s
		t = ps.next()
	}
	if t.kind != tEOF {
		return Path{}, pathErr(raw, fmt.Sprintf("unexpected %q at position %d", t.text, t.pos))
	}
	return p, nil
}

func pathErr(raw, msg string) error {
	return errors.ScimError{
		ScimType: errors.ScimTypeInvalidPath,
		Status:   400,
		Detail:   fmt.Sprintf("path %q: %s.", shorten(raw), msg),
	}
}

func filterErr(raw, msg string) error {
	return errors.ScimError{
		ScimType: errors.ScimTypeInvalidFilter,
		Status:   400,
		Detail:   fmt.Sprintf("filter %q: %s.", shorten(raw), msg),
	}
}

// shorten keeps an error message short whatever the client sent.
func shorten(raw string) string {
	const max = 200
	if len(raw) <= max {
		return raw
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(raw[cut]) {
		cut--
	}
	return raw[:cut] + "…"
}
