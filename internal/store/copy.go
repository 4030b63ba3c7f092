package store

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/certgate/certgate/internal/audit"
)

// Moving an installation from one store to another ("certgate store copy",
// typically SQLite to PostgreSQL). The copy is raw: every row of every
// table, with its positions, sequence numbers and hashes exactly as they
// are, so the audit chain, the event positions gateways resume from and
// the token redemptions mean the same thing on the target.

// ErrNotEmpty is wrapped when the target of a copy already holds data.
var ErrNotEmpty = errors.New("target store is not empty")

// Inventory is what a store holds, counted in one consistent read.
type Inventory struct {
	Certificates int64
	Revocations  int64
	Tokens       int64
	Events       int64
	LastPosition int64 // of the last event, 0 when there is none
	AuditRecords int64
	AuditSeq     int64  // of the last audit record, 0 when there is none
	AuditHead    []byte // hash of the last audit record, nil when there is none
	CACerts      int64  // CA certificates (roots, intermediates, cross-certificates)
	Rotations    int64
	RoleGrants   int64
}

// Empty reports whether the store holds nothing at all.
func (i Inventory) Empty() bool {
	return i.Certificates == 0 && i.Revocations == 0 && i.Tokens == 0 && i.Events == 0 && i.AuditRecords == 0 &&
		i.CACerts == 0 && i.Rotations == 0 && i.RoleGrants == 0
}

// Equal reports whether i and o count the same rows and end at the same
// event position and audit head.
func (i Inventory) Equal(o Inventory) bool {
	return i.Certificates == o.Certificates && i.Revocations == o.Revocations && i.Tokens == o.Tokens &&
		i.Events == o.Events && i.LastPosition == o.LastPosition && i.AuditRecords == o.AuditRecords &&
		i.AuditSeq == o.AuditSeq && bytes.Equal(i.AuditHead, o.AuditHead) && i.CACerts == o.CACerts && i.Rotations == o.Rotations &&
		i.RoleGrants == o.RoleGrants
}

func (i Inventory) String() string {
	head := "none"
	if i.AuditHead != nil {
		head = fmt.Sprintf("%d %s", i.AuditSeq, hex.EncodeToString(i.AuditHead))
	}
	s := fmt.Sprintf("%d certificates, %d revocations, %d tokens, %d events (last position %d), %d audit records (head %s)",
		i.Certificates, i.Revocations, i.Tokens, i.Events, i.LastPosition, i.AuditRecords, head)
	if i.CACerts > 0 || i.Rotations > 0 {
		s += fmt.Sprintf(", %d CA certificates, %d rotations", i.CACerts, i.Rotations)
	}
	if i.RoleGrants > 0 {
		s += fmt.Sprintf(", %d role grants", i.RoleGrants)
	}
	return s
}

// Inventory counts what the store holds, from one consistent snapshot.
func (s *SQL) Inventory(ctx context.Context) (Inventory, error) {
	const what = "inventory"
	if err := s.readCheck(what); err != nil {
		return Inventory{}, err
	}
	tx, err := s.rdb.BeginTx(ctx, s.d.readTx())
	if err != nil {
		return Inventory{}, s.wrap(what, err)
	}
	defer tx.Rollback()
	inv, err := inventory(ctx, tx)
	if err != nil {
		return Inventory{}, s.wrap(what, err)
	}
	if err := tx.Commit(); err != nil {
		return Inventory{}, s.wrap(what, err)
	}
	return inv, nil
}

func inventory(ctx context.Context, q queryer) (Inventory, error) {
	var inv Inventory
	err := q.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM certificates),
		(SELECT COUNT(*) FROM revocations),
		(SELECT COUNT(*) FROM tokens),
		(SELECT COUNT(*) FROM events),
		(SELECT COALESCE(MAX(position), 0) FROM events),
		(SELECT COUNT(*) FROM audit),
		(SELECT COUNT(*) FROM ca_certificates),
		(SELECT COUNT(*) FROM ca_rotations),
		(SELECT COUNT(*) FROM role_grants)`).
		Scan(&inv.Certificates, &inv.Revocations, &inv.Tokens, &inv.Events, &inv.LastPosition, &inv.AuditRecords,
			&inv.CACerts, &inv.Rotations, &inv.RoleGrants)
	if err != nil {
		return Inventory{}, err
	}
	switch err := q.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&inv.AuditSeq, &inv.AuditHead); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return Inventory{}, err
	}
	return inv, nil
}

// copyTables are copied in this order: a revocation refers to its
// certificate. Each is read in the order of its key, so a copy is
// reproducible.
var copyTables = []struct{ name, cols, order string }{
	{"certificates", `serial, identity, common_name, fingerprint, not_before, not_after, key_type, obtained,
		renewed_from, token_id, issued_at, der, issuer`, "serial"},
	{"revocations", `serial, reason, revoked_at, revoked_by`, "serial"},
	{"tokens", `id, secret_hash, identity, created_by, created_at, expires_at, redeemed_at, serial`, "id"},
	{"events", eventColumns, "position"},
	{"audit", auditColumns, "seq"},
	{"ca_certificates", caColumns, "fingerprint"},
	{"ca_rotations", rotationColumns, "id"},
	{"role_grants", `role, holder, scope, granted_by, granted_at`, "role, holder, scope"},
	// Legacy keys are state like tokens (their usage, like certificates',
	// is not copied).
	{"legacy_key_salt", `id, salt, created_at`, "id"},
	{"legacy_keys", `name, identity, key_hash, created_by, created_at, sunset, revoked_at, revoked_by, revoke_reason,
		migrate_token, migrated_at, migrated_by, auto_revoke_grace, cert_first_seen`, "name"},
}

// copyBatchParams bounds the parameters of one multi-row INSERT, below
// both SQLite's limit (32766) and PostgreSQL's (65535).
const copyBatchParams = 4000

// Copy copies everything src holds into dst, which must be empty: every
// certificate with its DER, revocation, token (its secret's hash and its
// redemption), event (same positions) and audit record (same sequence
// numbers and hashes). src is read from one consistent snapshot; dst is
// written in one transaction under its write lock. Before committing, the
// audit chain is verified on dst and its inventory compared with src's; if
// anything differs, or dst is not empty (ErrNotEmpty), nothing is written.
// It returns the inventory copied.
//
// Writes to src after its snapshot are not copied: stop the servers using
// src first.
func Copy(ctx context.Context, dst, src *SQL) (Inventory, error) {
	fail := func(s *SQL, what string, err error) (Inventory, error) {
		return Inventory{}, s.wrap("copy: "+what, err)
	}
	if err := src.readCheck("copy"); err != nil {
		return Inventory{}, err
	}
	if err := dst.readCheck("copy"); err != nil {
		return Inventory{}, err
	}
	stx, err := src.rdb.BeginTx(ctx, src.d.readTx())
	if err != nil {
		return fail(src, "source", err)
	}
	defer stx.Rollback()
	want, err := inventory(ctx, stx)
	if err != nil {
		return fail(src, "source", err)
	}

	dtx, err := dst.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fail(dst, "target", err)
	}
	defer dtx.Rollback()
	if err := dst.d.lockWrites(ctx, dtx); err != nil {
		return fail(dst, "target", err)
	}
	had, err := inventory(ctx, dtx)
	if err != nil {
		return fail(dst, "target", err)
	}
	if !had.Empty() {
		return Inventory{}, fmt.Errorf("store: copy: %w: it holds %s; copy only into a new database", ErrNotEmpty, had)
	}

	for _, t := range copyTables {
		if err := copyTable(ctx, dtx, stx, dst.d, t.name, t.cols, t.order); err != nil {
			if errors.Is(err, errCopyRead) {
				return fail(src, t.name, err)
			}
			return fail(dst, t.name, err)
		}
	}

	// Check what the target would commit, inside its transaction.
	n, head, err := verifyAudit(ctx, dtx, dst.d)
	if errors.Is(err, audit.ErrBroken) {
		return Inventory{}, fmt.Errorf("store: copy: the audit chain does not verify on the target, nothing copied: %w", err)
	}
	if err != nil {
		return fail(dst, "verify audit", err)
	}
	got, err := inventory(ctx, dtx)
	if err != nil {
		return fail(dst, "target", err)
	}
	if !got.Equal(want) || n != want.AuditRecords || !bytes.Equal(head, want.AuditHead) {
		return Inventory{}, fmt.Errorf("store: copy: the target would hold %s, the source holds %s; nothing copied", got, want)
	}
	if want.LastPosition > 0 {
		// Wake the followers of replicas already running on the target.
		if err := dst.d.eventsAppended(ctx, dtx, want.LastPosition); err != nil {
			return fail(dst, "notify", err)
		}
	}
	if err := dtx.Commit(); err != nil {
		return fail(dst, "commit", err)
	}
	if err := stx.Commit(); err != nil {
		return fail(src, "source", err)
	}
	if want.LastPosition > 0 {
		dst.signalEvents(want.LastPosition)
	}
	return want, nil
}

// errCopyRead marks a failure to read the source in copyTable.
var errCopyRead = errors.New("reading the source")

// copyTable copies one table from stx into dtx in multi-row INSERTs.
func copyTable(ctx context.Context, dtx, stx *sql.Tx, d dialect, table, cols, order string) error {
	ncol := strings.Count(cols, ",") + 1
	rows, err := stx.QueryContext(ctx, `SELECT `+cols+` FROM `+table+` ORDER BY `+order)
	if err != nil {
		return fmt.Errorf("%w: %w", errCopyRead, err)
	}
	defer rows.Close()
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?, ", ncol), ", ") + ")"
	insert := func(n int) string {
		return d.bind(`INSERT INTO ` + table + ` (` + cols + `) VALUES ` + strings.TrimSuffix(strings.Repeat(tuple+", ", n), ", "))
	}
	per := copyBatchParams / ncol
	full := insert(per)
	vals := make([]any, 0, per*ncol)
	flush := func() error {
		if len(vals) == 0 {
			return nil
		}
		q := full
		if len(vals) < per*ncol {
			q = insert(len(vals) / ncol)
		}
		if _, err := dtx.ExecContext(ctx, q, vals...); err != nil {
			return err
		}
		vals = vals[:0]
		return nil
	}
	row := make([]any, ncol)
	ptrs := make([]any, ncol)
	for i := range row {
		ptrs[i] = &row[i]
	}
	for rows.Next() {
		// Scanning into *any keeps the driver's value (int64, string,
		// []byte copied, nil), which every backend takes back as is.
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("%w: %w", errCopyRead, err)
		}
		vals = append(vals, row...)
		if len(vals) == per*ncol {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%w: %w", errCopyRead, err)
	}
	return flush()
}

// auditPage is how many audit records a verification reads at a time.
const auditPage = 5000

// verifyAudit checks the whole audit chain q holds and returns its length
// and head.
func verifyAudit(ctx context.Context, q queryer, d dialect) (int64, []byte, error) {
	var v audit.Verifier
	query := d.bind(`SELECT ` + auditColumns + ` FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`)
	for {
		recs, err := queryAudit(ctx, q, query, v.Count(), auditPage)
		if err != nil {
			return 0, nil, err
		}
		for _, r := range recs {
			if err := v.Add(r); err != nil {
				return 0, nil, err
			}
		}
		if len(recs) < auditPage {
			return v.Count(), v.Head(), nil
		}
	}
}

// VerifyAudit checks the whole audit chain of s, reading it in pages, and
// returns its length and head hash (nil for an empty log). A broken chain
// is an error wrapping audit.ErrBroken that names the first bad record.
func VerifyAudit(ctx context.Context, s Store) (int64, []byte, error) {
	var v audit.Verifier
	for {
		recs, err := s.AuditRecords(ctx, v.Count(), auditPage)
		if err != nil {
			return 0, nil, err
		}
		for _, r := range recs {
			if err := v.Add(r); err != nil {
				return 0, nil, fmt.Errorf("store: verify audit: %w", err)
			}
		}
		if len(recs) < auditPage {
			return v.Count(), v.Head(), nil
		}
	}
}
