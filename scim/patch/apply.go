package patch

import (
	stderrors "errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/schema"
	"github.com/scimflare/scimflare/scim/attr"
	"github.com/scimflare/scimflare/scim/query"
)

// Apply applies ops in order to a copy of doc and returns the new document.
// On error it returns nil and doc is untouched: a request applies whole or
// not at all.
//
// Semantics beyond the RFC text, each chosen for a real client:
//   - Paths and attribute names are case-insensitive, may be URN-qualified,
//     and legacy SCIM 1.x URIs (OneLogin) stand for their 2.0 schemas.
//   - A value without path may use any path as a key: dotted
//     ("name.givenName"), filtered ("emails[type eq \"work\"].value") and URN
//     keys ("urn:…:enterprise:2.0:User:department", or the bare extension URN
//     holding an object) – Entra. Its "schemas" key is ignored (authentik);
//     "meta", and read-only attributes equal to the current value (Okta sends
//     the group's own id), are ignored too.
//   - Boolean attributes take "True"/"False" strings (Entra); a complex
//     attribute with a "value" sub-attribute takes a bare string, so Entra's
//     manager id becomes {"value": id}.
//   - add and replace on attr[filter] or attr[filter].sub where no element
//     matches create the element when the filter is only `eq` terms joined by
//     `and`: replace emails[type eq "work"].value on a user without a work
//     email adds {type: work, value: v} (Entra, "Known issues and resolutions
//     with SCIM 2.0 compliance"). Other filters matching nothing are 400
//     noTarget; remove with a filter matching nothing is a no-op.
//   - remove on a multi-valued attribute with a value removes only the listed
//     elements (Entra removes group members this way).
//   - add to a multi-valued attribute never duplicates an equal element; an
//     element made primary clears primary on the others.
//   - replace with null, or with [] on a multi-valued attribute, unassigns it.
//   - password is write-only and never stored: it is type-checked and dropped
//     from the result.
//   - attr.sub on a multi-valued attribute without a filter acts on every
//     element.
//   - A required attribute (userName, a group's displayName) cannot be
//     removed or emptied.
func Apply(doc map[string]any, ops []Operation, r Resource) (map[string]any, error) {
	out, _ := query.DeepCopy(doc).(map[string]any)
	if out == nil {
		out = map[string]any{}
	}
	a := &applier{r: r, doc: out}
	for i, op := range ops {
		a.i, a.op = i, op
		a.op.Op = strings.ToLower(strings.TrimSpace(op.Op))
		before := a.requiredPresent()
		if err := a.apply(); err != nil {
			return nil, err
		}
		for name, was := range before {
			if was && !attr.Assigned(mustGet(a.doc, name)) {
				if a.op.Op == "remove" || a.op.Value == nil {
					// RFC 7644 §3.5.2.2: removing a required attribute
					// is a mutability error.
					return nil, a.fail(errors.ScimTypeMutability, "%s is required and cannot be removed", name)
				}
				return nil, a.fail(errors.ScimTypeInvalidValue, "%s is required and cannot be emptied", name)
			}
		}
	}
	syncSchemas(out, r)
	return out, nil
}

type applier struct {
	r   Resource
	doc map[string]any
	i   int
	op  Operation

	// step counts the paths applied; idx is the element index of the
	// multi-valued attribute the previous step added to, kept while
	// consecutive adds go to the same attribute, so that n add operations
	// on one attribute cost O(n), not O(n²).
	step int
	idx  *cachedIndex
}

type cachedIndex struct {
	step int
	ext  string
	name string
	list []any
	idx  *elementIndex
}

// sameList reports whether b is exactly the slice a (same array, same length).
func sameList(a, b []any) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

func (a *applier) fail(t errors.ScimType, format string, args ...any) error {
	return badRequest(t, "Operations[%d] (%s%s): %s.", a.i, a.op.Op, quotedPath(a.op.Path), fmt.Sprintf(format, args...))
}

// rewrap prefixes a query error with the operation it came from.
func (a *applier) rewrap(err error) error {
	var se errors.ScimError
	if !stderrors.As(err, &se) {
		return a.fail(errors.ScimTypeInvalidPath, "%v", err)
	}
	se.Detail = fmt.Sprintf("Operations[%d] (%s): %s", a.i, a.op.Op, se.Detail)
	return se
}

func (a *applier) requiredPresent() map[string]bool {
	m := map[string]bool{}
	for _, at := range a.r.Schema.Attributes {
		if at.Required() {
			m[at.Name()] = attr.Assigned(mustGet(a.doc, at.Name()))
		}
	}
	return m
}

func (a *applier) apply() error {
	switch a.op.Op {
	case "add", "remove", "replace":
	default:
		return a.fail(errors.ScimTypeInvalidValue, "op must be add, remove or replace")
	}
	if a.op.Path == "" {
		if a.op.Op == "remove" {
			return a.fail(errors.ScimTypeNoTarget, "remove needs a path")
		}
		return a.noPath()
	}
	p, err := query.ParsePath(a.op.Path, a.r)
	if err != nil {
		return a.rewrap(err)
	}
	if p.Schema != "" {
		return a.wholeSchema(p.Schema, a.op.Value, false)
	}
	return a.at(p, a.op.Value, false)
}

// noPath applies an add or replace whose value is an object of attributes.
func (a *applier) noPath() error {
	m, ok := a.op.Value.(map[string]any)
	if !ok {
		return a.fail(errors.ScimTypeInvalidValue, "without a path the value must be an object of attributes, not %s", describe(a.op.Value))
	}
	// Sorted so that "name" applies before "name.givenName" and the result
	// does not depend on map order.
	for _, k := range sortedKeys(m) {
		if strings.EqualFold(k, "schemas") {
			continue
		}
		p, err := query.ParsePath(k, a.r)
		if err != nil {
			return a.rewrap(err)
		}
		if p.Schema != "" {
			err = a.wholeSchema(p.Schema, m[k], true)
		} else {
			err = a.at(p, m[k], true)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// wholeSchema applies a value that holds an extension's attributes.
func (a *applier) wholeSchema(urn string, v any, noPath bool) error {
	if a.op.Op == "remove" || v == nil {
		if a.op.Op == "add" {
			return a.fail(errors.ScimTypeInvalidValue, "add needs a value")
		}
		delKey(a.doc, urn)
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return a.fail(errors.ScimTypeInvalidValue, "the value for %s must be an object, not %s", urn, describe(v))
	}
	for _, k := range sortedKeys(m) {
		if strings.EqualFold(k, "schemas") {
			continue
		}
		p, err := query.ParsePath(urn+":"+k, a.r)
		if err != nil {
			return a.rewrap(err)
		}
		if p.Schema != "" || p.Filter != nil || p.Attr.Extension != urn {
			return a.fail(errors.ScimTypeInvalidPath, "%q is not an attribute of %s", k, urn)
		}
		if err := a.at(p, m[k], noPath); err != nil {
			return err
		}
	}
	return nil
}

// at applies the operation to one resolved path with value v.
func (a *applier) at(p query.Path, v any, noPath bool) error {
	a.step++
	def, leaf := p.Attr.Def, p.Attr.Leaf()
	name := p.Attr.Name()
	if def.Mutability() == "writeOnly" || leaf.Mutability() == "writeOnly" {
		// password: accepted, never stored.
		if v != nil && a.op.Op != "remove" {
			if _, err := coerceSimple(leaf, v); err != nil {
				return a.fail(errors.ScimTypeInvalidValue, "%v", err)
			}
		}
		delKey(a.doc, def.Name())
		return nil
	}
	if def.Mutability() == "readOnly" || leaf.Mutability() == "readOnly" {
		if noPath && a.ignorableReadOnly(p, v) {
			return nil
		}
		return a.fail(errors.ScimTypeMutability, "%s is read-only", name)
	}
	if leaf.Mutability() == "immutable" && (p.Attr.Sub != nil || a.op.Op != "add") {
		return a.fail(errors.ScimTypeMutability, "%s is immutable", name)
	}
	cont := a.container(p.Attr.Extension, a.op.Op != "remove")
	if cont == nil {
		return nil
	}
	switch {
	case p.Filter != nil:
		return a.filtered(cont, p, v)
	case p.Attr.Sub != nil:
		return a.sub(cont, p, v)
	default:
		return a.whole(cont, p.Attr.Extension, def, v)
	}
}

// ignorableReadOnly tolerates read-only attributes that clients echo back in
// a no-path value: meta always, others when unchanged or empty.
func (a *applier) ignorableReadOnly(p query.Path, v any) bool {
	if p.Attr.Extension == "" && strings.EqualFold(p.Attr.Def.Name(), "meta") {
		return true
	}
	if !attr.Assigned(v) {
		return true
	}
	cur := mustGet(a.container(p.Attr.Extension, false), p.Attr.Def.Name())
	if p.Attr.Sub != nil {
		m, _ := cur.(map[string]any)
		cur = mustGet(m, p.Attr.Sub.Name())
	}
	return reflect.DeepEqual(cur, v)
}

// container returns the object that holds attributes of schema ext,
// creating it when asked. Extension objects are re-keyed to the canonical URN.
func (a *applier) container(ext string, create bool) map[string]any {
	if ext == "" {
		return a.doc
	}
	_, v, _ := getKey(a.doc, ext)
	m, ok := v.(map[string]any)
	if !ok {
		if !create {
			return nil
		}
		m = map[string]any{}
	}
	setKey(a.doc, ext, m)
	return m
}

// whole handles a path naming a whole attribute.
func (a *applier) whole(cont map[string]any, ext string, def schema.CoreAttribute, v any) error {
	name := def.Name()
	_, cur, _ := getKey(cont, name)
	op := a.op.Op
	if op == "replace" && v == nil {
		op = "remove"
	}
	switch {
	case op == "remove" && def.MultiValued() && v != nil:
		drop, err := coerceMulti(def, v)
		if err != nil {
			return a.fail(errors.ScimTypeInvalidValue, "%v", err)
		}
		dropIdx := newElementIndex(def, nil)
		for i, el := range drop {
			dropIdx.put(el, i)
		}
		var kept []any
		for _, el := range asList(cur) {
			if dropIdx.find(drop, el) < 0 {
				kept = append(kept, el)
			}
		}
		setOrDelete(cont, name, kept)
	case op == "remove":
		delKey(cont, name)
	case def.MultiValued():
		items, err := coerceMulti(def, v)
		if err != nil {
			return a.fail(errors.ScimTypeInvalidValue, "%v", err)
		}
		var list []any
		var touched []int
		if op == "add" {
			list = asList(cur)
		}
		c := a.idx
		cached := op == "add" && c != nil && c.step == a.step-1 && c.ext == ext && c.name == name && sameList(c.list, list)
		var idx *elementIndex
		if cached {
			idx = c.idx
		} else {
			idx = newElementIndex(def, list)
		}
		for _, it := range items {
			list, touched = idx.add(list, it, touched)
		}
		// The list was normalized when the cached index was built; only
		// an element this op made primary can break that.
		if !cached || anyPrimary(list, touched) {
			normalizePrimary(def, list, touched)
		}
		setOrDelete(cont, name, list)
		a.idx = nil
		if op == "add" {
			a.idx = &cachedIndex{step: a.step, ext: ext, name: name, list: list, idx: idx}
		}
	case def.AttributeType() == "complex":
		m, err := coerceComplex(def, v)
		if err != nil {
			return a.fail(errors.ScimTypeInvalidValue, "%v", err)
		}
		// RFC 7644 §3.5.2.1/3: both add and replace merge sub-attributes.
		merged, _ := cur.(map[string]any)
		if merged == nil {
			merged = map[string]any{}
		}
		for k, sv := range m {
			setKey(merged, k, sv)
		}
		setOrDelete(cont, name, merged)
	default:
		sv, err := coerceSimple(def, v)
		if err != nil {
			return a.fail(errors.ScimTypeInvalidValue, "%v", err)
		}
		setKey(cont, name, sv)
	}
	return nil
}

// sub handles attr.sub without a filter.
func (a *applier) sub(cont map[string]any, p query.Path, v any) error {
	def, sd := p.Attr.Def, *p.Attr.Sub
	name := def.Name()
	_, cur, _ := getKey(cont, name)
	var sv any
	if a.op.Op != "remove" && v != nil {
		var err error
		if sv, err = coerceSimple(sd, v); err != nil {
			return a.fail(errors.ScimTypeInvalidValue, "%s.%v", name, err)
		}
	}
	set := func(el map[string]any) {
		if sv == nil {
			delKey(el, sd.Name())
		} else {
			setKey(el, sd.Name(), sv)
		}
	}
	if !def.MultiValued() {
		m, _ := cur.(map[string]any)
		if m == nil {
			if sv == nil {
				return nil
			}
			m = map[string]any{}
		}
		set(m)
		setOrDelete(cont, name, m)
		return nil
	}
	list := asList(cur)
	if len(list) == 0 && sv != nil {
		list = []any{map[string]any{}}
	}
	var touched []int
	for i, el := range list {
		if m, ok := el.(map[string]any); ok {
			set(m)
			touched = append(touched, i)
		}
	}
	normalizePrimary(def, list, touched)
	setOrDelete(cont, name, list)
	return nil
}

// filtered handles attr[filter] and attr[filter].sub.
func (a *applier) filtered(cont map[string]any, p query.Path, v any) error {
	def := p.Attr.Def
	name := def.Name()
	_, cur, _ := getKey(cont, name)
	var list []any
	if def.MultiValued() {
		list = asList(cur)
	} else if m, ok := cur.(map[string]any); ok {
		list = []any{m}
	}
	var matched []int
	for i, el := range list {
		if m, ok := el.(map[string]any); ok && p.Filter.Match(m) {
			matched = append(matched, i)
		}
	}
	op := a.op.Op
	if op == "replace" && v == nil {
		op = "remove"
	}
	if op == "add" && v == nil {
		return a.fail(errors.ScimTypeInvalidValue, "add needs a value")
	}
	var value any
	if op != "remove" {
		var err error
		if p.Attr.Sub != nil {
			value, err = coerceSimple(*p.Attr.Sub, v)
		} else {
			value, err = coerceComplex(def, v)
		}
		if err != nil {
			return a.fail(errors.ScimTypeInvalidValue, "%v", err)
		}
	}
	switch {
	case op == "remove" && p.Attr.Sub == nil:
		var kept []any
		for i, el := range list {
			if !containsIndex(matched, i) {
				kept = append(kept, el)
			}
		}
		list = kept
	case op == "remove":
		for _, i := range matched {
			delKey(list[i].(map[string]any), p.Attr.Sub.Name())
		}
	case len(matched) == 0:
		el, ok := p.Filter.Equalities()
		if !ok {
			return a.fail(errors.ScimTypeNoTarget, "no element of %s matches the filter", name)
		}
		if !def.MultiValued() && len(list) > 0 {
			return a.fail(errors.ScimTypeNoTarget, "%s does not match the filter", name)
		}
		if p.Attr.Sub != nil {
			el[p.Attr.Sub.Name()] = value
		} else {
			for k, sv := range value.(map[string]any) {
				el[k] = sv
			}
		}
		list = append(list, el)
		matched = []int{len(list) - 1}
	default:
		for _, i := range matched {
			m := list[i].(map[string]any)
			switch {
			case p.Attr.Sub != nil:
				setKey(m, p.Attr.Sub.Name(), value)
			case op == "replace":
				list[i] = query.DeepCopy(value)
			default:
				for k, sv := range value.(map[string]any) {
					setKey(m, k, query.DeepCopy(sv))
				}
			}
		}
	}
	normalizePrimary(def, list, matched)
	if def.MultiValued() {
		setOrDelete(cont, name, list)
	} else if len(list) == 1 {
		setOrDelete(cont, name, list[0])
	} else {
		delKey(cont, name)
	}
	return nil
}

// elementIndex finds equal elements of a multi-valued attribute without a
// quadratic scan: a PATCH may carry tens of thousands of members.
type elementIndex struct {
	def    schema.CoreAttribute
	byKey  map[string][]int
	others []int
}

func newElementIndex(def schema.CoreAttribute, list []any) *elementIndex {
	x := &elementIndex{def: def, byKey: map[string][]int{}}
	for i, el := range list {
		x.put(el, i)
	}
	return x
}

// key is what sameElement compares first: the value, folded unless caseExact.
func (x *elementIndex) key(el any) (string, bool) {
	caseExact := x.def.CaseExact()
	if m, ok := el.(map[string]any); ok {
		vd, hasValue := x.def.SubAttributes().ContainsAttribute("value")
		if !hasValue {
			return "", false
		}
		el, caseExact = mustGet(m, "value"), vd.CaseExact()
	}
	s, ok := el.(string)
	if !ok {
		return "", false
	}
	if !caseExact {
		s = strings.ToLower(s)
	}
	return s, true
}

func (x *elementIndex) put(el any, i int) {
	if k, ok := x.key(el); ok {
		x.byKey[k] = append(x.byKey[k], i)
	} else {
		x.others = append(x.others, i)
	}
}

// find returns the index in list of an element equal to el, or -1.
func (x *elementIndex) find(list []any, el any) int {
	cands := x.others
	if k, ok := x.key(el); ok {
		cands = x.byKey[k]
	}
	for _, i := range cands {
		if sameElement(x.def, list[i], el) {
			return i
		}
	}
	return -1
}

// add appends it to list unless an equal element is there, in which case it
// merges it into that element. An element whose value another element
// already holds (of another type) changes nothing (RFC 7644 §3.5.2.1).
// touched collects the index written.
func (x *elementIndex) add(list []any, it any, touched []int) ([]any, []int) {
	if i := x.find(list, it); i >= 0 {
		if em, ok := list[i].(map[string]any); ok {
			if im, ok := it.(map[string]any); ok {
				for k, v := range im {
					setKey(em, k, v)
				}
			}
		}
		return list, append(touched, i)
	}
	if x.holdsValue(list, it) {
		return list, touched
	}
	x.put(it, len(list))
	return append(list, it), append(touched, len(list))
}

// holdsValue reports whether an element of list has el's value.
func (x *elementIndex) holdsValue(list []any, el any) bool {
	k, ok := x.key(el)
	if !ok {
		return false
	}
	_, isObj := el.(map[string]any)
	return isObj && len(x.byKey[k]) > 0
}

func anyPrimary(list []any, touched []int) bool {
	for _, i := range touched {
		if m, ok := list[i].(map[string]any); ok {
			if b, _ := mustGet(m, "primary").(bool); b {
				return true
			}
		}
	}
	return false
}

// normalizePrimary keeps at most one element with primary true (RFC 7643
// §2.4): the last one this operation wrote, else the first found.
func normalizePrimary(def schema.CoreAttribute, list []any, touched []int) {
	if _, ok := def.SubAttributes().ContainsAttribute("primary"); !ok {
		return
	}
	isPrimary := func(i int) bool {
		m, ok := list[i].(map[string]any)
		if !ok {
			return false
		}
		b, _ := mustGet(m, "primary").(bool)
		return b
	}
	winner := -1
	for _, i := range touched {
		if i < len(list) && isPrimary(i) {
			winner = i
		}
	}
	for i := range list {
		if !isPrimary(i) {
			continue
		}
		if winner == -1 {
			winner = i
		}
		if i != winner {
			setKey(list[i].(map[string]any), "primary", false)
		}
	}
}

// syncSchemas keeps "schemas" listing exactly the extensions the document
// carries, and drops extension objects left empty.
func syncSchemas(doc map[string]any, r Resource) {
	_, cur, _ := getKey(doc, "schemas")
	var list []any
	for _, s := range asList(cur) {
		if s, ok := s.(string); ok {
			if urn, isExt := r.SchemaURN(s); isExt {
				s = urn
			}
			if !containsString(list, s) {
				list = append(list, s)
			}
		}
	}
	if r.Schema.ID != "" && !containsString(list, r.Schema.ID) {
		list = append([]any{r.Schema.ID}, list...)
	}
	for _, e := range r.Extensions {
		_, v, found := getKey(doc, e.ID)
		m, _ := v.(map[string]any)
		if found && len(m) == 0 {
			delKey(doc, e.ID)
		}
		if len(m) > 0 {
			if !containsString(list, e.ID) {
				list = append(list, e.ID)
			}
		} else {
			list = removeString(list, e.ID)
		}
	}
	setKey(doc, "schemas", list)
}

func asList(v any) []any {
	switch v := v.(type) {
	case []any:
		return v
	case nil:
		return nil
	}
	return []any{v}
}

// setOrDelete stores v, or removes the attribute when v is unassigned.
func setOrDelete(m map[string]any, name string, v any) {
	if attr.Assigned(v) {
		setKey(m, name, v)
	} else {
		delKey(m, name)
	}
}

func containsIndex(list []int, i int) bool {
	for _, x := range list {
		if x == i {
			return true
		}
	}
	return false
}

func containsString(list []any, s string) bool {
	for _, x := range list {
		if x, ok := x.(string); ok && strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func removeString(list []any, s string) []any {
	out := list[:0:0]
	for _, x := range list {
		if x, ok := x.(string); ok && strings.EqualFold(x, s) {
			continue
		}
		out = append(out, x)
	}
	return out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
