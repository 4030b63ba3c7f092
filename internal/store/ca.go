package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/certgate/certgate/internal/audit"
)

// The CA over time: every root, intermediate and cross-certificate the CA
// ever made is a row with a state, and a rotation is a row whose phase
// says how far it got. Both change only through [SQL.ApplyCAChange], one
// transaction that also appends an [EventCA] event per CA certificate it
// touched and the audit records, so every server replica and every feed
// follower learns of the change in the order it was committed, and a
// process killed at any point leaves either the whole change or none of it.

// Kinds of CA certificate (CACert.Kind).
const (
	CAKindRoot         = "root"
	CAKindIntermediate = "intermediate"
	// CAKindCross is another CA's certificate for a root's key: the new
	// root certified by the old one, or the old by the new, so that
	// clients that trust either root verify chains to the other.
	CAKindCross = "cross"
)

// States of a CA certificate (CACert.State).
const (
	// CANext is published (bundles, the feed) but signs nothing yet.
	CANext = "next"
	// CAActive signs: the one active intermediate issues every
	// certificate; an active root certifies intermediates.
	CAActive = "active"
	// CARetiring signs nothing new but still answers OCSP and publishes
	// CRLs for what it issued, until the last of those expired.
	CARetiring = "retiring"
	// CARetired is done: nothing it issued is still valid.
	CARetired = "retired"
	// CARevoked was revoked (its key compromised, say); it is listed on
	// its issuer's CRL and gateways refuse chains through it.
	CARevoked = "revoked"
	// CAAbandoned was made by a rotation that was rolled back before
	// anything relied on it.
	CAAbandoned = "abandoned"
)

// Kinds of rotation (Rotation.Kind).
const (
	RotateIntermediate = "intermediate"
	RotateRoot         = "root"
)

// ErrConflict is wrapped when a CA certificate or a rotation was not in
// the state a change expected: another process changed it first.
var ErrConflict = errors.New("changed concurrently")

// CACert is one CA certificate and where its private key is.
type CACert struct {
	Fingerprint string // lowercase hex SHA-256 of DER
	Kind        string // CAKindRoot, CAKindIntermediate or CAKindCross
	KeyID       string // lowercase hex subject key identifier
	IssuerKeyID string // key ID of the key that signed it (its own for a self-signed root)
	// Generation counts roots and intermediates separately from 1. A cross
	// certificate has the generation of the root whose key it certifies.
	Generation int
	State      string
	NotBefore  time.Time
	NotAfter   time.Time
	KeyType    string
	// KeyURI says where the private key is: "file:PATH" (encrypted PEM,
	// relative to the certgate directory), "sealed:" (encrypted PEM in
	// SealedKey) or an RFC 7512 "pkcs11:" URI. Empty for a cross
	// certificate, whose key is the root's of the same KeyID.
	KeyURI    string
	SealedKey []byte
	CreatedAt time.Time
	UpdatedAt time.Time
	RevokedAt time.Time // zero unless State is CARevoked
	Reason    int       // RFC 5280 CRLReason when revoked
	DER       []byte
}

// CAUpdate moves one CA certificate from state From to state To. If it is
// not in From, the change fails with ErrConflict and nothing is written.
type CAUpdate struct {
	Fingerprint string
	From, To    string
	RevokedAt   time.Time // when To is CARevoked
	Reason      int       // when To is CARevoked
}

// Rotation is one rotation of the intermediate or the root, which moves
// through phases; see package ca for what each phase means.
type Rotation struct {
	ID        int64
	Kind      string // RotateIntermediate or RotateRoot
	Phase     string
	Emergency bool // the old intermediate is revoked (Reason)
	Reason    int
	OldKeyID  string // the active CA (intermediate or root) it replaces
	NewKeyID  string // the CA it makes; "" until made
	// NewIntermediate is, for a root rotation, the key ID of the
	// intermediate under the new root.
	NewIntermediate string
	// KeyLabel names the new key in a PKCS#11 token before it has a
	// certificate, so that a rotation cut short finds the key it made.
	KeyLabel  string
	DueAt     time.Time // when the next phase is due; zero: by command only
	StartedAt time.Time
	UpdatedAt time.Time
	StartedBy string
}

// CAChange is one transaction on the CA state.
type CAChange struct {
	Insert []CACert
	Update []CAUpdate
	// Rotation is inserted if its ID is 0 (the new ID is returned), else
	// updated; RotationFrom is then the phase it must be in.
	Rotation     *Rotation
	RotationFrom string
	// BackfillIssuer, if set, becomes the issuer of every certificate and
	// revocation event recorded without one (those of an installation
	// made before issuers were recorded had only one intermediate).
	BackfillIssuer string
	Audit          []audit.Entry
	Now            time.Time
}

// IssuerUsage is what one issuer has out there.
type IssuerUsage struct {
	Live         int64     // unexpired and unrevoked certificates
	LastLive     time.Time // latest NotAfter of those, zero if none
	LastNotAfter time.Time // latest NotAfter of any certificate it issued, revoked ones too
}

const caColumns = `fingerprint, kind, key_id, issuer_key_id, generation, state, not_before, not_after,
	key_type, key_uri, sealed_key, created_at, updated_at, revoked_at, reason, der`

const rotationColumns = `id, kind, phase, emergency, reason, old_key_id, new_key_id, new_intermediate,
	key_label, due_at, started_at, updated_at, started_by`

// ListCAs returns every CA certificate, ordered by kind, generation and
// creation.
func (s *SQL) ListCAs(ctx context.Context) ([]CACert, error) {
	const what = "list CA certificates"
	if err := s.readCheck(what); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+caColumns+` FROM ca_certificates ORDER BY kind, generation, created_at, fingerprint`)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	defer rows.Close()
	out := []CACert{}
	for rows.Next() {
		var c CACert
		var nb, na, created, updated int64
		var revoked sql.NullInt64
		if err := rows.Scan(&c.Fingerprint, &c.Kind, &c.KeyID, &c.IssuerKeyID, &c.Generation, &c.State, &nb, &na,
			&c.KeyType, &c.KeyURI, &c.SealedKey, &created, &updated, &revoked, &c.Reason, &c.DER); err != nil {
			return nil, s.wrap(what, err)
		}
		c.NotBefore, c.NotAfter, c.CreatedAt, c.UpdatedAt = fromNanos(nb), fromNanos(na), fromNanos(created), fromNanos(updated)
		if revoked.Valid {
			c.RevokedAt = fromNanos(revoked.Int64)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(what, err)
	}
	return out, nil
}

// Rotations returns every rotation, oldest first.
func (s *SQL) Rotations(ctx context.Context) ([]Rotation, error) {
	const what = "list rotations"
	if err := s.readCheck(what); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+rotationColumns+` FROM ca_rotations ORDER BY id`)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	defer rows.Close()
	out := []Rotation{}
	for rows.Next() {
		var r Rotation
		var emergency int
		var due, started, updated int64
		if err := rows.Scan(&r.ID, &r.Kind, &r.Phase, &emergency, &r.Reason, &r.OldKeyID, &r.NewKeyID, &r.NewIntermediate,
			&r.KeyLabel, &due, &started, &updated, &r.StartedBy); err != nil {
			return nil, s.wrap(what, err)
		}
		r.Emergency = emergency != 0
		if due != 0 {
			r.DueAt = fromNanos(due)
		}
		r.StartedAt, r.UpdatedAt = fromNanos(started), fromNanos(updated)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(what, err)
	}
	return out, nil
}

// IssuerUsage counts, per issuer key ID, the certificates unexpired at now
// and unrevoked, and the latest NotAfter of any it issued, leaving out the
// certificates of identity except (the delegated OCSP signers, which each
// issuer keeps renewing). Issuers that issued nothing are absent.
func (s *SQL) IssuerUsage(ctx context.Context, now time.Time, except string) (map[string]IssuerUsage, error) {
	const what = "issuer usage"
	if err := s.readCheck(what); err != nil {
		return nil, err
	}
	if err := checkTime("now", now); err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	n := now.UnixNano()
	rows, err := s.rdb.QueryContext(ctx, s.d.bind(`SELECT c.issuer,
		SUM(CASE WHEN r.serial IS NULL AND c.not_after > ? THEN 1 ELSE 0 END),
		MAX(CASE WHEN r.serial IS NULL AND c.not_after > ? THEN c.not_after ELSE 0 END), MAX(c.not_after)`+
		certFrom+` WHERE c.identity <> ? GROUP BY c.issuer`), n, n, except)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	defer rows.Close()
	out := map[string]IssuerUsage{}
	for rows.Next() {
		var issuer string
		var live, lastLive, last int64
		if err := rows.Scan(&issuer, &live, &lastLive, &last); err != nil {
			return nil, s.wrap(what, err)
		}
		u := IssuerUsage{Live: live, LastNotAfter: fromNanos(last)}
		if lastLive != 0 {
			u.LastLive = fromNanos(lastLive)
		}
		out[issuer] = u
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap(what, err)
	}
	return out, nil
}

// ApplyCAChange applies ch in one transaction: it inserts the new CA
// certificates, moves the others between states (ErrConflict if one is
// not in the state expected), inserts or updates the rotation (ErrConflict
// if it is not in RotationFrom), backfills issuers, appends one EventCA
// event per CA certificate inserted or updated and the audit records. It
// returns the rotation's ID, 0 if ch has none.
func (s *SQL) ApplyCAChange(ctx context.Context, ch CAChange) (int64, error) {
	const what = "CA change"
	if err := validateCAChange(ch); err != nil {
		return 0, fmt.Errorf("store: %s: %w", what, err)
	}
	var id int64
	err := s.submit(ctx, what, func(ctx context.Context, w *wtx) error {
		id = 0
		w.inactive = nil // states change: an issuance later in the batch reads them again
		now := ch.Now.UnixNano()
		for _, c := range ch.Insert {
			var revoked any
			if !c.RevokedAt.IsZero() {
				revoked = c.RevokedAt.UnixNano()
			}
			_, err := w.tx.ExecContext(ctx, s.d.bind(`INSERT INTO ca_certificates (`+caColumns+`)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
				c.Fingerprint, c.Kind, c.KeyID, c.IssuerKeyID, c.Generation, c.State, c.NotBefore.UnixNano(), c.NotAfter.UnixNano(),
				c.KeyType, c.KeyURI, c.SealedKey, now, now, revoked, c.Reason, c.DER)
			if err != nil {
				if col, ok := s.d.uniqueViolation(err); ok && col == "ca_certificates.fingerprint" {
					return fmt.Errorf("store: %s: CA certificate %s is already recorded: %w", what, c.Fingerprint, ErrConflict)
				}
				return s.wrap(what, err)
			}
			if _, err := w.appendEvent(ctx, Event{Time: ch.Now, Kind: EventCA, Serial: c.Fingerprint, NotAfter: c.NotAfter,
				Issuer: c.IssuerKeyID, Reason: c.Reason}); err != nil {
				return s.wrap(what+": event", err)
			}
		}
		for _, u := range ch.Update {
			var revoked any
			if u.To == CARevoked {
				revoked = u.RevokedAt.UnixNano()
			}
			res, err := w.tx.ExecContext(ctx, s.d.bind(`UPDATE ca_certificates SET state = ?, updated_at = ?,
				revoked_at = COALESCE(?, revoked_at), reason = ? WHERE fingerprint = ? AND state = ?`),
				u.To, now, revoked, u.Reason, u.Fingerprint, u.From)
			if err != nil {
				return s.wrap(what, err)
			}
			if n, err := res.RowsAffected(); err != nil {
				return s.wrap(what, err)
			} else if n != 1 {
				return fmt.Errorf("store: %s: CA certificate %s is not %s: %w", what, u.Fingerprint, u.From, ErrConflict)
			}
			var issuer string
			var notAfter int64
			if err := w.tx.QueryRowContext(ctx, s.d.bind(`SELECT issuer_key_id, not_after FROM ca_certificates WHERE fingerprint = ?`),
				u.Fingerprint).Scan(&issuer, &notAfter); err != nil {
				return s.wrap(what, err)
			}
			if _, err := w.appendEvent(ctx, Event{Time: ch.Now, Kind: EventCA, Serial: u.Fingerprint, NotAfter: fromNanos(notAfter),
				Issuer: issuer, Reason: u.Reason}); err != nil {
				return s.wrap(what+": event", err)
			}
		}
		if r := ch.Rotation; r != nil {
			var due int64
			if !r.DueAt.IsZero() {
				due = r.DueAt.UnixNano()
			}
			emergency := 0
			if r.Emergency {
				emergency = 1
			}
			if r.ID == 0 {
				if err := w.tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) + 1 FROM ca_rotations`).Scan(&id); err != nil {
					return s.wrap(what, err)
				}
				_, err := w.tx.ExecContext(ctx, s.d.bind(`INSERT INTO ca_rotations (`+rotationColumns+`)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
					id, r.Kind, r.Phase, emergency, r.Reason, r.OldKeyID, r.NewKeyID, r.NewIntermediate, r.KeyLabel, due, now, now, r.StartedBy)
				if err != nil {
					return s.wrap(what, err)
				}
			} else {
				id = r.ID
				res, err := w.tx.ExecContext(ctx, s.d.bind(`UPDATE ca_rotations SET phase = ?, emergency = ?, reason = ?,
					new_key_id = ?, new_intermediate = ?, key_label = ?, due_at = ?, updated_at = ? WHERE id = ? AND phase = ?`),
					r.Phase, emergency, r.Reason, r.NewKeyID, r.NewIntermediate, r.KeyLabel, due, now, r.ID, ch.RotationFrom)
				if err != nil {
					return s.wrap(what, err)
				}
				if n, err := res.RowsAffected(); err != nil {
					return s.wrap(what, err)
				} else if n != 1 {
					return fmt.Errorf("store: %s: rotation %d is not in phase %s: %w", what, r.ID, ch.RotationFrom, ErrConflict)
				}
			}
		}
		if ch.BackfillIssuer != "" {
			if _, err := w.tx.ExecContext(ctx, s.d.bind(`UPDATE certificates SET issuer = ? WHERE issuer = ''`), ch.BackfillIssuer); err != nil {
				return s.wrap(what+": backfill", err)
			}
			if _, err := w.tx.ExecContext(ctx, s.d.bind(`UPDATE events SET issuer = ? WHERE issuer = '' AND kind = ?`), ch.BackfillIssuer, EventRevoke); err != nil {
				return s.wrap(what+": backfill", err)
			}
		}
		for _, e := range ch.Audit {
			if _, err := w.appendAudit(ctx, e); err != nil {
				return s.wrap(what+": audit", err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return id, nil
}

func validateCAChange(ch CAChange) error {
	if err := checkTime("now", ch.Now); err != nil {
		return err
	}
	if len(ch.Insert)+len(ch.Update) == 0 && ch.Rotation == nil && ch.BackfillIssuer == "" {
		return errors.New("nothing to change")
	}
	for _, c := range ch.Insert {
		switch {
		case len(c.Fingerprint) != 64 || !isLowerHex(c.Fingerprint):
			return fmt.Errorf("CA fingerprint %q is not lowercase hex SHA-256", c.Fingerprint)
		case c.KeyID == "" || !isLowerHex(c.KeyID), c.IssuerKeyID == "" || !isLowerHex(c.IssuerKeyID):
			return fmt.Errorf("CA certificate %s: key IDs %q, %q are not lowercase hex", c.Fingerprint, c.KeyID, c.IssuerKeyID)
		case c.Kind != CAKindRoot && c.Kind != CAKindIntermediate && c.Kind != CAKindCross:
			return fmt.Errorf("CA certificate %s: unknown kind %q", c.Fingerprint, c.Kind)
		case !validCAState(c.State):
			return fmt.Errorf("CA certificate %s: unknown state %q", c.Fingerprint, c.State)
		case c.Generation < 1:
			return fmt.Errorf("CA certificate %s: generation %d is not positive", c.Fingerprint, c.Generation)
		case len(c.DER) == 0:
			return fmt.Errorf("CA certificate %s: DER is empty", c.Fingerprint)
		case c.KeyType == "":
			return fmt.Errorf("CA certificate %s: key type is empty", c.Fingerprint)
		case c.Kind != CAKindCross && c.KeyURI == "":
			return fmt.Errorf("CA certificate %s: no key URI", c.Fingerprint)
		}
		for _, f := range []struct {
			name string
			t    time.Time
		}{{"not before", c.NotBefore}, {"not after", c.NotAfter}} {
			if err := checkTime(f.name, f.t); err != nil {
				return fmt.Errorf("CA certificate %s: %w", c.Fingerprint, err)
			}
		}
	}
	for _, u := range ch.Update {
		if !validCAState(u.From) || !validCAState(u.To) {
			return fmt.Errorf("CA certificate %s: unknown state %q or %q", u.Fingerprint, u.From, u.To)
		}
		if u.To == CARevoked {
			if err := checkTime("revoked at", u.RevokedAt); err != nil {
				return fmt.Errorf("CA certificate %s: %w", u.Fingerprint, err)
			}
		}
	}
	if r := ch.Rotation; r != nil {
		switch {
		case r.Kind != RotateIntermediate && r.Kind != RotateRoot:
			return fmt.Errorf("rotation kind %q is not %s or %s", r.Kind, RotateIntermediate, RotateRoot)
		case r.Phase == "":
			return errors.New("rotation phase is empty")
		case r.ID == 0 && r.StartedBy == "":
			return errors.New("rotation started by is empty")
		case r.ID != 0 && ch.RotationFrom == "":
			return fmt.Errorf("rotation %d: the phase it must be in is not given", r.ID)
		}
	}
	if ch.BackfillIssuer != "" && !isLowerHex(ch.BackfillIssuer) {
		return fmt.Errorf("backfill issuer %q is not lowercase hex", ch.BackfillIssuer)
	}
	for _, e := range ch.Audit {
		if err := validateEntry(e); err != nil {
			return err
		}
	}
	return nil
}

func validCAState(s string) bool {
	switch s {
	case CANext, CAActive, CARetiring, CARetired, CARevoked, CAAbandoned:
		return true
	}
	return false
}
