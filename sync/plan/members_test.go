package plan

import (
	"fmt"
	"hash/maphash"
	"maps"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The tables must read back exactly what was set, as the maps they replace
// did: nil and empty key lists apart, a deleted key gone and settable again,
// every member once in All, through deletes and sets while All runs.
func TestMemberTablesReadBackWhatWasSet(t *testing.T) {
	lists := [][]string{nil, {}, {"a"}, {"a", "b"}, {"b"}, {"a", "b", "c"}}
	statuses := []string{"accepted", "pending", ""}
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		act, led := NewActuals(rng.IntN(4)), NewLedger(rng.IntN(4))
		wantAct, wantLed := map[string]Actual{}, map[string]LedgerEntry{}
		switch seed % 3 {
		case 0:
			led = NewLedgerBeside(act, rng.IntN(4)) // sharing act's arena
		case 1:
			// A second ledger beside act: it must not read the first's
			// entries through act's rows.
			for i := range 50 {
				k := fmt.Sprintf("u%d@example.com", i)
				act.Set(k, Actual{MemberID: "m", Email: k})
				wantAct[k] = Actual{MemberID: "m", Email: k}
			}
			first := NewLedgerBeside(act, 0)
			for i := range 50 {
				first.Set(fmt.Sprintf("u%d@example.com", i), LedgerEntry{MemberID: "first", Created: true})
			}
			led = NewLedgerBeside(act, rng.IntN(4))
		}
		key := func() string { return fmt.Sprintf("u%d@example.com", rng.IntN(300)) }
		for op := range 3000 {
			k := key()
			switch rng.IntN(6) {
			case 0, 1:
				email := k
				if rng.IntN(3) == 0 {
					email = "U" + k[1:]
				}
				a := Actual{MemberID: fmt.Sprintf("m%d", rng.IntN(400)), Email: email, Status: statuses[rng.IntN(len(statuses))], Keys: lists[rng.IntN(len(lists))]}
				act.Set(k, a)
				wantAct[k] = a
			case 2:
				e := LedgerEntry{MemberID: fmt.Sprintf("m%d", rng.IntN(400)), Created: rng.IntN(2) == 0, Managed: lists[rng.IntN(len(lists))], Found: lists[rng.IntN(len(lists))]}
				led.Set(k, e)
				wantLed[k] = e
			case 3:
				act.Delete(k)
				delete(wantAct, k)
				led.Delete(k)
				delete(wantLed, k)
			case 4:
				readsAsTheMaps(t, fmt.Sprintf("seed %d op %d", seed, op), act, led, wantAct, wantLed, k)
			case 5:
				// Delete some while iterating, as settling intents does.
				seen := map[string]bool{}
				for k, e := range led.All() {
					if seen[k] {
						t.Fatalf("seed %d op %d: All yielded %q twice", seed, op, k)
					}
					seen[k] = true
					if !reflect.DeepEqual(e, wantLed[k]) {
						t.Fatalf("seed %d op %d: All yielded %q = %#v; want %#v", seed, op, k, e, wantLed[k])
					}
					if rng.IntN(10) == 0 {
						led.Delete(k)
						delete(wantLed, k)
					}
				}
				for k := range wantLed {
					if !seen[k] {
						t.Fatalf("seed %d op %d: All missed %q", seed, op, k)
					}
				}
			}
			// The plan's lookup of both finds what the two Gets find.
			k = key()
			a, present, e, inLedger := lookup(act, led, k)
			wantA, wantPresent := wantAct[k]
			wantE, wantIn := wantLed[k]
			if present != wantPresent || inLedger != wantIn || !reflect.DeepEqual(a, wantA) || !reflect.DeepEqual(e, wantE) {
				t.Fatalf("seed %d op %d: lookup(%q) = %#v, %v, %#v, %v; want %#v, %v, %#v, %v", seed, op, k, a, present, e, inLedger, wantA, wantPresent, wantE, wantIn)
			}
			if act.Len() != len(wantAct) || led.Len() != len(wantLed) {
				t.Fatalf("seed %d op %d: Len = %d, %d; want %d, %d", seed, op, act.Len(), led.Len(), len(wantAct), len(wantLed))
			}
		}
		got := maps.Collect(act.All())
		if !reflect.DeepEqual(got, wantAct) && !(len(got) == 0 && len(wantAct) == 0) {
			t.Fatalf("seed %d: All = %v; want %v", seed, got, wantAct)
		}
	}
}

func TestNilMemberTablesReadAsEmpty(t *testing.T) {
	var act *Actuals
	var led *Ledger
	if _, ok := act.Get("a"); ok || act.Has("a") || act.Len() != 0 {
		t.Fatal("a nil Actuals is not empty")
	}
	if _, ok := led.Get("a"); ok || led.Has("a") || led.Len() != 0 {
		t.Fatal("a nil Ledger is not empty")
	}
	act.Delete("a")
	led.Delete("a")
	for range act.All() {
		t.Fatal("a nil Actuals yields")
	}
	for range led.All() {
		t.Fatal("a nil Ledger yields")
	}
}

// A string handed out stays what it was while the table grows and its key
// is set again.
func TestMemberTableStringsOutliveGrowth(t *testing.T) {
	act := NewActuals(1)
	act.Set("a@x", Actual{MemberID: "first", Email: "a@x", Status: "pending", Keys: []string{"k"}})
	a, _ := act.Get("a@x")
	for i := range 10000 {
		act.Set(fmt.Sprintf("u%d@x", i), Actual{MemberID: fmt.Sprintf("id-%d", i), Email: fmt.Sprintf("u%d@x", i), Status: "accepted"})
	}
	act.Set("a@x", Actual{MemberID: "second", Email: "a@x", Status: "accepted"})
	runtime.GC()
	if a.MemberID != "first" || a.Status != "pending" || !slices.Equal(a.Keys, []string{"k"}) {
		t.Fatalf("a value read before the table grew changed: %#v", a)
	}
	if b, _ := act.Get("a@x"); b.MemberID != "second" || b.Keys != nil {
		t.Fatalf("Get after Set = %#v", b)
	}
}

// BenchmarkMemberTables: one account's member list and ledger at the size
// a 1M-user full run holds per account, built as a run builds them.
// Reported: the heap the two hold beyond the strings they were given.
func BenchmarkMemberTables(b *testing.B) {
	const n = 360_000
	emails := make([]string, n)
	ids := make([]string, n)
	for i := range emails {
		emails[i] = fmt.Sprintf("user%07d@example.com", i)
		ids[i] = fmt.Sprintf("%032x", i*7919)
	}
	keyLists := [][]string{{"policy-aaaaaaaaaaaaaaaa"}, {"policy-aaaaaaaaaaaaaaaa", "policy-bbbbbbbbbbbbbbbb"}}
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapAlloc
	var act *Actuals
	var led *Ledger
	for b.Loop() {
		act = NewActuals(n)
		for i, e := range emails {
			keys := keyLists[i%2]
			act.Set(e, Actual{MemberID: ids[i], Email: e, Status: "accepted", Keys: keys})
		}
		led = NewLedgerBeside(act, n)
		for i, e := range emails {
			led.Set(e, LedgerEntry{MemberID: ids[i], Created: true, Managed: keyLists[i%2]})
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc-before)/(1<<20), "held-MB")
	b.ReportMetric(float64(ms.HeapAlloc-before)/n, "held-B/member")
	runtime.KeepAlive(act)
	runtime.KeepAlive(led)
	runtime.KeepAlive(emails) // held either way: not counted
	runtime.KeepAlive(ids)
}

// BenchmarkMemberTablesGet: a full plan's reads, each member of an account
// looked up in the member list and the ledger, in no particular order.
func BenchmarkMemberTablesGet(b *testing.B) {
	const n = 360_000
	emails := make([]string, n)
	act := NewActuals(n)
	for i := range emails {
		emails[i] = fmt.Sprintf("user%07d@example.com", i)
		act.Set(emails[i], Actual{MemberID: fmt.Sprintf("%032x", i), Email: emails[i], Status: "accepted", Keys: []string{"k"}})
	}
	led := NewLedgerBeside(act, n)
	for i, e := range emails {
		led.Set(e, LedgerEntry{MemberID: fmt.Sprintf("%032x", i), Created: true, Managed: []string{"k"}})
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { emails[i], emails[j] = emails[j], emails[i] })
	found := 0
	for b.Loop() {
		for _, e := range emails {
			a, _, l, _ := lookup(act, led, e)
			found += len(a.MemberID) + len(l.MemberID)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/member")
}

// A caller that reuses the slice it set a member's keys from does not
// change what the table holds, for that member or another with the same
// keys.
func TestMemberTableKeepsItsOwnKeyLists(t *testing.T) {
	act := NewActuals(2)
	keys := []string{"a", "b"}
	act.Set("x@example.com", Actual{MemberID: "1", Email: "x@example.com", Keys: keys})
	act.Set("y@example.com", Actual{MemberID: "2", Email: "y@example.com", Keys: []string{"a", "b"}})
	keys[0] = "z"
	for _, k := range []string{"x@example.com", "y@example.com"} {
		if a, _ := act.Get(k); !slices.Equal(a.Keys, []string{"a", "b"}) {
			t.Fatalf("%s holds %v after the caller's slice changed", k, a.Keys)
		}
	}
}

// Key lists are interned by content, and two different lists must never
// be taken for one: a member holding one key that contains a NUL byte is
// not a member holding the two keys either side of it. (Interning joined
// the keys with NUL, so ["a\x00b"] and ["a", "b"], or [""] twice and
// ["\x00"], read back as whichever was set first.)
func TestMemberTableKeyListsNeverConflate(t *testing.T) {
	lists := [][]string{
		{"role:a\x00role:b"}, {"role:a", "role:b"},
		{"", ""}, {"\x00"}, {""}, {},
		{"\xff"}, {"\xff", ""}, {"ab", "c"}, {"a", "bc"}, {"abc"},
	}
	act := NewActuals(len(lists))
	led := NewLedgerBeside(act, len(lists))
	for i, l := range lists {
		k := fmt.Sprintf("u%d@example.com", i)
		act.Set(k, Actual{MemberID: k, Email: k, Keys: l})
		led.Set(k, LedgerEntry{MemberID: k, Managed: l, Found: l})
	}
	for i, l := range lists {
		k := fmt.Sprintf("u%d@example.com", i)
		if a, _ := act.Get(k); !reflect.DeepEqual(a.Keys, l) {
			t.Errorf("%s holds %q; set %q", k, a.Keys, l)
		}
		if e, _ := led.Get(k); !reflect.DeepEqual(e.Managed, l) || !reflect.DeepEqual(e.Found, l) {
			t.Errorf("ledger %s manages %q, found %q; set %q", k, e.Managed, e.Found, l)
		}
	}
}

// The tables against plain maps on the inputs a table of spans and an
// interned index could get wrong and a map cannot: the empty key and empty
// fields, keys that are prefixes of each other or differ only in case,
// NUL and 0xff bytes in keys and key lists, long strings, a value read and
// then its key set again or deleted (the value read stays what it was),
// sets that add members while All runs, a ledger beside the member list
// written in turns with it, and enough keys to grow the index through
// deleted rows.
func TestMemberTablesMatchAMapOnAdversarialInput(t *testing.T) {
	long := strings.Repeat("x", 3000)
	keys := []string{"", "a", "A", "a@x", "a@x.io", "a@x.io\x00", "\x00", "\xff", "u@example.com", "U@example.com", long, long + "y"}
	for i := range 200 {
		keys = append(keys, fmt.Sprintf("user%d@example.com", i))
	}
	lists := [][]string{nil, {}, {""}, {"", ""}, {"\x00"}, {"a\x00b"}, {"a", "b"}, {"\xff"}, {long}, {"role:a"}, {"role:a", "role:b"}}
	ids := []string{"", "m1", "m2", "m10", "m1\x00", long}
	statuses := []string{"", "accepted", "pending", "Accepted"}
	for seed := range uint64(12) {
		rng := rand.New(rand.NewPCG(seed, 11))
		pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
		act := NewActuals(rng.IntN(3))
		led := NewLedger(rng.IntN(3))
		if seed%2 == 0 {
			led = NewLedgerBeside(act, rng.IntN(3))
		}
		wantAct, wantLed := map[string]Actual{}, map[string]LedgerEntry{}
		type held struct {
			key  string
			a    Actual
			e    LedgerEntry
			aOK  bool
			eOK  bool
			copy [2]string // the values as first read, formatted
		}
		var reads []held
		check := func(op int, k string) {
			readsAsTheMaps(t, fmt.Sprintf("seed %d op %d", seed, op), act, led, wantAct, wantLed, k)
		}
		for op := range 4000 {
			k := pick(keys)
			switch rng.IntN(9) {
			case 0, 1:
				email := k
				switch rng.IntN(4) {
				case 0:
					email = strings.ToUpper(k)
				case 1:
					email = ""
				}
				a := Actual{MemberID: pick(ids), Email: email, Status: pick(statuses), Keys: lists[rng.IntN(len(lists))]}
				act.Set(k, a)
				wantAct[k] = a
			case 2, 3:
				e := LedgerEntry{MemberID: pick(ids), Created: rng.IntN(2) == 0, Managed: lists[rng.IntN(len(lists))], Found: lists[rng.IntN(len(lists))]}
				if a, ok := wantAct[k]; ok && rng.IntN(2) == 0 {
					e.MemberID = a.MemberID // the member's own id, as a granted member's entry has
				}
				led.Set(k, e)
				wantLed[k] = e
			case 4:
				if rng.IntN(2) == 0 {
					act.Delete(k)
					delete(wantAct, k)
				} else {
					led.Delete(k)
					delete(wantLed, k)
				}
			case 5:
				a, aOK := act.Get(k)
				e, eOK := led.Get(k)
				reads = append(reads, held{k, a, e, aOK, eOK, [2]string{fmt.Sprintf("%#v", a), fmt.Sprintf("%#v", e)}})
				check(op, k)
			case 6:
				// Set members while All runs: every member present at the
				// start and not deleted is yielded once, with its value.
				seen, added := map[string]bool{}, map[string]bool{}
				for k, a := range act.All() {
					if seen[k] {
						t.Fatalf("seed %d op %d: All yielded %q twice", seed, op, k)
					}
					seen[k] = true
					if want, ok := wantAct[k]; !ok || !reflect.DeepEqual(a, want) {
						t.Fatalf("seed %d op %d: All yielded %q = %#v; want %#v, %v", seed, op, k, a, want, ok)
					}
					if rng.IntN(8) == 0 {
						n := pick(keys)
						na := Actual{MemberID: pick(ids), Email: n, Status: pick(statuses), Keys: lists[rng.IntN(len(lists))]}
						act.Set(n, na)
						wantAct[n] = na
						added[n] = true // yielded or not, as a map may
					}
				}
				for k := range wantAct {
					if !seen[k] && !added[k] {
						t.Fatalf("seed %d op %d: All missed %q", seed, op, k)
					}
				}
			case 7:
				if op%50 == 0 {
					for _, k := range keys {
						check(op, k)
					}
				}
			case 8:
				check(op, k)
			}
			if act.Len() != len(wantAct) || led.Len() != len(wantLed) {
				t.Fatalf("seed %d op %d: Len = %d, %d; want %d, %d", seed, op, act.Len(), led.Len(), len(wantAct), len(wantLed))
			}
		}
		// A value read stays what it was, whatever was set or deleted since.
		for _, r := range reads {
			if got := [2]string{fmt.Sprintf("%#v", r.a), fmt.Sprintf("%#v", r.e)}; got != r.copy {
				t.Fatalf("seed %d: a value read under %q changed after it was read: %v, was %v", seed, r.key, got, r.copy)
			}
		}
		if got := maps.Collect(act.All()); len(got) != len(wantAct) || len(wantAct) > 0 && !reflect.DeepEqual(got, wantAct) {
			t.Fatalf("seed %d: All = %d members; want %d", seed, len(got), len(wantAct))
		}
		if got := maps.Collect(led.All()); len(got) != len(wantLed) || len(wantLed) > 0 && !reflect.DeepEqual(got, wantLed) {
			t.Fatalf("seed %d: ledger All = %d entries; want %d", seed, len(got), len(wantLed))
		}
	}
}

// Keys whose hashes agree in the 8 tag bits and in the bits that pick
// their home slot all probe through one another: every slot they pass
// holds the same tag, and only comparing the keys tells them apart. They
// read back as a map does through sets, deletes, re-sets and the index
// growing around them.
func TestMemberTablesTellTagCollisionsApart(t *testing.T) {
	act := NewActuals(0)
	led := NewLedgerBeside(act, 0)
	led.x.seed = act.x.seed // both empty yet: the same keys collide in both
	// The home slot is picked by the low bits: six of them agree for
	// every table up to 64 slots, which 31 rows stay within.
	const homeBits = 6
	class := func(k string) uint64 {
		h := maphash.String(act.x.seed, k)
		return h>>56<<homeBits | h&(1<<homeBits-1)
	}
	var keys []string
	for i := 0; len(keys) < 31; i++ {
		if i > 1<<24 {
			t.Fatal("no colliding keys found")
		}
		if k := fmt.Sprintf("c%d@example.com", i); len(keys) == 0 || class(k) == class(keys[0]) {
			keys = append(keys, k)
		}
	}
	wantAct, wantLed := map[string]Actual{}, map[string]LedgerEntry{}
	rng := rand.New(rand.NewPCG(3, 5))
	for op := range 3000 {
		k := keys[rng.IntN(len(keys))]
		switch rng.IntN(4) {
		case 0:
			a := Actual{MemberID: fmt.Sprintf("m%d", op), Email: k, Status: "accepted", Keys: []string{k}}
			act.Set(k, a)
			wantAct[k] = a
		case 1:
			e := LedgerEntry{MemberID: fmt.Sprintf("m%d", op), Created: true, Managed: []string{k}}
			led.Set(k, e)
			wantLed[k] = e
		case 2:
			act.Delete(k)
			delete(wantAct, k)
			led.Delete(k)
			delete(wantLed, k)
		case 3:
			for _, k := range keys {
				got, ok := act.Get(k)
				w, wok := wantAct[k]
				if ok != wok || !reflect.DeepEqual(got, w) {
					t.Fatalf("op %d: Get(%q) = %#v, %v; want %#v, %v", op, k, got, ok, w, wok)
				}
				gotE, ok := led.Get(k)
				wE, wok := wantLed[k]
				if ok != wok || !reflect.DeepEqual(gotE, wE) {
					t.Fatalf("op %d: ledger Get(%q) = %#v, %v; want %#v, %v", op, k, gotE, ok, wE, wok)
				}
			}
		}
		if act.Len() != len(wantAct) || led.Len() != len(wantLed) {
			t.Fatalf("op %d: Len = %d, %d; want %d, %d", op, act.Len(), led.Len(), len(wantAct), len(wantLed))
		}
	}
	// The test tested what it says: one tag in every used slot.
	for _, x := range [][]uint32{act.x.slots, led.x.slots} {
		tags := map[uint32]bool{}
		for _, v := range x {
			if v != 0 {
				tags[v&^rowMask] = true
			}
		}
		if len(tags) != 1 || len(x) > 1<<homeBits {
			t.Fatalf("%d tags in %d slots; want one tag in at most %d", len(tags), len(x), 1<<homeBits)
		}
	}
}

// What interning two key lists as one cost: a leaver's granted roles read
// back as another member's single odd key (a role id holding a NUL byte),
// so the plan saw the roles as found, not granted, and reported them as
// drift instead of removing them: the leaver kept access.
func TestLeaverLosesGrantedRolesBesideAKeyHoldingANUL(t *testing.T) {
	act := NewActuals(2)
	led := NewLedgerBeside(act, 2)
	odd := "role:a\x00role:b"
	act.Set("odd@x.io", Actual{MemberID: "m0", Email: "odd@x.io", Status: "accepted", Keys: []string{odd}})
	led.Set("odd@x.io", LedgerEntry{MemberID: "m0", Created: true, Managed: []string{odd}})
	act.Set("leaver@x.io", Actual{MemberID: "m1", Email: "leaver@x.io", Status: "accepted", Keys: []string{"role:a", "role:b", "role:c"}})
	led.Set("leaver@x.io", LedgerEntry{MemberID: "m1", Created: true, Managed: []string{"role:a", "role:b"}, Found: []string{"role:c"}})
	in := AccountInput{ID: "acc", Name: "acc", Actual: act, Ledger: led, Desired: WantedOf(map[string]DesiredMember{
		"odd@x.io": {Email: "odd@x.io", Keys: Wants{{Key: odd, Reasons: []Reason{{}}}}},
	})}
	c := Plan([]AccountInput{in}, false)
	var removed []string
	for _, ac := range c.Accounts {
		for _, ch := range ac.Changes {
			if ch.Email == "leaver@x.io" {
				removed = append(removed, ch.Removed...)
			}
		}
	}
	if !slices.Equal(removed, []string{"role:a", "role:b"}) {
		t.Fatalf("the leaver's granted roles removed: %q (drift %q); want role:a and role:b", removed, c.Drift)
	}
}

// readsAsTheMaps fails t unless act and led read key k as the maps do.
func readsAsTheMaps(t *testing.T, at string, act *Actuals, led *Ledger, wantAct map[string]Actual, wantLed map[string]LedgerEntry, k string) {
	t.Helper()
	got, ok := act.Get(k)
	want, wantOK := wantAct[k]
	if ok != wantOK || !reflect.DeepEqual(got, want) || act.Has(k) != wantOK {
		t.Fatalf("%s: Get(%q) = %#v, %v; want %#v, %v", at, k, got, ok, want, wantOK)
	}
	gotE, ok := led.Get(k)
	wantE, wantOK := wantLed[k]
	if ok != wantOK || !reflect.DeepEqual(gotE, wantE) || led.Has(k) != wantOK {
		t.Fatalf("%s: ledger Get(%q) = %#v, %v; want %#v, %v", at, k, gotE, ok, wantE, wantOK)
	}
}

// A row Put answers names its key for the table's life: At reads the
// member under it now, through later sets, deletes and growth, and a key
// set again keeps its row.
func TestActualsRowsNameTheirKeysForGood(t *testing.T) {
	tab := NewActuals(0)
	rows := map[string]uint32{}
	for i := range 500 {
		k := fmt.Sprintf("u%d@example.com", i)
		rows[k] = tab.Put(k, Actual{MemberID: fmt.Sprint("m", i), Email: k})
	}
	if r := tab.Put("u7@example.com", Actual{MemberID: "again", Email: "U7@example.com"}); r != rows["u7@example.com"] {
		t.Fatalf("setting a key again answered row %d; it has row %d", r, rows["u7@example.com"])
	}
	tab.Delete("u9@example.com")
	for k, r := range rows {
		key, a, present := tab.At(r)
		want, ok := tab.Get(k)
		if key != k || present != ok || present && !reflect.DeepEqual(a, want) {
			t.Fatalf("At(%d) = %q, %+v, %v; want %q, %+v, %v", r, key, a, present, k, want, ok)
		}
	}
	if _, a, _ := tab.At(rows["u7@example.com"]); a.MemberID != "again" || a.Email != "U7@example.com" {
		t.Fatalf("At read %+v for a key set again", a)
	}
	if _, _, present := tab.At(rows["u9@example.com"]); present {
		t.Fatal("At read a deleted key as present")
	}
}
