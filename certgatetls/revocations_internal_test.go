package certgatetls

import (
	"slices"
	"testing"
	"time"

	"github.com/certgate/certgate/internal/revocation"
)

// In feed mode a set at an older position (a pulled snapshot the feed has
// overtaken, or the feed behind a pull) never takes a revocation away; it
// only confirms the set in force.
func TestApplyKeepsNewestPosition(t *testing.T) {
	r := &Revocations{holder: revocation.NewHolder()}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	check := func(step string, serials []string, updated time.Time) {
		t.Helper()
		s := r.holder.Load()
		got := s.Serials()
		slices.Sort(got)
		if !slices.Equal(got, serials) || !s.Updated().Equal(updated) {
			t.Fatalf("%s: set %v updated %s, want %v updated %s", step, got, s.Updated(), serials, updated)
		}
	}
	r.apply(revocation.NewSet(5, t0, "a"))
	check("first", []string{"a"}, t0)
	r.apply(revocation.NewSet(3, t0.Add(time.Minute), "b"))
	check("older position, later time", []string{"a"}, t0.Add(time.Minute))
	r.apply(revocation.NewSet(3, t0, "b"))
	check("older position, older time", []string{"a"}, t0.Add(time.Minute))
	r.apply(revocation.NewSet(5, t0.Add(2*time.Minute), "a"))
	check("same position", []string{"a"}, t0.Add(2*time.Minute))
	r.apply(revocation.NewSet(6, t0.Add(3*time.Minute), "a", "c"))
	check("newer position", []string{"a", "c"}, t0.Add(3*time.Minute))
}
