package scim

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	elimity "github.com/elimity-com/scim"
	scimerr "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"

	"github.com/scimflare/scimflare/scim/patch"
	"github.com/scimflare/scimflare/scim/query"
	"github.com/scimflare/scimflare/store"
)

var groupResource = patch.Resource{Schema: schema.CoreGroupSchema()}

var groupFieldAttrs = []string{"id", "meta", "schemas", "externalId", "displayName", "members"}

func groupFromAttrs(attrs map[string]any, g *store.Group) error {
	name, _ := attrs["displayName"].(string)
	if strings.TrimSpace(name) == "" {
		return scimError(http.StatusBadRequest, scimerr.ScimTypeInvalidValue, "displayName is required and must be a non-empty string")
	}
	g.DisplayName = name
	g.ExternalID, _ = attrs["externalId"].(string)
	_, raw, err := storedDoc(attrs, groupFieldAttrs, "group")
	if err != nil {
		return err
	}
	g.Doc = raw
	return nil
}

// memberRefs reads members[] of a validated body. A member without a type
// may be a user or a group; the store resolves it.
func memberRefs(v any) ([]store.MemberRef, error) {
	list, _ := v.([]any)
	refs := make([]store.MemberRef, 0, len(list))
	for i, item := range list {
		m, _ := item.(map[string]any)
		id, _ := m["value"].(string)
		if id == "" {
			return nil, scimError(http.StatusBadRequest, scimerr.ScimTypeInvalidValue, "members[%d] has no value (the member's id)", i)
		}
		t, _ := m["type"].(string)
		refs = append(refs, store.MemberRef{ID: id, Type: memberType(t)})
	}
	return refs, nil
}

func memberType(t string) store.MemberType {
	switch strings.ToLower(t) {
	case "user":
		return store.MemberUser
	case "group":
		return store.MemberGroup
	}
	return ""
}

func (s *Server) groupAttrs(rd store.Reader, g store.Group, withMembers bool) (map[string]any, error) {
	doc := map[string]any{}
	if len(g.Doc) > 0 {
		_ = json.Unmarshal(g.Doc, &doc)
	}
	doc["displayName"] = g.DisplayName
	if !withMembers {
		return doc, nil
	}
	members := []any{}
	err := rd.GroupMembers(g.ID, func(m store.Membership) bool {
		kind := "Users"
		if m.Type == store.MemberGroup {
			kind = "Groups"
		}
		members = append(members, map[string]any{
			"value": m.ID,
			"type":  string(m.Type),
			"$ref":  s.opt.BasePath + "/" + kind + "/" + m.ID,
		})
		return true
	})
	doc["members"] = members
	return doc, err
}

func groupDoc(g store.Group, attrs map[string]any) map[string]any {
	doc := make(map[string]any, len(attrs)+4)
	for k, v := range attrs {
		doc[k] = v
	}
	doc["id"] = g.ID
	if g.ExternalID != "" {
		doc["externalId"] = g.ExternalID
	}
	doc["schemas"] = []any{groupSchemaURN}
	doc["meta"] = map[string]any{
		"resourceType": "Group",
		"created":      g.Meta.Created.Format(time.RFC3339Nano),
		"lastModified": g.Meta.LastModified.Format(time.RFC3339Nano),
		"version":      versionTag(g.Meta.Version),
	}
	return doc
}

func groupResourceOf(g store.Group, attrs map[string]any, want, excluded []string) elimity.Resource {
	if len(want) > 0 || len(excluded) > 0 {
		attrs = query.Project(attrs, want, excluded)
	}
	res := elimity.Resource{ID: g.ID, Attributes: attrs, Meta: meta(g.Meta)}
	if g.ExternalID != "" {
		res.ExternalID = optional.NewString(g.ExternalID)
	}
	return res
}

// readGroup is g as a SCIM resource, its attributes (and members when
// withMembers) read from one snapshot of the store.
func (s *Server) readGroup(g store.Group, withMembers bool, want, excluded []string) (elimity.Resource, error) {
	var res elimity.Resource
	err := s.st.View(func(rd store.Reader) error {
		attrs, err := s.groupAttrs(rd, g, withMembers)
		res = groupResourceOf(g, attrs, want, excluded)
		return err
	})
	return res, err
}

// wantMembers says whether a response needs the member list, so that
// excludedAttributes=members (and attributes without members) never reads
// the members of a large group.
func wantMembers(attrs, excluded []string) bool {
	for _, e := range excluded {
		if strings.EqualFold(e, "members") || strings.HasPrefix(strings.ToLower(e), "members.") {
			return false
		}
	}
	if len(attrs) == 0 {
		return true
	}
	for _, a := range attrs {
		if strings.EqualFold(a, "members") || strings.HasPrefix(strings.ToLower(a), "members.") || strings.HasPrefix(strings.ToLower(a), "members[") {
			return true
		}
	}
	return false
}

type groupHandler struct {
	s *Server
	patchedByServer
}

func (h groupHandler) Create(r *http.Request, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	s := h.s
	var g store.Group
	if err := groupFromAttrs(attrs, &g); err != nil {
		return elimity.Resource{}, err
	}
	refs, err := memberRefs(attrs["members"])
	if err != nil {
		return elimity.Resource{}, err
	}
	created, err := s.st.CreateGroup(s.now(), g, refs)
	if err != nil {
		return elimity.Resource{}, s.toSCIM(err, "Group", g.DisplayName)
	}
	s.notify(Change{GroupIDs: []string{created.ID}})
	res, err := s.readGroup(created, true, nil, nil)
	if err != nil {
		return elimity.Resource{}, s.toSCIM(err, "Group", created.ID)
	}
	return res, nil
}

func (h groupHandler) Get(r *http.Request, id string) (elimity.Resource, error) {
	s := h.s
	want, excluded := listParams(r)
	var res elimity.Resource
	err := s.st.View(func(rd store.Reader) error {
		g, err := rd.GetGroup(id)
		if err != nil {
			return err
		}
		attrs, err := s.groupAttrs(rd, g, wantMembers(want, excluded))
		res = groupResourceOf(g, attrs, want, excluded)
		return err
	})
	if err != nil {
		return elimity.Resource{}, s.toSCIM(err, "Group", id)
	}
	return res, nil
}

func (h groupHandler) GetAll(r *http.Request, p elimity.ListRequestParams) (elimity.Page, error) {
	s := h.s
	want, excluded := listParams(r)
	withMembers := wantMembers(want, excluded)
	f, err := listFilter(r, groupResource)
	if err != nil {
		return elimity.Page{}, s.toSCIM(err, "Group", "")
	}
	var raw string
	if f != nil {
		raw = strings.ToLower(f.String())
	}
	// A filter on members needs them in the document it is matched against.
	filterMembers := strings.Contains(raw, "members")
	// The member a members.value hint names is all the filter needs of the
	// members only when the hint is the filter's one mention of them.
	hintSuffices := strings.Count(raw, "members") == 1
	page := elimity.Page{Resources: []elimity.Resource{}}
	skip := max(p.StartIndex, 1) - 1
	err = s.st.View(func(rd store.Reader) error {
		consider := func(g store.Group, hinted map[string]any) (bool, error) {
			var attrs map[string]any
			var err error
			if f != nil {
				matchAttrs := hinted
				if matchAttrs == nil {
					if matchAttrs, err = s.groupAttrs(rd, g, filterMembers); err != nil {
						return false, err
					}
				}
				if !f.Match(groupDoc(g, matchAttrs)) {
					return true, nil
				}
			}
			if page.TotalResults >= skip && len(page.Resources) < p.Count {
				if attrs, err = s.groupAttrs(rd, g, withMembers); err != nil {
					return false, err
				}
				page.Resources = append(page.Resources, groupResourceOf(g, attrs, want, excluded))
			}
			page.TotalResults++
			return true, nil
		}
		if f == nil {
			n, err := rd.CountGroups()
			if err != nil {
				return err
			}
			page.TotalResults = n
			if p.Count <= 0 || skip >= n {
				return nil
			}
			i := 0
			var ierr error
			err = rd.ListGroups("", func(g store.Group) bool {
				if i >= skip {
					attrs, err := s.groupAttrs(rd, g, withMembers)
					if err != nil {
						ierr = err
						return false
					}
					page.Resources = append(page.Resources, groupResourceOf(g, attrs, want, excluded))
				}
				i++
				return len(page.Resources) < p.Count
			})
			return errors.Join(err, ierr)
		}
		if attr, val, ok := f.EqualityHint("displayName", "externalId", "id", "members.value"); ok {
			groups, hinted, err := groupCandidates(rd, attr, val)
			if err != nil {
				return err
			}
			for _, g := range groups {
				var h map[string]any
				if hinted && hintSuffices {
					// Matching needs only the member the hint names, not all of them.
					h = map[string]any{"displayName": g.DisplayName, "members": []any{map[string]any{"value": val}}}
					if len(g.Doc) > 0 {
						_ = json.Unmarshal(g.Doc, &h)
						h["displayName"] = g.DisplayName
						h["members"] = []any{map[string]any{"value": val}}
					}
				}
				if _, err := consider(g, h); err != nil {
					return err
				}
			}
			return nil
		}
		var ierr error
		err := rd.ListGroups("", func(g store.Group) bool {
			ok, err := consider(g, nil)
			ierr = err
			return ok
		})
		return errors.Join(err, ierr)
	})
	if err != nil {
		return elimity.Page{}, s.toSCIM(err, "Group", "")
	}
	setListCount(r, len(page.Resources))
	return page, nil
}

// groupCandidates answers an equality hint from an index. hinted reports a
// members.value lookup, answered from the member->groups index.
func groupCandidates(rd store.Reader, attr, val string) (groups []store.Group, hinted bool, err error) {
	switch strings.ToLower(attr) {
	case "displayname":
		g, err := rd.GroupByDisplayName(val)
		if errors.Is(err, store.ErrNotFound) {
			return nil, false, nil
		}
		return []store.Group{g}, false, err
	case "id":
		g, err := rd.GetGroup(val)
		if errors.Is(err, store.ErrNotFound) {
			return nil, false, nil
		}
		return []store.Group{g}, false, err
	case "externalid":
		gs, err := rd.GroupsByExternalID(val)
		return gs, false, err
	default: // members.value
		parents, err := rd.GroupsOf(val)
		if errors.Is(err, store.ErrNotFound) {
			// A filter naming a member that does not exist matches no group.
			return nil, true, nil
		}
		if err != nil {
			return nil, true, err
		}
		for _, p := range parents {
			g, err := rd.GetGroup(p.ID)
			if err != nil {
				return nil, true, err
			}
			groups = append(groups, g)
		}
		return groups, true, nil
	}
}

// bodyHasMembers tells a PUT that replaces members from one that leaves
// them out. Leaving members out keeps them: removing everyone because an
// IdP sent a rename without the member list would lock people out.
func bodyHasMembers(body []byte) bool {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil {
		return false
	}
	for k := range top {
		if strings.EqualFold(k, "members") {
			return true
		}
	}
	return false
}

// memberDelta collects which members a write added or removed, for the
// reconciler. It is reset at the start of every (re-)run of an update fn.
type memberDelta struct{ users, groups []string }

// note records a member; one whose type the client left out is recorded as
// a user id, which the reconciler resolves to a user or a group.
func (d *memberDelta) note(ref store.MemberRef) {
	if ref.Type == store.MemberGroup {
		d.groups = append(d.groups, ref.ID)
	} else {
		d.users = append(d.users, ref.ID)
	}
}

func (d *memberDelta) change(groupID string, renamed bool) Change {
	c := Change{UserIDs: d.users, GroupIDs: d.groups}
	if renamed {
		c.GroupIDs = append(c.GroupIDs, groupID)
	}
	return c
}

// replaceMembers makes the member list exactly refs, keeping the Since of
// members that stay (their time-bound grants must not restart).
func replaceMembers(tx store.GroupTx, refs []store.MemberRef, d *memberDelta) error {
	added, removed, err := tx.SetMembers(refs)
	for _, m := range added {
		d.note(m)
	}
	for _, m := range removed {
		d.note(m)
	}
	return err
}

func (h groupHandler) Replace(r *http.Request, id string, attrs elimity.ResourceAttributes) (elimity.Resource, error) {
	s := h.s
	ifv, _ := ifMatch(r)
	replace := bodyHasMembers(rawBody(r))
	refs, err := memberRefs(attrs["members"])
	if err != nil {
		return elimity.Resource{}, err
	}
	var d memberDelta
	renamed := false
	g, err := s.st.UpdateGroup(id, s.now(), ifv, func(tx store.GroupTx) error {
		d, renamed = memberDelta{}, false
		cur := tx.Group()
		next := cur
		if err := groupFromAttrs(attrs, &next); err != nil {
			return err
		}
		renamed = !strings.EqualFold(cur.DisplayName, next.DisplayName) || cur.ExternalID != next.ExternalID
		if err := tx.SetGroup(next); err != nil {
			return err
		}
		if replace {
			return replaceMembers(tx, refs, &d)
		}
		return nil
	})
	if err != nil {
		return elimity.Resource{}, s.toSCIM(err, "Group", id)
	}
	s.notify(d.change(g.ID, renamed))
	res, err := s.readGroup(g, true, nil, nil)
	if err != nil {
		return elimity.Resource{}, s.toSCIM(err, "Group", id)
	}
	return res, nil
}

func (h groupHandler) Delete(r *http.Request, id string) error {
	s := h.s
	members, err := s.st.DeleteGroup(id)
	if err != nil {
		return s.toSCIM(err, "Group", id)
	}
	var d memberDelta
	for _, m := range members {
		d.note(m)
	}
	s.notify(d.change(id, false))
	return nil
}

// patchGroup applies attribute and member operations in one transaction.
// Member operations touch only the members they name, so a one-member PATCH
// on a 100k-member group costs the same as on a small one.
func (s *Server) patchGroup(w http.ResponseWriter, r *http.Request, id string, body []byte) {
	attrOps, memberOps, err := s.groupPatchOps(body)
	if err != nil {
		writeError(w, s.toSCIM(err, "Group", id))
		return
	}
	ifv, _ := ifMatch(r)
	// Built before the write: every other writer waits while fn runs.
	edits := make([]memberEdit, len(memberOps))
	for i, op := range memberOps {
		edits[i] = memberEditOf(op)
	}
	var d memberDelta
	renamed := false
	g, err := s.st.UpdateGroup(id, s.now(), ifv, func(tx store.GroupTx) error {
		d, renamed = memberDelta{}, false
		if len(attrOps) > 0 {
			cur := tx.Group()
			attrs := map[string]any{}
			if len(cur.Doc) > 0 {
				if err := json.NewDecoder(bytes.NewReader(cur.Doc)).Decode(&attrs); err != nil {
					return err
				}
			}
			attrs["displayName"] = cur.DisplayName
			doc := groupDoc(cur, attrs)
			delete(doc, "meta")
			delete(doc, "schemas")
			next, err := patch.Apply(doc, attrOps, groupResource)
			if err != nil {
				return err
			}
			deleteFold(next, "members")
			ext, _ := next["externalId"].(string)
			next["schemas"] = []any{groupSchemaURN}
			validated, serr := schema.CoreGroupSchema().Validate(next)
			if serr != nil {
				return patchValidationError(*serr)
			}
			if ext != "" {
				validated["externalId"] = ext
			}
			updated := cur
			if err := groupFromAttrs(validated, &updated); err != nil {
				return err
			}
			renamed = !strings.EqualFold(cur.DisplayName, updated.DisplayName) || cur.ExternalID != updated.ExternalID
			if err := tx.SetGroup(updated); err != nil {
				return err
			}
		}
		for _, e := range edits {
			if err := e.apply(tx, &d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		writeError(w, s.toSCIM(err, "Group", id))
		return
	}
	s.notify(d.change(g.ID, renamed))
	want, excluded := listParams(r)
	s.writePatched(w, r, want, excluded, versionTag(g.Meta.Version), func() elimity.Resource {
		res, _ := s.readGroup(g, wantMembers(want, excluded) && len(want) > 0, want, excluded)
		return res
	}, "/Groups/"+g.ID)
}

// groupPatchOps is a Group PATCH body as attribute and member operations:
// the shapes IdPs send for one-member changes read by memberPatch, the rest
// (and every error) by the patch package.
func (s *Server) groupPatchOps(body []byte) (attrOps []patch.Operation, memberOps []patch.MemberOp, err error) {
	if !s.viaLibrary {
		if ops, ok := memberPatch(body); ok {
			return nil, ops, nil
		}
	}
	ops, err := patch.Parse(body)
	if err != nil {
		return nil, nil, err
	}
	return patch.SplitMembers(ops)
}

// memberEdit is a member operation with its members as store references.
type memberEdit struct {
	action patch.MemberAction
	refs   []store.MemberRef
}

func memberEditOf(op patch.MemberOp) memberEdit {
	refs := make([]store.MemberRef, len(op.Members))
	for i, m := range op.Members {
		refs[i] = store.MemberRef{ID: m.Value, Type: memberType(m.Type)}
	}
	return memberEdit{action: op.Action, refs: refs}
}

func (e memberEdit) apply(tx store.GroupTx, d *memberDelta) error {
	refs := e.refs
	switch e.action {
	case patch.MemberAdd:
		for _, ref := range refs {
			added, err := tx.AddMember(ref)
			if err != nil {
				return err
			}
			if added {
				d.note(ref)
			}
		}
	case patch.MemberRemove:
		for _, ref := range refs {
			removed, err := tx.RemoveMember(ref.ID)
			if err != nil {
				return err
			}
			if removed {
				d.note(ref)
			}
		}
	case patch.MemberRemoveAll:
		removed, err := tx.RemoveAllMembers()
		if err != nil {
			return err
		}
		for _, m := range removed {
			d.note(m)
		}
	case patch.MemberReplaceAll:
		return replaceMembers(tx, refs, d)
	default:
		return scimError(http.StatusBadRequest, scimerr.ScimTypeInvalidValue, "unsupported member operation")
	}
	return nil
}
