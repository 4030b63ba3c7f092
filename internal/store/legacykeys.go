package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/audit"
)

// EventLegacyKey says the set of legacy keys changed (imported, revoked,
// extended); Serial is the key's name. Followers read the set again
// ([SQL.LegacyKeys]).
const EventLegacyKey = "legacy_key"

// ActorLegacyKeyMigration is the actor of a key revoked automatically a
// grace period after its identity's certificate was first used.
const ActorLegacyKeyMigration = "system:legacy-key-migration"

// Legacy key errors callers branch on.
var (
	// ErrLegacyKeyExists: a key of that name, or with that hash, is
	// stored already (revoked or not).
	ErrLegacyKeyExists = errors.New("legacy key exists already")
	// ErrLegacyKeyRevoked: the key is revoked; it cannot be changed.
	ErrLegacyKeyRevoked = errors.New("legacy key is revoked")
)

// LegacyKey is a static API key as stored: its hash, never the key.
type LegacyKey struct {
	Name      string
	Identity  string // spiffe://TD/legacy/NAME
	Hash      []byte // SHA-256(salt || key), legacykey.Hash
	CreatedBy string
	CreatedAt time.Time
	Sunset    time.Time

	RevokedAt    time.Time // zero while the key is accepted
	RevokedBy    string
	RevokeReason string

	// MigrateToken is the enrollment token minted for the key's identity
	// (certgate legacy-key migrate), by ID; MigratedAt when.
	MigrateToken string
	MigratedAt   time.Time
	MigratedBy   string
	// AutoRevokeGrace, when positive, revokes the key that long after
	// CertFirstSeen, the first report of a certificate of its identity in
	// use.
	AutoRevokeGrace time.Duration
	CertFirstSeen   time.Time

	// Filled by LegacyKeys from the usage reports.
	Usage LegacyKeyUsage
}

// LegacyKeyUsage is what the gateways reported of a key, and of the
// certificates of its identity.
type LegacyKeyUsage struct {
	Requests int64
	LastSeen time.Time // zero: never seen
	Routes   []string  // sorted
	Sources  []string  // sorted
	// CertRequests and CertLastSeen: requests made with certificates of
	// the key's identity.
	CertRequests int64
	CertLastSeen time.Time
}

// LegacyKeySalt returns the installation's salt, making it (crypto/rand,
// 32 bytes) at the first call.
func (s *SQL) LegacyKeySalt(ctx context.Context, now time.Time) ([]byte, error) {
	const what = "legacy key salt"
	var salt []byte
	err := s.rdb.QueryRowContext(ctx, `SELECT salt FROM legacy_key_salt WHERE id = 1`).Scan(&salt)
	if err == nil {
		return salt, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, s.wrap(what, err)
	}
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	err = s.submit(ctx, what, func(ctx context.Context, w *wtx) error {
		// Two replicas may race; the first row wins and both read it back.
		if _, err := w.tx.ExecContext(ctx, s.d.bind(`INSERT INTO legacy_key_salt (id, salt, created_at) VALUES (1, ?, ?) ON CONFLICT (id) DO NOTHING`),
			fresh, now.UnixNano()); err != nil {
			return s.wrap(what, err)
		}
		return w.tx.QueryRowContext(ctx, `SELECT salt FROM legacy_key_salt WHERE id = 1`).Scan(&salt)
	})
	if err != nil {
		return nil, err
	}
	return salt, nil
}

type legacyDetail struct {
	Name     string `json:"name"`
	Sunset   string `json:"sunset,omitempty"`
	Previous string `json:"previous_sunset,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Token    string `json:"token_id,omitempty"`
	Grace    string `json:"auto_revoke_grace,omitempty"`
}

func legacyEntry(action, identity, by string, at time.Time, d legacyDetail) audit.Entry {
	b, _ := json.Marshal(d)
	return audit.Entry{Time: at, Actor: by, Action: action, Subject: identity, Detail: string(b)}
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// ImportLegacyKeys records keys, all or none, each with an audit record
// (legacy_key.import) and one EventLegacyKey event. A name or hash stored
// already (revoked or not) is ErrLegacyKeyExists naming the key.
func (s *SQL) ImportLegacyKeys(ctx context.Context, keys []LegacyKey) error {
	what := fmt.Sprintf("import %d legacy keys", len(keys))
	if len(keys) == 0 {
		return fmt.Errorf("store: %s: no keys", what)
	}
	for _, k := range keys {
		switch {
		case k.Name == "" || k.Identity == "" || k.CreatedBy == "":
			return fmt.Errorf("store: %s: key %q: name, identity and created_by are required", what, k.Name)
		case len(k.Hash) != 32:
			return fmt.Errorf("store: %s: key %q: hash is %d bytes, want 32", what, k.Name, len(k.Hash))
		}
		if err := checkTime("created_at", k.CreatedAt); err != nil {
			return fmt.Errorf("store: %s: key %q: %w", what, k.Name, err)
		}
		if err := checkTime("sunset", k.Sunset); err != nil {
			return fmt.Errorf("store: %s: key %q: %w", what, k.Name, err)
		}
	}
	return s.submit(ctx, what, func(ctx context.Context, w *wtx) error {
		for _, k := range keys {
			var n int
			if err := w.tx.QueryRowContext(ctx, s.d.bind(`SELECT COUNT(*) FROM legacy_keys WHERE name = ? OR key_hash = ?`), k.Name, k.Hash).Scan(&n); err != nil {
				return s.wrap(what, err)
			}
			if n > 0 {
				return fmt.Errorf("store: %s: key %q: %w (by its name or its key)", what, k.Name, ErrLegacyKeyExists)
			}
			if _, err := w.tx.ExecContext(ctx, s.d.bind(`INSERT INTO legacy_keys (name, identity, key_hash, created_by, created_at, sunset) VALUES (?, ?, ?, ?, ?, ?)`),
				k.Name, k.Identity, k.Hash, k.CreatedBy, k.CreatedAt.UnixNano(), k.Sunset.UnixNano()); err != nil {
				return s.wrap(what, err)
			}
			if _, err := w.appendAudit(ctx, legacyEntry(audit.ActionLegacyKeyImport, k.Identity, k.CreatedBy, k.CreatedAt, legacyDetail{Name: k.Name, Sunset: rfc3339(k.Sunset)})); err != nil {
				return s.wrap(what+": audit", err)
			}
		}
		_, err := w.appendEvent(ctx, Event{Time: keys[0].CreatedAt, Kind: EventLegacyKey, Serial: keys[0].Name, Identity: keys[0].Identity})
		return s.wrapNil(what+": event", err)
	})
}

func (s *SQL) wrapNil(what string, err error) error {
	if err == nil {
		return nil
	}
	return s.wrap(what, err)
}

// changeLegacyKey runs change on the unrevoked key name under the write
// lock, then appends its audit record and an EventLegacyKey event.
func (s *SQL) changeLegacyKey(ctx context.Context, what, name string, now time.Time, change func(ctx context.Context, w *wtx, identity string) (audit.Entry, error)) error {
	return s.submit(ctx, what, func(ctx context.Context, w *wtx) error {
		var identity string
		var revoked int64
		err := w.tx.QueryRowContext(ctx, s.d.bind(`SELECT identity, revoked_at FROM legacy_keys WHERE name = ?`), name).Scan(&identity, &revoked)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("store: %s: %w", what, ErrNotFound)
		case err != nil:
			return s.wrap(what, err)
		case revoked != 0:
			return fmt.Errorf("store: %s: %w (at %s)", what, ErrLegacyKeyRevoked, rfc3339(fromNanos(revoked)))
		}
		e, err := change(ctx, w, identity)
		if err != nil {
			return err
		}
		if _, err := w.appendAudit(ctx, e); err != nil {
			return s.wrap(what+": audit", err)
		}
		_, err = w.appendEvent(ctx, Event{Time: now, Kind: EventLegacyKey, Serial: name, Identity: identity})
		return s.wrapNil(what+": event", err)
	})
}

// RevokeLegacyKey revokes the key name (audited: legacy_key.revoke); the
// gateways stop accepting it at the next event. Unknown: ErrNotFound;
// revoked already: ErrLegacyKeyRevoked.
func (s *SQL) RevokeLegacyKey(ctx context.Context, name, reason, by string, now time.Time) error {
	what := "revoke legacy key " + name
	if by == "" || now.IsZero() {
		return fmt.Errorf("store: %s: by and now are required", what)
	}
	return s.changeLegacyKey(ctx, what, name, now, func(ctx context.Context, w *wtx, identity string) (audit.Entry, error) {
		if _, err := w.tx.ExecContext(ctx, s.d.bind(`UPDATE legacy_keys SET revoked_at = ?, revoked_by = ?, revoke_reason = ? WHERE name = ?`),
			now.UnixNano(), by, reason, name); err != nil {
			return audit.Entry{}, s.wrap(what, err)
		}
		return legacyEntry(audit.ActionLegacyKeyRevoke, identity, by, now, legacyDetail{Name: name, Reason: reason}), nil
	})
}

// ExtendLegacyKey moves the sunset of key name (audited:
// legacy_key.extend, with the previous sunset).
func (s *SQL) ExtendLegacyKey(ctx context.Context, name string, sunset time.Time, by string, now time.Time) error {
	what := "extend legacy key " + name
	if by == "" || now.IsZero() {
		return fmt.Errorf("store: %s: by and now are required", what)
	}
	if err := checkTime("sunset", sunset); err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	return s.changeLegacyKey(ctx, what, name, now, func(ctx context.Context, w *wtx, identity string) (audit.Entry, error) {
		var prev int64
		if err := w.tx.QueryRowContext(ctx, s.d.bind(`SELECT sunset FROM legacy_keys WHERE name = ?`), name).Scan(&prev); err != nil {
			return audit.Entry{}, s.wrap(what, err)
		}
		if _, err := w.tx.ExecContext(ctx, s.d.bind(`UPDATE legacy_keys SET sunset = ? WHERE name = ?`), sunset.UnixNano(), name); err != nil {
			return audit.Entry{}, s.wrap(what, err)
		}
		return legacyEntry(audit.ActionLegacyKeyExtend, identity, by, now, legacyDetail{Name: name, Sunset: rfc3339(sunset), Previous: rfc3339(fromNanos(prev))}), nil
	})
}

// MarkLegacyKeyMigration records that an enrollment token (by ID) was
// minted for the key's identity, and the grace after which the key is
// revoked once a certificate of that identity is in use (0: never
// automatically); audited: legacy_key.migrate.
func (s *SQL) MarkLegacyKeyMigration(ctx context.Context, name, tokenID string, grace time.Duration, by string, now time.Time) error {
	what := "migrate legacy key " + name
	if by == "" || now.IsZero() || grace < 0 {
		return fmt.Errorf("store: %s: by, now and a grace of zero or more are required", what)
	}
	return s.changeLegacyKey(ctx, what, name, now, func(ctx context.Context, w *wtx, identity string) (audit.Entry, error) {
		if _, err := w.tx.ExecContext(ctx, s.d.bind(`UPDATE legacy_keys SET migrate_token = ?, migrated_at = ?, migrated_by = ?, auto_revoke_grace = ? WHERE name = ?`),
			tokenID, now.UnixNano(), by, int64(grace), name); err != nil {
			return audit.Entry{}, s.wrap(what, err)
		}
		d := legacyDetail{Name: name, Token: tokenID}
		if grace > 0 {
			d.Grace = grace.String()
		}
		return legacyEntry(audit.ActionLegacyKeyMigrate, identity, by, now, d), nil
	})
}

// RevokeMigratedLegacyKeys revokes every unrevoked key with a positive
// AutoRevokeGrace whose identity's certificate was first used at least
// that long before now, as ActorLegacyKeyMigration, audited, and returns
// their names.
func (s *SQL) RevokeMigratedLegacyKeys(ctx context.Context, now time.Time) ([]string, error) {
	const what = "revoke migrated legacy keys"
	var done []string
	err := s.submit(ctx, what, func(ctx context.Context, w *wtx) error {
		done = nil
		rows, err := w.tx.QueryContext(ctx, s.d.bind(`SELECT name, identity, cert_first_seen, auto_revoke_grace FROM legacy_keys
			WHERE revoked_at = 0 AND auto_revoke_grace > 0 AND cert_first_seen > 0 AND cert_first_seen + auto_revoke_grace <= ? ORDER BY name`), now.UnixNano())
		if err != nil {
			return s.wrap(what, err)
		}
		type due struct {
			name, identity string
			first, grace   int64
		}
		var dues []due
		for rows.Next() {
			var d due
			if err := rows.Scan(&d.name, &d.identity, &d.first, &d.grace); err != nil {
				rows.Close()
				return s.wrap(what, err)
			}
			dues = append(dues, d)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return s.wrap(what, err)
		}
		for _, d := range dues {
			reason := fmt.Sprintf("migrated: a certificate of %s was first used at %s; the grace of %s has passed", d.identity, rfc3339(fromNanos(d.first)), time.Duration(d.grace))
			if _, err := w.tx.ExecContext(ctx, s.d.bind(`UPDATE legacy_keys SET revoked_at = ?, revoked_by = ?, revoke_reason = ? WHERE name = ?`),
				now.UnixNano(), ActorLegacyKeyMigration, reason, d.name); err != nil {
				return s.wrap(what, err)
			}
			if _, err := w.appendAudit(ctx, legacyEntry(audit.ActionLegacyKeyRevoke, d.identity, ActorLegacyKeyMigration, now, legacyDetail{Name: d.name, Reason: reason})); err != nil {
				return s.wrap(what+": audit", err)
			}
			if _, err := w.appendEvent(ctx, Event{Time: now, Kind: EventLegacyKey, Serial: d.name, Identity: d.identity}); err != nil {
				return s.wrap(what+": event", err)
			}
			done = append(done, d.name)
		}
		return nil
	})
	return done, err
}

// LegacyKeys returns every key, revoked ones included, by name, with the
// usage reported of it and of the certificates of its identity.
func (s *SQL) LegacyKeys(ctx context.Context) ([]LegacyKey, error) {
	const what = "legacy keys"
	if err := s.readCheck(what); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT name, identity, key_hash, created_by, created_at, sunset, revoked_at, revoked_by, revoke_reason,
		migrate_token, migrated_at, migrated_by, auto_revoke_grace, cert_first_seen FROM legacy_keys ORDER BY name`)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	out := []LegacyKey{}
	idx := map[string]int{}
	for rows.Next() {
		var k LegacyKey
		var created, sunset, revoked, migrated, grace, first int64
		if err := rows.Scan(&k.Name, &k.Identity, &k.Hash, &k.CreatedBy, &created, &sunset, &revoked, &k.RevokedBy, &k.RevokeReason,
			&k.MigrateToken, &migrated, &k.MigratedBy, &grace, &first); err != nil {
			rows.Close()
			return nil, s.wrap(what, err)
		}
		k.CreatedAt, k.Sunset = fromNanos(created), fromNanos(sunset)
		k.RevokedAt, k.MigratedAt, k.CertFirstSeen = zeroOr(revoked), zeroOr(migrated), zeroOr(first)
		k.AutoRevokeGrace = time.Duration(grace)
		idx[k.Name] = len(out)
		out = append(out, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.wrap(what, err)
	}
	urows, err := s.rdb.QueryContext(ctx, `SELECT name, route, source, requests, last_seen FROM legacy_key_usage`)
	if err != nil {
		return nil, s.wrap(what, err)
	}
	for urows.Next() {
		var name, route, source string
		var n, last int64
		if err := urows.Scan(&name, &route, &source, &n, &last); err != nil {
			urows.Close()
			return nil, s.wrap(what, err)
		}
		i, ok := idx[name]
		if !ok {
			continue
		}
		u := &out[i].Usage
		u.Requests += n
		if t := fromNanos(last); t.After(u.LastSeen) {
			u.LastSeen = t
		}
		if route != "" && !slices.Contains(u.Routes, route) {
			u.Routes = append(u.Routes, route)
		}
		if source != "" && !slices.Contains(u.Sources, source) {
			u.Sources = append(u.Sources, source)
		}
	}
	urows.Close()
	if err := urows.Err(); err != nil {
		return nil, s.wrap(what, err)
	}
	crows, err := s.rdb.QueryContext(ctx, s.d.bind(`SELECT u.identity, u.requests, u.last_seen FROM usage_certificates u
		JOIN legacy_keys k ON k.identity = u.identity WHERE u.serial NOT LIKE ?`), "legacy-key:%")
	if err != nil {
		return nil, s.wrap(what, err)
	}
	byIdentity := map[string][]int{}
	for i, k := range out {
		byIdentity[k.Identity] = append(byIdentity[k.Identity], i)
	}
	for crows.Next() {
		var id string
		var n, last int64
		if err := crows.Scan(&id, &n, &last); err != nil {
			crows.Close()
			return nil, s.wrap(what, err)
		}
		for _, i := range byIdentity[id] {
			u := &out[i].Usage
			u.CertRequests += n
			if t := fromNanos(last); t.After(u.CertLastSeen) {
				u.CertLastSeen = t
			}
		}
	}
	crows.Close()
	if err := crows.Err(); err != nil {
		return nil, s.wrap(what, err)
	}
	for i := range out {
		slices.Sort(out[i].Usage.Routes)
		slices.Sort(out[i].Usage.Sources)
	}
	return out, nil
}

func zeroOr(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return fromNanos(n)
}

// recordLegacyUsage is RecordUsage's part for legacy keys, in its
// transaction: rows counted for a key (serial legacy-key:NAME) add to
// legacy_key_usage; rows of a certificate of a key's identity set that
// key's CertFirstSeen if it was not set.
func (s *SQL) recordLegacyUsage(ctx context.Context, w *wtx, rows []UsageRow) error {
	for _, row := range rows {
		if name, ok := strings.CutPrefix(row.Serial, "legacy-key:"); ok {
			if _, err := w.tx.ExecContext(ctx, s.d.bind(`INSERT INTO legacy_key_usage (name, route, source, requests, last_seen) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (name, route, source) DO UPDATE SET requests = legacy_key_usage.requests + excluded.requests,
				last_seen = CASE WHEN excluded.last_seen > legacy_key_usage.last_seen THEN excluded.last_seen ELSE legacy_key_usage.last_seen END`),
				name, row.Route, row.Source, row.Total(), row.LastSeen.UnixNano()); err != nil {
				return err
			}
			continue
		}
		if row.Serial == "" || !strings.Contains(row.Identity, "/legacy/") {
			continue
		}
		if _, err := w.tx.ExecContext(ctx, s.d.bind(`UPDATE legacy_keys SET cert_first_seen = ? WHERE identity = ? AND cert_first_seen = 0`),
			row.LastSeen.UnixNano(), row.Identity); err != nil {
			return err
		}
	}
	return nil
}
