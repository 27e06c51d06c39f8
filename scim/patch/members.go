package patch

import (
	"fmt"
	"strings"

	"github.com/elimity-com/scim/errors"
	"github.com/scimflare/scimflare/scim/query"
)

// MemberAction is what a MemberOp does to a group's member list.
type MemberAction int

const (
	// MemberAdd adds Members; ones already present are kept once.
	MemberAdd MemberAction = iota + 1
	// MemberRemove removes Members; ones not present are ignored.
	MemberRemove
	// MemberRemoveAll empties the group; Members is empty.
	MemberRemoveAll
	// MemberReplaceAll makes Members (possibly none) the whole member list.
	MemberReplaceAll
)

func (a MemberAction) String() string {
	switch a {
	case MemberAdd:
		return "add"
	case MemberRemove:
		return "remove"
	case MemberRemoveAll:
		return "remove-all"
	case MemberReplaceAll:
		return "replace-all"
	}
	return fmt.Sprintf("MemberAction(%d)", int(a))
}

// MemberValue names one member.
type MemberValue struct {
	Value string // the member's id
	Type  string // "User", "Group", or "" when the client did not say
}

// MemberOp is one change to a group's member list.
type MemberOp struct {
	Action  MemberAction
	Members []MemberValue
}

// SplitMembers separates the operations of a Group PATCH that touch
// "members" from the rest, so that membership is changed in the store
// without loading the member list. The member operations keep their order.
// Forms understood:
//   - add members [...] (also a single object or bare id) -> MemberAdd
//   - replace members [...] -> MemberReplaceAll; replace members [] (Okta) -> MemberReplaceAll with none
//   - remove members -> MemberRemoveAll
//   - remove members with a value list (Entra) -> MemberRemove of those
//   - remove members[value eq "a"] and members[value eq "a" or value eq "b"] (Okta) -> MemberRemove
//   - add/replace without path whose object carries "members" -> MemberAdd / MemberReplaceAll;
//     its other keys stay an attribute operation
//
// A members filter testing anything but value eq is 400 invalidFilter; a
// member without a string value, or with a type other than User or Group, is
// 400 invalidValue. Whether each id names an existing user or group is for
// the caller to check.
func SplitMembers(ops []Operation) (attrOps []Operation, memberOps []MemberOp, err error) {
	r := groupResource
	for i, op := range ops {
		opName := strings.ToLower(strings.TrimSpace(op.Op))
		fail := func(t errors.ScimType, format string, args ...any) error {
			return badRequest(t, "Operations[%d] (%s%s): %s.", i, opName, quotedPath(op.Path), fmt.Sprintf(format, args...))
		}
		if op.Path == "" {
			m, ok := op.Value.(map[string]any)
			if !ok {
				attrOps = append(attrOps, op)
				continue
			}
			rest := map[string]any{}
			for _, k := range sortedKeys(m) {
				if !isMembers(k, r) {
					rest[k] = m[k]
					continue
				}
				members, err := memberValues(m[k])
				if err != nil {
					return nil, nil, fail(errors.ScimTypeInvalidValue, "%v", err)
				}
				switch opName {
				case "add":
					if len(members) > 0 {
						memberOps = append(memberOps, MemberOp{Action: MemberAdd, Members: members})
					}
				case "replace":
					memberOps = append(memberOps, MemberOp{Action: MemberReplaceAll, Members: members})
				default:
					return nil, nil, fail(errors.ScimTypeNoTarget, "remove needs a path")
				}
			}
			if len(rest) > 0 {
				attrOps = append(attrOps, Operation{Op: op.Op, Value: rest})
			}
			continue
		}
		p, err := query.ParsePath(op.Path, r)
		if err != nil {
			return nil, nil, badRequest(errorType(err), "Operations[%d] (%s): %s", i, opName, errorDetail(err))
		}
		if p.Schema != "" || !strings.EqualFold(p.Attr.Def.Name(), "members") {
			attrOps = append(attrOps, op)
			continue
		}
		if p.Filter != nil {
			if opName != "remove" {
				return nil, nil, fail(errors.ScimTypeInvalidPath, "a filtered members path is only valid for remove; add or replace whole members")
			}
			if p.Attr.Sub != nil {
				return nil, nil, fail(errors.ScimTypeMutability, "member sub-attributes are immutable")
			}
			ids, ok := p.Filter.OrEqualities("value")
			if !ok {
				return nil, nil, fail(errors.ScimTypeInvalidFilter, "a members filter may only test value eq \"id\", joined by or")
			}
			members := make([]MemberValue, 0, len(ids))
			seen := map[string]bool{}
			for _, id := range ids {
				if !seen[id] {
					seen[id] = true
					members = append(members, MemberValue{Value: id})
				}
			}
			memberOps = append(memberOps, MemberOp{Action: MemberRemove, Members: members})
			continue
		}
		if p.Attr.Sub != nil {
			return nil, nil, fail(errors.ScimTypeMutability, "member sub-attributes are immutable")
		}
		var members []MemberValue
		if op.Value != nil {
			if members, err = memberValues(op.Value); err != nil {
				return nil, nil, fail(errors.ScimTypeInvalidValue, "%v", err)
			}
		}
		switch {
		case opName == "add" && op.Value == nil:
			return nil, nil, fail(errors.ScimTypeInvalidValue, "add needs a value")
		case opName == "add":
			if len(members) > 0 {
				memberOps = append(memberOps, MemberOp{Action: MemberAdd, Members: members})
			}
		case opName == "replace":
			memberOps = append(memberOps, MemberOp{Action: MemberReplaceAll, Members: members})
		case opName == "remove" && op.Value == nil:
			memberOps = append(memberOps, MemberOp{Action: MemberRemoveAll})
		case opName == "remove":
			if len(members) > 0 {
				memberOps = append(memberOps, MemberOp{Action: MemberRemove, Members: members})
			}
		default:
			return nil, nil, fail(errors.ScimTypeInvalidValue, "op must be add, remove or replace")
		}
	}
	return attrOps, memberOps, nil
}

// groupResource is built once: building the Group schema compiles its
// attribute names' pattern, which cost more than the rest of a one-member
// PATCH's reading.
var groupResource = query.GroupResource()

func isMembers(key string, r Resource) bool {
	p, err := query.ParsePath(key, r)
	return err == nil && p.Schema == "" && p.Filter == nil && p.Attr.Sub == nil && strings.EqualFold(p.Attr.Def.Name(), "members")
}

// memberValues reads a members value: an array of {"value","type","$ref",…}
// objects, a single such object, or bare id strings.
func memberValues(v any) ([]MemberValue, error) {
	list, ok := v.([]any)
	if !ok {
		list = []any{v}
	}
	out := make([]MemberValue, 0, len(list))
	seen := make(map[string]bool, len(list))
	for _, el := range list {
		var mv MemberValue
		switch el := el.(type) {
		case nil:
			continue
		case string:
			mv.Value = el
		case map[string]any:
			id, ok := mustGet(el, "value").(string)
			if !ok {
				return nil, fmt.Errorf("members value must be a string id, not %s", describe(mustGet(el, "value")))
			}
			mv.Value = id
			switch t := mustGet(el, "type").(type) {
			case nil:
			case string:
				typ, ok := MemberType(t)
				if !ok {
					return nil, fmt.Errorf("members type must be User or Group, not %q", t)
				}
				mv.Type = typ
			default:
				return nil, fmt.Errorf("members type must be User or Group, not %s", describe(t))
			}
			if ref, _ := mustGet(el, "$ref").(string); mv.Type == "" {
				switch {
				case strings.Contains(ref, "/Groups/"):
					mv.Type = "Group"
				case strings.Contains(ref, "/Users/"):
					mv.Type = "User"
				}
			}
		default:
			return nil, fmt.Errorf("a member must be an object with a value, not %s", describe(el))
		}
		mv.Value = strings.TrimSpace(mv.Value)
		if mv.Value == "" {
			return nil, fmt.Errorf("a member needs a non-empty value")
		}
		if !seen[mv.Value] {
			seen[mv.Value] = true
			out = append(out, mv)
		}
	}
	return out, nil
}

func errorType(err error) errors.ScimType {
	if se, ok := err.(errors.ScimError); ok {
		return se.ScimType
	}
	return errors.ScimTypeInvalidPath
}

func errorDetail(err error) string {
	if se, ok := err.(errors.ScimError); ok {
		return se.Detail
	}
	return err.Error()
}

// MemberType is a member's type as scimflare stores it: "User" or "Group"
// for either in any letter case, "" for none; ok is false for anything
// else.
func MemberType(t string) (typ string, ok bool) {
	switch {
	case strings.EqualFold(t, "user"):
		return "User", true
	case strings.EqualFold(t, "group"):
		return "Group", true
	}
	return "", t == ""
}
