package scim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	elimity "github.com/elimity-com/scim"
	scimerr "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/schema"

	"github.com/scimflare/scimflare/store"
)

// User answers — lists (`userName eq` is the lookup every IdP makes before
// each write), GET by id and POST — are written here rather than by the
// library, which copies every resource into a new map and marshals it with
// reflection, after scimflare has decoded the stored attributes into a map
// of its own. The bytes are the library's, to the byte (userjson_test.go
// compares them, and the headers): a stored document that is already what json.Marshal writes for it —
// compact, keys sorted, no numbers, strings that need no escaping — is
// copied into the answer as it is; any other document, and any answer
// that projects attributes, takes the library's own way through a map.

// userFields are the top-level names a user answer takes from the
// record's fields rather than its stored document, sorted as json.Marshal
// sorts map keys. storedDoc removes them (in any letter case) from the
// document.
var userFields = []string{"active", "externalId", "id", "meta", "schemas", "userName"}

// docMember is one top-level member of a stored document, both halves as
// they are in the document.
type docMember struct{ key, val []byte }

// canonicalDoc returns the top-level members of doc, a stored user
// document, when doc is exactly what json.Marshal writes for the
// value json.Unmarshal reads from it, and no member's name is a field name
// (userFields, in any letter case). ok is false otherwise. An empty doc is
// an empty object.
func canonicalDoc(doc []byte, dst []docMember) (members []docMember, ok bool) {
	if len(doc) == 0 {
		return dst, true
	}
	c := canonScanner{b: doc}
	members, ok = c.object(0, 0, dst)
	return members, ok && c.end == len(doc)
}

// canonScanner checks JSON for the canonical form; end is where the last
// value read ends.
type canonScanner struct {
	b   []byte
	end int
}

// maxCanonDepth bounds the nesting the scanner follows; a deeper document
// takes the library's way.
const maxCanonDepth = 32

// object reads the object at i. At depth 0 it collects the members into
// dst.
func (c *canonScanner) object(i, depth int, dst []docMember) ([]docMember, bool) {
	b := c.b
	if depth > maxCanonDepth || i >= len(b) || b[i] != '{' {
		return dst, false
	}
	i++
	if i < len(b) && b[i] == '}' {
		c.end = i + 1
		return dst, true
	}
	var prev []byte
	for {
		ks := i
		if !c.str(i) {
			return dst, false
		}
		key := b[ks+1 : c.end-1]
		// json.Marshal sorts map keys bytewise; a repeated key would
		// decode to one member.
		if prev != nil && bytes.Compare(prev, key) >= 0 {
			return dst, false
		}
		if depth == 0 {
			for _, f := range userFields {
				if bytes.EqualFold(key, []byte(f)) {
					return dst, false
				}
			}
		}
		prev = key
		i = c.end
		if i >= len(b) || b[i] != ':' {
			return dst, false
		}
		vs := i + 1
		var ok bool
		if dst, ok = c.value(vs, depth+1, dst); !ok {
			return dst, false
		}
		if depth == 0 {
			dst = append(dst, docMember{key: key, val: b[vs:c.end]})
		}
		i = c.end
		if i >= len(b) {
			return dst, false
		}
		switch b[i] {
		case ',':
			i++
		case '}':
			c.end = i + 1
			return dst, true
		default:
			return dst, false
		}
	}
}

func (c *canonScanner) value(i, depth int, dst []docMember) ([]docMember, bool) {
	b := c.b
	if i >= len(b) {
		return dst, false
	}
	switch b[i] {
	case '{':
		return c.object(i, depth, dst)
	case '[':
		return dst, c.array(i, depth)
	case '"':
		return dst, c.str(i)
	case 't':
		return dst, c.literal(i, "true")
	case 'f':
		return dst, c.literal(i, "false")
	case 'n':
		return dst, c.literal(i, "null")
	}
	// Numbers: json.Marshal rewrites the float64 a number decodes to
	// (1.0 becomes 1), so they take the library's way.
	return dst, false
}

func (c *canonScanner) array(i, depth int) bool {
	b := c.b
	if depth > maxCanonDepth {
		return false
	}
	i++
	if i < len(b) && b[i] == ']' {
		c.end = i + 1
		return true
	}
	for {
		if _, ok := c.value(i, depth+1, nil); !ok {
			return false
		}
		i = c.end
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i++
		case ']':
			c.end = i + 1
			return true
		default:
			return false
		}
	}
}

func (c *canonScanner) literal(i int, lit string) bool {
	if !bytes.HasPrefix(c.b[i:], []byte(lit)) {
		return false
	}
	c.end = i + len(lit)
	return true
}

// str reads the string at i, and accepts it only when json.Marshal would
// write its decoded value with the same bytes without escaping anything:
// no escape sequence, no control character, none of <>& (which
// json.Marshal escapes), valid UTF-8 without U+2028 and U+2029.
func (c *canonScanner) str(i int) bool {
	b := c.b
	if i >= len(b) || b[i] != '"' {
		return false
	}
	ascii := true
	for j := i + 1; j < len(b); j++ {
		switch ch := b[j]; {
		case ch == '"':
			if !ascii && !plainUTF8(b[i+1:j]) {
				return false
			}
			c.end = j + 1
			return true
		case ch < 0x20, ch == '\\', ch == '<', ch == '>', ch == '&':
			return false
		case ch >= utf8.RuneSelf:
			ascii = false
		}
	}
	return false
}

// plainUTF8 reports whether s is valid UTF-8 that json.Marshal writes as it
// is: it escapes U+2028 and U+2029.
func plainUTF8(s []byte) bool {
	return utf8.Valid(s) && !bytes.Contains(s, []byte("\u2028")) && !bytes.Contains(s, []byte("\u2029"))
}

// appendJSONString appends s as json.Marshal writes it.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch < 0x20 || ch >= utf8.RuneSelf || ch == '"' || ch == '\\' || ch == '<' || ch == '>' || ch == '&' {
			if ch == '"' || ch == '\\' {
				continue
			}
			raw, _ := json.Marshal(s)
			return append(b, raw...)
		}
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

// appendJSON appends v as json.Marshal writes it. The shapes a validated
// SCIM body decodes to (objects, arrays, strings, booleans, null) are
// written here, keys sorted as json.Marshal sorts them; any other value
// through json.Marshal, which writes a value inside a document exactly as
// it writes it alone.
func appendJSON(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case string:
		return appendJSONString(b, v), nil
	case map[string]any:
		if v == nil {
			return append(b, "null"...), nil
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, '{')
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			var err error
			if b, err = appendJSON(b, v[k]); err != nil {
				return b, err
			}
		}
		return append(b, '}'), nil
	case []any:
		if v == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendJSON(b, e); err != nil {
				return b, err
			}
		}
		return append(b, ']'), nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return b, err
	}
	return append(b, raw...), nil
}

// resourceMeta is the library's meta member of an answer (its unexported
// meta type), field for field.
type resourceMeta struct {
	ResourceType string `json:"resourceType"`
	Created      string `json:"created,omitempty"`
	LastModified string `json:"lastModified,omitempty"`
	Location     string `json:"location"`
	Version      string `json:"version,omitempty"`
}

// resourceResponse is the library's answer for res (Resource.response):
// the attributes, id, externalId, schemas and meta in one map.
func resourceResponse(res elimity.Resource, rt elimity.ResourceType, location string) map[string]any {
	out := make(map[string]any, len(res.Attributes))
	for k, v := range res.Attributes {
		out[k] = v
	}
	out["id"] = res.ID
	if res.ExternalID.Present() {
		out["externalId"] = res.ExternalID.Value()
	}
	schemas := []string{rt.Schema.ID}
	for _, s := range rt.SchemaExtensions {
		schemas = append(schemas, s.Schema.ID)
	}
	out["schemas"] = schemas
	m := resourceMeta{ResourceType: rt.Name, Location: location, Version: res.Meta.Version}
	if res.Meta.Created != nil {
		m.Created = res.Meta.Created.Format(time.RFC3339)
	}
	if res.Meta.LastModified != nil {
		m.LastModified = res.Meta.LastModified.Format(time.RFC3339)
	}
	out["meta"] = m
	return out
}

// libraryLocation is the library's meta.location of a resource
// (resourceLocation): the base URL, the endpoint, the id path-escaped.
func libraryLocation(endpoint, id, baseURL string) string {
	rel := endpoint[1:] + "/" + url.PathEscape(id)
	if baseURL == "" {
		return rel
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return rel
	}
	u.Path = u.Path + "/" + rel
	return u.String()
}

// locations writes meta.location for one endpoint: the library's, by a
// prefix when the id is one every escaping leaves as it is (store ids
// are).
type locations struct {
	endpoint, base string
	prefix         string // "" when the base URL needs the library's way
}

func newLocations(endpoint, base string) locations {
	l := locations{endpoint: endpoint, base: base}
	const probe = "x"
	if loc := libraryLocation(endpoint, probe, base); len(loc) > len(probe) && loc[len(loc)-len(probe):] == probe &&
		loc[:len(loc)-len(probe)]+"y0-_.~Z" == libraryLocation(endpoint, "y0-_.~Z", base) {
		l.prefix = loc[:len(loc)-len(probe)]
	}
	return l
}

func (l locations) of(id string) string {
	if l.prefix != "" && unreservedID(id) {
		return l.prefix + id
	}
	return libraryLocation(l.endpoint, id, l.base)
}

// unreservedID: only RFC 3986 unreserved characters, which no path
// escaping changes.
func unreservedID(id string) bool {
	if id == "" {
		return false
	}
	for i := 0; i < len(id); i++ {
		ch := id[i]
		if !('a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
			return false
		}
	}
	return true
}

// userListing is one user of a list answer: the record, and its client
// view when matching the filter decoded it (nil otherwise).
type userListing struct {
	u     store.User
	attrs map[string]any
	// members are the stored document's, when matching found it
	// canonical (canonical is then true).
	members   []docMember
	canonical bool
}

// appendUser appends the answer for one user, as the library writes it.
func (s *Server) appendUser(b []byte, l userListing, attrs, excluded []string, scratch []docMember) ([]byte, []docMember, error) {
	if len(attrs) == 0 && len(excluded) == 0 {
		if l.canonical {
			return s.appendUserSpliced(b, l.u, l.members), scratch, nil
		}
		if members, ok := canonicalDoc(l.u.Doc, scratch[:0]); ok {
			return s.appendUserSpliced(b, l.u, members), members, nil
		}
	}
	a := l.attrs
	if a == nil {
		a = userAttrs(l.u)
	}
	res := userResourceFrom(l.u, a, attrs, excluded)
	raw, err := json.Marshal(resourceResponse(res, s.userType, s.userLoc.of(res.ID)))
	if err != nil {
		return b, scratch, err
	}
	return append(b, raw...), scratch, nil
}

// appendUserSpliced writes the user with its stored document's members
// copied as they are, merged with the field members in key order.
func (s *Server) appendUserSpliced(b []byte, u store.User, members []docMember) []byte {
	b = append(b, '{')
	first := true
	next := 0
	sep := func() {
		if !first {
			b = append(b, ',')
		}
		first = false
	}
	// flush writes the document's members that sort before name.
	flush := func(name string) {
		for next < len(members) && (name == "" || string(members[next].key) < name) {
			sep()
			b = append(b, '"')
			b = append(b, members[next].key...)
			b = append(b, '"', ':')
			b = append(b, members[next].val...)
			next++
		}
	}
	field := func(name string) {
		flush(name)
		sep()
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"', ':')
	}
	field("active")
	b = strconv.AppendBool(b, u.Active)
	if u.ExternalID != "" {
		field("externalId")
		b = appendJSONString(b, u.ExternalID)
	}
	field("id")
	b = appendJSONString(b, u.ID)
	field("meta")
	b = append(b, `{"resourceType":`...)
	b = appendJSONString(b, s.userType.Name)
	b = append(b, `,"created":"`...)
	b = u.Meta.Created.AppendFormat(b, time.RFC3339)
	b = append(b, `","lastModified":"`...)
	b = u.Meta.LastModified.AppendFormat(b, time.RFC3339)
	b = append(b, `","location":`...)
	b = appendJSONString(b, s.userLoc.of(u.ID))
	b = append(b, `,"version":`...)
	b = appendJSONString(b, versionTag(u.Meta.Version))
	b = append(b, '}')
	field("schemas")
	b = append(b, s.userSchemasJSON...)
	field("userName")
	b = appendJSONString(b, u.UserName)
	flush("")
	return append(b, '}')
}

// listUsers answers a user list request (GET /Users) the way the library's
// list handler does, with itemsPerPage the number of users returned.
func (s *Server) listUsers(w http.ResponseWriter, r *http.Request, q url.Values) {
	w.Header().Set("Content-Type", "application/scim+json")
	count, startIndex, perr := listPagination(q)
	if perr != nil {
		writeLibraryError(w, *perr)
		return
	}
	attrs, excluded := listParamsOf(q)
	total, found, err := s.findUsers(r, count, startIndex)
	if err != nil {
		writeLibraryError(w, scimerr.CheckScimError(err, http.MethodGet))
		return
	}
	b := make([]byte, 0, 512+len(found)*512)
	b = append(b, `{"Resources":[`...)
	scratch := make([]docMember, 0, 8)
	for i, l := range found {
		if i > 0 {
			b = append(b, ',')
		}
		if b, scratch, err = s.appendUser(b, l, attrs, excluded, scratch); err != nil {
			writeLibraryError(w, scimerr.ScimErrorInternal)
			s.log.Error("failed marshaling list response", "error", err)
			return
		}
	}
	b = append(b, `],"itemsPerPage":`...)
	b = strconv.AppendInt(b, int64(len(found)), 10)
	b = append(b, `,"schemas":["urn:ietf:params:scim:api:messages:2.0:ListResponse"],"startIndex":`...)
	b = strconv.AppendInt(b, int64(startIndex), 10)
	b = append(b, `,"totalResults":`...)
	b = strconv.AppendInt(b, int64(total), 10)
	b = append(b, '}')
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// listPagination reads count and startIndex as the library does
// (parsePaginationParams): count at most maxResults, at least 0; a
// startIndex below 1 is 1; a value that is not an integer is a 400 naming
// it.
func listPagination(q url.Values) (count, startIndex int, _ *scimerr.ScimError) {
	var invalid []string
	count, startIndex = maxResults, 1
	if v := q.Get("count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			invalid = append(invalid, "count")
			n = 0
		}
		count = n
	}
	count = min(max(count, 0), maxResults)
	if v := q.Get("startIndex"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			invalid = append(invalid, "startIndex")
		}
		startIndex = n
	}
	if startIndex < 1 {
		startIndex = 1
	}
	if len(invalid) > 0 {
		e := scimerr.ScimErrorBadParams(invalid)
		return 0, 0, &e
	}
	return count, startIndex, nil
}

// writeLibraryError writes an error as the library's errorHandler does.
func writeLibraryError(w http.ResponseWriter, e scimerr.ScimError) {
	raw, err := json.Marshal(&e)
	if err != nil {
		return
	}
	w.WriteHeader(e.Status)
	_, _ = w.Write(raw)
}

// withExternalID is s with the externalId attribute, as the library
// validates a resource body (ResourceType.schemaWithCommon). The library
// builds it, and compiles a regular expression to check its name, on every
// POST; scimflare builds it once.
func withExternalID(s schema.Schema) schema.Schema {
	externalID := schema.SimpleCoreAttribute(schema.SimpleStringParams(schema.StringParams{
		CaseExact:  true,
		Mutability: schema.AttributeMutabilityReadWrite(),
		Name:       schema.CommonAttributeExternalID,
		Uniqueness: schema.AttributeUniquenessNone(),
	}))
	attrs := make([]schema.CoreAttribute, len(s.Attributes), len(s.Attributes)+1)
	copy(attrs, s.Attributes)
	s.Attributes = append(attrs, externalID)
	return s
}

// validateUserBody is the library's validation of a user body
// (ResourceType.validate), over decoded when the body was decoded already.
func (s *Server) validateUserBody(raw []byte, decoded map[string]any) (map[string]any, *scimerr.ScimError) {
	m := decoded
	if m == nil {
		var err error
		if m, err = decodeBody(raw); err != nil {
			return nil, &scimerr.ScimErrorInvalidSyntax
		}
	}
	attributes, serr := s.userSchema.Validate(m)
	if serr != nil {
		return nil, serr
	}
	for _, ext := range s.userType.SchemaExtensions {
		field := m[ext.Schema.ID]
		if field == nil {
			if ext.Required {
				return nil, &scimerr.ScimErrorInvalidValue
			}
			continue
		}
		extAttrs, serr := ext.Schema.ValidateExtension(field)
		if serr != nil {
			return nil, serr
		}
		attributes[ext.Schema.ID] = extAttrs
	}
	return attributes, nil
}

// postUser answers POST /Users as the library's resourcePostHandler does:
// the body validated against the cached schema and decoded once (when
// normalizing decoded it), the answer written by appendUser.
func (s *Server) postUser(w http.ResponseWriter, r *http.Request, body []byte, decoded map[string]any) {
	w.Header().Set("Content-Type", "application/scim+json")
	attrs, serr := s.validateUserBody(body, decoded)
	if serr != nil {
		writeLibraryError(w, *serr)
		return
	}
	created, err := s.createUser(attrs)
	if err != nil {
		writeLibraryError(w, scimerr.CheckScimError(err, http.MethodPost))
		return
	}
	b, _, err := s.appendUser(nil, userListing{u: created}, nil, nil, nil)
	if err != nil {
		writeLibraryError(w, scimerr.ScimErrorInternal)
		s.log.Error("failed marshaling resource", "error", err)
		return
	}
	w.Header().Set("Location", s.userLoc.of(created.ID))
	w.Header().Set("Etag", versionTag(created.Meta.Version))
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(b)
}

// getUser answers GET /Users/{id} as the library's resourceGetHandler
// does, the answer written by appendUser.
func (s *Server) getUser(w http.ResponseWriter, r *http.Request, id string) {
	w.Header().Set("Content-Type", "application/scim+json")
	u, err := s.st.GetUser(id)
	if err != nil {
		writeLibraryError(w, scimerr.CheckScimError(s.toSCIM(err, "User", id), http.MethodGet))
		return
	}
	attrs, excluded := listParams(r)
	b, _, err := s.appendUser(nil, userListing{u: u}, attrs, excluded, nil)
	if err != nil {
		writeLibraryError(w, scimerr.ScimErrorInternal)
		s.log.Error("failed marshaling resource", "error", err)
		return
	}
	w.Header().Set("Etag", versionTag(u.Meta.Version))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}
