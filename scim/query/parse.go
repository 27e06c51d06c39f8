package query

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/scimflare/scimflare/store"
)

type tokKind int

const (
	tEOF tokKind = iota
	tWord
	tString
	tLParen
	tRParen
	tLBrack
	tRBrack
)

type token struct {
	kind tokKind
	text string // source text
	str  string // decoded value of a tString
	pos  int
}

// maxDepth bounds nesting of parentheses and "not" so that hostile input
// cannot exhaust the stack.
const maxDepth = 32

func lex(src string) ([]token, error) {
	toks := make([]token, 0, 8)
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')' || c == '[' || c == ']':
			k := tLParen
			switch c {
			case ')':
				k = tRParen
			case '[':
				k = tLBrack
			case ']':
				k = tRBrack
			}
			toks = append(toks, token{kind: k, text: src[i : i+1], pos: i})
			i++
		case c == '"':
			j := i + 1
			for ; j < len(src) && src[j] != '"'; j++ {
				if src[j] == '\\' {
					j++
				}
			}
			if j >= len(src) {
				return nil, fmt.Errorf("unterminated string at position %d", i)
			}
			s, plain := plainString(src[i+1 : j])
			if !plain {
				if err := json.Unmarshal([]byte(src[i:j+1]), &s); err != nil {
					return nil, fmt.Errorf("invalid string at position %d", i)
				}
			}
			toks = append(toks, token{kind: tString, text: src[i : j+1], str: s, pos: i})
			i = j + 1
		default:
			j := i
			for j < len(src) && !strings.ContainsRune(" \t\n\r()[]\"", rune(src[j])) {
				j++
			}
			toks = append(toks, token{kind: tWord, text: src[i:j], pos: i})
			i = j
		}
	}
	return append(toks, token{kind: tEOF, text: "end of input", pos: len(src)}), nil
}

// plainString is the value of a JSON string whose content s needs no
// decoding: no escape, no control character, valid UTF-8 (json.Unmarshal
// would replace invalid bytes). plain is false for any other s.
func plainString(s string) (string, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\\' || c < 0x20 {
			return "", false
		}
	}
	return s, utf8.ValidString(s)
}

type parser struct {
	toks  []token
	i     int
	src   string
	r     Resource
	scope *Attr // inside a value filter: the complex attribute whose elements are tested
	depth int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) isWord(s string) bool {
	t := p.peek()
	return t.kind == tWord && strings.EqualFold(t.text, s)
}

func (p *parser) errf(format string, args ...any) error {
	return filterErr(p.src, fmt.Sprintf(format, args...))
}

func (p *parser) parseOr() (expr, error) {
	l, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for p.isWord("or") {
		p.next()
		r, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		l = &orExpr{l, r}
	}
	return l, nil
}

func (p *parser) parseAnd() (expr, error) {
	l, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for p.isWord("and") {
		p.next()
		r, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		l = &andExpr{l, r}
	}
	return l, nil
}

func (p *parser) parseUnary() (expr, error) {
	if p.depth >= maxDepth {
		return nil, p.errf("nested more than %d levels deep, over the limit", maxDepth)
	}
	p.depth++
	defer func() { p.depth-- }()
	t := p.peek()
	switch {
	case t.kind == tLParen:
		p.next()
		return p.parseGroup()
	case t.kind == tWord && strings.EqualFold(t.text, "not") && p.toks[p.i+1].kind == tLParen:
		p.next()
		p.next()
		e, err := p.parseGroup()
		if err != nil {
			return nil, err
		}
		return &notExpr{e}, nil
	case t.kind == tWord:
		return p.parseAttrExpr()
	default:
		return nil, p.errf("expected an attribute name at position %d, found %q", t.pos, t.text)
	}
}

func (p *parser) parseGroup() (expr, error) {
	e, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.next(); t.kind != tRParen {
		return nil, p.errf("expected \")\" at position %d, found %q", t.pos, t.text)
	}
	return e, nil
}

func (p *parser) resolveName(t token) (Attr, error) {
	if p.scope != nil {
		sub, ok := p.scope.Def.SubAttributes().ContainsAttribute(t.text)
		if !ok {
			return Attr{}, p.errf("%q has no sub-attribute %q", p.scope.Def.Name(), t.text)
		}
		return Attr{Def: sub}, nil
	}
	a, whole, err := p.r.resolve(t.text)
	if err != nil {
		return Attr{}, p.errf("%v", err)
	}
	if whole != "" {
		return Attr{}, p.errf("%q is a schema, not an attribute", t.text)
	}
	return a, nil
}

func (p *parser) parseAttrExpr() (expr, error) {
	nameTok := p.next()
	a, err := p.resolveName(nameTok)
	if err != nil {
		return nil, err
	}
	if a.Leaf().Mutability() == "writeOnly" || a.Leaf().Returned() == "never" {
		return nil, p.errf("%q cannot be filtered on", nameTok.text)
	}
	if p.peek().kind == tLBrack {
		if p.scope != nil {
			return nil, p.errf("value filters cannot nest (position %d)", p.peek().pos)
		}
		if a.Sub != nil || a.Def.AttributeType() != "complex" {
			return nil, p.errf("a value filter needs a complex attribute, and %q is not one", nameTok.text)
		}
		p.next()
		inner := &parser{toks: p.toks, i: p.i, src: p.src, r: p.r, scope: &a, depth: p.depth}
		e, err := inner.parseOr()
		if err != nil {
			return nil, err
		}
		p.i = inner.i
		if t := p.next(); t.kind != tRBrack {
			return nil, p.errf("expected \"]\" at position %d, found %q", t.pos, t.text)
		}
		return &valuePathExpr{ext: a.Extension, name: a.Def.Name(), multi: a.Def.MultiValued(), inner: e}, nil
	}
	opTok := p.next()
	if opTok.kind != tWord {
		return nil, p.errf("expected an operator after %q at position %d", nameTok.text, opTok.pos)
	}
	op := strings.ToLower(opTok.text)
	if !validOps[op] {
		return nil, p.errf("unknown operator %q at position %d", opTok.text, opTok.pos)
	}
	c := &compareExpr{op: op, ext: a.Extension, name: a.Def.Name(), multi: a.Def.MultiValued()}
	if p.scope != nil {
		c.ext, c.multi = "", false
	}
	leaf := a.Leaf()
	switch {
	case a.Sub != nil:
		c.sub = a.Sub.Name()
	case leaf.AttributeType() == "complex" && op != "pr":
		// "emails co x" means "emails.value co x" (RFC 7644 §3.4.2.2 multi-valued rule).
		v, ok := leaf.SubAttributes().ContainsAttribute("value")
		if !ok {
			return nil, p.errf("%q is complex; name one of its sub-attributes", nameTok.text)
		}
		c.sub, leaf = v.Name(), v
	}
	c.typ = leaf.AttributeType()
	c.caseExact = leaf.CaseExact()
	if op == "pr" {
		return c, nil
	}
	valTok := p.next()
	if err := c.setValue(valTok); err != nil {
		return nil, p.errf("%s %s: %v", nameTok.text, op, err)
	}
	return c, nil
}

var validOps = map[string]bool{"eq": true, "ne": true, "co": true, "sw": true, "ew": true, "pr": true, "gt": true, "ge": true, "lt": true, "le": true}

// setValue checks that the comparison value suits the attribute's type and
// the operator, and stores it in the form eval compares with.
func (c *compareExpr) setValue(t token) error {
	var v any
	switch {
	case t.kind == tString:
		v = t.str
	case t.kind == tWord && t.text == "true":
		v = true
	case t.kind == tWord && t.text == "false":
		v = false
	case t.kind == tWord && t.text == "null":
		v = nil
	case t.kind == tWord && json.Valid([]byte(t.text)) && t.text != "" && (t.text[0] == '-' || (t.text[0] >= '0' && t.text[0] <= '9')):
		f, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return fmt.Errorf("number %s is out of range", t.text)
		}
		v = f
	default:
		return fmt.Errorf("expected a JSON value at position %d, found %q (quote strings)", t.pos, t.text)
	}
	ordering := c.op == "gt" || c.op == "ge" || c.op == "lt" || c.op == "le"
	substring := c.op == "co" || c.op == "sw" || c.op == "ew"
	if v == nil {
		if c.op != "eq" && c.op != "ne" {
			return fmt.Errorf("null only compares with eq or ne")
		}
		return nil
	}
	switch c.typ {
	case "boolean":
		b, ok := v.(bool)
		if s, isStr := v.(string); isStr {
			b, ok = parseBool(s)
		}
		if !ok || ordering || substring {
			return fmt.Errorf("a boolean attribute takes eq or ne with true or false")
		}
		c.val = b
	case "integer", "decimal":
		f, ok := v.(float64)
		if !ok || substring {
			return fmt.Errorf("a numeric attribute takes a number and no co, sw or ew")
		}
		c.val = f
	case "dateTime":
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("a dateTime attribute takes a quoted date-time")
		}
		if substring {
			c.val, c.fold = strings.ToLower(s), store.Fold(s)
			return nil
		}
		tm, ok := parseTime(s)
		if !ok {
			return fmt.Errorf("%q is not an RFC 3339 date-time", s)
		}
		c.val = tm
	default: // string, reference, binary
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("a string attribute takes a quoted string")
		}
		if ordering && c.typ == "binary" {
			return fmt.Errorf("a binary attribute cannot be ordered")
		}
		c.raw = s
		if !c.caseExact {
			c.fold = store.Fold(s)
			s = strings.ToLower(s)
		}
		c.val = s
	}
	return nil
}

func parseBool(s string) (bool, bool) {
	switch {
	case strings.EqualFold(s, "true"):
		return true, true
	case strings.EqualFold(s, "false"):
		return false, true
	}
	return false, false
}

// parseTime accepts RFC 3339 (any fraction, any offset) and, as xsd:dateTime
// allows, a date-time without offset, read as UTC.
func parseTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
