package sync

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scimflare/scimflare/sync/cloudflare/cftest"
)

// A removal is counted from when it was applied until the window has
// passed since the end of its slice (window/100): never for less time than
// the window (the guard is never looser than its limit), never for more
// than a slice longer.
func TestAddRemovalsDatesAStampAtTheEndOfItsSlice(t *testing.T) {
	window := time.Hour // slices of 36 s
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		at   time.Duration // after t0 (a slice boundary)
		want time.Duration // the stamp's date after t0
	}{
		{"on a boundary", 0, 0},
		{"just after one", time.Nanosecond, 36 * time.Second},
		{"inside", 20 * time.Second, 36 * time.Second},
		{"at the next boundary", 36 * time.Second, 36 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := addRemovals(nil, "acc", 2, t0.Add(tc.at), window)
			if len(got["acc"]) != 1 || !got["acc"][0].At.Equal(t0.Add(tc.want)) || got["acc"][0].N != 2 {
				t.Fatalf("stamps = %+v, want one of 2 at t0+%s", got, tc.want)
			}
		})
	}
}

func TestAddRemovalsSharesAStampWithinASlice(t *testing.T) {
	window := time.Hour
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	var s map[string][]removalStamp
	s = addRemovals(s, "a", 1, t0.Add(1*time.Second), window)
	s = addRemovals(s, "a", 2, t0.Add(30*time.Second), window)
	s = addRemovals(s, "b", 1, t0.Add(30*time.Second), window)
	s = addRemovals(s, "a", 4, t0.Add(37*time.Second), window)
	want := map[string][]removalStamp{
		"a": {{At: t0.Add(36 * time.Second), N: 3}, {At: t0.Add(72 * time.Second), N: 4}},
		"b": {{At: t0.Add(36 * time.Second), N: 1}},
	}
	if !equalStamps(s, want) {
		t.Fatalf("stamps = %+v, want %+v", s, want)
	}
}

// The status a run starts from may be read by Status() meanwhile:
// counting a removal must not write into its map or slices.
func TestAddRemovalsLeavesTheStampsItWasGivenAlone(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 10, 0, 1, 0, time.UTC)
	old := map[string][]removalStamp{"a": make([]removalStamp, 1, 4)}
	old["a"][0] = removalStamp{At: t0.Add(35 * time.Second), N: 1}
	_ = addRemovals(old, "a", 5, t0, time.Hour)
	_ = addRemovals(old, "b", 5, t0, time.Hour)
	_ = addRemovals(old, "a", 5, t0.Add(time.Minute), time.Hour)
	if len(old) != 1 || len(old["a"]) != 1 || old["a"][0].N != 1 || old["a"][:2][1] != (removalStamp{}) {
		t.Fatalf("the given stamps changed: %+v", old)
	}
}

// Against the exact count (one stamp per removal, as before): at any
// moment the guard counts at least every removal of the window and at
// most those of the window and one slice more; after pruning, an account
// keeps at most 101 stamps whatever the number of removals.
func TestAddRemovalsIsNeverLooserThanTheWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 12))
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for round := range 300 {
		window := time.Duration(1+rng.IntN(7200)) * time.Second
		if round%10 == 0 {
			window = time.Duration(1 + rng.IntN(1000)) // nanoseconds: slices of 0, exact
		}
		slot := window / removalSlots
		type removal struct {
			at time.Time
			n  int
		}
		var exact []removal
		var stamps map[string][]removalStamp
		now := t0.Add(time.Duration(rng.Int64N(int64(time.Hour))))
		for range 1 + rng.IntN(400) {
			now = now.Add(time.Duration(rng.Int64N(int64(window / 20))))
			r := removal{at: now, n: 1 + rng.IntN(3)}
			exact = append(exact, r)
			stamps = addRemovals(stamps, "acc", r.n, r.at, window)
			// Look at a moment soon after, as the next run would.
			q := now.Add(time.Duration(rng.Int64N(int64(window + 2*slot + 1))))
			inWindow, inWindowAndSlot := 0, 0
			for _, e := range exact {
				if q.Sub(e.at) < window {
					inWindow += e.n
				}
				if q.Sub(e.at) < window+slot {
					inWindowAndSlot += e.n
				}
			}
			got := windowRemovals(stamps, window, q)["acc"]
			if got < inWindow || got > inWindowAndSlot {
				t.Fatalf("window %s, at %s: counted %d, want between %d (the window) and %d (a slice more)", window, q.Sub(t0), got, inWindow, inWindowAndSlot)
			}
			stamps = pruneRemovals(stamps, window, now)
			if slot > 0 && len(stamps["acc"]) > removalSlots+1 {
				t.Fatalf("window %s: %d stamps kept, want at most %d", window, len(stamps["acc"]), removalSlots+1)
			}
		}
	}
}

// The status record a run reads and writes does not grow with the
// removals of the window: 400 leavers in 400 s, one targeted run each,
// leave a dozen stamps (one per removal before: 400, 18 KB), and the
// guard still counts every one of them.
func TestStatusRecordStaysSmallThroughATrickleOfLeavers(t *testing.T) {
	e := newEnv(t, withGuards("    window: 1h\n    max_removals_per_window: 1000\n"))
	const n = 400
	ids := e.users(n, "user%03d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})
	for i := range n {
		e.deactivate(ids[i])
		e.clock.Advance(time.Second)
		if res := e.targeted([]string{ids[i]}, nil, nil); len(res.Applied) != 1 {
			t.Fatalf("leaver %d: applied %s, withheld %+v", i, kinds(res.Applied), res.Changes.Withheld)
		}
	}
	raw, err := e.st.Status(statusKey)
	if err != nil {
		t.Fatal(err)
	}
	var s savedStatus
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	stamps := s.Removals[prodID]
	total := 0
	for _, st := range stamps {
		total += st.N
	}
	if total != n || len(stamps) > n/36+2 {
		t.Fatalf("%d stamps counting %d removals (record %d bytes), want at most %d stamps counting %d", len(stamps), total, len(raw), n/36+2, n)
	}
	if got := windowRemovals(s.Removals, time.Hour, e.now())[prodID]; got != n {
		t.Fatalf("the window counts %d removals, want %d", got, n)
	}
}

func equalStamps(a, b map[string][]removalStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		if !slices.EqualFunc(x, b[k], func(p, q removalStamp) bool { return p.At.Equal(q.At) && p.N == q.N }) {
			return false
		}
	}
	return true
}

// A removal counts for the window from when it was applied, not from when
// its run started: a full run lists for minutes before its first write, and
// its removals dated at its start left the window that much early — the
// guard then let more than its limit through within one window.
func TestARemovalCountsFromWhenItWasApplied(t *testing.T) {
	var clock atomic.Pointer[cftest.Clock]
	slow := func(c cftest.Change) {
		// The run's first removal takes ten minutes to the next one.
		if c.After == nil && c.AfterStatus == "" {
			if k := clock.Swap(nil); k != nil {
				k.Advance(10 * time.Minute)
			}
		}
	}
	e := newEnv(t, withGuards("    max_removals: 25\n    min_removals: 25\n    window: 1h\n    max_removals_per_window: 2\n"),
		func(o *envOpts) { o.onChange = slow })
	ids := e.users(6, "user%02d@example.com")
	e.group("cf-deployers", ids...)
	e.mustApply(RunOptions{})

	e.deactivate(ids[0], ids[1])
	clock.Store(e.clock)
	if res := e.mustApply(RunOptions{}); len(res.Applied) != 2 {
		t.Fatalf("the first two leavers: applied %s, withheld %+v", kinds(res.Applied), res.Changes.Withheld)
	}
	second := e.now() // the second removal was applied ten minutes into the run
	// 55 minutes after the second removal: it is still in the window.
	e.clock.Advance(55 * time.Minute)
	e.deactivate(ids[2], ids[3])
	res := e.mustApply(RunOptions{})
	if len(res.Applied) != 0 || len(res.Changes.Withheld) != 2 {
		t.Fatalf("%s after removals at -65m and -55m (limit 2 per 1h): applied %s, withheld %d",
			e.now().Sub(second), kinds(res.Applied), len(res.Changes.Withheld))
	}
}
