package cloudflarefake

import (
	"context"
	"sync"
	"time"
)

// Clock is a manual clock shared by the fake and the client under test.
// Sleep does not wait: it advances the clock by the requested duration, so a
// client that honours a 30 s Retry-After makes the fake see 30 s pass at once.
// It satisfies the client's Clock interface (Now, Sleep).
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	slept  time.Duration
	sleeps int
}

// Epoch is the time a Clock made by New starts at when none is given.
var Epoch = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

// NewClock returns a Clock reading start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Sleep advances the clock by d unless ctx has ended.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d <= 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.slept += d
	c.sleeps++
	return nil
}

// Slept is the total duration passed to Sleep and how many Sleep calls
// advanced the clock.
func (c *Clock) Slept() (total time.Duration, calls int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.slept, c.sleeps
}
