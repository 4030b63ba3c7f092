// Package clock is the injected source of "now" for everything that decides
// by time: certificate validity, token expiry, renewal schedules, CRL
// nextUpdate. Production code takes a [Clock] (or, where it also waits, an
// interface of its own with Until, as the agent does); tests pass a [Fake],
// whose waits fire when the test moves it.
package clock

import (
	"sync"
	"time"
)

// Clock tells the time.
type Clock interface {
	Now() time.Time
}

// Real is the wall clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// Until returns a channel that receives once the wall clock reaches t (at
// once if it already has).
func (Real) Until(t time.Time) <-chan time.Time { return time.After(time.Until(t)) }

// Fake is a manually driven clock for tests: Now returns what the test set,
// and a wait (Until) fires when Set, Advance or AdvanceTo reaches it. It is
// safe for concurrent use.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

// NewFake returns a Fake set to t.
func NewFake(t time.Time) *Fake { return &Fake{now: t} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// Until returns a channel that receives the clock's time once it reaches
// t: at once if it already has, else when the test moves it there.
func (f *Fake) Until(t time.Time) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	if !t.After(f.now) {
		ch <- f.now
		return ch
	}
	f.waiters = append(f.waiters, waiter{at: t, ch: ch})
	return ch
}

// Set moves the clock to t, forward or back, and fires every wait that is
// due.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.set(t)
}

// Advance moves the clock forward by d and fires every wait that is due.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.set(f.now.Add(d))
}

// AdvanceTo moves the clock to t if t is later, and fires every wait that
// is due.
func (f *Fake) AdvanceTo(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.After(f.now) {
		f.set(t)
	}
}

// Pending is the number of waits not yet fired.
func (f *Fake) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.waiters)
}

// set moves the clock with f.mu held.
func (f *Fake) set(t time.Time) {
	f.now = t
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if w.at.After(t) {
			kept = append(kept, w)
		} else {
			w.ch <- t
		}
	}
	f.waiters = kept
}
