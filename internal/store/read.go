package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/audit"
)

// GetToken returns the token with that ID, or ErrNotFound.
func (s *SQL) GetToken(ctx context.Context, id string) (Token, error) {
	what := "token " + id
	if err := s.readCheck(what); err != nil {
		return Token{}, err
	}
	var t Token
	var created, expires int64
	var redeemed sql.NullInt64
	var serial sql.NullString
	err := s.rstmts[rsToken].QueryRowContext(ctx, id).
		Scan(&t.ID, &t.SecretHash, &t.Identity, &t.CreatedBy, &created, &expires, &redeemed, &serial)
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, fmt.Errorf("store: %s: %w", what, ErrNotFound)
	}
	if err != nil {
		return Token{}, s.wrap(what, err)
	}
	t.CreatedAt, t.ExpiresAt = fromNanos(created), fromNanos(expires)
	if redeemed.Valid {
		t.RedeemedAt = fromNanos(redeemed.Int64)
	}
	t.Serial = serial.String
	return t, nil
}

// GetCertificate returns the certificate with that serial, or ErrNotFound.
func (s *SQL) GetCertificate(ctx context.Context, serial string) (Certificate, error) {
	what := "certificate " + serial
	if err := s.readCheck(what); err != nil {
		return Certificate{}, err
	}
	rows, err := s.rstmts[rsCertificate].QueryContext(ctx, serial)
	if err != nil {
		return Certificate{}, s.wrap(what, err)
	}
	certs, err := scanCertificates(rows)
	if err != nil {
		return Certificate{}, s.wrap(what, err)
	}
	if len(certs) == 0 {
		return Certificate{}, fmt.Errorf("store: %s: %w", what, ErrNotFound)
	}
	return certs[0], nil
}

// Certificate status filters (CertFilter.Status).
const (
	StatusValid   = "valid"
	StatusRevoked = "revoked"
	StatusExpired = "expired"
)

// ListCertificates returns certificates ordered by IssuedAt, then Serial.
func (s *SQL) ListCertificates(ctx context.Context, f CertFilter) ([]Certificate, error) {
	const what = "list certificates"
	if err := s.readCheck(what); err != nil {
		return nil, err
	}
	var conds []string
	var args []any
	if f.Identity != "" {
		conds = append(conds, `c.identity = ?`)
		args = append(args, f.Identity)
	}
	if f.IdentityPrefix != "" {
		conds = append(conds, identityPrefixCond)
		args = append(args, prefixArgs(f.IdentityPrefix)...)
	}
	switch f.Status {
	case "":
	case StatusValid, StatusExpired:
		if err := checkTime("now", f.Now); err != nil {
			return nil, fmt.Errorf("store: %s: status %q: %w", what, f.Status, err)
		}
		op := ">="
		if f.Status == StatusExpired {
			op = "<"
		}
		conds = append(conds, `r.serial IS NULL AND c.not_after `+op+` ?`)
		args = append(args, f.Now.UnixNano())
	case StatusRevoked:
		conds = append(conds, `r.serial IS NOT NULL`)
	default:
		return nil, fmt.Errorf("store: %s: unknown status %q (want %s, %s or %s)", what, f.Status, StatusValid, StatusRevoked, StatusExpired)
	}
	if f.Limit < 0 {
		return nil, fmt.Errorf("store: %s: negative limit %d", what, f.Limit)
	}
	q := `SELECT ` + certColumns + certFrom
	if len(conds) > 0 {
		q += ` WHERE ` + strings.Join(conds, ` AND `)
	}
	q += ` ORDER BY c.issued_at, c.serial`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := s.rdb.QueryContext(ctx, s.d.bind(q), args...)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	certs, err := scanCertificates(rows)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	return certs, nil
}

// scanCertificates reads rows of certColumns and closes rows.
func scanCertificates(rows *sql.Rows) ([]Certificate, error) {
	defer rows.Close()
	certs := []Certificate{}
	for rows.Next() {
		var c Certificate
		var nb, na, issued int64
		var reason, revokedAt sql.NullInt64
		var revokedBy sql.NullString
		if err := rows.Scan(&c.Serial, &c.Identity, &c.CommonName, &c.Fingerprint, &nb, &na,
			&c.KeyType, &c.Obtained, &c.RenewedFrom, &c.TokenID, &issued, &c.DER, &c.Issuer,
			&reason, &revokedAt, &revokedBy); err != nil {
			return nil, err
		}
		c.NotBefore, c.NotAfter, c.IssuedAt = fromNanos(nb), fromNanos(na), fromNanos(issued)
		if reason.Valid {
			c.Revocation = &Revocation{Serial: c.Serial, Reason: int(reason.Int64),
				RevokedAt: fromNanos(revokedAt.Int64), RevokedBy: revokedBy.String}
		}
		certs = append(certs, c)
	}
	return certs, rows.Err()
}

const eventColumns = `position, time, kind, serial, identity, reason, not_after, issuer`

const auditColumns = `seq, time, actor, action, subject, detail, prev_hash, hash`

// Events returns up to limit events with Position > after, in order. A
// limit of 0 means no limit.
func (s *SQL) Events(ctx context.Context, after int64, limit int) ([]Event, error) {
	const what = "events"
	if err := s.readCheck(what); err != nil {
		return nil, err
	}
	if limit < 0 {
		return nil, fmt.Errorf("store: %s: negative limit %d", what, limit)
	}
	q := `SELECT ` + eventColumns + ` FROM events WHERE position > ? ORDER BY position`
	args := []any{after}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	evs, err := queryEvents(ctx, s.rdb, s.d.bind(q), args...)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	return evs, nil
}

// LastPosition returns the position of the last event, 0 when there is none.
func (s *SQL) LastPosition(ctx context.Context) (int64, error) {
	const what = "last position"
	if err := s.readCheck(what); err != nil {
		return 0, err
	}
	var pos int64
	if err := s.rdb.QueryRowContext(ctx, `SELECT COALESCE(MAX(position), 0) FROM events`).Scan(&pos); err != nil {
		return 0, s.wrap(what, err)
	}
	return pos, nil
}

func queryEvents(ctx context.Context, db queryer, q string, args ...any) ([]Event, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	evs := []Event{}
	for rows.Next() {
		var ev Event
		var t, na int64
		if err := rows.Scan(&ev.Position, &t, &ev.Kind, &ev.Serial, &ev.Identity, &ev.Reason, &na, &ev.Issuer); err != nil {
			return nil, err
		}
		ev.Time, ev.NotAfter = fromNanos(t), fromNanos(na)
		evs = append(evs, ev)
	}
	return evs, rows.Err()
}

// RevocationSnapshot returns the revocations of certificates unexpired at
// now, and the last event position, from one consistent snapshot.
func (s *SQL) RevocationSnapshot(ctx context.Context, now time.Time) (Snapshot, error) {
	const what = "revocation snapshot"
	if err := s.readCheck(what); err != nil {
		return Snapshot{}, err
	}
	if err := checkTime("now", now); err != nil {
		return Snapshot{}, fmt.Errorf("store: %s: %w", what, err)
	}
	tx, err := s.rdb.BeginTx(ctx, s.d.readTx())
	if err != nil {
		return Snapshot{}, s.wrap(what, err)
	}
	defer tx.Rollback()
	var snap Snapshot
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(position), 0) FROM events`).Scan(&snap.Position); err != nil {
		return Snapshot{}, s.wrap(what, err)
	}
	snap.Revoked, err = queryEvents(ctx, tx, s.d.bind(`SELECT `+eventColumns+
		` FROM events WHERE kind = ? AND not_after >= ? ORDER BY position`), EventRevoke, now.UnixNano())
	if err != nil {
		return Snapshot{}, s.wrap(what, err)
	}
	if err := tx.Commit(); err != nil {
		return Snapshot{}, s.wrap(what, err)
	}
	return snap, nil
}

// AuditRecords returns up to limit records with Seq > after, in order. A
// limit of 0 means no limit.
func (s *SQL) AuditRecords(ctx context.Context, after int64, limit int) ([]audit.Record, error) {
	const what = "audit records"
	if err := s.readCheck(what); err != nil {
		return nil, err
	}
	if limit < 0 {
		return nil, fmt.Errorf("store: %s: negative limit %d", what, limit)
	}
	q := `SELECT ` + auditColumns + ` FROM audit WHERE seq > ? ORDER BY seq`
	args := []any{after}
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	recs, err := queryAudit(ctx, s.rdb, s.d.bind(q), args...)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	return recs, nil
}

func queryAudit(ctx context.Context, db queryer, q string, args ...any) ([]audit.Record, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	recs := []audit.Record{}
	for rows.Next() {
		var r audit.Record
		var t int64
		if err := rows.Scan(&r.Seq, &t, &r.Actor, &r.Action, &r.Subject, &r.Detail, &r.PrevHash, &r.Hash); err != nil {
			return nil, err
		}
		r.Time = fromNanos(t)
		recs = append(recs, r)
	}
	return recs, rows.Err()
}
