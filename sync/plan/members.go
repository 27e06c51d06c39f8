package plan

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"iter"
	"math"
	"slices"
	"strings"
)

// The member list and the ledger of an account are a full run's largest
// inputs: at a million users, five accounts held 1.8 million members
// between them, in the two 576 MB as maps of structs of strings, all of
// it pointers the garbage collector walked on every cycle of every run.
// The tables below hold the same in pointer-free rows: every string's
// bytes in one arena (a string is an offset and a length into it), every
// key list once in a per-pool list table (members hold a few lists between
// them), and the keys in an open-addressing index of row numbers.
//
// A value returned by Get or All is built from the arena without copying:
// its strings point into it and its key lists are the pool's. Read them,
// never write into them. The arena only grows; a string handed out stays
// valid and unchanged for as long as it is held.

// span is a string in a pool's arena.
type span struct{ off, n uint32 }

// pool is the arena and key lists one or more tables share.
type pool struct {
	arena strings.Builder
	// lists[i-1] is key list i; 0 is the nil list. An empty list that is
	// not nil is a list of its own.
	lists   [][]string
	listIdx map[string]uint32
	buf     []byte
	// small are spans of short strings written before (statuses), so
	// a million members' "accepted" is written once.
	small map[string]span
}

func newPool(strBytes int) *pool {
	p := &pool{}
	p.arena.Grow(strBytes)
	return p
}

func (p *pool) str(s span) string {
	return p.arena.String()[s.off : s.off+s.n]
}

func (p *pool) put(s string) span {
	if len(s) == 0 {
		return span{}
	}
	off := p.arena.Len()
	if uint64(off)+uint64(len(s)) > math.MaxUint32 {
		panic(fmt.Sprintf("plan: a member table's strings outgrew 4 GiB (%d bytes)", off))
	}
	p.arena.WriteString(s)
	return span{uint32(off), uint32(len(s))}
}

// putSmall is put for strings most rows share.
func (p *pool) putSmall(s string) span {
	if sp, ok := p.small[s]; ok {
		return sp
	}
	sp := p.put(s)
	if p.small == nil {
		p.small = map[string]span{}
	}
	if len(p.small) < 64 {
		p.small[s] = sp
	}
	return sp
}

// reput is put, keeping old when it already holds s.
func (p *pool) reput(old span, s string) span {
	if p.str(old) == s {
		return old
	}
	return p.put(s)
}

// list interns a key list, copied: a caller may reuse its slice, and a
// write into a list kept as given would change every member holding it.
func (p *pool) list(keys []string) uint32 {
	if keys == nil {
		return 0
	}
	// Each key prefixed by its length, the list by its count: no two
	// lists encode alike, whatever bytes their keys hold (a separator
	// byte would take ["a\x00b"] for ["a", "b"]).
	p.buf = binary.AppendUvarint(p.buf[:0], uint64(len(keys)))
	for _, k := range keys {
		p.buf = binary.AppendUvarint(p.buf, uint64(len(k)))
		p.buf = append(p.buf, k...)
	}
	if i, ok := p.listIdx[string(p.buf)]; ok {
		return i
	}
	p.lists = append(p.lists, slices.Clip(slices.Clone(keys)))
	i := uint32(len(p.lists))
	if p.listIdx == nil {
		p.listIdx = map[string]uint32{}
	}
	p.listIdx[string(p.buf)] = i
	return i
}

func (p *pool) keys(i uint32) []string {
	if i == 0 {
		return nil
	}
	return p.lists[i-1]
}

// index is a table's rows and the open-addressing index that finds them
// by key. A slot holds row+1 in its low 24 bits (0 is empty) and 8 bits of
// the key's hash above them, so a probe past another key seldom reads that
// key. Rows are never removed: a deleted row stays, marked absent, and a
// Set of its key takes it again. key is a row's key in the pool's arena.
type index[R any] struct {
	seed  maphash.Seed
	slots []uint32
	rows  []R
	key   func(*R) span
}

const (
	rowBits = 24
	rowMask = 1<<rowBits - 1
	// maxRows bounds one account's table, 16.7 million rows: Cloudflare
	// lists at most 100,000 members of an account (sync/cloudflare's page
	// cap), and a ledger holds the members scimflare invited or adopted,
	// one per IdP user at most. Past it a Set panics; no input a run reads
	// comes near.
	maxRows = rowMask - 1
)

func (x *index[R]) init(n int, key func(*R) span) {
	x.seed, x.key = maphash.MakeSeed(), key
	size := 8
	for size < n*2 {
		size *= 2
	}
	x.slots, x.rows = make([]uint32, size), make([]R, 0, min(n, maxRows))
}

// find is key's row, or -1 and the slot a new row for key goes in; tag
// is the slot's hash bits for key.
func (x *index[R]) find(p *pool, key string) (row, slot int, tag uint32) {
	h := maphash.String(x.seed, key)
	tag = uint32(h>>56) << rowBits
	mask := len(x.slots) - 1
	for i := int(h) & mask; ; i = (i + 1) & mask {
		v := x.slots[i]
		if v == 0 {
			return -1, i, tag
		}
		if r := int(v&rowMask) - 1; v&^rowMask == tag && p.str(x.key(&x.rows[r])) == key {
			return r, i, tag
		}
	}
}

// add appends r, a new row, in the slot and with the tag find gave; the
// index grows when it is half full.
func (x *index[R]) add(p *pool, slot int, tag uint32, r R) {
	if len(x.rows) >= maxRows {
		panic(fmt.Sprintf("plan: an account's member table outgrew %d rows", maxRows))
	}
	x.rows = append(x.rows, r)
	x.slots[slot] = tag | uint32(len(x.rows))
	if len(x.rows)*2 <= len(x.slots) {
		return
	}
	x.slots = make([]uint32, len(x.slots)*2)
	mask := len(x.slots) - 1
	for r := range x.rows {
		h := maphash.String(x.seed, p.str(x.key(&x.rows[r])))
		i := int(h) & mask
		for x.slots[i] != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = uint32(h>>56)<<rowBits | uint32(r+1)
	}
}

// Actuals are one account's members as Cloudflare reports them, by
// identity.Key(email). A nil *Actuals reads as empty, as a nil map does;
// Set on it panics, as on a nil map.
type Actuals struct {
	p *pool
	x index[actualRow]
	n int
	// linked is the ledger whose rows the rows' ledger fields name: the
	// first made beside this table.
	linked *Ledger
}

type actualRow struct {
	key, memberID, email, status span
	keys                         uint32
	// ledger is row+1 of the key's entry in a ledger beside this table
	// (NewLedgerBeside), set when the entry was made; 0 when unknown.
	ledger  uint32
	present bool
}

func actualKey(r *actualRow) span { return r.key }

// NewActuals is an empty table with room for n members.
func NewActuals(n int) *Actuals {
	t := &Actuals{p: newPool(n * 64)}
	t.x.init(n, actualKey)
	return t
}

// ActualsOf is a table holding m's members.
func ActualsOf(m map[string]Actual) *Actuals {
	t := NewActuals(len(m))
	for k, a := range m {
		t.Set(k, a)
	}
	return t
}

func (t *Actuals) value(r *actualRow) Actual {
	return Actual{MemberID: t.p.str(r.memberID), Email: t.p.str(r.email), Status: t.p.str(r.status), Keys: t.p.keys(r.keys)}
}

// row is the present row under key, or nil.
func (t *Actuals) row(key string) *actualRow {
	if t == nil {
		return nil
	}
	if r, _, _ := t.x.find(t.p, key); r >= 0 && t.x.rows[r].present {
		return &t.x.rows[r]
	}
	return nil
}

// Get is the member under key.
func (t *Actuals) Get(key string) (Actual, bool) {
	if r := t.row(key); r != nil {
		return t.value(r), true
	}
	return Actual{}, false
}

// Has reports whether a member is under key.
func (t *Actuals) Has(key string) bool { return t.row(key) != nil }

// Set puts a under key, replacing what was there.
func (t *Actuals) Set(key string, a Actual) { t.Put(key, a) }

// Put is Set, answering key's row: a number that names key in this table
// for as long as the table lives, whatever is set or deleted after (At).
// A list of rows is how a caller keeps an order of members at 4 bytes
// each, rather than a string each.
func (t *Actuals) Put(key string, a Actual) uint32 {
	r, slot, tag := t.x.find(t.p, key)
	if r < 0 {
		row := actualRow{key: t.p.put(key), memberID: t.p.put(a.MemberID)}
		row.email = row.key
		if a.Email != key {
			row.email = t.p.put(a.Email)
		}
		row.status, row.keys, row.present = t.p.putSmall(a.Status), t.p.list(a.Keys), true
		t.x.add(t.p, slot, tag, row)
		t.n++
		return uint32(len(t.x.rows) - 1)
	}
	row := &t.x.rows[r]
	if !row.present {
		t.n++
	}
	row.memberID = t.p.reput(row.memberID, a.MemberID)
	row.email = t.p.reput(row.email, a.Email)
	row.status, row.keys, row.present = t.p.putSmall(a.Status), t.p.list(a.Keys), true
	return uint32(r)
}

// At is the key of row r (a number Put answered) and the member under it
// now; present is false when the key was deleted since.
func (t *Actuals) At(r uint32) (key string, a Actual, present bool) {
	row := &t.x.rows[r]
	return t.p.str(row.key), t.value(row), row.present
}

// Delete removes the member under key, if any.
func (t *Actuals) Delete(key string) {
	if r := t.row(key); r != nil {
		r.present = false
		t.n--
	}
}

// Len is how many members the table holds.
func (t *Actuals) Len() int {
	if t == nil {
		return 0
	}
	return t.n
}

// All yields every member with its key, in the order their keys were first
// set. Set and Delete may be called while it runs, as on a map: a member
// deleted before it is reached is not yielded; one added is.
func (t *Actuals) All() iter.Seq2[string, Actual] {
	return func(yield func(string, Actual) bool) {
		if t == nil {
			return
		}
		for r := 0; r < len(t.x.rows); r++ {
			if row := &t.x.rows[r]; row.present && !yield(t.p.str(row.key), t.value(row)) {
				return
			}
		}
	}
}

// Ledger is one account's ownership ledger, by identity.Key(email). A nil
// *Ledger reads as empty, as a nil map does; Set on it panics, as on a nil
// map.
type Ledger struct {
	p *pool
	x index[ledgerRow]
	n int
	// beside is the member list whose arena the ledger shares: an
	// entry's key and member id are the member's when they are the same.
	beside *Actuals
}

type ledgerRow struct {
	key, memberID    span
	managed, found   uint32
	created, present bool
}

func ledgerKey(r *ledgerRow) span { return r.key }

// NewLedger is an empty ledger with room for n entries.
func NewLedger(n int) *Ledger {
	t := &Ledger{p: newPool(n * 56)}
	t.x.init(n, ledgerKey)
	return t
}

// NewLedgerBeside is an empty ledger with room for n entries that keeps
// the keys and member ids it shares with a's members once, in a's arena
// (most entries are of members scimflare granted what they hold). The
// first ledger made beside a also notes in a's rows where each member's
// entry is, so a plan finds both in one search. a's members are not
// changed; but the two share one arena and one list table, so a Set on
// either writes what a read of the other reads: neither may be written
// while the other is read on another goroutine (two maps could be).
func NewLedgerBeside(a *Actuals, n int) *Ledger {
	if a == nil {
		return NewLedger(n)
	}
	t := &Ledger{p: a.p, beside: a}
	if a.linked == nil {
		a.linked = t
	}
	t.x.init(n, ledgerKey)
	return t
}

// LedgerOf is a ledger holding m's entries.
func LedgerOf(m map[string]LedgerEntry) *Ledger {
	t := NewLedger(len(m))
	for k, e := range m {
		t.Set(k, e)
	}
	return t
}

func (t *Ledger) value(r *ledgerRow) LedgerEntry {
	return LedgerEntry{MemberID: t.p.str(r.memberID), Created: r.created, Managed: t.p.keys(r.managed), Found: t.p.keys(r.found)}
}

// row is the present row under key, or nil.
func (t *Ledger) row(key string) *ledgerRow {
	if t == nil {
		return nil
	}
	if r, _, _ := t.x.find(t.p, key); r >= 0 && t.x.rows[r].present {
		return &t.x.rows[r]
	}
	return nil
}

// Get is the entry under key.
func (t *Ledger) Get(key string) (LedgerEntry, bool) {
	if r := t.row(key); r != nil {
		return t.value(r), true
	}
	return LedgerEntry{}, false
}

// Has reports whether an entry is under key.
func (t *Ledger) Has(key string) bool { return t.row(key) != nil }

// Set puts e under key, replacing what was there.
func (t *Ledger) Set(key string, e LedgerEntry) {
	r, slot, tag := t.x.find(t.p, key)
	if r < 0 {
		var row ledgerRow
		m := t.beside.row(key)
		if m != nil {
			// The member's key, and its id when it is the entry's.
			row.key, row.memberID = m.key, m.memberID
		} else {
			row.key = t.p.put(key)
		}
		row.memberID = t.p.reput(row.memberID, e.MemberID)
		row.managed, row.found, row.created, row.present = t.p.list(e.Managed), t.p.list(e.Found), e.Created, true
		t.x.add(t.p, slot, tag, row)
		if m != nil && t.beside.linked == t {
			m.ledger = uint32(len(t.x.rows))
		}
		t.n++
		return
	}
	row := &t.x.rows[r]
	if !row.present {
		t.n++
	}
	row.memberID = t.p.reput(row.memberID, e.MemberID)
	row.managed, row.found, row.created, row.present = t.p.list(e.Managed), t.p.list(e.Found), e.Created, true
}

// Delete removes the entry under key, if any.
func (t *Ledger) Delete(key string) {
	if r := t.row(key); r != nil {
		r.present = false
		t.n--
	}
}

// Len is how many entries the ledger holds.
func (t *Ledger) Len() int {
	if t == nil {
		return 0
	}
	return t.n
}

// All yields every entry with its key, in the order their keys were first
// set. Set and Delete may be called while it runs, as on a map: an entry
// deleted before it is reached is not yielded; one added is.
func (t *Ledger) All() iter.Seq2[string, LedgerEntry] {
	return func(yield func(string, LedgerEntry) bool) {
		if t == nil {
			return
		}
		for r := 0; r < len(t.x.rows); r++ {
			if row := &t.x.rows[r]; row.present && !yield(t.p.str(row.key), t.value(row)) {
				return
			}
		}
	}
}

// lookup is key's member in a and entry in l. A ledger made beside a finds
// its entry from the member's row, without a second search: a full plan
// looks up every member of an account in both.
func lookup(a *Actuals, l *Ledger, key string) (act Actual, present bool, led LedgerEntry, inLedger bool) {
	m := a.row(key)
	if m != nil {
		act, present = a.value(m), true
		if l != nil && a.linked == l && m.ledger != 0 {
			if r := &l.x.rows[m.ledger-1]; r.present {
				return act, true, l.value(r), true
			}
			return act, true, LedgerEntry{}, false
		}
	}
	led, inLedger = l.Get(key)
	return act, present, led, inLedger
}
