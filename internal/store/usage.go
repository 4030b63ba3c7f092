package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/audit"
)

// UsageRow counts what one identity did with one certificate on one route
// on one UTC day, as a gateway reported it.
type UsageRow struct {
	Identity string
	Serial   string // "" in rows read back per identity and route
	Route    string
	Day      string // YYYY-MM-DD, UTC
	// Requests by status class: 0 is "no status" (a TCP connection, a
	// request cut before an answer), 1 to 5 are 1xx to 5xx.
	Requests [6]int64
	BytesIn  int64
	BytesOut int64
	LastSeen time.Time
	Source   string // host of the last request
}

// Total is the number of requests of r.
func (r UsageRow) Total() int64 {
	var n int64
	for _, c := range r.Requests {
		n += c
	}
	return n
}

// Sharing is a gateway's report that one certificate was used from more
// source hosts within a window than its threshold allows.
type Sharing struct {
	Identity string
	Serial   string
	Sources  []string
	Window   time.Duration
	Time     time.Time
}

// UsageReport is one report of a gateway, recorded at most once by ID.
type UsageReport struct {
	ID       string
	Gateway  string // the reporting gateway's identity (the audit actor)
	Received time.Time
	Rows     []UsageRow
	Sharing  []Sharing
}

// Seen is the last use of an identity or a certificate.
type Seen struct {
	Identity   string
	Serial     string // certificates only
	LastSeen   time.Time
	LastSource string
	LastRoute  string // identities only
	Requests   int64
	SharingAt  time.Time // identities only: the last sharing report; zero if none
}

// UsageReportRetention is how long report IDs are kept to recognize a
// retried report: far longer than any gateway keeps retrying one.
const UsageReportRetention = 30 * 24 * time.Hour

// RecordUsage records r in one transaction: its rows added to the daily
// counts, the last use of each identity and certificate moved forward,
// and a cert.sharing_suspected audit record per sharing report. A report
// whose ID was recorded before changes nothing and returns duplicate true.
func (s *SQL) RecordUsage(ctx context.Context, r UsageReport) (duplicate bool, err error) {
	what := "record usage report " + r.ID
	if err := validateUsage(r); err != nil {
		return false, fmt.Errorf("store: %s: %w", what, err)
	}
	ids := mergeSeen(r)
	err = s.submit(ctx, what, func(ctx context.Context, w *wtx) error {
		duplicate = false
		res, err := w.exec(ctx, stUsageReport, r.ID, r.Gateway, r.Received.UnixNano())
		if err != nil {
			return s.wrap(what, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return s.wrap(what, err)
		} else if n == 0 {
			duplicate = true
			return nil
		}
		if _, err := w.exec(ctx, stUsagePrune, r.Received.Add(-UsageReportRetention).UnixNano()); err != nil {
			return s.wrap(what+": prune", err)
		}
		for _, row := range r.Rows {
			q := row.Requests
			if _, err := w.exec(ctx, stUsageDaily, row.Identity, row.Route, row.Day, q[0], q[1], q[2], q[3], q[4], q[5],
				row.BytesIn, row.BytesOut, row.LastSeen.UnixNano()); err != nil {
				return s.wrap(what+": daily", err)
			}
		}
		if err := s.recordLegacyUsage(ctx, w, r.Rows); err != nil {
			return s.wrap(what+": legacy keys", err)
		}
		for _, c := range ids.certs {
			if _, err := w.exec(ctx, stUsageCert, c.Serial, c.Identity, c.LastSeen.UnixNano(), c.LastSource, c.Requests); err != nil {
				return s.wrap(what+": certificate", err)
			}
		}
		for _, c := range ids.identities {
			if _, err := w.exec(ctx, stUsageIdentity, c.Identity, c.LastSeen.UnixNano(), c.LastSource, c.LastRoute, c.Requests, nanosOrZero(c.SharingAt)); err != nil {
				return s.wrap(what+": identity", err)
			}
		}
		for _, sh := range r.Sharing {
			detail, err := json.Marshal(struct {
				Identity string   `json:"identity"`
				Sources  []string `json:"sources"`
				Window   string   `json:"window"`
			}{sh.Identity, sh.Sources, sh.Window.String()})
			if err != nil {
				return fmt.Errorf("store: %s: %w", what, err)
			}
			e := audit.Entry{Time: sh.Time, Actor: r.Gateway, Action: audit.ActionSharingSuspected, Subject: sh.Serial, Detail: string(detail)}
			if _, err := w.appendAudit(ctx, e); err != nil {
				return s.wrap(what+": audit", err)
			}
		}
		return nil
	})
	return duplicate, err
}

type mergedSeen struct {
	identities []Seen
	certs      []Seen
}

// mergeSeen folds a report's rows into one last use per identity and per
// certificate, so a transaction writes each once.
func mergeSeen(r UsageReport) mergedSeen {
	var m mergedSeen
	idx := map[string]int{}
	cidx := map[string]int{}
	for _, row := range r.Rows {
		i, ok := idx[row.Identity]
		if !ok {
			i = len(m.identities)
			idx[row.Identity] = i
			m.identities = append(m.identities, Seen{Identity: row.Identity})
		}
		later(&m.identities[i], row.LastSeen, row.Source, row.Route, row.Total())
		if row.Serial == "" {
			continue
		}
		j, ok := cidx[row.Serial]
		if !ok {
			j = len(m.certs)
			cidx[row.Serial] = j
			m.certs = append(m.certs, Seen{Identity: row.Identity, Serial: row.Serial})
		}
		later(&m.certs[j], row.LastSeen, row.Source, "", row.Total())
	}
	for _, sh := range r.Sharing {
		i, ok := idx[sh.Identity]
		if !ok {
			i = len(m.identities)
			idx[sh.Identity] = i
			m.identities = append(m.identities, Seen{Identity: sh.Identity, LastSeen: sh.Time})
		}
		if sh.Time.After(m.identities[i].SharingAt) {
			m.identities[i].SharingAt = sh.Time
		}
	}
	return m
}

// nanosOrZero is t in unix nanoseconds, 0 for the zero time ("never").
func nanosOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func later(s *Seen, t time.Time, source, route string, n int64) {
	s.Requests += n
	if s.LastSeen.IsZero() || !t.Before(s.LastSeen) {
		s.LastSeen, s.LastSource, s.LastRoute = t, source, route
	}
}

func validateUsage(r UsageReport) error {
	switch {
	case r.ID == "":
		return fmt.Errorf("report ID is empty")
	case r.Gateway == "":
		return fmt.Errorf("report gateway is empty")
	}
	if err := checkTime("report received time", r.Received); err != nil {
		return err
	}
	for i, row := range r.Rows {
		if row.Identity == "" {
			return fmt.Errorf("row %d: identity is empty", i)
		}
		if _, err := time.Parse(time.DateOnly, row.Day); err != nil {
			return fmt.Errorf("row %d: day %q is not YYYY-MM-DD", i, row.Day)
		}
		if err := checkTime(fmt.Sprintf("row %d: last seen", i), row.LastSeen); err != nil {
			return err
		}
		if row.BytesIn < 0 || row.BytesOut < 0 {
			return fmt.Errorf("row %d: negative byte count", i)
		}
		for _, c := range row.Requests {
			if c < 0 {
				return fmt.Errorf("row %d: negative request count", i)
			}
		}
	}
	for i, sh := range r.Sharing {
		if sh.Identity == "" || sh.Serial == "" {
			return fmt.Errorf("sharing %d: identity or serial is empty", i)
		}
		if err := checkTime(fmt.Sprintf("sharing %d: time", i), sh.Time); err != nil {
			return err
		}
	}
	return nil
}

// IdentitiesSeen returns the last use of every identity a gateway
// reported, ordered by identity.
func (s *SQL) IdentitiesSeen(ctx context.Context) ([]Seen, error) {
	const what = "identities seen"
	if err := s.readCheck(what); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT identity, last_seen, last_source, last_route, requests, sharing_at
		FROM usage_identities ORDER BY identity`)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	defer rows.Close()
	out := []Seen{}
	for rows.Next() {
		var sn Seen
		var last, sharing int64
		if err := rows.Scan(&sn.Identity, &last, &sn.LastSource, &sn.LastRoute, &sn.Requests, &sharing); err != nil {
			return nil, s.wrap(what, err)
		}
		sn.LastSeen = fromNanos(last)
		if sharing != 0 {
			sn.SharingAt = fromNanos(sharing)
		}
		out = append(out, sn)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(what, err)
	}
	return out, nil
}

// CertificatesSeen returns the last use of every certificate a gateway
// reported, by serial.
func (s *SQL) CertificatesSeen(ctx context.Context) (map[string]Seen, error) {
	const what = "certificates seen"
	if err := s.readCheck(what); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT serial, identity, last_seen, last_source, requests FROM usage_certificates`)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	defer rows.Close()
	out := map[string]Seen{}
	for rows.Next() {
		var sn Seen
		var last int64
		if err := rows.Scan(&sn.Serial, &sn.Identity, &last, &sn.LastSource, &sn.Requests); err != nil {
			return nil, s.wrap(what, err)
		}
		sn.LastSeen = fromNanos(last)
		out[sn.Serial] = sn
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(what, err)
	}
	return out, nil
}

// UsageDays returns the daily counts of identity (every identity if
// empty) from day from (YYYY-MM-DD, "" for all), ordered by identity, day
// and route. Serial and Source are not kept per day.
func (s *SQL) UsageDays(ctx context.Context, identity, from string) ([]UsageRow, error) {
	const what = "usage days"
	if err := s.readCheck(what); err != nil {
		return nil, err
	}
	var conds []string
	var args []any
	if identity != "" {
		conds = append(conds, `identity = ?`)
		args = append(args, identity)
	}
	if from != "" {
		conds = append(conds, `day >= ?`)
		args = append(args, from)
	}
	q := `SELECT identity, route, day, req_none, req_1xx, req_2xx, req_3xx, req_4xx, req_5xx, bytes_in, bytes_out, last_seen FROM usage_daily`
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, ` AND `)
	}
	q += ` ORDER BY identity, day, route`
	rows, err := s.rdb.QueryContext(ctx, s.d.bind(q), args...)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	defer rows.Close()
	out := []UsageRow{}
	for rows.Next() {
		var r UsageRow
		var last int64
		q := &r.Requests
		if err := rows.Scan(&r.Identity, &r.Route, &r.Day, &q[0], &q[1], &q[2], &q[3], &q[4], &q[5], &r.BytesIn, &r.BytesOut, &last); err != nil {
			return nil, s.wrap(what, err)
		}
		r.LastSeen = fromNanos(last)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(what, err)
	}
	return out, nil
}
