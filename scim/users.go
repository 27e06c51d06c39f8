package scim

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	elimity "github.com/elimity-com/scim"
	scimerr "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"

	"github.com/scimflare/scimflare/scim/attr"
	"github.com/scimflare/scimflare/scim/patch"
	"github.com/scimflare/scimflare/scim/query"
	"github.com/scimflare/scimflare/store"
)

var userResource = patch.Resource{Schema: schema.CoreUserSchema(), Extensions: []schema.Schema{schema.ExtensionEnterpriseUser()}}

// Attributes the store keeps as fields, or that are never stored at all.
var userFieldAttrs = []string{"id", "meta", "schemas", "externalId", "userName", "active", "password"}

// userFromAttrs builds the store form of validated user attributes. The
// password is dropped here: it is accepted and never kept.
func (s *Server) userFromAttrs(attrs map[string]any, u *store.User) error {
	name, _ := attrs["userName"].(string)
	if strings.TrimSpace(name) == "" {
		return scimError(http.StatusBadRequest, scimerr.ScimTypeInvalidValue, "userName is required and must be a non-empty string")
	}
	u.UserName = name
	u.ExternalID, _ = attrs["externalId"].(string)
	u.Active = true
	if a, ok := attrs["active"].(bool); ok {
		u.Active = a
	}
	doc, raw, err := storedDoc(attrs, userFieldAttrs, "user")
	if err != nil {
		return err
	}
	u.Doc = raw
	u.Email = s.identityEmail(u.UserName, doc)
	return nil
}

// storedDoc is what the store keeps of a resource's attributes besides its
// fields: attrs without fields, unassigned values dropped, and as JSON.
func storedDoc(attrs map[string]any, fields []string, kind string) (map[string]any, []byte, error) {
	doc := make(map[string]any, len(attrs))
	for k, v := range attrs {
		doc[k] = v
	}
	for _, k := range fields {
		deleteFold(doc, k)
	}
	dropUnassigned(doc)
	if err := checkMultiValues(doc, ""); err != nil {
		return nil, nil, err
	}
	raw, err := appendJSON(make([]byte, 0, 256), doc)
	if err != nil {
		return nil, nil, scimError(http.StatusBadRequest, scimerr.ScimTypeInvalidValue, "the %s attributes cannot be stored: %v", kind, err)
	}
	return doc, raw, nil
}

// checkMultiValues refuses a multi-valued attribute with more than
// MaxMultiValues values, in the core schema or an extension object.
func checkMultiValues(m map[string]any, prefix string) error {
	for k, v := range m {
		switch v := v.(type) {
		case []any:
			if len(v) > MaxMultiValues {
				return scimError(http.StatusBadRequest, scimerr.ScimTypeInvalidValue, "%s%s has %d values, over the limit of %d values per attribute", prefix, k, len(v), MaxMultiValues)
			}
		case map[string]any:
			if prefix == "" && strings.HasPrefix(strings.ToLower(k), "urn:") {
				if err := checkMultiValues(v, k+":"); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// dropUnassigned removes null values and empty arrays, which RFC 7643 §2.5
// treats as unassigned: storing them would hand "roles": null back to an
// IdP that sent "roles": [] (Entra does), and every later comparison would
// see a difference that is not there.
func dropUnassigned(m map[string]any) {
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			dropUnassigned(sub)
		}
		if !attr.Assigned(v) {
			delete(m, k)
		}
	}
}

func deleteFold(m map[string]any, key string) {
	for k := range m {
		if strings.EqualFold(k, key) {
			delete(m, k)
		}
	}
}

// identityEmail is the address Cloudflare will know the user by
// (identity.email_from): the userName, or the primary email (else the work
// email, else the first one).
func (s *Server) identityEmail(userName string, doc map[string]any) string {
	if s.opt.EmailFrom != "primaryEmail" {
		return userName
	}
	emails, _ := doc["emails"].([]any)
	var first, work string
	for _, e := range emails {
		m, _ := e.(map[string]any)
		v, _ := m["value"].(string)
		if v == "" {
			continue
		}
		if p, _ := m["primary"].(bool); p {
			return v
		}
		if t, _ := m["type"].(string); strings.EqualFold(t, "work") && work == "" {
			work = v
		}
		if first == "" {
			first = v
		}
	}
	if work != "" {
		return work
	}
	return first
}

// userAttrs is the client view of a stored user, without id and meta.
func userAttrs(u store.User) map[string]any {
	doc := map[string]any{}
	if len(u.Doc) > 0 {
		_ = json.Unmarshal(u.Doc, &doc)
	}
	doc["userName"] = u.UserName
	doc["active"] = u.Active
	return doc
}

// userDoc is the full document filters are evaluated against.
func userDoc(u store.User) map[string]any {
	return userDocOf(u, userAttrs(u))
}

// userDocOf is userDoc over attrs, userAttrs(u) already decoded, which it
// leaves as it is: a list answer matches the filter against the document
// and returns attrs, and decoding u.Doc once instead of twice is a third of
// an indexed lookup's allocations.
func userDocOf(u store.User, attrs map[string]any) map[string]any {
	doc := make(map[string]any, len(attrs)+4)
	for k, v := range attrs {
		doc[k] = v
	}
	doc["id"] = u.ID
	if u.ExternalID != "" {
		doc["externalId"] = u.ExternalID
	}
	doc["schemas"] = []any{userSchemaURN, enterpriseSchemaURN}
	doc["meta"] = map[string]any{
		"resourceType": "User",
		"created":      u.Meta.Created.Format(time.RFC3339Nano),
		"lastModified": u.Meta.LastModified.Format(time.RFC3339Nano),
		"version":      versionTag(u.Meta.Version),
	}
	return doc
}

// userFieldDoc is userDoc without the stored document's attributes, and
// without meta unless withMeta: all a filter on fields reads.
func userFieldDoc(u store.User, withMeta bool) map[string]any {
	if withMeta {
		return userDocOf(u, map[string]any{"userName": u.UserName, "active": u.Active})
	}
	doc := make(map[string]any, 5)
	doc["userName"] = u.UserName
	doc["active"] = u.Active
	doc["id"] = u.ID
	if u.ExternalID != "" {
		doc["externalId"] = u.ExternalID
	}
	doc["schemas"] = userSchemasValue
	return doc
}

// userSchemasValue is a user document's schemas, shared: filters only read
// it.
var userSchemasValue = []any{userSchemaURN, enterpriseSchemaURN}

func userResourceOf(u store.User, attrs, excluded []string) elimity.Resource {
	return userResourceFrom(u, userAttrs(u), attrs, excluded)
}

// userResourceFrom is userResourceOf over a, userAttrs(u) already decoded.
func userResourceFrom(u store.User, a map[string]any, attrs, excluded []string) elimity.Resource {
	if len(attrs) > 0 || len(excluded) > 0 {
		a = query.Project(a, attrs, excluded)
	}
	res := elimity.Resource{ID: u.ID, Attributes: a, Meta: meta(u.Meta)}
	if u.ExternalID != "" {
		res.ExternalID = optional.NewString(u.ExternalID)
	}
	return res
}

type userHandler struct {
	s *Server
	patchedByServer
}

func (h userHandler) Create(r *http.Request, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	created, err := h.s.createUser(attrs)
	if err != nil {
		return elimity.Resource{}, err
	}
	return userResourceOf(created, nil, nil), nil
}

// createUser stores a user from validated attributes, and notifies.
func (s *Server) createUser(attrs map[string]any) (store.User, error) {
	var u store.User
	if err := s.userFromAttrs(attrs, &u); err != nil {
		return store.User{}, err
	}
	created, err := s.st.CreateUser(s.now(), u)
	if err != nil {
		return store.User{}, s.toSCIM(err, "User", u.UserName)
	}
	s.notify(Change{UserIDs: []string{created.ID}})
	return created, nil
}

func (h userHandler) Get(r *http.Request, id string) (elimity.Resource, error) {
	u, err := h.s.st.GetUser(id)
	if err != nil {
		return elimity.Resource{}, h.s.toSCIM(err, "User", id)
	}
	a, ex := listParams(r)
	return userResourceOf(u, a, ex), nil
}

func (h userHandler) GetAll(r *http.Request, p elimity.ListRequestParams) (elimity.Page, error) {
	attrs, excluded := listParams(r)
	total, found, err := h.s.findUsers(r, p.Count, p.StartIndex)
	if err != nil {
		return elimity.Page{}, err
	}
	page := elimity.Page{TotalResults: total, Resources: make([]elimity.Resource, 0, len(found))}
	for _, l := range found {
		a := l.attrs
		if a == nil {
			a = userAttrs(l.u)
		}
		page.Resources = append(page.Resources, userResourceFrom(l.u, a, attrs, excluded))
	}
	return page, nil
}

// findUsers is a page of the users that pass the request's filter, and
// how many pass it. A user's attributes are decoded only when the filter
// reads them: a filter on fields alone (`userName eq`, the lookup every
// IdP makes) is matched against the fields.
func (s *Server) findUsers(r *http.Request, count, startIndex int) (total int, found []userListing, err error) {
	f, err := listFilter(r, userResource)
	if err != nil {
		return 0, nil, s.toSCIM(err, "User", "")
	}
	found = []userListing{}
	skip := max(startIndex, 1) - 1
	onFields := f != nil && f.OnlyCore(userFields...)
	onMeta := onFields && !f.OnlyCore("active", "externalId", "id", "schemas", "userName")
	scratch := make([]docMember, 0, 8)
	consider := func(u store.User) {
		var l userListing
		var ok bool
		if onFields {
			// canonicalDoc vouches that the document holds no member
			// a field could be confused with.
			if scratch, ok = canonicalDoc(u.Doc, scratch[:0]); ok {
				if !f.Match(userFieldDoc(u, onMeta)) {
					return
				}
				l = userListing{u: u, members: scratch, canonical: true}
			}
		}
		if !ok {
			a := userAttrs(u)
			if !f.Match(userDocOf(u, a)) {
				return
			}
			l = userListing{u: u, attrs: a}
		}
		if total >= skip && len(found) < count {
			// scratch is the next user's.
			l.members = slices.Clone(l.members)
			found = append(found, l)
		}
		total++
	}
	err = s.st.View(func(rd store.Reader) error {
		if f == nil {
			n, err := rd.CountUsers()
			if err != nil {
				return err
			}
			total = n
			if count <= 0 || skip >= n {
				return nil
			}
			i := 0
			return rd.ListUsers("", func(u store.User) bool {
				if i >= skip {
					found = append(found, userListing{u: u})
				}
				i++
				return len(found) < count
			})
		}
		candidates, indexed, err := userCandidates(rd, f)
		if err != nil {
			return err
		}
		if indexed {
			for _, u := range candidates {
				consider(u)
			}
			return nil
		}
		return rd.ListUsers("", func(u store.User) bool {
			consider(u)
			return true
		})
	})
	if err != nil {
		return 0, nil, s.toSCIM(err, "User", "")
	}
	setListCount(r, len(found))
	return total, found, nil
}

// userCandidates answers `userName eq`, `externalId eq` and `id eq` from an
// index; indexed=false means a scan is needed. `emails.value eq` scans: the
// store's email index holds one identity email per user (taken from
// userName under identity.email_from: userName), not every emails.value.
func userCandidates(rd store.Reader, f *query.Filter) ([]store.User, bool, error) {
	attr, val, ok := f.EqualityHint("userName", "externalId", "id")
	if !ok {
		return nil, false, nil
	}
	var one store.User
	var err error
	switch strings.ToLower(attr) {
	case "username":
		one, err = rd.UserByUserName(val)
	case "id":
		one, err = rd.GetUser(val)
	case "externalid":
		us, err := rd.UsersByExternalID(val)
		return us, true, err
	default:
		return nil, false, nil
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, true, nil
	}
	if err != nil {
		return nil, true, err
	}
	return []store.User{one}, true, nil
}

func (h userHandler) Replace(r *http.Request, id string, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	s := h.s
	ifv, _ := ifMatch(r)
	var oldEmail string
	u, err := s.st.UpdateUser(id, s.now(), ifv, func(u *store.User) error {
		oldEmail = u.Email
		wasActive := u.Active
		if err := s.userFromAttrs(attrs, u); err != nil {
			return err
		}
		// A replacement that leaves active out does not change it: it
		// must not re-activate a deactivated user (nor deactivate one).
		if _, given := attrs["active"].(bool); !given {
			u.Active = wasActive
		}
		return nil
	})
	if err != nil {
		return elimity.Resource{}, s.toSCIM(err, "User", id)
	}
	s.notify(Change{UserIDs: []string{u.ID}, Emails: changedEmail(oldEmail, u.Email)})
	return userResourceOf(u, nil, nil), nil
}

func changedEmail(old, cur string) []string {
	if old != "" && !strings.EqualFold(old, cur) {
		return []string{old}
	}
	return nil
}

func (h userHandler) Delete(r *http.Request, id string) error {
	s := h.s
	u, err := s.st.GetUser(id)
	if err != nil {
		return s.toSCIM(err, "User", id)
	}
	del, err := s.st.DeleteUser(id)
	if err != nil {
		return s.toSCIM(err, "User", id)
	}
	// A PATCH between the read above and the delete may have changed the
	// email: the deleted record's email is the one whose Cloudflare access
	// must go, and the one read first is notified too in case it was
	// provisioned before the change reached the reconciler.
	emails := []string{del.User.Email}
	if u.Email != "" && !strings.EqualFold(u.Email, del.User.Email) {
		emails = append(emails, u.Email)
	}
	s.notify(Change{UserIDs: []string{id}, Emails: emails})
	return nil
}

// patchUser applies a PATCH atomically. The PATCH is computed against a
// snapshot of the user outside the store's write transaction, so that a
// large PATCH never holds up other writers, and committed only if the user
// has not changed since (else it is computed again): concurrent PATCHes of
// one user never lose an update. A PATCH that changes nothing writes
// nothing (RFC 7644 §3.5.2.1: an add of a value already held makes no
// change).
func (s *Server) patchUser(w http.ResponseWriter, r *http.Request, id string, body []byte) {
	ops, err := patch.Parse(body)
	if err != nil {
		writeError(w, s.toSCIM(err, "User", id))
		return
	}
	ifv, _ := ifMatch(r)
	var oldEmail string
	var u store.User
	const optimisticTries = 4
	for try := 0; ; try++ {
		if try == optimisticTries {
			// Contended: compute inside the transaction, as a last resort.
			u, err = s.st.UpdateUser(id, s.now(), ifv, func(cur *store.User) error {
				oldEmail = cur.Email
				next, err := s.patchedUser(*cur, ops)
				if err != nil {
					return err
				}
				setUserFields(cur, next)
				return nil
			})
			break
		}
		var cur store.User
		if cur, err = s.st.GetUser(id); err != nil {
			break
		}
		if ifv != 0 && cur.Meta.Version != ifv {
			err = store.ErrVersionMismatch
			break
		}
		var next store.User
		if next, err = s.patchedUser(cur, ops); err != nil {
			break
		}
		if sameUserFields(cur, next) {
			u = cur
			break
		}
		oldEmail = cur.Email
		u, err = s.st.UpdateUser(id, s.now(), cur.Meta.Version, func(stored *store.User) error {
			setUserFields(stored, next)
			return nil
		})
		if !errors.Is(err, store.ErrVersionMismatch) || ifv != 0 {
			break
		}
	}
	if err != nil {
		writeError(w, s.toSCIM(err, "User", id))
		return
	}
	// Notified even when nothing changed: an IdP repeating a deactivation
	// gets the user re-planned, which is cheap and never wrong.
	s.notify(Change{UserIDs: []string{u.ID}, Emails: changedEmail(oldEmail, u.Email)})
	attrs, excluded := listParams(r)
	s.writePatched(w, r, attrs, excluded, versionTag(u.Meta.Version), func() elimity.Resource { return userResourceOf(u, attrs, excluded) }, "/Users/"+u.ID)
}

// patchedUser is cur after ops, validated as a POST body is.
//
// "remove active" (or replace with null) leaves the user inactive: an
// unassigned active must never read back as the POST default true, which
// would give a deactivated user back their Cloudflare access.
func (s *Server) patchedUser(cur store.User, ops []patch.Operation) (store.User, error) {
	doc := userDoc(cur)
	delete(doc, "meta")
	delete(doc, "schemas")
	next, err := patch.Apply(doc, ops, userResource)
	if err != nil {
		return store.User{}, err
	}
	if _, present := lookupFold(next, "active"); !present {
		next["active"] = false
	}
	attrs, err := validateUser(next)
	if err != nil {
		return store.User{}, err
	}
	out := cur
	if err := s.userFromAttrs(attrs, &out); err != nil {
		return store.User{}, err
	}
	return out, nil
}

// setUserFields copies what a PATCH may change.
func setUserFields(dst *store.User, src store.User) {
	dst.UserName, dst.ExternalID, dst.Active, dst.Doc, dst.Email = src.UserName, src.ExternalID, src.Active, src.Doc, src.Email
}

func sameUserFields(a, b store.User) bool {
	return a.UserName == b.UserName && a.ExternalID == b.ExternalID && a.Active == b.Active && a.Email == b.Email && bytes.Equal(a.Doc, b.Doc)
}

func lookupFold(m map[string]any, key string) (any, bool) {
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return v, v != nil
		}
	}
	return nil, false
}

// validateUser checks a patched document against the User schema and its
// enterprise extension, the same way a POST body is checked.
func validateUser(doc map[string]any) (map[string]any, error) {
	in := make(map[string]any, len(doc)+1)
	for k, v := range doc {
		in[k] = v
	}
	ext, hasExt := in[enterpriseSchemaURN]
	delete(in, enterpriseSchemaURN)
	in["schemas"] = []any{userSchemaURN}
	attrs, serr := schema.CoreUserSchema().Validate(in)
	if serr != nil {
		return nil, patchValidationError(*serr)
	}
	if ext, ok := doc["externalId"].(string); ok {
		attrs["externalId"] = ext
	}
	if hasExt && ext != nil {
		extAttrs, serr := schema.ExtensionEnterpriseUser().ValidateExtension(ext)
		if serr != nil {
			return nil, patchValidationError(*serr)
		}
		if len(extAttrs) > 0 {
			attrs[enterpriseSchemaURN] = extAttrs
		}
	}
	return attrs, nil
}

func patchValidationError(e scimerr.ScimError) error {
	if e.Detail == "" || e.ScimType == scimerr.ScimTypeInvalidValue {
		e.Detail = "the resource after this PATCH does not satisfy its schema (a required attribute is missing or a value has the wrong type); nothing was applied"
	}
	return e
}
