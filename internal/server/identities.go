package server

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/wire"
)

// renewalOverdue is the fraction of a certificate's lifetime after which
// an agent would have renewed it: agents renew at a random point in
// [0.6, 0.7] of the lifetime (internal/agent), so a latest certificate
// past 0.75 of its life has no agent renewing it.
const renewalOverdue = 0.75

// InventoryWindows select what an inventory flags; zero leaves the flag
// off.
type InventoryWindows struct {
	Stale    time.Duration // a valid certificate and no request for this long
	Expiring time.Duration // the last valid certificate lapses within this, unrenewed
}

// Inventory builds one entry per identity that has a certificate, ordered
// by identity, from its certificates and its last use as gateways
// reported it.
//
// An identity is stale when it has a valid certificate and nothing used it
// for the stale window: its last request, or its first certificate if it
// was never seen, is older than the window. It is expiring when its latest
// valid certificate lapses within the expiring window and is past the
// point an agent would have renewed it.
func Inventory(certs []store.Certificate, seen []store.Seen, now time.Time, w InventoryWindows) []wire.Identity {
	type acc struct {
		id       wire.Identity
		first    time.Time
		latest   *store.Certificate // latest valid, by NotAfter
		anyValid bool
	}
	by := map[string]*acc{}
	for i := range certs {
		c := &certs[i]
		a := by[c.Identity]
		if a == nil {
			a = &acc{id: wire.Identity{Identity: c.Identity}, first: c.IssuedAt}
			by[c.Identity] = a
		}
		a.id.Total++
		if c.IssuedAt.Before(a.first) {
			a.first = c.IssuedAt
		}
		switch {
		case c.Revocation != nil:
			a.id.Revoked++
		case now.Before(c.NotAfter):
			a.id.Valid++
			if a.latest == nil || c.NotAfter.After(a.latest.NotAfter) {
				a.latest = c
			}
		}
		if a.id.LatestSerial == "" || c.NotAfter.After(a.id.NotAfter) {
			a.id.LatestSerial, a.id.NotAfter = c.Serial, c.NotAfter.UTC()
		}
	}
	for _, s := range seen {
		a := by[s.Identity]
		if a == nil {
			continue // a gateway saw it, but this CA has no certificate of it
		}
		a.id.LastSeen, a.id.LastSource, a.id.Requests = s.LastSeen.UTC(), s.LastSource, s.Requests
		if !s.SharingAt.IsZero() {
			a.id.SharingSuspected = s.SharingAt.UTC()
		}
	}
	out := make([]wire.Identity, 0, len(by))
	for _, a := range by {
		if a.latest != nil {
			a.id.LatestSerial, a.id.NotAfter = a.latest.Serial, a.latest.NotAfter.UTC()
			if w.Stale > 0 {
				ref := a.first
				if a.id.LastSeen.After(ref) {
					ref = a.id.LastSeen
				}
				a.id.Stale = now.Sub(ref) >= w.Stale
			}
			if w.Expiring > 0 {
				c := a.latest
				due := c.NotBefore.Add(time.Duration(float64(c.NotAfter.Sub(c.NotBefore)) * renewalOverdue))
				a.id.Expiring = c.NotAfter.Sub(now) <= w.Expiring && !now.Before(due)
			}
		}
		out = append(out, a.id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Identity < out[j].Identity })
	return out
}

// ParseWindow reads a window such as "30d", "12h" or "90m": a Go duration,
// or a whole number of days with the suffix d.
func ParseWindow(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil || d <= 0 || d > 36500 {
			return 0, fmt.Errorf("%q is not a number of days between 1 and 36500", s)
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a positive duration (30d, 12h, 90m)", s)
	}
	return d, nil
}

// listIdentities answers GET /v1/identities (admin): the inventory, with
// ?stale=WINDOW and ?expiring=WINDOW keeping only the identities flagged
// so (either, when both are given), ?identity=ID one identity.
func (s *Server) listIdentities(r *http.Request) (int, any, error) {
	c, err := s.authorize(r, "list identities", readers)
	if err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	var w InventoryWindows
	for _, p := range []struct {
		name string
		d    *time.Duration
	}{{"stale", &w.Stale}, {"expiring", &w.Expiring}} {
		if v := q.Get(p.name); v != "" {
			d, err := ParseWindow(v)
			if err != nil {
				return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadRequest, p.name+": "+err.Error(), nil)
			}
			*p.d = d
		}
	}
	now := s.o.Clock.Now()
	certs, err := s.o.Store.ListCertificates(r.Context(), store.CertFilter{Identity: q.Get("identity"), Now: now})
	if err != nil {
		return 0, nil, err
	}
	seen, err := s.o.Store.IdentitiesSeen(r.Context())
	if err != nil {
		return 0, nil, err
	}
	if err := s.auditAdmin(r.Context(), c, "list identities"); err != nil {
		return 0, nil, err
	}
	all := Inventory(certs, seen, now, w)
	out := all
	if w.Stale > 0 || w.Expiring > 0 {
		out = []wire.Identity{}
		for _, id := range all {
			if id.Stale || id.Expiring {
				out = append(out, id)
			}
		}
	}
	return http.StatusOK, wire.IdentityList{Now: now.UTC(), Identities: out}, nil
}
