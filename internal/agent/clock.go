package agent

import (
	"time"

	"github.com/certgate/certgate/internal/clock"
)

// Clock is the agent's source of time: "now" for every validity decision,
// and a way to wait that tests can drive.
type Clock interface {
	clock.Clock
	// After returns a channel that receives once d has passed by this clock.
	After(d time.Duration) <-chan time.Time
}

// RealClock is the wall clock.
type RealClock struct{ clock.Real }

// After is time.After.
func (RealClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
