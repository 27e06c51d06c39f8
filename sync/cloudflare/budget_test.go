package cloudflare

import (
	"net/http"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

func TestParseRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30", 30 * time.Second, true},
		{" 2 ", 2 * time.Second, true},
		{"0.5", 500 * time.Millisecond, true},
		{"-3", 0, true},
		{t0.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{t0.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"", 0, false},
		{"soon", 0, false},
	} {
		got, ok := parseRetryAfter(tc.in, t0)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %s, %v; want %s, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRateLimitPause(t *testing.T) {
	for _, tc := range []struct {
		name          string
		limit, policy string
		want          time.Duration
		ok            bool
	}{
		{"remaining left", `"default";r=10;t=30`, `"default";q=1200;w=300`, 0, false},
		{"exhausted", `"default";r=0;t=30`, `"default";q=1200;w=300`, 30 * time.Second, true},
		{"exhausted without t uses policy window", `"burst";r=0`, `"burst";q=1200;w=300`, 300 * time.Second, true},
		{"longest of several", `"a";r=0;t=5, "b";r=0;t=40, "c";r=3;t=99`, ``, 40 * time.Second, true},
		{"older draft", `limit=100, remaining=0, reset=12`, ``, 12 * time.Second, true},
		{"absent", ``, `"default";q=1200;w=300`, 0, false},
		{"garbage", `"x";r=zero;t=ten`, ``, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.limit != "" {
				h.Set("Ratelimit", tc.limit)
			}
			if tc.policy != "" {
				h.Set("Ratelimit-Policy", tc.policy)
			}
			got, ok := rateLimitPause(h)
			if got != tc.want || ok != tc.ok {
				t.Errorf("rateLimitPause = %s, %v; want %s, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestWindow(t *testing.T) {
	w := window{limit: 2, span: 5 * time.Minute}
	if d := w.reserve(t0, 0); d != 0 {
		t.Fatalf("first reserve waits %s", d)
	}
	if d := w.reserve(t0.Add(time.Minute), 0); d != 0 {
		t.Fatalf("second reserve waits %s", d)
	}
	if d := w.reserve(t0.Add(2*time.Minute), 0); d != 3*time.Minute {
		t.Fatalf("third reserve waits %s, want 3m", d)
	}
	if n := w.left(t0.Add(2 * time.Minute)); n != 0 {
		t.Fatalf("left = %d, want 0", n)
	}
	if d := w.reserve(t0.Add(5*time.Minute), 0); d != 0 {
		t.Fatalf("reserve when the first slot frees waits %s", d)
	}
	w.hold(t0.Add(10 * time.Minute))
	w.hold(t0.Add(7 * time.Minute)) // an earlier hold does not shorten it
	if d := w.reserve(t0.Add(9*time.Minute), 0); d != time.Minute {
		t.Fatalf("reserve during a hold waits %s, want 1m", d)
	}
	if n := w.left(t0.Add(20 * time.Minute)); n != 2 {
		t.Fatalf("left after the window = %d, want 2", n)
	}
}

// A bulk read leaves keep slots to others: it waits for a slot while
// only those are left, and others still take them at once.
func TestWindowKeepsAReserve(t *testing.T) {
	w := window{limit: 4, span: 5 * time.Minute}
	for i := range 3 {
		if d := w.reserve(t0.Add(time.Duration(i)*time.Minute), 1); d != 0 {
			t.Fatalf("bulk reserve %d waits %s", i+1, d)
		}
	}
	// Three taken, one left: the bulk read waits until the first leaves.
	if d := w.reserve(t0.Add(3*time.Minute), 1); d != 2*time.Minute {
		t.Fatalf("bulk reserve with only the reserve left waits %s, want 2m", d)
	}
	if d := w.reserve(t0.Add(3*time.Minute), 0); d != 0 {
		t.Fatalf("a write with the reserve left waits %s", d)
	}
	// Four taken: the bulk read needs two of them gone (usable 3, so the
	// count must fall to 2), i.e. the one taken at t0+1m.
	if d := w.reserve(t0.Add(3*time.Minute), 1); d != 3*time.Minute {
		t.Fatalf("bulk reserve in a full window waits %s, want 3m", d)
	}
	if d := w.reserve(t0.Add(3*time.Minute), 0); d != 2*time.Minute {
		t.Fatalf("a write in a full window waits %s, want 2m", d)
	}
}

func TestBackoffIsCappedWithJitter(t *testing.T) {
	c := &Client{maxBackoff: 4 * time.Second}
	for attempt, want := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second} {
		for range 50 {
			d := c.backoff(attempt)
			if d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", attempt, d, want/2, want)
			}
		}
	}
	if d := c.backoff(100); d > 4*time.Second {
		t.Fatalf("backoff(100) = %s: overflowed the cap", d)
	}
}
