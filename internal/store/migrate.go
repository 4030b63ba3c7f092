package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/certgate/certgate/internal/clock"
)

// Migrations live in migrations/<dialect>/NNNN_name.sql, numbered from 1
// without gaps; both dialects have the same versions. Each one is applied
// once, in its own transaction, under the write lock, and recorded in
// schema_migrations.
//
//go:embed migrations
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// ErrSchemaTooNew is wrapped when the database was migrated by a newer
// certgate than this one.
var ErrSchemaTooNew = errors.New("database schema is newer than this certgate")

func loadMigrations(dialect string) ([]migration, error) {
	dir := path.Join("migrations", dialect)
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("store: migrations: %s: name is not NNNN_name.sql", name)
		}
		body, err := fs.ReadFile(migrationFS, path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("store: migrations: %w", err)
		}
		ms = append(ms, migration{version: v, name: strings.TrimSuffix(name, ".sql"), sql: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("store: migrations: %s: expected version %d", m.name, i+1)
		}
	}
	return ms, nil
}

const createSchemaMigrations = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER NOT NULL PRIMARY KEY,
	name       TEXT    NOT NULL,
	applied_at BIGINT  NOT NULL
)`

// migrate brings the schema of db up to the latest embedded version and
// returns the versions before and after. A database newer than this binary
// is refused and left alone.
func migrate(ctx context.Context, db *sql.DB, d dialect) (from, to int, err error) {
	ms, err := loadMigrations(d.name())
	if err != nil {
		return 0, 0, err
	}
	latest := len(ms)
	from = -1
	for {
		cur, done, err := migrateStep(ctx, db, d, ms)
		if err != nil {
			return 0, 0, err
		}
		if from < 0 {
			from = cur
		}
		if done {
			return from, latest, nil
		}
	}
}

// migrateStep applies the next pending migration, if any, in one
// transaction. It returns the version found before it and whether the
// schema was already current.
func migrateStep(ctx context.Context, db *sql.DB, d dialect, ms []migration) (cur int, done bool, err error) {
	fail := func(stage string, err error) (int, bool, error) {
		if d.unavailable(err) {
			return 0, false, fmt.Errorf("store: migrate: %s%w: %w", stage, ErrUnavailable, err)
		}
		return 0, false, fmt.Errorf("store: migrate: %s%w", stage, err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fail("", err)
	}
	defer tx.Rollback()
	if err := d.lockWrites(ctx, tx); err != nil {
		return fail("", err)
	}
	if _, err := tx.ExecContext(ctx, createSchemaMigrations); err != nil {
		return fail("", err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
		return fail("", err)
	}
	latest := len(ms)
	switch {
	case cur > latest:
		return cur, false, fmt.Errorf("store: %w: it is at version %d, this certgate knows up to %d; upgrade certgate",
			ErrSchemaTooNew, cur, latest)
	case cur == latest:
		if err := tx.Commit(); err != nil {
			return fail("", err)
		}
		return cur, true, nil
	}
	m := ms[cur]
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fail(m.name+": ", err)
	}
	if m.version == 4 {
		if _, err := legacyGrants(ctx, tx, d, clock.Real{}.Now()); err != nil {
			return fail(m.name+": legacy role grants: ", err)
		}
	}
	if _, err := tx.ExecContext(ctx, d.bind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
		m.version, m.name, clock.Real{}.Now().UnixNano()); err != nil {
		return fail(m.name+": ", err)
	}
	if err := tx.Commit(); err != nil {
		return fail(m.name+": commit: ", err)
	}
	return cur, false, nil
}

// LatestSchemaVersion is the schema version this certgate migrates to.
func LatestSchemaVersion() int {
	ms, err := loadMigrations(sqliteDialect{}.name())
	if err != nil {
		panic(err) // the embedded migrations are checked by the tests
	}
	return len(ms)
}
