package plan

import "iter"

// Actuals are one account's members as Cloudflare reports them, by
// identity.Key(email). A nil *Actuals reads as empty, as a nil map does.
//
// Values returned share their key lists with the table: read them, never
// write into them.
type Actuals struct {
	m map[string]Actual
}

// NewActuals is an empty table with room for n members.
func NewActuals(n int) *Actuals { return &Actuals{m: make(map[string]Actual, n)} }

// ActualsOf is a table holding m's members.
func ActualsOf(m map[string]Actual) *Actuals {
	t := NewActuals(len(m))
	for k, a := range m {
		t.Set(k, a)
	}
	return t
}

// Get is the member under key.
func (t *Actuals) Get(key string) (Actual, bool) {
	if t == nil {
		return Actual{}, false
	}
	a, ok := t.m[key]
	return a, ok
}

// Has reports whether a member is under key.
func (t *Actuals) Has(key string) bool {
	_, ok := t.Get(key)
	return ok
}

// Set puts a under key, replacing what was there.
func (t *Actuals) Set(key string, a Actual) { t.m[key] = a }

// Delete removes the member under key, if any.
func (t *Actuals) Delete(key string) {
	if t != nil {
		delete(t.m, key)
	}
}

// Len is how many members the table holds.
func (t *Actuals) Len() int {
	if t == nil {
		return 0
	}
	return len(t.m)
}

// All yields every member with its key. Set and Delete may be called while
// it runs, as on a map: a member deleted before it is reached is not
// yielded; one added may or may not be.
func (t *Actuals) All() iter.Seq2[string, Actual] {
	return func(yield func(string, Actual) bool) {
		if t == nil {
			return
		}
		for k, a := range t.m {
			if !yield(k, a) {
				return
			}
		}
	}
}

// Ledger is one account's ownership ledger, by identity.Key(email). A nil
// *Ledger reads as empty, as a nil map does.
//
// Entries returned share their key lists with the table: read them, never
// write into them.
type Ledger struct {
	m map[string]LedgerEntry
}

// NewLedger is an empty ledger with room for n entries.
func NewLedger(n int) *Ledger { return &Ledger{m: make(map[string]LedgerEntry, n)} }

// LedgerOf is a ledger holding m's entries.
func LedgerOf(m map[string]LedgerEntry) *Ledger {
	t := NewLedger(len(m))
	for k, e := range m {
		t.Set(k, e)
	}
	return t
}

// Get is the entry under key.
func (t *Ledger) Get(key string) (LedgerEntry, bool) {
	if t == nil {
		return LedgerEntry{}, false
	}
	e, ok := t.m[key]
	return e, ok
}

// Has reports whether an entry is under key.
func (t *Ledger) Has(key string) bool {
	_, ok := t.Get(key)
	return ok
}

// Set puts e under key, replacing what was there.
func (t *Ledger) Set(key string, e LedgerEntry) { t.m[key] = e }

// Delete removes the entry under key, if any.
func (t *Ledger) Delete(key string) {
	if t != nil {
		delete(t.m, key)
	}
}

// Len is how many entries the ledger holds.
func (t *Ledger) Len() int {
	if t == nil {
		return 0
	}
	return len(t.m)
}

// All yields every entry with its key. Set and Delete may be called while
// it runs, as on a map: an entry deleted before it is reached is not
// yielded; one added may or may not be.
func (t *Ledger) All() iter.Seq2[string, LedgerEntry] {
	return func(yield func(string, LedgerEntry) bool) {
		if t == nil {
			return
		}
		for k, e := range t.m {
			if !yield(k, e) {
				return
			}
		}
	}
}
