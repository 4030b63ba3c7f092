package store

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/certgate/certgate/internal/audit"
)

// Kinds of an [Unrecorded] change.
const (
	UnrecordedCertificate = "certificate"
	UnrecordedRevocation  = "revocation"
)

// Unrecorded is a certificate or a revocation the store holds without the
// audit record the store always writes with it (cert.issue or cert.renew,
// cert.revoke, subject the serial): a row added behind certgate's back.
type Unrecorded struct {
	Kind     string // UnrecordedCertificate or UnrecordedRevocation
	Serial   string
	Identity string    // of the certificate; "" for a revocation of an unknown one
	Time     time.Time // issued or revoked at
	// BeforeSeq is the first audit record later than Time, where the
	// missing record would be (0: after the last record).
	BeforeSeq int64
}

// Unrecorded returns every certificate and revocation without its audit
// record, certificates first, each by time. It reads the audit subjects
// of those actions once, then the certificates and revocations.
func (s *SQL) Unrecorded(ctx context.Context) ([]Unrecorded, error) {
	const what = "unrecorded changes"
	if err := s.readCheck(what); err != nil {
		return nil, err
	}
	issued, revoked := map[string]bool{}, map[string]bool{}
	rows, err := s.rdb.QueryContext(ctx, s.d.bind(`SELECT action, subject FROM audit WHERE action IN (?, ?, ?)`), audit.ActionIssue, audit.ActionRenew, audit.ActionRevoke)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	for rows.Next() {
		var action, subject string
		if err := rows.Scan(&action, &subject); err != nil {
			rows.Close()
			return nil, s.wrap(what, err)
		}
		if action == audit.ActionRevoke {
			revoked[subject] = true
		} else {
			issued[subject] = true
		}
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, s.wrap(what, err)
	}
	var out []Unrecorded
	scan := func(kind, q string, recorded map[string]bool) error {
		rows, err := s.rdb.QueryContext(ctx, q)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var u Unrecorded
			var t int64
			var id sql.NullString
			if err := rows.Scan(&u.Serial, &id, &t); err != nil {
				return err
			}
			if !recorded[u.Serial] {
				u.Kind, u.Identity, u.Time = kind, id.String, fromNanos(t)
				out = append(out, u)
			}
		}
		return rows.Err()
	}
	if err := scan(UnrecordedCertificate, `SELECT serial, identity, issued_at FROM certificates ORDER BY issued_at, serial`, issued); err != nil {
		return nil, s.wrap(what, err)
	}
	if err := scan(UnrecordedRevocation, `SELECT r.serial, c.identity, r.revoked_at FROM revocations r LEFT JOIN certificates c ON c.serial = r.serial ORDER BY r.revoked_at, r.serial`, revoked); err != nil {
		return nil, s.wrap(what, err)
	}
	for i := range out {
		var seq sql.NullInt64
		if err := s.rdb.QueryRowContext(ctx, s.d.bind(`SELECT MIN(seq) FROM audit WHERE time > ?`), out[i].Time.UnixNano()).Scan(&seq); err != nil {
			return nil, s.wrap(what, err)
		}
		out[i].BeforeSeq = seq.Int64
	}
	return out, nil
}

// LastAudit returns the newest audit record of action, ok false when
// there is none. It reads the whole table when action is rare: for
// start-up checks, not for requests.
func (s *SQL) LastAudit(ctx context.Context, action string) (audit.Record, bool, error) {
	const what = "last audit record of an action"
	if err := s.readCheck(what); err != nil {
		return audit.Record{}, false, err
	}
	recs, err := queryAudit(ctx, s.rdb, s.d.bind(`SELECT `+auditColumns+` FROM audit WHERE action = ? ORDER BY seq DESC LIMIT 1`), action)
	if err != nil {
		return audit.Record{}, false, s.wrap(what, err)
	}
	if len(recs) == 0 {
		return audit.Record{}, false, nil
	}
	return recs[0], true, nil
}
