package main

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	elimity "github.com/elimity-com/scim"
	scimerr "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
	filter "github.com/scim2/filter-parser/v2"
)

// BasePath is where the SCIM endpoints live, as in scimflare's default.
const BasePath = "/scim/v2"

// directory is the whole state. Attribute maps are copied on write and
// never changed once stored, so a handler may hand one to the library to
// marshal after the lock is released.
type directory struct {
	mu          sync.RWMutex
	users       map[string]*record
	userByName  map[string]string // lower(userName) -> id
	groups      map[string]*record
	groupByName map[string]string // lower(displayName) -> id
}

type record struct {
	attrs    map[string]any
	members  map[string]struct{} // groups only
	created  time.Time
	modified time.Time
	version  uint64
}

func (r *record) meta() elimity.Meta {
	c, m := r.created, r.modified
	return elimity.Meta{Created: &c, LastModified: &m, Version: `W/"` + strconv.FormatUint(r.version, 10) + `"`}
}

// New returns the ceiling's HTTP handler, SCIM under BasePath, accepting
// only token.
func New(token string) (http.Handler, error) {
	d := &directory{users: map[string]*record{}, userByName: map[string]string{},
		groups: map[string]*record{}, groupByName: map[string]string{}}
	lib, err := elimity.NewServer(&elimity.ServerArgs{
		ServiceProviderConfig: &elimity.ServiceProviderConfig{
			SupportFiltering: true,
			SupportPatch:     true,
			MaxResults:       1000,
		},
		ResourceTypes: []elimity.ResourceType{
			{
				ID: optional.NewString("User"), Name: "User", Endpoint: "/Users",
				Schema:           schema.CoreUserSchema(),
				SchemaExtensions: []elimity.SchemaExtension{{Schema: schema.ExtensionEnterpriseUser()}},
				Handler:          userHandler{d},
			},
			{
				ID: optional.NewString("Group"), Name: "Group", Endpoint: "/Groups",
				Schema:  schema.CoreGroupSchema(),
				Handler: groupHandler{d},
			},
		},
	}, elimity.WithBaseURL(BasePath))
	if err != nil {
		return nil, err
	}
	want := []byte("Bearer " + token)
	inner := http.StripPrefix(BasePath, lib)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("Content-Type", "application/scim+json")
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(scimerr.ScimError{Status: http.StatusUnauthorized, Detail: "bad or missing bearer token"})
			return
		}
		inner.ServeHTTP(w, r)
	}), nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func lowerString(v any) string {
	s, _ := v.(string)
	return strings.ToLower(s)
}

func externalID(attrs map[string]any) optional.String {
	if s, ok := attrs["externalId"].(string); ok && s != "" {
		return optional.NewString(s)
	}
	return optional.String{}
}

func excludesMembers(r *http.Request) bool {
	for p := range strings.SplitSeq(r.URL.Query().Get("excludedAttributes"), ",") {
		if strings.EqualFold(strings.TrimSpace(p), "members") {
			return true
		}
	}
	return false
}

// eqValue answers whether f is `attr eq "value"` and returns the value.
func eqValue(f filter.Expression, attr string) (string, bool) {
	e, ok := f.(*filter.AttributeExpression)
	if !ok || e.Operator != filter.EQ || e.AttributePath.SubAttribute != nil || !strings.EqualFold(e.AttributePath.AttributeName, attr) {
		return "", false
	}
	s, ok := e.CompareValue.(string)
	return s, ok
}

// list pages through records, filtered from the index when the filter is
// `<indexed> eq`, else by scanning in id order.
func (d *directory) list(p elimity.ListRequestParams, recs map[string]*record, index map[string]string, indexed string, build func(id string, rec *record) elimity.Resource) elimity.Page {
	d.mu.RLock()
	defer d.mu.RUnlock()
	page := elimity.Page{Resources: []elimity.Resource{}}
	var ids []string
	switch {
	case p.FilterValidator == nil:
		ids = slices.Sorted(maps.Keys(recs))
	default:
		if v, ok := eqValue(p.FilterValidator.GetFilter(), indexed); ok {
			if id, ok := index[strings.ToLower(v)]; ok {
				ids = []string{id}
			}
			break
		}
		for _, id := range slices.Sorted(maps.Keys(recs)) {
			doc := maps.Clone(recs[id].attrs)
			doc["id"] = id
			if p.FilterValidator.PassesFilter(doc) == nil {
				ids = append(ids, id)
			}
		}
	}
	page.TotalResults = len(ids)
	start := max(p.StartIndex, 1) - 1
	for i := start; i < len(ids) && len(page.Resources) < p.Count; i++ {
		page.Resources = append(page.Resources, build(ids[i], recs[ids[i]]))
	}
	return page
}

type userHandler struct{ d *directory }

func (h userHandler) resource(id string, rec *record) elimity.Resource {
	return elimity.Resource{ID: id, ExternalID: externalID(rec.attrs), Attributes: rec.attrs, Meta: rec.meta()}
}

func (h userHandler) Create(r *http.Request, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	d := h.d
	now := time.Now()
	key := lowerString(attrs["userName"])
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, taken := d.userByName[key]; taken {
		return elimity.Resource{}, scimerr.ScimErrorUniqueness
	}
	id := newID()
	rec := &record{attrs: attrs, created: now, modified: now, version: 1}
	d.users[id], d.userByName[key] = rec, id
	return h.resource(id, rec), nil
}

func (h userHandler) Get(r *http.Request, id string) (elimity.Resource, error) {
	h.d.mu.RLock()
	defer h.d.mu.RUnlock()
	rec, ok := h.d.users[id]
	if !ok {
		return elimity.Resource{}, scimerr.ScimErrorResourceNotFound(id)
	}
	return h.resource(id, rec), nil
}

func (h userHandler) GetAll(r *http.Request, p elimity.ListRequestParams) (elimity.Page, error) {
	return h.d.list(p, h.d.users, h.d.userByName, "userName", h.resource), nil
}

func (h userHandler) Replace(r *http.Request, id string, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	d := h.d
	d.mu.Lock()
	defer d.mu.Unlock()
	rec, ok := d.users[id]
	if !ok {
		return elimity.Resource{}, scimerr.ScimErrorResourceNotFound(id)
	}
	if err := d.renameUser(id, rec.attrs, attrs); err != nil {
		return elimity.Resource{}, err
	}
	rec.attrs = attrs
	rec.modified, rec.version = time.Now(), rec.version+1
	return h.resource(id, rec), nil
}

// renameUser moves the userName index entry when a write changes it.
func (d *directory) renameUser(id string, old, next map[string]any) error {
	oldKey, newKey := lowerString(old["userName"]), lowerString(next["userName"])
	if oldKey == newKey {
		return nil
	}
	if _, taken := d.userByName[newKey]; taken {
		return scimerr.ScimErrorUniqueness
	}
	delete(d.userByName, oldKey)
	d.userByName[newKey] = id
	return nil
}

func (h userHandler) Delete(r *http.Request, id string) error {
	d := h.d
	d.mu.Lock()
	defer d.mu.Unlock()
	rec, ok := d.users[id]
	if !ok {
		return scimerr.ScimErrorResourceNotFound(id)
	}
	delete(d.userByName, lowerString(rec.attrs["userName"]))
	delete(d.users, id)
	for _, g := range d.groups {
		delete(g.members, id)
	}
	return nil
}

func (h userHandler) Patch(r *http.Request, id string, ops []elimity.PatchOperation) (elimity.Resource, error) {
	d := h.d
	d.mu.Lock()
	defer d.mu.Unlock()
	rec, ok := d.users[id]
	if !ok {
		return elimity.Resource{}, scimerr.ScimErrorResourceNotFound(id)
	}
	next := maps.Clone(rec.attrs)
	for _, op := range ops {
		if err := applyAttrOp(next, op); err != nil {
			return elimity.Resource{}, err
		}
	}
	if err := d.renameUser(id, rec.attrs, next); err != nil {
		return elimity.Resource{}, err
	}
	rec.attrs = next
	rec.modified, rec.version = time.Now(), rec.version+1
	// No attributes: the library answers 204, as scimflare does by default.
	return elimity.Resource{}, nil
}

// applyAttrOp applies one validated operation to a (copied) attribute map:
// top-level and one-level sub-attributes, which is all the load sends.
func applyAttrOp(attrs map[string]any, op elimity.PatchOperation) error {
	if op.Path == nil {
		values, ok := op.Value.(map[string]any)
		if !ok {
			return scimerr.ScimErrorInvalidValue
		}
		for k, v := range values {
			if name, sub, ok := strings.Cut(k, "."); ok && !strings.Contains(k, ":") {
				setSub(attrs, name, sub, v)
				continue
			}
			attrs[k] = v
		}
		return nil
	}
	name := op.Path.AttributePath.AttributeName
	if uri := op.Path.AttributePath.URI(); uri != "" {
		name = uri + ":" + name
	}
	if sub := op.Path.AttributePath.SubAttributeName(); sub != "" {
		if op.Op == elimity.PatchOperationRemove {
			setSub(attrs, name, sub, nil)
		} else {
			setSub(attrs, name, sub, op.Value)
		}
		return nil
	}
	if op.Op == elimity.PatchOperationRemove {
		delete(attrs, name)
		return nil
	}
	attrs[name] = op.Value
	return nil
}

// setSub sets (or, with v nil, removes) attrs[name][sub] on a copy of the
// complex value, so that the stored map is never changed in place.
func setSub(attrs map[string]any, name, sub string, v any) {
	old, _ := attrs[name].(map[string]any)
	next := maps.Clone(old)
	if next == nil {
		next = map[string]any{}
	}
	if v == nil {
		delete(next, sub)
	} else {
		next[sub] = v
	}
	attrs[name] = next
}

type groupHandler struct{ d *directory }

// resource renders a group; members are listed only when wanted. The
// caller holds the lock.
func (h groupHandler) resource(id string, rec *record, withMembers bool) elimity.Resource {
	attrs := rec.attrs
	if withMembers {
		attrs = maps.Clone(rec.attrs)
		list := make([]any, 0, len(rec.members))
		for m := range rec.members {
			list = append(list, map[string]any{"value": m})
		}
		attrs["members"] = list
	}
	return elimity.Resource{ID: id, ExternalID: externalID(rec.attrs), Attributes: attrs, Meta: rec.meta()}
}

// memberIDs reads a validated members value and checks every id exists.
func (d *directory) memberIDs(v any) ([]string, error) {
	list, _ := v.([]any)
	ids := make([]string, 0, len(list))
	for _, m := range list {
		obj, _ := m.(map[string]any)
		id, _ := obj["value"].(string)
		_, isUser := d.users[id]
		_, isGroup := d.groups[id]
		if !isUser && !isGroup {
			return nil, scimerr.ScimErrorBadRequest("member " + strconv.Quote(id) + " does not exist")
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func (h groupHandler) Create(r *http.Request, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	d := h.d
	now := time.Now()
	key := lowerString(attrs["displayName"])
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, taken := d.groupByName[key]; taken {
		return elimity.Resource{}, scimerr.ScimErrorUniqueness
	}
	ids, err := d.memberIDs(attrs["members"])
	if err != nil {
		return elimity.Resource{}, err
	}
	stored := maps.Clone(attrs)
	delete(stored, "members")
	rec := &record{attrs: stored, members: make(map[string]struct{}, len(ids)), created: now, modified: now, version: 1}
	for _, m := range ids {
		rec.members[m] = struct{}{}
	}
	id := newID()
	d.groups[id], d.groupByName[key] = rec, id
	return h.resource(id, rec, true), nil
}

func (h groupHandler) Get(r *http.Request, id string) (elimity.Resource, error) {
	h.d.mu.RLock()
	defer h.d.mu.RUnlock()
	rec, ok := h.d.groups[id]
	if !ok {
		return elimity.Resource{}, scimerr.ScimErrorResourceNotFound(id)
	}
	return h.resource(id, rec, !excludesMembers(r)), nil
}

func (h groupHandler) GetAll(r *http.Request, p elimity.ListRequestParams) (elimity.Page, error) {
	with := !excludesMembers(r)
	return h.d.list(p, h.d.groups, h.d.groupByName, "displayName", func(id string, rec *record) elimity.Resource {
		return h.resource(id, rec, with)
	}), nil
}

func (h groupHandler) Replace(r *http.Request, id string, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	d := h.d
	d.mu.Lock()
	defer d.mu.Unlock()
	rec, ok := d.groups[id]
	if !ok {
		return elimity.Resource{}, scimerr.ScimErrorResourceNotFound(id)
	}
	ids, err := d.memberIDs(attrs["members"])
	if err != nil {
		return elimity.Resource{}, err
	}
	stored := maps.Clone(attrs)
	delete(stored, "members")
	if err := d.renameGroup(id, rec.attrs, stored); err != nil {
		return elimity.Resource{}, err
	}
	rec.attrs = stored
	rec.members = make(map[string]struct{}, len(ids))
	for _, m := range ids {
		rec.members[m] = struct{}{}
	}
	rec.modified, rec.version = time.Now(), rec.version+1
	return h.resource(id, rec, true), nil
}

func (d *directory) renameGroup(id string, old, next map[string]any) error {
	oldKey, newKey := lowerString(old["displayName"]), lowerString(next["displayName"])
	if oldKey == newKey {
		return nil
	}
	if _, taken := d.groupByName[newKey]; taken {
		return scimerr.ScimErrorUniqueness
	}
	delete(d.groupByName, oldKey)
	d.groupByName[newKey] = id
	return nil
}

func (h groupHandler) Delete(r *http.Request, id string) error {
	d := h.d
	d.mu.Lock()
	defer d.mu.Unlock()
	rec, ok := d.groups[id]
	if !ok {
		return scimerr.ScimErrorResourceNotFound(id)
	}
	delete(d.groupByName, lowerString(rec.attrs["displayName"]))
	delete(d.groups, id)
	for _, g := range d.groups {
		delete(g.members, id)
	}
	return nil
}

// memberEdit is one change to a member set, checked before any is applied.
type memberEdit struct {
	op  string // add, remove, replace, clear
	ids []string
}

func (h groupHandler) Patch(r *http.Request, id string, ops []elimity.PatchOperation) (elimity.Resource, error) {
	d := h.d
	d.mu.Lock()
	defer d.mu.Unlock()
	rec, ok := d.groups[id]
	if !ok {
		return elimity.Resource{}, scimerr.ScimErrorResourceNotFound(id)
	}
	next, copied := rec.attrs, false
	var edits []memberEdit
	for _, op := range ops {
		if op.Path == nil {
			values, _ := op.Value.(map[string]any)
			if v, ok := values["members"]; ok {
				e, err := d.memberOp(op.Op, nil, v)
				if err != nil {
					return elimity.Resource{}, err
				}
				edits = append(edits, e)
				values = maps.Clone(values)
				delete(values, "members")
			}
			if len(values) == 0 {
				continue
			}
			op.Value = values
		} else if strings.EqualFold(op.Path.AttributePath.AttributeName, "members") {
			e, err := d.memberOp(op.Op, op.Path.ValueExpression, op.Value)
			if err != nil {
				return elimity.Resource{}, err
			}
			edits = append(edits, e)
			continue
		}
		if !copied {
			next, copied = maps.Clone(rec.attrs), true
		}
		if err := applyAttrOp(next, op); err != nil {
			return elimity.Resource{}, err
		}
	}
	if err := d.renameGroup(id, rec.attrs, next); err != nil {
		return elimity.Resource{}, err
	}
	rec.attrs = next
	for _, e := range edits {
		switch e.op {
		case elimity.PatchOperationReplace, "clear":
			rec.members = make(map[string]struct{}, len(e.ids))
		}
		for _, m := range e.ids {
			if e.op == elimity.PatchOperationRemove {
				delete(rec.members, m)
			} else {
				rec.members[m] = struct{}{}
			}
		}
	}
	rec.modified, rec.version = time.Now(), rec.version+1
	return elimity.Resource{}, nil
}

// memberOp reads one members operation: add or replace a validated list,
// remove by `value eq` filter (or several joined by or), by value list, or
// all of them.
func (d *directory) memberOp(op string, where filter.Expression, value any) (memberEdit, error) {
	switch op {
	case elimity.PatchOperationAdd, elimity.PatchOperationReplace:
		ids, err := d.memberIDs(value)
		return memberEdit{op: op, ids: ids}, err
	}
	if where != nil {
		var ids []string
		if !collectEq(where, &ids) {
			return memberEdit{}, scimerr.ScimErrorInvalidFilter
		}
		return memberEdit{op: elimity.PatchOperationRemove, ids: ids}, nil
	}
	if list, ok := value.([]any); ok {
		var ids []string
		for _, m := range list {
			obj, _ := m.(map[string]any)
			if id, ok := obj["value"].(string); ok {
				ids = append(ids, id)
			}
		}
		return memberEdit{op: elimity.PatchOperationRemove, ids: ids}, nil
	}
	return memberEdit{op: "clear"}, nil
}

func collectEq(e filter.Expression, ids *[]string) bool {
	switch e := e.(type) {
	case *filter.LogicalExpression:
		return e.Operator == filter.OR && collectEq(e.Left, ids) && collectEq(e.Right, ids)
	default:
		v, ok := eqValue(e, "value")
		if ok {
			*ids = append(*ids, v)
		}
		return ok
	}
}
