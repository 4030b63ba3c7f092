package revocation

import (
	"crypto/x509"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Set is an immutable snapshot of revoked serials, and of revoked CA
// keys: a certificate whose chain goes through a revoked intermediate is
// refused like a revoked one.
type Set struct {
	serials  map[string]struct{}
	issuers  map[string]struct{} // key IDs (lowercase hex SKI) of revoked CA certificates
	position int64
	updated  time.Time
}

// IssuerRevoked reports whether the CA key keyID (lowercase hex subject
// key identifier) is revoked. It is safe on a nil set.
func (s *Set) IssuerRevoked(keyID string) bool {
	if s == nil || len(s.issuers) == 0 {
		return false
	}
	_, ok := s.issuers[keyID]
	return ok
}

// AnyIssuerRevoked reports whether any CA key is revoked: the one check on
// the handshake path while none is.
func (s *Set) AnyIssuerRevoked() bool { return s != nil && len(s.issuers) > 0 }

// RevokedIssuers returns the revoked CA keys in no particular order.
func (s *Set) RevokedIssuers() []string {
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.issuers))
	for k := range s.issuers {
		out = append(out, k)
	}
	return out
}

// NewSet builds a set at a feed position, taken at time updated. Serials
// must be canonical (see [CanonicalSerial]).
func NewSet(position int64, updated time.Time, serials ...string) *Set {
	m := make(map[string]struct{}, len(serials))
	for _, s := range serials {
		m[s] = struct{}{}
	}
	return &Set{serials: m, position: position, updated: updated}
}

// Contains reports whether serial (canonical) is revoked. It is safe on a
// nil set, which contains nothing.
func (s *Set) Contains(serial string) bool {
	if s == nil {
		return false
	}
	_, ok := s.serials[serial]
	return ok
}

// Len returns the number of revoked serials.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.serials)
}

// Position returns the feed position the set reflects.
func (s *Set) Position() int64 {
	if s == nil {
		return 0
	}
	return s.position
}

// Updated returns when the set was last confirmed current.
func (s *Set) Updated() time.Time {
	if s == nil {
		return time.Time{}
	}
	return s.updated
}

// Serials returns the revoked serials in no particular order.
func (s *Set) Serials() []string {
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.serials))
	for k := range s.serials {
		out = append(out, k)
	}
	return out
}

// SerialOf returns the canonical serial of cert.
func SerialOf(cert *x509.Certificate) string { return cert.SerialNumber.Text(16) }

// CanonicalSerial turns a hexadecimal serial, in any case, with or without
// leading zeros or colons between bytes, into the canonical spelling.
func CanonicalSerial(s string) (string, error) {
	c, err := canonicalSerial(s)
	if err != nil {
		return "", fmt.Errorf("revocation: %w", err)
	}
	return c, nil
}

func canonicalSerial(s string) (string, error) {
	if s == "" {
		return "", errors.New("empty serial")
	}
	if len(s) > 128 {
		return "", errors.New("serial longer than 128 characters")
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
		case c >= 'A' && c <= 'F':
			c += 'a' - 'A'
		case c == ':':
			continue
		default:
			return "", fmt.Errorf("serial %q is not hexadecimal", s)
		}
		if c == '0' && b.Len() == 0 {
			continue
		}
		b.WriteByte(c)
	}
	if b.Len() == 0 {
		return "0", nil
	}
	return b.String(), nil
}

// Updater receives new snapshots; [Holder] is the implementation.
type Updater interface {
	Update(s *Set)
}

// Holder holds the current [Set]. Readers never block; an update replaces
// the whole set atomically.
type Holder struct {
	cur atomic.Pointer[Set]

	mu       sync.Mutex
	onChange []func(old, new *Set)
}

// NewHolder returns a Holder with an empty set that has never been updated.
func NewHolder() *Holder {
	h := &Holder{}
	h.cur.Store(NewSet(0, time.Time{}))
	return h
}

// Load returns the current set.
func (h *Holder) Load() *Set { return h.cur.Load() }

// Revoked reports whether serial (canonical) is in the current set.
func (h *Holder) Revoked(serial string) bool { return h.cur.Load().Contains(serial) }

// Update replaces the set and calls the change hooks with the old and new
// sets, in the caller's goroutine.
func (h *Holder) Update(s *Set) {
	h.mu.Lock()
	old := h.cur.Swap(s)
	hooks := h.onChange
	h.mu.Unlock()
	for _, f := range hooks {
		f(old, s)
	}
}

// OnChange registers f to run after every update, for example to close the
// live connections of newly revoked certificates.
func (h *Holder) OnChange(f func(old, new *Set)) {
	h.mu.Lock()
	h.onChange = append(h.onChange, f)
	h.mu.Unlock()
}

// Added returns the serials in new that are not in old.
func Added(old, new *Set) []string {
	var out []string
	if new == nil {
		return nil
	}
	if old != nil && sameMap(old.serials, new.serials) {
		// A heartbeat's set (Set.Touched) shares its map: nothing was
		// added, and a large set is not walked every few seconds.
		return nil
	}
	for s := range new.serials {
		if !old.Contains(s) {
			out = append(out, s)
		}
	}
	return out
}

func sameMap(a, b map[string]struct{}) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}
