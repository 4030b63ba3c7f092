package clock_test

import (
	"testing"
	"time"

	"github.com/certgate/certgate/internal/clock"
)

func TestFakeWaits(t *testing.T) {
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	c := clock.NewFake(start)
	if got := <-c.Until(start); !got.Equal(start) {
		t.Fatalf("a wait for now fired at %v", got)
	}
	soon, later := c.Until(start.Add(time.Minute)), c.Until(start.Add(time.Hour))
	if c.Pending() != 2 {
		t.Fatalf("pending %d, want 2", c.Pending())
	}
	c.AdvanceTo(start.Add(-time.Hour)) // earlier: no move
	c.Advance(30 * time.Second)
	select {
	case <-soon:
		t.Fatal("fired 30 s early")
	default:
	}
	c.AdvanceTo(start.Add(2 * time.Minute))
	if got := <-soon; !got.Equal(start.Add(2 * time.Minute)) {
		t.Fatalf("fired at %v", got)
	}
	if c.Pending() != 1 || !c.Now().Equal(start.Add(2*time.Minute)) {
		t.Fatalf("pending %d at %v", c.Pending(), c.Now())
	}
	c.Advance(time.Hour)
	<-later
	if c.Pending() != 0 {
		t.Fatalf("pending %d, want 0", c.Pending())
	}
}

// TestFakeSet: Set moves either way; a wait fires only once it is reached.
func TestFakeSet(t *testing.T) {
	start := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	c := clock.NewFake(start)
	w := c.Until(start.Add(time.Minute))
	c.Set(start.Add(-time.Hour))
	if !c.Now().Equal(start.Add(-time.Hour)) || c.Pending() != 1 {
		t.Fatalf("after Set back: %v, %d pending", c.Now(), c.Pending())
	}
	c.Set(start.Add(time.Minute))
	if got := <-w; !got.Equal(start.Add(time.Minute)) {
		t.Fatalf("fired at %v", got)
	}
}

func TestRealUntil(t *testing.T) {
	now := time.Now()
	select {
	case <-clock.Real{}.Until(now.Add(-time.Second)):
	case <-time.After(5 * time.Second):
		t.Fatal("a wait for the past did not fire")
	}
}
