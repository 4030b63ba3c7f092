package revocation

import (
	"maps"
	"time"
)

// With returns a new set holding s's serials and serials, at position,
// taken at updated. s is unchanged. The push feed builds its sets this way,
// one event at a time.
func (s *Set) With(position int64, updated time.Time, serials ...string) *Set {
	var m map[string]struct{}
	if s == nil {
		m = make(map[string]struct{}, len(serials))
	} else {
		m = make(map[string]struct{}, len(s.serials)+len(serials))
		maps.Copy(m, s.serials)
	}
	for _, x := range serials {
		m[x] = struct{}{}
	}
	return &Set{serials: m, position: position, updated: updated}
}

// Touched returns a set with s's serials and position, taken at t: what a
// follower stores when a heartbeat proves it is current. The map is shared,
// which is safe because sets are never modified.
func (s *Set) Touched(t time.Time) *Set {
	if s == nil {
		return NewSet(0, t)
	}
	return &Set{serials: s.serials, position: s.position, updated: t}
}
