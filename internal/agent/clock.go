package agent

import (
	"time"

	"github.com/certgate/certgate/internal/clock"
)

// Clock is the agent's source of time: "now" for every validity decision,
// and a way to wait that tests can drive. clock.Real is the wall clock;
// tests pass a *clock.Fake.
type Clock interface {
	clock.Clock
	// Until returns a channel that receives once this clock reaches t (at
	// once if it already has). An absolute deadline, not a duration, so a
	// clock that moves between reading "now" and starting to wait cannot
	// push the wake-up later.
	Until(t time.Time) <-chan time.Time
}
