package cloudflare

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// budgetSpan is the rolling window Cloudflare counts its 1200-request
// allowance over, and so the window our own budget is counted over.
const budgetSpan = 5 * time.Minute

// window is a rolling-window request counter: the start times of the
// attempts made within the last span, oldest first, plus an optional pause
// Cloudflare asked for. It reads no clock; now is always passed in.
type window struct {
	limit     int
	span      time.Duration
	times     []time.Time
	holdUntil time.Time
}

func (w *window) expire(now time.Time) {
	cut := now.Add(-w.span)
	i := 0
	for i < len(w.times) && !w.times[i].After(cut) {
		i++
	}
	if i > 0 {
		w.times = append(w.times[:0], w.times[i:]...)
	}
}

// reserve takes a slot at now and returns 0, or returns how long to wait
// before a slot can be free (without taking one). keep slots stay free for
// others: the caller takes one only while more than keep are left.
func (w *window) reserve(now time.Time, keep int) time.Duration {
	w.expire(now)
	if now.Before(w.holdUntil) {
		return w.holdUntil.Sub(now)
	}
	usable := max(w.limit-keep, 1)
	if len(w.times) < usable {
		w.times = append(w.times, now)
		return 0
	}
	// Free once all but usable-1 of the slots taken have left the window.
	return w.times[len(w.times)-usable].Add(w.span).Sub(now)
}

func (w *window) left(now time.Time) int {
	w.expire(now)
	return max(0, w.limit-len(w.times))
}

func (w *window) hold(until time.Time) {
	if until.After(w.holdUntil) {
		w.holdUntil = until
	}
}

// limiter makes every HTTP attempt, retries included, take a slot of the
// window first, waiting on the injected clock when none is free.
type limiter struct {
	mu    sync.Mutex
	w     window
	clock Clock
}

func newLimiter(limit int, clock Clock) *limiter {
	return &limiter{w: window{limit: limit, span: budgetSpan}, clock: clock}
}

// bulkReserve is the part of the budget a bulk read (a full run's member
// listing: a page of 50 per request, so a big account can take the whole
// budget for several windows) leaves to everything else: a leaver's
// removal or an expiry never waits minutes for a slot a listing took.
const bulkReserve = 10 // percent

// acquire takes a slot, waiting for one; a bulk read waits while only the
// reserve is left.
func (l *limiter) acquire(ctx context.Context, bulk bool) error {
	keep := 0
	if bulk && l.w.limit > 1 {
		keep = max(1, l.w.limit*bulkReserve/100)
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		l.mu.Lock()
		wait := l.w.reserve(l.clock.Now(), keep)
		l.mu.Unlock()
		if wait <= 0 {
			return nil
		}
		if err := l.clock.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("%w: still %s to wait for a request slot: %w", ErrBudget, wait, err)
		}
	}
}

func (l *limiter) left() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.left(l.clock.Now())
}

// holdUntil pauses every caller until t: Cloudflare said it will refuse
// requests until then, and each refused attempt would still cost budget.
func (l *limiter) holdUntil(t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.w.hold(t)
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP-date
// (RFC 9110 §10.2.3), relative to now.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if secs < 0 {
			return 0, true
		}
		return time.Duration(secs * float64(time.Second)), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now)), true
	}
	return 0, false
}

// rateLimitPause reads the IETF draft RateLimit headers Cloudflare sends,
// e.g. `Ratelimit: "default";r=0;t=30` and `Ratelimit-Policy: "burst";q=1200;w=300`.
// It reports a pause only when some quota has nothing remaining: then the
// wait is that quota's t (reset), or the matching policy's window w when t is
// missing. The older draft form `limit=100, remaining=0, reset=30` is read too.
func rateLimitPause(h http.Header) (time.Duration, bool) {
	limits := parseRateLimitField(h.Values("Ratelimit"))
	if len(limits) == 0 {
		return 0, false
	}
	policies := parseRateLimitField(h.Values("Ratelimit-Policy"))
	var pause time.Duration
	found := false
	for name, p := range limits {
		r, ok := p.num("r", "remaining")
		if !ok || r > 0 {
			continue
		}
		t, ok := p.num("t", "reset")
		if !ok {
			t, ok = policies[name].num("w", "window")
		}
		if !ok {
			continue
		}
		if d := time.Duration(t) * time.Second; !found || d > pause {
			pause, found = d, true
		}
	}
	return pause, found
}

type rlParams map[string]string

func (p rlParams) num(keys ...string) (int64, bool) {
	for _, k := range keys {
		if v, ok := p[k]; ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil && n >= 0 {
				return n, true
			}
		}
	}
	return 0, false
}

// parseRateLimitField parses a structured-field list of named items with
// parameters into name -> params. Parameters without an item name (the older
// draft) are gathered under "".
func parseRateLimitField(values []string) map[string]rlParams {
	out := map[string]rlParams{}
	for _, v := range values {
		for item := range strings.SplitSeq(v, ",") {
			parts := strings.Split(item, ";")
			name := ""
			first := strings.TrimSpace(parts[0])
			params := parts[1:]
			if strings.Contains(first, "=") {
				params = parts
			} else {
				name = strings.Trim(first, `"`)
			}
			p := out[name]
			if p == nil {
				p = rlParams{}
				out[name] = p
			}
			for _, kv := range params {
				k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
				if !ok {
					continue
				}
				p[strings.ToLower(strings.TrimSpace(k))] = strings.Trim(strings.TrimSpace(val), `"`)
			}
		}
	}
	return out
}
