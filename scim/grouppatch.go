package scim

import (
	"strings"

	"github.com/scimflare/scimflare/scim/patch"
)

// memberPatch reads the Group PATCH bodies IdPs send to change members one
// or a few at a time, without the generic decoder and path parser:
//
//	{"op":"add","path":"members","value":[{"value":"<id>"}]}      (Okta, Entra)
//	{"op":"remove","path":"members","value":[{"value":"<id>"}]}   (Entra)
//	{"op":"remove","path":"members[value eq \"<id>\"]"}          (Okta)
//
// ok is true only for a body that patch.Parse and patch.SplitMembers accept
// with no attribute operation and whose member operations are ops, exactly
// (FuzzGroupPatchAgrees holds the two to that). Anything else, errors
// included, is left to them: ok false means "not recognised", never
// "invalid". So the grammar read here is deliberately narrow: keys spelled
// exactly, each once; strings without escapes (but \" inside a filtered
// path); ids of letters, digits and -_.@:+; op add or remove in any case.
func memberPatch(body []byte) (ops []patch.MemberOp, ok bool) {
	p := memberPatchReader{b: body}
	if !p.byte('{') {
		return nil, false
	}
	var sawSchema, sawOps bool
	for first := true; ; first = false {
		if p.byte('}') {
			break
		}
		if !first && !p.byte(',') {
			return nil, false
		}
		key, ok := p.plainString()
		if !ok || !p.byte(':') {
			return nil, false
		}
		switch {
		case key == "schemas" && !sawSchema:
			sawSchema = true
			if !p.patchSchemas() {
				return nil, false
			}
		case key == "Operations" && !sawOps:
			sawOps = true
			if ops, ok = p.operations(); !ok {
				return nil, false
			}
		default:
			return nil, false
		}
	}
	p.space()
	if !sawSchema || !sawOps || p.i != len(p.b) {
		return nil, false
	}
	return ops, true
}

type memberPatchReader struct {
	b []byte
	i int
}

func (p *memberPatchReader) space() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// byte consumes c after optional whitespace.
func (p *memberPatchReader) byte(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// plainString reads a JSON string of printable ASCII without escapes: one
// whose decoded value is its bytes.
func (p *memberPatchReader) plainString() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := string(p.b[start:p.i])
			p.i++
			return s, true
		case c < 0x20 || c >= 0x7f || c == '\\':
			return "", false
		}
		p.i++
	}
	return "", false
}

// patchSchemas reads the schemas array: strings only, one of them the
// PatchOp URN in any case (as patch.Parse accepts it).
func (p *memberPatchReader) patchSchemas() bool {
	if !p.byte('[') {
		return false
	}
	found := false
	for first := true; ; first = false {
		if p.byte(']') {
			return found
		}
		if !first && !p.byte(',') {
			return false
		}
		s, ok := p.plainString()
		if !ok {
			return false
		}
		found = found || strings.EqualFold(s, patch.PatchOpURN)
	}
}

func (p *memberPatchReader) operations() ([]patch.MemberOp, bool) {
	if !p.byte('[') {
		return nil, false
	}
	var ops []patch.MemberOp
	for first := true; ; first = false {
		if p.byte(']') {
			// An empty list and one over the limit are errors the generic
			// path words.
			return ops, len(ops) > 0 && len(ops) <= patch.MaxOperations
		}
		if !first && !p.byte(',') {
			return nil, false
		}
		op, ok := p.operation()
		if !ok {
			return nil, false
		}
		ops = append(ops, op)
	}
}

// operation reads one add or remove of members.
func (p *memberPatchReader) operation() (patch.MemberOp, bool) {
	if !p.byte('{') {
		return patch.MemberOp{}, false
	}
	var name, path string
	var sawOp, sawPath, sawValue bool
	var members []patch.MemberValue
	for first := true; ; first = false {
		if p.byte('}') {
			break
		}
		if !first && !p.byte(',') {
			return patch.MemberOp{}, false
		}
		key, ok := p.plainString()
		if !ok || !p.byte(':') {
			return patch.MemberOp{}, false
		}
		switch {
		case key == "op" && !sawOp:
			sawOp = true
			if name, ok = p.plainString(); !ok {
				return patch.MemberOp{}, false
			}
		case key == "path" && !sawPath:
			sawPath = true
			if path, ok = p.pathString(); !ok {
				return patch.MemberOp{}, false
			}
		case key == "value" && !sawValue:
			sawValue = true
			if members, ok = p.memberList(); !ok {
				return patch.MemberOp{}, false
			}
		default:
			return patch.MemberOp{}, false
		}
	}
	if !sawOp || !sawPath {
		return patch.MemberOp{}, false
	}
	add := strings.EqualFold(name, "add")
	if !add && !strings.EqualFold(name, "remove") {
		return patch.MemberOp{}, false
	}
	if path == "members" {
		// A remove without a value empties the group: not this path's.
		if !sawValue {
			return patch.MemberOp{}, false
		}
		if add {
			return patch.MemberOp{Action: patch.MemberAdd, Members: members}, true
		}
		return patch.MemberOp{Action: patch.MemberRemove, Members: members}, true
	}
	const prefix, suffix = `members[value eq "`, `"]`
	if add || sawValue || !strings.HasPrefix(path, prefix) || !strings.HasSuffix(path, suffix) || len(path) < len(prefix)+len(suffix) {
		return patch.MemberOp{}, false
	}
	id := path[len(prefix) : len(path)-len(suffix)]
	if !plainID(id) {
		return patch.MemberOp{}, false
	}
	return patch.MemberOp{Action: patch.MemberRemove, Members: []patch.MemberValue{{Value: id}}}, true
}

// pathString reads the path: a plain string in which \" may stand for a
// quote (the quotes of a filter's value).
func (p *memberPatchReader) pathString() (string, bool) {
	if !p.byte('"') {
		return "", false
	}
	var sb strings.Builder
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return sb.String(), true
		case c == '\\':
			if p.i+1 >= len(p.b) || p.b[p.i+1] != '"' {
				return "", false
			}
			sb.WriteByte('"')
			p.i += 2
			continue
		case c < 0x20 || c >= 0x7f:
			return "", false
		}
		sb.WriteByte(c)
		p.i++
	}
	return "", false
}

// memberList reads a non-empty array of member objects, each with a value
// and optionally type, $ref and display, as patch's memberValues reads
// them: a type is User or Group in any case; without one, $ref decides;
// the second mention of an id is dropped.
func (p *memberPatchReader) memberList() ([]patch.MemberValue, bool) {
	if !p.byte('[') {
		return nil, false
	}
	var out []patch.MemberValue
	for first := true; ; first = false {
		if p.byte(']') {
			return out, len(out) > 0
		}
		if !first && !p.byte(',') {
			return nil, false
		}
		mv, ok := p.member()
		if !ok {
			return nil, false
		}
		dup := false
		for _, m := range out {
			dup = dup || m.Value == mv.Value
		}
		if !dup {
			out = append(out, mv)
		}
	}
}

func (p *memberPatchReader) member() (patch.MemberValue, bool) {
	if !p.byte('{') {
		return patch.MemberValue{}, false
	}
	var mv patch.MemberValue
	var ref string
	var sawValue, sawType, sawRef, sawDisplay bool
	for first := true; ; first = false {
		if p.byte('}') {
			break
		}
		if !first && !p.byte(',') {
			return patch.MemberValue{}, false
		}
		key, ok := p.plainString()
		if !ok || !p.byte(':') {
			return patch.MemberValue{}, false
		}
		var v string
		if v, ok = p.plainString(); !ok {
			return patch.MemberValue{}, false
		}
		switch {
		case key == "value" && !sawValue:
			sawValue, mv.Value = true, v
		case key == "type" && !sawType:
			sawType = true
			if mv.Type, ok = patch.MemberType(v); !ok {
				return patch.MemberValue{}, false
			}
		case key == "$ref" && !sawRef:
			sawRef, ref = true, v
		case key == "display" && !sawDisplay:
			sawDisplay = true
		default:
			return patch.MemberValue{}, false
		}
	}
	if !sawValue || !plainID(mv.Value) {
		return patch.MemberValue{}, false
	}
	if mv.Type == "" {
		switch {
		case strings.Contains(ref, "/Groups/"):
			mv.Type = "Group"
		case strings.Contains(ref, "/Users/"):
			mv.Type = "User"
		}
	}
	return mv, true
}

// plainID is an id that needs no trimming, quoting or escaping anywhere
// (a JSON string, a filter's string literal): store ids are hex, and IdPs
// send back the ids they were given.
func plainID(id string) bool {
	if id == "" || len(id) > 256 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-', c == '_', c == '.', c == '@', c == ':', c == '+':
		default:
			return false
		}
	}
	return true
}
