package server

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/legacykey"

	"github.com/certgate/certgate/internal/identity"
	"github.com/certgate/certgate/internal/store"
	"github.com/certgate/certgate/internal/wire"
)

// maxUsageBody bounds a usage report: wire.MaxUsageEntries entries of
// about 300 bytes each, with room to spare.
const maxUsageBody = 16 << 20

// Bounds of the strings of a usage report, checked before anything is
// stored: a gateway that sends more is refused whole.
const (
	maxRouteLen  = 256
	maxSerialLen = 64
	maxSources   = 64
)

// recordUsage answers POST /v1/usage (gateway): a gateway's aggregated
// usage since its last report, recorded once by report ID.
func (s *Server) recordUsage(r *http.Request) (int, any, error) {
	c, err := s.authorize(r, "report usage", gatewayOnly)
	if err != nil {
		return 0, nil, err
	}
	var in wire.UsageReport
	if err := decode(r, &in); err != nil {
		return 0, nil, err
	}
	now := s.o.Clock.Now()
	rep, err := s.usageReport(in, c, now)
	if err != nil {
		return 0, nil, apiError(http.StatusBadRequest, wire.CodeBadRequest, err.Error(), nil)
	}
	dup, err := s.o.Store.RecordUsage(r.Context(), rep)
	if err != nil {
		return 0, nil, err
	}
	s.gateways.reported(c.ID.String(), now)
	if in.Dropped > 0 {
		s.o.Log.Warn("a gateway could not count every request: its usage table was full", "gateway", c.ID.String(), "dropped", in.Dropped)
	}
	return http.StatusOK, wire.UsageAck{ID: in.ID, Duplicate: dup}, nil
}

// usageReport checks a report from the wire and turns it into the
// store's form. Times in the gateway's future (its clock runs ahead) are
// taken as now, so one skewed gateway cannot make an identity look used
// tomorrow.
func (s *Server) usageReport(in wire.UsageReport, c Caller, now time.Time) (store.UsageReport, error) {
	switch {
	case in.ID == "" || len(in.ID) > wire.MaxUsageIDLen:
		return store.UsageReport{}, fmt.Errorf("report id must be 1 to %d characters", wire.MaxUsageIDLen)
	case len(in.Entries) > wire.MaxUsageEntries:
		return store.UsageReport{}, fmt.Errorf("report has %d entries, more than %d", len(in.Entries), wire.MaxUsageEntries)
	case len(in.Sharing) > wire.MaxSharing:
		return store.UsageReport{}, fmt.Errorf("report has %d sharing reports, more than %d", len(in.Sharing), wire.MaxSharing)
	case in.Dropped < 0:
		return store.UsageReport{}, fmt.Errorf("dropped is negative")
	}
	td := s.o.Authority.TrustDomain()
	clamp := func(t time.Time) time.Time {
		if t.After(now) {
			return now
		}
		return t
	}
	out := store.UsageReport{ID: in.ID, Gateway: c.ID.String(), Received: now, Rows: make([]store.UsageRow, 0, len(in.Entries))}
	for i, e := range in.Entries {
		if _, err := parseIn(e.Identity, td); err != nil {
			return store.UsageReport{}, fmt.Errorf("entry %d: identity: %w", i, err)
		}
		switch {
		case len(e.Route) > maxRouteLen:
			return store.UsageReport{}, fmt.Errorf("entry %d: route is longer than %d bytes", i, maxRouteLen)
		case !isHexSerial(e.Serial) && !isLegacyKeySerial(e.Serial, e.Identity):
			return store.UsageReport{}, fmt.Errorf("entry %d: serial %q is not lowercase hex of at most %d digits", i, e.Serial, maxSerialLen)
		case e.Source != "" && net.ParseIP(e.Source) == nil:
			return store.UsageReport{}, fmt.Errorf("entry %d: source %q is not an IP address", i, e.Source)
		case e.LastSeen.IsZero():
			return store.UsageReport{}, fmt.Errorf("entry %d: last_seen is not set", i)
		}
		day, err := time.Parse(time.DateOnly, e.Day)
		if err != nil {
			return store.UsageReport{}, fmt.Errorf("entry %d: day %q is not YYYY-MM-DD", i, e.Day)
		}
		if day.After(now) {
			return store.UsageReport{}, fmt.Errorf("entry %d: day %s is in the future", i, e.Day)
		}
		for _, n := range e.Requests {
			if n < 0 {
				return store.UsageReport{}, fmt.Errorf("entry %d: negative request count", i)
			}
		}
		if e.BytesIn < 0 || e.BytesOut < 0 {
			return store.UsageReport{}, fmt.Errorf("entry %d: negative byte count", i)
		}
		out.Rows = append(out.Rows, store.UsageRow{Identity: e.Identity, Serial: e.Serial, Route: e.Route, Day: e.Day,
			Requests: e.Requests, BytesIn: e.BytesIn, BytesOut: e.BytesOut, LastSeen: clamp(e.LastSeen), Source: e.Source})
	}
	for i, sh := range in.Sharing {
		if _, err := parseIn(sh.Identity, td); err != nil {
			return store.UsageReport{}, fmt.Errorf("sharing %d: identity: %w", i, err)
		}
		w, err := time.ParseDuration(sh.Window)
		switch {
		case !isHexSerial(sh.Serial) || sh.Serial == "":
			return store.UsageReport{}, fmt.Errorf("sharing %d: serial %q is not lowercase hex of at most %d digits", i, sh.Serial, maxSerialLen)
		case len(sh.Sources) < 2 || len(sh.Sources) > maxSources:
			return store.UsageReport{}, fmt.Errorf("sharing %d: %d sources, want 2 to %d", i, len(sh.Sources), maxSources)
		case err != nil || w <= 0:
			return store.UsageReport{}, fmt.Errorf("sharing %d: window %q is not a positive duration", i, sh.Window)
		case sh.Time.IsZero():
			return store.UsageReport{}, fmt.Errorf("sharing %d: time is not set", i)
		}
		for _, src := range sh.Sources {
			if net.ParseIP(src) == nil {
				return store.UsageReport{}, fmt.Errorf("sharing %d: source %q is not an IP address", i, src)
			}
		}
		out.Sharing = append(out.Sharing, store.Sharing{Identity: sh.Identity, Serial: sh.Serial, Sources: sh.Sources, Window: w, Time: clamp(sh.Time)})
	}
	return out, nil
}

// isHexSerial reports whether s is a serial in the store's spelling
// (lowercase hex), or empty (a connection refused before its certificate
// was known has none).
func isHexSerial(s string) bool {
	if len(s) > maxSerialLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// isLegacyKeySerial reports whether serial names the legacy key of
// identity (legacykey.UsageSerialPrefix + its name): the usage of a key.
func isLegacyKeySerial(serial, identity string) bool {
	name, ok := strings.CutPrefix(serial, legacykey.UsageSerialPrefix)
	n, isLegacy := legacykey.NameOf(identity)
	return ok && isLegacy && n == name
}

// parseIn parses s as an identity of trust domain td.
func parseIn(s, td string) (identity.ID, error) {
	id, err := identity.Parse(s)
	if err != nil {
		return identity.ID{}, err
	}
	if id.TrustDomain() != td {
		return identity.ID{}, fmt.Errorf("%w: %s is not in %s", identity.ErrWrongTD, s, td)
	}
	return id, nil
}
