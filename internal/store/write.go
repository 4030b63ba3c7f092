package store

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/roles"
)

// CreateToken stores a new token and its audit record atomically.
func (s *SQL) CreateToken(ctx context.Context, t Token, a audit.Entry) error {
	what := "create token " + t.ID
	if err := validateToken(t); err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if err := validateEntry(a); err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return s.submit(ctx, what, func(ctx context.Context, w *wtx) error {
		_, err := w.exec(ctx, stTokenInsert, t.ID, t.SecretHash, t.Identity, t.CreatedBy,
			t.CreatedAt.UnixNano(), t.ExpiresAt.UnixNano())
		if err != nil {
			if col, ok := s.d.uniqueViolation(err); ok && col == "tokens.id" {
				return fmt.Errorf("store: %s: %w", what, ErrDuplicateToken)
			}
			return s.wrap(what, err)
		}
		if _, err := w.appendAudit(ctx, a); err != nil {
			return s.wrap(what+": audit", err)
		}
		return nil
	})
}

// RecordIssuance records an issued certificate, redeeming is.TokenID if set,
// with its audit record, in one transaction.
func (s *SQL) RecordIssuance(ctx context.Context, is Issuance) error {
	if is.Cert.TokenID == "" {
		is.Cert.TokenID = is.TokenID
	}
	c := is.Cert
	what := "record issuance " + c.Serial
	if err := validateIssuance(is); err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return s.submit(ctx, what, func(ctx context.Context, w *wtx) error {
		if is.TokenID != "" {
			var err error
			checked := is.TokenSecretHash != nil || is.TokenIdentity != ""
			switch {
			case checked && s.d.redeemReturning():
				err = s.redeemChecked(ctx, w, what, is)
			case checked:
				err = s.redeemMatching(ctx, w, what, is)
			default:
				err = s.redeem(ctx, w, what, is.TokenID, c.Serial, is.Now.UnixNano())
			}
			if err != nil {
				return err
			}
		}
		if is.RenewedFingerprint != "" {
			if err := s.checkRenewed(ctx, w, what, c.RenewedFrom, is.RenewedFingerprint, is.Now.UnixNano()); err != nil {
				return err
			}
		}
		if err := s.checkIssuer(ctx, w, what, c.Issuer); err != nil {
			return err
		}
		if is.GatewayRole != nil {
			if err := s.checkGatewayRole(ctx, w, what, c.Identity, *is.GatewayRole); err != nil {
				return err
			}
		}
		_, err := w.exec(ctx, stCertInsert, c.Serial, c.Identity, c.CommonName, c.Fingerprint,
			c.NotBefore.UnixNano(), c.NotAfter.UnixNano(), c.KeyType, c.Obtained, c.RenewedFrom,
			c.TokenID, c.IssuedAt.UnixNano(), c.DER, c.Issuer)
		if err != nil {
			// The fingerprint is not checked for uniqueness (no index since
			// schema version 6): it is the hash of the DER, which holds the
			// serial.
			if col, _ := s.d.uniqueViolation(err); col == "certificates.serial" {
				return fmt.Errorf("store: %s: %w", what, ErrDuplicateSerial)
			}
			return s.wrap(what, err)
		}
		if _, err := w.appendAudit(ctx, is.Audit); err != nil {
			return s.wrap(what+": audit", err)
		}
		return nil
	})
}

// checkIssuer refuses a certificate whose issuer the store records as an
// intermediate that may not sign; one the store does not record (a CA
// kept elsewhere, as tests build) is not checked. The intermediates that
// may not sign are read under the write lock, and kept while the event log
// has not moved: every change of a CA's state appends an event (in any
// process), so an unchanged head means unchanged states, and an issuance
// costs no query of its own.
func (s *SQL) checkIssuer(ctx context.Context, w *wtx, what, issuer string) error {
	if w.inactive == nil && s.inactive != nil && s.inactiveAt == w.startPos {
		w.inactive = s.inactive
	}
	if w.inactive == nil {
		rows, err := w.stmt(ctx, stIssuersInactive).QueryContext(ctx)
		if err != nil {
			return s.wrap(what, err)
		}
		defer rows.Close()
		w.inactive = map[string]string{}
		for rows.Next() {
			var keyID, state string
			if err := rows.Scan(&keyID, &state); err != nil {
				w.inactive = nil
				return s.wrap(what, err)
			}
			w.inactive[keyID] = state
		}
		if err := rows.Err(); err != nil {
			w.inactive = nil
			return s.wrap(what, err)
		}
		if w.pos == w.startPos {
			s.inactive, s.inactiveAt = w.inactive, w.startPos
		}
	}
	if state, bad := w.inactive[issuer]; bad {
		return fmt.Errorf("store: %s: intermediate %s is %s: %w", what, issuer, state, ErrIssuerInactive)
	}
	return nil
}

// checkGatewayRole checks that the role grants give identity the gateway
// role if gateway is set, and not if it is not. The grants are read once
// per transaction (under the write lock, so no other process changes them
// before the commit), or kept from the SQLite writer's last commit (see
// wtx.committed); GrantRole and RevokeRole in the same transaction make
// the next check read them again. Only the gateway grants are kept:
// roles.For compiles the holder pattern of every grant it is given, and
// only those decide the gateway role.
func (s *SQL) checkGatewayRole(ctx context.Context, w *wtx, what, identity string, gateway bool) error {
	if !w.grantsRead {
		grants, err := scanGrants(w.stmt(ctx, stRoleGrants).QueryContext(ctx))
		if err != nil {
			return s.wrap(what+": role grants", err)
		}
		w.gatewayGrants = slices.DeleteFunc(grants, func(g roles.Grant) bool { return g.Role != roles.Gateway })
		w.grantsRead = true
	}
	if roles.For(w.gatewayGrants, identity).Gateway != gateway {
		return fmt.Errorf("store: %s: gateway role of %s: %w", what, identity, ErrRolesChanged)
	}
	return nil
}

// redeemChecked redeems the issuance's token and checks its stored secret
// hash (in constant time) and identity against what the issuance presents,
// in one statement (UPDATE ... RETURNING; dialects whose redeemReturning is
// set, others redeemMatching) when the token is unused and
// unexpired: a mismatch returns ErrTokenMismatch, and the failed operation
// is rolled back with its redemption (a savepoint, or the transaction), so
// a token is redeemed only by an issuance that presents its secret. When no
// row was redeemed, the token is read again to say why, in the order of
// checkToken then redeem: unknown or mismatched first, so a wrong secret
// learns nothing of the token's state; then used or expired.
func (s *SQL) redeemChecked(ctx context.Context, w *wtx, what string, is Issuance) error {
	now := is.Now.UnixNano()
	var hash []byte
	var identity string
	err := w.stmt(ctx, stTokenRedeemReturning).QueryRowContext(ctx, now, is.Cert.Serial, is.TokenID, now).Scan(&hash, &identity)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return s.notRedeemed(ctx, w, what, is)
	case err != nil:
		return s.wrap(what+": token "+is.TokenID, err)
	}
	if !tokenMatches(is, hash, identity) {
		return fmt.Errorf("store: %s: token %s: %w", what, is.TokenID, ErrTokenMismatch)
	}
	return nil
}

// redeemMatching redeems the issuance's token in one statement that also
// checks its stored secret hash (in constant time, by a Go function:
// sqliteHashEqual) and identity against what the issuance presents, on
// dialects whose redeemReturning is not set (SQLite): a token is redeemed
// only by an issuance that presents its secret, and a mismatch changes
// nothing. When no row was redeemed, the token is read again to say why,
// as redeemChecked does.
func (s *SQL) redeemMatching(ctx context.Context, w *wtx, what string, is Issuance) error {
	now := is.Now.UnixNano()
	var hash any // NULL: not compared
	if is.TokenSecretHash != nil {
		hash = is.TokenSecretHash
	}
	res, err := w.exec(ctx, stTokenRedeemMatching, now, is.Cert.Serial, is.TokenID, now, hash, hash, is.TokenIdentity, is.TokenIdentity)
	if err != nil {
		return s.wrap(what+": token "+is.TokenID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.wrap(what+": token "+is.TokenID, err)
	}
	if n == 1 {
		return nil
	}
	return s.notRedeemed(ctx, w, what, is)
}

// notRedeemed says why a checked redemption redeemed no row, in the order
// of checkToken then redeem: unknown or mismatched first, so a wrong
// secret learns nothing of the token's state; then used or expired.
func (s *SQL) notRedeemed(ctx context.Context, w *wtx, what string, is Issuance) error {
	if err := s.checkToken(ctx, w, what, is); err != nil {
		return err
	}
	return s.redeem(ctx, w, what, is.TokenID, is.Cert.Serial, is.Now.UnixNano())
}

// tokenMatches compares a token's stored secret hash (in constant time) and
// identity with what the issuance presents; an unset one is not compared.
func tokenMatches(is Issuance, hash []byte, identity string) bool {
	hashOK := is.TokenSecretHash == nil || subtle.ConstantTimeCompare(hash, is.TokenSecretHash) == 1
	return hashOK && (is.TokenIdentity == "" || identity == is.TokenIdentity)
}

// checkToken compares the token's stored secret hash (in constant time)
// and identity with what the issuance presents.
func (s *SQL) checkToken(ctx context.Context, w *wtx, what string, is Issuance) error {
	what += ": token " + is.TokenID
	var hash []byte
	var identity string
	switch err := w.stmt(ctx, stTokenCheck).QueryRowContext(ctx, is.TokenID).Scan(&hash, &identity); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: %s: %w", what, ErrNotFound)
	case err != nil:
		return s.wrap(what, err)
	}
	if !tokenMatches(is, hash, identity) {
		return fmt.Errorf("store: %s: %w", what, ErrTokenMismatch)
	}
	return nil
}

// checkRenewed checks that the certificate serial being renewed is recorded
// with fingerprint, unrevoked and unexpired at now.
func (s *SQL) checkRenewed(ctx context.Context, w *wtx, what, serial, fingerprint string, now int64) error {
	what += ": renewed certificate " + serial
	var fp string
	var notAfter int64
	var revoked sql.NullString
	switch err := w.stmt(ctx, stCertForRenew).QueryRowContext(ctx, serial).Scan(&fp, &notAfter, &revoked); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: %s: %w", what, ErrNotFound)
	case err != nil:
		return s.wrap(what, err)
	case fp != fingerprint:
		return fmt.Errorf("store: %s: fingerprint differs: %w", what, ErrNotFound)
	case revoked.Valid:
		return fmt.Errorf("store: %s: %w", what, ErrRevoked)
	case notAfter <= now:
		return fmt.Errorf("store: %s: %w", what, ErrExpired)
	}
	return nil
}

// redeem marks token id redeemed for serial, or says why it cannot be.
func (s *SQL) redeem(ctx context.Context, w *wtx, what, id, serial string, now int64) error {
	what += ": token " + id
	res, err := w.exec(ctx, stTokenRedeem, now, serial, id, now)
	if err != nil {
		return s.wrap(what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.wrap(what, err)
	}
	if n == 1 {
		return nil
	}
	var expires int64
	var redeemed sql.NullInt64
	switch err := w.stmt(ctx, stTokenState).QueryRowContext(ctx, id).Scan(&expires, &redeemed); {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: %s: %w", what, ErrNotFound)
	case err != nil:
		return s.wrap(what, err)
	case redeemed.Valid:
		return fmt.Errorf("store: %s: %w", what, ErrTokenUsed)
	default:
		return fmt.Errorf("store: %s: %w", what, ErrTokenExpired)
	}
}

// AppendAudit appends one audit record on its own.
func (s *SQL) AppendAudit(ctx context.Context, e audit.Entry) (audit.Record, error) {
	const what = "append audit record"
	if err := validateEntry(e); err != nil {
		return audit.Record{}, fmt.Errorf("store: %s: %w", what, err)
	}
	var rec audit.Record
	err := s.submit(ctx, what, func(ctx context.Context, w *wtx) error {
		r, err := w.appendAudit(ctx, e)
		if err != nil {
			return s.wrap(what, err)
		}
		rec = r
		return nil
	})
	if err != nil {
		return audit.Record{}, err
	}
	return rec, nil
}

// Revoke revokes what req selects in one transaction; see [Store.Revoke].
func (s *SQL) Revoke(ctx context.Context, req RevokeRequest) ([]Revocation, error) {
	what, err := validateRevoke(req)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	var out []Revocation
	err = s.submit(ctx, what, func(ctx context.Context, w *wtx) error {
		out = nil
		targets, err := s.revokeTargets(ctx, w, req)
		if err != nil {
			return err
		}
		for _, t := range targets {
			rv := Revocation{Serial: t.serial, Reason: req.Reason, RevokedAt: fromNanos(req.Now.UnixNano()), RevokedBy: req.By}
			if _, err := w.exec(ctx, stRevocationInsert, rv.Serial, rv.Reason, rv.RevokedAt.UnixNano(), rv.RevokedBy); err != nil {
				return s.wrap(what+": "+t.serial, err)
			}
			ev := Event{Time: rv.RevokedAt, Kind: EventRevoke, Serial: t.serial, Identity: t.identity, Reason: rv.Reason, NotAfter: t.notAfter, Issuer: t.issuer}
			if _, err := w.appendEvent(ctx, ev); err != nil {
				return s.wrap(what+": event", err)
			}
			detail, err := json.Marshal(struct {
				Identity string `json:"identity"`
				Reason   int    `json:"reason"`
			}{t.identity, rv.Reason})
			if err != nil {
				return fmt.Errorf("store: %s: %w", what, err)
			}
			e := audit.Entry{Time: req.Now, Actor: req.By, Action: audit.ActionRevoke, Subject: t.serial, Detail: string(detail)}
			if _, err := w.appendAudit(ctx, e); err != nil {
				return s.wrap(what+": audit", err)
			}
			out = append(out, rv)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []Revocation{}
	}
	return out, nil
}

type revokeTarget struct {
	serial, identity, issuer string
	notAfter                 time.Time
}

// revokeTargets reads, under the write lock, the unrevoked certificates req
// selects.
func (s *SQL) revokeTargets(ctx context.Context, w *wtx, req RevokeRequest) ([]revokeTarget, error) {
	if req.Serial != "" {
		what := "revoke " + req.Serial
		var identity, issuer string
		var notAfter int64
		var revoked sql.NullString
		err := w.stmt(ctx, stCertForRevoke).QueryRowContext(ctx, req.Serial).Scan(&identity, &notAfter, &issuer, &revoked)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return nil, fmt.Errorf("store: %s: certificate %w", what, ErrNotFound)
		case err != nil:
			return nil, s.wrap(what, err)
		case revoked.Valid:
			return nil, nil
		}
		return []revokeTarget{{req.Serial, identity, issuer, fromNanos(notAfter)}}, nil
	}
	q := `SELECT c.serial, c.identity, c.issuer, c.not_after` + certFrom + ` WHERE r.serial IS NULL AND c.not_after >= ? AND `
	args := []any{req.Now.UnixNano()}
	what := "revoke identity " + req.Identity
	if req.Identity != "" {
		q += `c.identity = ?`
		args = append(args, req.Identity)
	} else {
		what = "revoke identity prefix " + req.IdentityPrefix
		q += identityPrefixCond
		args = append(args, prefixArgs(req.IdentityPrefix)...)
	}
	q += ` ORDER BY c.issued_at, c.serial`
	rows, err := w.tx.QueryContext(ctx, s.d.bind(q), args...)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	defer rows.Close()
	var out []revokeTarget
	for rows.Next() {
		var t revokeTarget
		var notAfter int64
		if err := rows.Scan(&t.serial, &t.identity, &t.issuer, &notAfter); err != nil {
			return nil, s.wrap(what, err)
		}
		t.notAfter = fromNanos(notAfter)
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(what, err)
	}
	return out, nil
}

// prefixArgs are the arguments of identityPrefixCond.
func prefixArgs(prefix string) []any {
	return []any{prefix, utf8.RuneCountInString(prefix) + 1, prefix + "/"}
}
