package plan

import (
	"iter"
	"slices"
)

// Wanted is one account's desired members, by identity.Key(email). At a
// million users a full build held 1.8 million of them across five
// accounts; as maps of pointers to a struct and its key list each they
// were 239 MB, all of it walked by the collector on every cycle. Here a
// member is a pointer-free row: its key and email in an arena (shared by
// every account of one build, so an email is written once), and a number
// naming its wanted keys. The members a build reaches the same way (one
// group, one mapping, one expiry) want the same keys for the same
// reasons, so they share one Wants: a build holds a few thousand Wants,
// not one per member.
//
// A nil *Wanted reads as empty, as a nil map does; Set on it panics. A
// value returned by Get or All shares the table's storage: read it, never
// write into its Keys. The tables of one build share their strings and
// lists: a Set on one while another goroutine reads another is a data
// race (nothing writes a build's tables after Build returns).
type Wanted struct {
	p  *pool
	ws *wantsPool
	x  index[wantedRow]
}

type wantedRow struct {
	key, email span
	wants      uint32 // 0: nil; else ws.lists[wants-1]
}

func wantedKey(r *wantedRow) span { return r.key }

// wantsPool is the Wants the members of one or more tables hold.
type wantsPool struct {
	lists []Wants
	// steps remembers, while a build adds keys, what a list becomes with
	// a key added for a reason (a builder's Wants.Add): the members of
	// one group take the same steps one after the other.
	steps map[wantsStep]uint32
	last  wantsStep
	to    uint32
}

// wantsStep is a list, a key and the reasons added for it, told by the
// address of their first element: a build shares one reason slice between
// the members it reaches the same way, and never writes into it.
type wantsStep struct {
	from uint32
	key  string
	rs   *Reason
	n    int
}

func (w *wantsPool) get(i uint32) Wants {
	if i == 0 {
		return nil
	}
	return w.lists[i-1]
}

func (w *wantsPool) put(ws Wants) uint32 {
	if ws == nil {
		return 0
	}
	w.lists = append(w.lists, ws)
	return uint32(len(w.lists))
}

// add is the list from becomes with rs added for key, made once per step.
func (w *wantsPool) add(from uint32, key string, rs []Reason) uint32 {
	st := wantsStep{from: from, key: key, rs: &rs[0], n: len(rs)}
	if st == w.last {
		return w.to
	}
	to, ok := w.steps[st]
	if !ok {
		// A new list: the old one stays as other members hold it. Its
		// reason slices are clipped first, so that an append copies them
		// instead of writing past their end into another list's.
		next := make(Wants, len(w.get(from)), len(w.get(from))+1)
		for i, x := range w.get(from) {
			next[i] = Want{Key: x.Key, Reasons: slices.Clip(x.Reasons)}
		}
		next.Add(key, rs...)
		to = w.put(next)
		if w.steps == nil {
			w.steps = map[wantsStep]uint32{}
		}
		w.steps[st] = to
	}
	w.last, w.to = st, to
	return to
}

// NewWanted is an empty table with room for n members.
func NewWanted(n int) *Wanted {
	return newWantedIn(newPool(n*24), &wantsPool{}, n)
}

// newWantedIn is an empty table keeping its strings in p and its lists in
// ws, which other tables may share.
func newWantedIn(p *pool, ws *wantsPool, n int) *Wanted {
	t := &Wanted{p: p, ws: ws}
	t.x.init(n, wantedKey)
	return t
}

// WantedOf is a table holding m's members.
func WantedOf(m map[string]DesiredMember) *Wanted {
	t := NewWanted(len(m))
	for k, dm := range m {
		t.Set(k, dm)
	}
	return t
}

func (t *Wanted) value(r *wantedRow) DesiredMember {
	return DesiredMember{Email: t.p.str(r.email), Keys: t.ws.get(r.wants)}
}

// Get is the member under key.
func (t *Wanted) Get(key string) (DesiredMember, bool) {
	if t == nil {
		return DesiredMember{}, false
	}
	if r, _, _ := t.x.find(t.p, key); r >= 0 {
		return t.value(&t.x.rows[r]), true
	}
	return DesiredMember{}, false
}

// Has reports whether a member is under key.
func (t *Wanted) Has(key string) bool {
	if t == nil {
		return false
	}
	r, _, _ := t.x.find(t.p, key)
	return r >= 0
}

// Set puts dm under key, replacing what was there. The table keeps
// dm.Keys as it is: the caller must not write into it afterwards.
func (t *Wanted) Set(key string, dm DesiredMember) {
	r, slot, tag := t.x.find(t.p, key)
	if r < 0 {
		row := wantedRow{key: t.p.put(key)}
		row.email = row.key
		if dm.Email != key {
			row.email = t.p.put(dm.Email)
		}
		row.wants = t.ws.put(dm.Keys)
		t.x.add(t.p, slot, tag, row)
		return
	}
	row := &t.x.rows[r]
	row.email = t.p.reput(row.email, dm.Email)
	row.wants = t.ws.put(dm.Keys)
}

// want records rs for key on the member under email, as Wants.Add would
// (a build's add). sp is email in the table's arena when the caller has
// it there already, else the zero span.
func (t *Wanted) want(email string, sp span, key string, rs []Reason) {
	r, slot, tag := t.x.find(t.p, email)
	if r < 0 {
		if sp.n == 0 {
			sp = t.p.put(email)
		}
		t.x.add(t.p, slot, tag, wantedRow{key: sp, email: sp, wants: t.ws.add(0, key, rs)})
		return
	}
	row := &t.x.rows[r]
	row.wants = t.ws.add(row.wants, key, rs)
}

// Len is how many members the table holds.
func (t *Wanted) Len() int {
	if t == nil {
		return 0
	}
	return len(t.x.rows)
}

// at is the member in row r (0 <= r < Len), with its key.
func (t *Wanted) at(r int) (string, DesiredMember) {
	row := &t.x.rows[r]
	return t.p.str(row.key), t.value(row)
}

// All yields every member with its key, in the order their keys were first
// set. Set may be called while it runs: a member added is yielded.
func (t *Wanted) All() iter.Seq2[string, DesiredMember] {
	return func(yield func(string, DesiredMember) bool) {
		for r := 0; r < t.Len(); r++ {
			if !yield(t.at(r)) {
				return
			}
		}
	}
}
