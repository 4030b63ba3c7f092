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
	var issuers map[string]struct{}
	if s != nil {
		issuers = s.issuers
	}
	return &Set{serials: m, issuers: issuers, position: position, updated: updated}
}

// WithIssuers returns a new set with s's serials and exactly the revoked
// CA keys keyIDs, at position, taken at updated.
func (s *Set) WithIssuers(position int64, updated time.Time, keyIDs ...string) *Set {
	var serials map[string]struct{}
	if s != nil {
		serials = s.serials
	}
	if serials == nil {
		serials = map[string]struct{}{}
	}
	var issuers map[string]struct{}
	if len(keyIDs) > 0 {
		issuers = make(map[string]struct{}, len(keyIDs))
		for _, k := range keyIDs {
			issuers[k] = struct{}{}
		}
	}
	return &Set{serials: serials, issuers: issuers, position: position, updated: updated}
}

// AddedIssuers returns the CA keys revoked in new that were not in old.
func AddedIssuers(old, new *Set) []string {
	var out []string
	for k := range new.issuersMap() {
		if !old.IssuerRevoked(k) {
			out = append(out, k)
		}
	}
	return out
}

func (s *Set) issuersMap() map[string]struct{} {
	if s == nil {
		return nil
	}
	return s.issuers
}

// Touched returns a set with s's serials and position, taken at t: what a
// follower stores when a heartbeat proves it is current. The map is shared,
// which is safe because sets are never modified.
func (s *Set) Touched(t time.Time) *Set {
	if s == nil {
		return NewSet(0, t)
	}
	return &Set{serials: s.serials, issuers: s.issuers, position: s.position, updated: t}
}
