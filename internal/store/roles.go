package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/certgate/certgate/internal/audit"
	"github.com/certgate/certgate/internal/roles"
)

// Role errors callers branch on.
var (
	// ErrDuplicateGrant: the same role, holder and scope is granted already.
	ErrDuplicateGrant = errors.New("role already granted")
	// ErrLastAdmin: revoking the grant would leave no admin grant, and
	// nobody could grant or revoke anything again.
	ErrLastAdmin = errors.New("it is the last admin grant; grant admin to another identity first")
)

// ActorMigration is the actor of what a schema migration recorded.
const ActorMigration = "system:migration"

// GrantRole records g (validated, any trust domain) with an audit record
// (role.grant) in one transaction.
func (s *SQL) GrantRole(ctx context.Context, g roles.Grant) error {
	what := fmt.Sprintf("grant role %s to %s", g.Role, g.Holder)
	if err := g.Validate(""); err != nil {
		return fmt.Errorf("store: %s: %w", what, err)
	}
	if g.GrantedBy == "" || g.GrantedAt.IsZero() {
		return fmt.Errorf("store: %s: granted_by and granted_at are required", what)
	}
	return s.submit(ctx, what, func(ctx context.Context, w *wtx) error {
		w.grantsRead = false
		defer func() { w.grantsRead = false }()
		var n int
		if err := w.tx.QueryRowContext(ctx, s.d.bind(`SELECT COUNT(*) FROM role_grants WHERE role = ? AND holder = ? AND scope = ?`),
			g.Role, g.Holder, g.Scope).Scan(&n); err != nil {
			return s.wrap(what, err)
		}
		if n > 0 {
			return fmt.Errorf("store: %s: %w", what, ErrDuplicateGrant)
		}
		if _, err := w.tx.ExecContext(ctx, s.d.bind(`INSERT INTO role_grants (role, holder, scope, granted_by, granted_at) VALUES (?, ?, ?, ?, ?)`),
			g.Role, g.Holder, g.Scope, g.GrantedBy, g.GrantedAt.UnixNano()); err != nil {
			return s.wrap(what, err)
		}
		if _, err := w.appendAudit(ctx, grantEntry(audit.ActionRoleGrant, g, g.GrantedBy, g.GrantedAt, "")); err != nil {
			return s.wrap(what+": audit", err)
		}
		return nil
	})
}

func grantEntry(action string, g roles.Grant, by string, at time.Time, note string) audit.Entry {
	d := struct {
		Role  string `json:"role"`
		Scope string `json:"scope,omitempty"`
		Note  string `json:"note,omitempty"`
	}{g.Role, g.Scope, note}
	detail, _ := json.Marshal(d)
	return audit.Entry{Time: at, Actor: by, Action: action, Subject: g.Holder, Detail: string(detail)}
}

// RevokeRole removes the grant of role to holder (with scope), with an
// audit record (role.revoke) in one transaction. An unknown grant is
// ErrNotFound; the last admin grant is ErrLastAdmin.
func (s *SQL) RevokeRole(ctx context.Context, g roles.Grant, by string, now time.Time) error {
	what := fmt.Sprintf("revoke role %s from %s", g.Role, g.Holder)
	if by == "" || now.IsZero() {
		return fmt.Errorf("store: %s: by and now are required", what)
	}
	return s.submit(ctx, what, func(ctx context.Context, w *wtx) error {
		w.grantsRead = false
		defer func() { w.grantsRead = false }()
		res, err := w.tx.ExecContext(ctx, s.d.bind(`DELETE FROM role_grants WHERE role = ? AND holder = ? AND scope = ?`), g.Role, g.Holder, g.Scope)
		if err != nil {
			return s.wrap(what, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return s.wrap(what, err)
		} else if n == 0 {
			return fmt.Errorf("store: %s: %w", what, ErrNotFound)
		}
		if g.Role == roles.Admin {
			var left int
			if err := w.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM role_grants WHERE role = 'admin'`).Scan(&left); err != nil {
				return s.wrap(what, err)
			}
			if left == 0 {
				return fmt.Errorf("store: %s: %w", what, ErrLastAdmin)
			}
		}
		if _, err := w.appendAudit(ctx, grantEntry(audit.ActionRoleRevoke, g, by, now, "")); err != nil {
			return s.wrap(what+": audit", err)
		}
		return nil
	})
}

// RoleGrants returns every grant, ordered by role, holder and scope.
func (s *SQL) RoleGrants(ctx context.Context) ([]roles.Grant, error) {
	const what = "role grants"
	if err := s.readCheck(what); err != nil {
		return nil, err
	}
	out, err := scanGrants(s.rstmts[rsRoleGrants].QueryContext(ctx))
	if err != nil {
		return nil, s.wrap(what, err)
	}
	return out, nil
}

// scanGrants reads the rows of a role_grants query (stRoleGrants,
// rsRoleGrants) and closes them.
func scanGrants(rows *sql.Rows, err error) ([]roles.Grant, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []roles.Grant{}
	for rows.Next() {
		var g roles.Grant
		var at int64
		if err := rows.Scan(&g.Role, &g.Holder, &g.Scope, &g.GrantedBy, &at); err != nil {
			return nil, err
		}
		g.GrantedAt = fromNanos(at)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// legacyPrefixes are the identity path prefixes that carried a role before
// roles were data (schema version 4).
var legacyPrefixes = []struct{ prefix, role string }{
	{"/admin/", roles.Admin},
	{"/gateway/", roles.Gateway},
}

// legacyGrants is the Go step of migration 4, in its transaction: for each
// trust domain with a certificate under /admin/ or /gateway/, it grants the
// role that prefix implied to the pattern spiffe://TD/<prefix>*, with an
// audit record saying so, so that an installation made before roles keeps
// working. An operator narrows them later (certgate role list / revoke).
func legacyGrants(ctx context.Context, tx *sql.Tx, d dialect, now time.Time) ([]roles.Grant, error) {
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT identity FROM certificates ORDER BY identity`)
	if err != nil {
		return nil, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var grants []roles.Grant
	for _, id := range ids {
		rest, ok := strings.CutPrefix(id, "spiffe://")
		if !ok {
			continue
		}
		td, path, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		for _, lp := range legacyPrefixes {
			if !strings.HasPrefix("/"+path, lp.prefix) {
				continue
			}
			g := roles.Grant{Role: lp.role, Holder: "spiffe://" + td + lp.prefix + "*", GrantedBy: ActorMigration, GrantedAt: now}
			if g.Validate("") == nil && !slices.ContainsFunc(grants, func(x roles.Grant) bool { return x.Role == g.Role && x.Holder == g.Holder }) {
				grants = append(grants, g)
			}
		}
	}
	var head *audit.Record
	var seq int64
	var hash []byte
	switch err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash); {
	case err == nil:
		head = &audit.Record{Seq: seq, Hash: hash}
	case !errors.Is(err, sql.ErrNoRows):
		return nil, err
	}
	for _, g := range grants {
		if _, err := tx.ExecContext(ctx, d.bind(`INSERT INTO role_grants (role, holder, scope, granted_by, granted_at) VALUES (?, ?, ?, ?, ?)`),
			g.Role, g.Holder, "", g.GrantedBy, now.UnixNano()); err != nil {
			return nil, err
		}
		r := audit.Next(head, grantEntry(audit.ActionRoleGrant, g, ActorMigration, now,
			fmt.Sprintf("schema migration 4: identities under %s held role %s by their path before roles were data; granted explicitly so this installation keeps working; narrow it with certgate role revoke/grant",
				strings.TrimSuffix(strings.TrimPrefix(g.Holder, "spiffe://"), "*"), g.Role)))
		if _, err := tx.ExecContext(ctx, d.bind(`INSERT INTO audit (seq, time, actor, action, subject, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
			r.Seq, r.Time.UnixNano(), r.Actor, r.Action, r.Subject, r.Detail, r.PrevHash, r.Hash); err != nil {
			return nil, err
		}
		head = &audit.Record{Seq: r.Seq, Hash: r.Hash}
	}
	return grants, nil
}
