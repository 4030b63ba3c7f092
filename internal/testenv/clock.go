package testenv

import (
	"sync"
	"time"

	"github.com/certgate/certgate/internal/clock"
)

// FakeClock is a fake clock whose waits fire when the test advances it:
// Now and Until (agent.Clock). It is safe for concurrent use.
type FakeClock struct {
	mu      sync.Mutex
	f       *clock.Fake
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// NewFakeClock returns a FakeClock set to t.
func NewFakeClock(t time.Time) *FakeClock { return &FakeClock{f: clock.NewFake(t)} }

// Now returns the fake time.
func (c *FakeClock) Now() time.Time { return c.f.Now() }

// Until returns a channel that receives the clock's time once it reaches
// t: at once if it already has, else when Advance or AdvanceTo gets there.
func (c *FakeClock) Until(t time.Time) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if now := c.f.Now(); !t.After(now) {
		ch <- now
		return ch
	}
	c.waiters = append(c.waiters, waiter{at: t, ch: ch})
	return ch
}

// Advance moves the clock forward by d and fires every wait that is due.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.advance(d)
}

// AdvanceTo moves the clock to t if t is later, and fires every wait that
// is due.
func (c *FakeClock) AdvanceTo(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := t.Sub(c.f.Now()); d > 0 {
		c.advance(d)
	}
}

// advance moves the clock with c.mu held.
func (c *FakeClock) advance(d time.Duration) {
	c.f.Advance(d)
	now := c.f.Now()
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(now) {
			kept = append(kept, w)
		} else {
			w.ch <- now
		}
	}
	c.waiters = kept
}

// Pending is the number of waits not yet fired.
func (c *FakeClock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}
